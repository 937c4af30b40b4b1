//! Running a task again when a later step found its committed output lost or corrupt
//! ([`crate::lineage`]): the same task code, committed under the next marker epoch.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use async_trait::async_trait;
use tracing::warn;

use super::execute;
use crate::error::Result;
use crate::lineage::{MAX_RECOVERIES, Recover, lost_too_often};
use crate::marker::{TaskMarker, commit_task, read_marker_at};
use crate::plan::Plan;
use crate::store::Store;

/// How often each task's output had to be made again in this run, shared by its tasks.
#[derive(Default)]
pub struct Recoveries {
    counts: Mutex<HashMap<(usize, usize), u32>>,
}

impl Recoveries {
    /// Counts one more re-run of task `task` of stage `stage` in this run; returns the count.
    pub fn count(&self, stage: usize, task: usize) -> u32 {
        let mut r = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = r.entry((stage, task)).or_default();
        *n += 1;
        *n
    }
}

/// What re-running a task needs: the store, the plan and the run's recovery counts.
pub struct Lineage<'a> {
    /// The job's store.
    pub store: &'a Store,
    /// The plan.
    pub plan: &'a Plan,
    /// The re-runs so far.
    pub recoveries: &'a Recoveries,
}

#[async_trait]
impl Recover for Lineage<'_> {
    async fn recover(&self, stage: usize, task: usize, lost: u32, why: &str) -> Result<TaskMarker> {
        let next = lost + 1;
        if let Some(m) = read_marker_at(self.store, self.plan, stage, task, next).await? {
            return Ok(m);
        }
        let name = &self.plan.stages[stage].name;
        if self.recoveries.count(stage, task) > MAX_RECOVERIES {
            return Err(lost_too_often(name, task, why));
        }
        warn!(job = %self.plan.job_id, stage = %name, task, epoch = next, why, "a committed output was lost or corrupt; running its task again");
        let attempt = format!("{:016x}", rand::random::<u64>());
        let started = Instant::now();
        let mut marker = Box::pin(execute(
            self.store,
            self.plan,
            self.recoveries,
            stage,
            task,
            &attempt,
        ))
        .await?;
        marker.epoch = next;
        marker.seconds = started.elapsed().as_secs_f64();
        Ok(commit_task(self.store, self.plan, &marker)
            .await?
            .unwrap_or(marker))
    }
}
