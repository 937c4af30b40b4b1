//! One task: run it under the attempt's own prefix with its job kind ([`crate::kind`]), and commit it
//! with a marker, exactly once in effect; each attempt is recorded in the job's history.

pub mod recover;

use std::time::Instant;

use tracing::{Instrument, info, info_span};

use crate::error::Result;
use crate::history::{self, Recorder};
use crate::marker::{TaskMarker, commit_task, read_marker};
use crate::plan::Plan;
use crate::store::Store;
use kask_api::history::AttemptOutcome;
use recover::Recoveries;

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
            return Ok(TaskOutcome {
                marker,
                skipped: true,
            });
        }
        crate::failpoint::pause(
            crate::failpoint::SLOW_TASKS,
            crate::failpoint::SLOW_TASK_PAUSE,
        )
        .await;
        let attempt = format!("{:016x}", rand::random::<u64>());
        let recorder = Recorder::of(store, plan);
        let mut record = history::attempt_started(plan, stage, task, &attempt);
        recorder.attempt(&record).await;
        let result = attempt_and_commit(store, plan, recoveries, stage, task, &attempt).await;
        record.ended_ms = Some(history::now_ms());
        record.peak_memory_bytes = history::sampler::sampler().peak_since(record.started_ms);
        match &result {
            Ok(outcome) => {
                let m = &outcome.marker;
                record.outcome = if outcome.skipped {
                    AttemptOutcome::Superseded
                } else {
                    AttemptOutcome::Committed
                };
                if !outcome.skipped {
                    record.rows_in = m.rows_in;
                    record.bytes_in = m.bytes_in;
                    record.rows_out = m.rows_out;
                    record.bytes_out = m.bytes_out;
                    record.spilled_bytes = m.spilled_bytes;
                }
            }
            Err(e) => {
                record.outcome = AttemptOutcome::Failed;
                record.error = Some(e.to_string().trim_end().to_string());
                record.retryable = Some(e.is_retryable());
            }
        }
        recorder.attempt(&record).await;
        result
    }
    .instrument(span)
    .await
}

/// Runs attempt `attempt` of a task and commits it, unless another attempt committed first.
async fn attempt_and_commit(
    store: &Store,
    plan: &Plan,
    recoveries: &Recoveries,
    stage: usize,
    task: usize,
    attempt: &str,
) -> Result<TaskOutcome> {
    let started = Instant::now();
    let mut marker = execute(store, plan, recoveries, stage, task, attempt).await?;
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
            Ok(TaskOutcome {
                marker,
                skipped: false,
            })
        }
        Some(winner) => {
            info!(attempt, winner = %winner.attempt, "another attempt committed first; discarded this one");
            Ok(TaskOutcome {
                marker: winner,
                skipped: true,
            })
        }
    }
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
    let run = crate::kind::TaskRun {
        store,
        plan,
        stage,
        task,
        dir: &dir,
        lineage: &lineage,
    };
    let result = match crate::kind::of_plan(plan) {
        Ok(kind) => kind.execute(&run).await,
        Err(e) => Err(e),
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
