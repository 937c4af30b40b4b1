//! One task: read its partition, run the stage's operations on DataFusion, write the result to
//! the shuffle or the output under the attempt's own prefix, and commit with a marker.

pub mod aggregate;
pub mod build;
pub mod csv_guard;
pub mod merge;
pub mod recover;
pub mod schema;
pub mod steps;
pub mod tables;

use std::sync::Arc;
use std::time::Instant;

use datafusion::error::DataFusionError;
use datafusion::physical_plan::{ExecutionPlan, execute_stream};
use futures::StreamExt;
use tracing::{Instrument, info, info_span};

use crate::commit::marker::{TaskFile, TaskMarker, commit_task, read_marker};
use crate::commit::output::write_output;
use crate::error::{Error, Result, store_failure};
use crate::plan::{Plan, Sink, StageSource};
use crate::shuffle::{Partitioner, read_partition};
use crate::store::Store;
use build::{Builder, InputCache, TaskData};
use tables::session;

/// A DataFusion error as one line for a user, without DataFusion's internal wrapping.
pub fn df_message(e: &DataFusionError) -> String {
    let root = e.find_root();
    let text = match root {
        DataFusionError::ArrowError(a, _) => a.to_string(),
        DataFusionError::ParquetError(p) => p.to_string(),
        DataFusionError::External(x) => x.to_string(),
        DataFusionError::SchemaError(s, _) => s.to_string(),
        DataFusionError::Plan(s) | DataFusionError::Execution(s) => s.clone(),
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
    inputs: &InputCache,
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
        let mut marker = execute(store, plan, inputs, stage, task, &attempt).await?;
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

fn leaf_rows(plan: &Arc<dyn ExecutionPlan>) -> u64 {
    let children = plan.children();
    if children.is_empty() {
        return plan.metrics().and_then(|m| m.output_rows()).unwrap_or(0) as u64;
    }
    children.into_iter().map(leaf_rows).sum()
}

/// Runs one attempt of a task: its files under the attempt's prefix, and the marker that
/// would commit them.
pub async fn execute(
    store: &Store,
    plan: &Plan,
    inputs: &InputCache,
    stage: usize,
    task: usize,
    attempt: &str,
) -> Result<TaskMarker> {
    let st = &plan.stages[stage];
    let lineage = recover::Lineage {
        store,
        plan,
        inputs,
    };
    if plan.array.is_some() || plan.spec.bag.is_some() || plan.sql.is_some() {
        let dir = plan.attempt_dir(stage, task, attempt);
        let result = if plan.array.is_some() {
            crate::array::task::execute(store, plan, stage, task, &dir, &lineage).await
        } else if plan.sql.is_some() {
            crate::sql::task::execute(store, plan, stage, task, &dir).await
        } else {
            crate::bag::task::execute(store, plan, stage, task, &dir, &lineage).await
        };
        return match result {
            Ok(mut m) => {
                m.attempt = attempt.to_string();
                Ok(m)
            }
            Err(e) => {
                let _ = store.delete_prefix(&dir).await;
                Err(e)
            }
        };
    }
    let mut data = TaskData::default();
    let mut shuffled_rows = None;
    let bytes_in = match &st.source {
        StageSource::Input { .. } => {
            data.fragments = st.fragments.get(task).cloned().unwrap_or_default();
            data.fragments.iter().map(|f| f.end - f.start).sum()
        }
        StageSource::Shuffle { stage: from } => {
            let (b, n) = read_partition(store, plan, *from, task, &lineage).await?;
            shuffled_rows = Some(b.iter().map(|b| b.num_rows() as u64).sum());
            data.left = b;
            n
        }
        StageSource::Array | StageSource::Sql { .. } => {
            return Err(Error::internal(
                "an array or SQL stage in the dataframe engine",
            ));
        }
        StageSource::Join { left, right, .. } => {
            let (l, ln) = read_partition(store, plan, *left, task, &lineage).await?;
            let (r, rn) = read_partition(store, plan, *right, task, &lineage).await?;
            shuffled_rows = Some(l.iter().chain(&r).map(|b| b.num_rows() as u64).sum());
            data.left = l;
            data.right = r;
            ln + rn
        }
    };
    let fragments = data.fragments.clone();

    let ctx = session(store);
    let built = Builder {
        ctx: &ctx,
        plan,
        store,
        inputs: Some(inputs),
    }
    .build(st, data)
    .await?;
    let dir = plan.attempt_dir(stage, task, attempt);
    let task_err = |e: DataFusionError| match store_failure(&e) {
        // The store failed under DataFusion's reader: worth another attempt, unlike bad data.
        Some(why) => store.err_text(format!("stage {} task {task}", st.name), why),
        None => Error::Task {
            stage: st.name.clone(),
            task,
            message: df_message(&e),
        },
    };
    let stream = execute_stream(built.exec.clone(), ctx.task_ctx()).map_err(task_err)?;

    let result: Result<Vec<TaskFile>> = match &st.sink {
        Sink::Output => {
            write_output(store, &dir, plan.spec.output_format(), stream, &task_err).await
        }
        Sink::Scratch => Err(Error::internal("a dataframe stage with a scratch sink")),
        Sink::Shuffle {
            partitions,
            keys,
            float_keys,
            ..
        } => {
            shuffle_out(
                store,
                &dir,
                stream,
                keys,
                float_keys,
                *partitions,
                &task_err,
            )
            .await
        }
    };
    let files = match result {
        Ok(f) => f,
        Err(e) => {
            let _ = store.delete_prefix(&dir).await;
            return Err(match (&st.source, e) {
                (StageSource::Input { input }, e @ Error::Task { .. }) => {
                    diagnose(store, plan, &ctx, input, &fragments, e).await
                }
                (_, e) => e,
            });
        }
    };
    Ok(TaskMarker {
        stage,
        task,
        attempt: attempt.to_string(),
        rows_in: shuffled_rows.unwrap_or_else(|| leaf_rows(&built.exec)),
        bytes_in,
        rows_out: files.iter().map(|f| f.rows).sum(),
        bytes_out: files.iter().map(|f| f.bytes).sum(),
        files,
        ..TaskMarker::default()
    })
}

async fn shuffle_out(
    store: &Store,
    dir: &str,
    mut stream: datafusion::physical_plan::SendableRecordBatchStream,
    keys: &[String],
    float_keys: &[bool],
    partitions: usize,
    on_error: &(dyn Fn(DataFusionError) -> Error + Sync),
) -> Result<Vec<TaskFile>> {
    let mut p = Partitioner::new(stream.schema(), keys, float_keys, partitions)?;
    while let Some(batch) = stream.next().await {
        p.push(batch.map_err(on_error)?)?;
    }
    Ok(vec![
        crate::shuffle::write(store, dir, p, partitions).await?,
    ])
}

/// A task over several files failed while reading: find the file, and make line numbers
/// count from the start of the file rather than from the task's byte range.
pub(crate) async fn diagnose(
    store: &Store,
    plan: &Plan,
    ctx: &datafusion::prelude::SessionContext,
    input: &str,
    fragments: &[crate::plan::Fragment],
    original: Error,
) -> Error {
    for f in fragments {
        let one = std::slice::from_ref(f);
        let Ok(table) = tables::ScanTable::new(store, &plan.inputs[input], one) else {
            continue;
        };
        let Ok(df) = ctx.read_table(Arc::new(table)) else {
            continue;
        };
        if let Err(e) = df.collect().await {
            if store_failure(&e).is_some() {
                // The store failed, not the data: the task's own error says so.
                return original;
            }
            let msg = file_lines(store, &f.path, f.start, &df_message(&e)).await;
            return Error::input(input, format!("{}: {msg}", f.path));
        }
    }
    // Reading alone succeeds: the failure is in the task's own operations.
    original
}

/// Rewrites the CSV reader's "line N" (0-based, counted from where the task's byte range
/// starts) into the 1-based line of the file that an editor shows.
async fn file_lines(store: &Store, path: &str, start: u64, msg: &str) -> String {
    let Some(i) = msg.find("at line ") else {
        return msg.to_string();
    };
    let at = i + "at line ".len();
    let digits: String = msg[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    let Ok(n) = digits.parse::<u64>() else {
        return msg.to_string();
    };
    let line = if start == 0 {
        n + 1
    } else {
        let Ok(prefix) = store.get_range(path, 0..start).await else {
            return msg.to_string();
        };
        // The range begins by skipping the rest of the line `start` falls in, which the
        // previous range reads.
        let before = prefix.iter().filter(|&&b| b == b'\n').count() as u64;
        before + n + 2
    };
    format!("{}{line}{}", &msg[..at], &msg[at + digits.len()..])
}
