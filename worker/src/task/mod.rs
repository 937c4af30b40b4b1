//! One task: run it under the attempt's own prefix with its job kind's engine, and commit it
//! with a marker, exactly once in effect.

pub mod recover;

use std::time::Instant;

use datafusion::error::DataFusionError;
use tracing::{Instrument, info, info_span};

use crate::commit::marker::{TaskMarker, commit_task, read_marker};
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::store::Store;
use recover::Recoveries;

/// A DataFusion error as one line for a user, without DataFusion's internal wrapping.
pub fn df_message(e: &DataFusionError) -> String {
    let root = e.find_root();
    let text = match root {
        DataFusionError::ArrowError(a, _) => a.to_string(),
        DataFusionError::ParquetError(p) => p.to_string(),
        DataFusionError::External(x) => x.to_string(),
        DataFusionError::SchemaError(s, _) => s.to_string(),
        DataFusionError::Plan(s) | DataFusionError::Execution(s) => s.clone(),
        // An operator that cannot spill (or cannot spill enough) needed more than the pool.
        DataFusionError::ResourcesExhausted(s) => format!(
            "the task needed more memory than its budget allows ({s}); give the workers more \
             memory (spec.resources.limits.memory, or kask run --memory) or more tasks \
             (spec.shufflePartitions, a smaller targetTaskBytes)"
        ),
        other => other.to_string(),
    };
    text.trim().to_string()
}

/// What running a task produced.
#[derive(Clone, Debug)]
pub struct TaskOutcome {
    /// The committed marker (this attempt's, or an earlier attempt's).
    pub marker: TaskMarker,
    /// Whether an earlier attempt had already committed the task.
    pub skipped: bool,
}

/// Runs task `task` of stage `stage`, exactly once in effect.
pub async fn run_task(
    store: &Store,
    plan: &Plan,
    recoveries: &Recoveries,
    stage: usize,
    task: usize,
) -> Result<TaskOutcome> {
    let st = &plan.stages[stage];
    let span = info_span!("task", job = %plan.job_id, stage = %st.name, task);
    async move {
        if let Some(marker) = read_marker(store, plan, stage, task).await? {
            return Ok(TaskOutcome { marker, skipped: true });
        }
        let attempt = format!("{:016x}", rand::random::<u64>());
        let started = Instant::now();
        let mut marker = execute(store, plan, recoveries, stage, task, &attempt).await?;
        marker.seconds = started.elapsed().as_secs_f64();
        match commit_task(store, plan, &marker).await? {
            None => {
                info!(
                    rows_in = marker.rows_in,
                    rows_out = marker.rows_out,
                    bytes_in = marker.bytes_in,
                    bytes_out = marker.bytes_out,
                    seconds = marker.seconds,
                    "task committed"
                );
                Ok(TaskOutcome { marker, skipped: false })
            }
            Some(winner) => {
                info!(attempt, winner = %winner.attempt, "another attempt committed first; discarded this one");
                Ok(TaskOutcome { marker: winner, skipped: true })
            }
        }
    }
    .instrument(span)
    .await
}

/// Runs one attempt of a task: its files under the attempt's prefix, and the marker that
/// would commit them.
pub async fn execute(
    store: &Store,
    plan: &Plan,
    recoveries: &Recoveries,
    stage: usize,
    task: usize,
    attempt: &str,
) -> Result<TaskMarker> {
    let lineage = recover::Lineage {
        store,
        plan,
        recoveries,
    };
    let dir = plan.attempt_dir(stage, task, attempt);
    let result = if plan.array.is_some() {
        crate::array::task::execute(store, plan, stage, task, &dir, &lineage).await
    } else if plan.sql.is_some() {
        crate::relational::task::execute(store, plan, stage, task, &dir).await
    } else if plan.spec.bag.is_some() {
        crate::bag::task::execute(store, plan, stage, task, &dir, &lineage).await
    } else {
        Err(Error::internal("a plan of no job kind this kask runs"))
    };
    match result {
        Ok(mut m) => {
            m.attempt = attempt.to_string();
            Ok(m)
        }
        Err(e) => {
            let _ = store.delete_prefix(&dir).await;
            Err(e)
        }
    }
}
