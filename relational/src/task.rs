//! One task of a relational stage: decode the stage's sub-plan from the plan, check it is the
//! one the plan pod cut, run partition `task` of it, and hand the rows to the sink.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;

use datafusion::error::DataFusionError;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::metrics::Time;
use datafusion::physical_plan::repartition::BatchPartitioner;
use futures::StreamExt;

use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::MemoryLimit;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::SessionContext;

use super::codec::decode;
use super::cut::CutStage;
use super::exchange::{ShuffleSource, SinkKind, TaskShuffles};
use super::key_filter::{KeyHashes, task_keys};
use super::range_sort::{SortKeys, write_chunks};
use super::session::session;
use kask_core::error::df_message;
use kask_core::error::{Error, Result, store_failure};
use kask_core::marker::{TaskFile, TaskMarker};
use kask_core::output::write_output;
use kask_core::output_folders::write_in_folders;
use kask_core::plan::{Fragment, Plan, Sink};
use kask_core::shuffle::Partitioner;
use kask_core::store::Store;

/// Runs task `task` of SQL stage `stage`, writing under `dir`; the marker's attempt is left
/// for the caller to fill in.
pub async fn execute(
    store: &Store,
    plan: &Plan,
    stage: usize,
    task: usize,
    dir: &str,
) -> Result<TaskMarker> {
    let st = &plan.stages[stage];
    let shuffles = Arc::new(TaskShuffles::new(store.clone(), Arc::new(plan.clone())));
    let source: Arc<dyn ShuffleSource> = shuffles.clone();
    let ctx = session(store, &plan.spec, crate::SqlPlan::of(plan)?.partitions);
    let mut cut = decoded(plan, stage, &ctx, source)?;
    cut.root = crate::build_side::smaller_builds(cut.root, shuffles.as_ref())
        .await
        .map_err(|e| Error::internal(format!("stage {}: {e}", st.name)))?;
    // Held until the task ends, for the tasks after it in this process.
    let mut tables;
    (cut.root, tables) = crate::shared_table::share_tables(cut.root, stage, shuffles.scope())
        .map_err(|e| Error::internal(format!("stage {}: {e}", st.name)))?;
    let exhausted = AtomicBool::new(false);
    let task_err = |e: DataFusionError| -> Error {
        if matches!(e.find_root(), DataFusionError::ResourcesExhausted(_)) {
            exhausted.store(true, Ordering::Relaxed);
        }
        if let Some(kept) = shuffles.error.lock().ok().and_then(|mut k| k.take()) {
            return kept;
        }
        match store_failure(&e) {
            Some(why) => store.err_text(format!("stage {} task {task}", st.name), why),
            None => Error::Task {
                stage: st.name.clone(),
                task,
                message: df_message(&e),
            },
        }
    };
    let mut written = sink(
        store,
        plan,
        dir,
        (stage, &cut),
        task,
        ctx.task_ctx(),
        &task_err,
    )
    .await;
    if matches!(written, Err(Error::Task { .. })) && exhausted.load(Ordering::Relaxed) {
        // A hash join's build side outgrew the budget: run again with spilling joins.
        if let Ok(Some(root)) = crate::spill_join::sort_merge_joins(&cut.root) {
            tracing::warn!(
                stage = %st.name,
                task,
                "a hash join needed more memory than the task's budget; running the task again with sort-merge joins, which spill"
            );
            cut.root = root;
            if let Ok(mut read) = shuffles.read.lock() {
                *read = Default::default();
            }
            written = sink(
                store,
                plan,
                dir,
                (stage, &cut),
                task,
                capped(&ctx)?,
                &task_err,
            )
            .await;
        }
    }
    match written {
        Ok(_) => tables.finished(),
        Err(_) => tables.forget(),
    }
    let Written {
        files,
        spilled: writer_spilled,
        key_hashes,
    } = match written {
        Ok(written) => written,
        Err(e @ Error::Task { .. }) => {
            return Err(diagnose(store, plan, stage, task, &ctx, e).await);
        }
        Err(e) => return Err(e),
    };
    let (shuffle_bytes, shuffle_rows) = shuffles.read.lock().map(|r| *r).unwrap_or_default();
    Ok(TaskMarker {
        stage,
        task,
        rows_in: shuffle_rows + scanned_rows(&cut.root),
        bytes_in: shuffle_bytes + scanned_bytes(&cut.root),
        rows_out: files.iter().map(|f| f.rows).sum(),
        bytes_out: files.iter().map(|f| f.bytes).sum(),
        spilled_bytes: spilled_bytes(&cut.root) + writer_spilled,
        files,
        key_hashes,
        ..TaskMarker::default()
    })
}

/// Stage `stage` of `plan` as the plan pod cut it, its shuffle readers reading from `source`.
fn decoded(
    plan: &Plan,
    stage: usize,
    ctx: &SessionContext,
    source: Arc<dyn ShuffleSource>,
) -> Result<CutStage> {
    let st = &plan.stages[stage];
    let recorded = crate::SqlStage::of(st)?;
    let (root, hash) = decode(
        &recorded.proto,
        (recorded.hash.as_deref(), recorded.range.as_deref()),
        &ctx.task_ctx(),
        source,
    )
    .map_err(|why| {
        Error::Incompatible(format!(
            "stage {}'s plan cannot be read by this kask ({why}): the plan pod and this \
             worker run different versions",
            st.name
        ))
    })?;
    if !super::codec::reads_as(&root, &recorded.plan) {
        return Err(Error::Incompatible(format!(
            "stage {}'s plan reads differently here than in the plan pod: they run different \
             versions of kask",
            st.name
        )));
    }
    // Decimal arithmetic without per-value overflow checks where none can overflow, string
    // comparisons with constants view by view, `AND`s and `OR`s that pre-select cheaply,
    // partial aggregations in cache-sized tables or grouped by dictionary codes, filters
    // that do not copy the batches they keep whole, and sorts by keys that pack into an
    // integer: task-side rewrites, so the plan the plan pod recorded (and checked above) is
    // unchanged.
    let root = crate::decimal_arith::exact_decimal_arithmetic(root)
        .and_then(crate::view_eq::view_equalities)
        .and_then(crate::lean_logic::lean_logic)
        .and_then(crate::radix_groups::radix_group_aggregates)
        .and_then(crate::dict_groups::dictionary_group_aggregates)
        .and_then(crate::lean_filter::lean_filters)
        .and_then(crate::packed_sort::packed_sorts)
        .map_err(|e| Error::internal(format!("stage {}: {e}", st.name)))?;
    let sink = match (hash, &st.sink) {
        (Some(hash), _) => hash,
        (None, Sink::Output) => SinkKind::Output,
        (None, Sink::Shuffle { .. }) => SinkKind::Single,
        (None, Sink::Scratch | Sink::Ranges { .. }) => {
            return Err(Error::internal(format!(
                "relational stage {} sinks into scratch files or sorted runs it has no order for",
                st.name
            )));
        }
    };
    let mut cut = CutStage::new(root, sink);
    cut.key_hashes = recorded.key_hashes;
    Ok(cut)
}

/// Runs partition `task` of the stage's sub-plan into its sink.
async fn sink(
    store: &Store,
    plan: &Plan,
    dir: &str,
    (cut_id, cut): (usize, &CutStage),
    task: usize,
    task_ctx: Arc<TaskContext>,
    task_err: &(dyn Fn(DataFusionError) -> Error + Sync),
) -> Result<Written> {
    let pool = match task_ctx.memory_pool().memory_limit() {
        MemoryLimit::Finite(bytes) => Some(bytes),
        _ => None,
    };
    let stream = cut.root.execute(task, task_ctx).map_err(task_err)?;
    Ok(match &cut.sink {
        SinkKind::Output => {
            let target = plan.target_of(cut_id).ok_or_else(|| {
                Error::internal(format!("stage {cut_id} writes no output of the plan"))
            })?;
            let keys = &target.output.partition_by;
            let files = if keys.is_empty() {
                write_output(store, dir, target.format, stream, task_err).await?
            } else {
                write_in_folders(store, dir, target.format, keys, stream, task_err).await?
            };
            Written {
                files,
                spilled: 0,
                key_hashes: None,
            }
        }
        SinkKind::Ranges(ordering, chunk_rows) => {
            let keys = SortKeys::new(ordering, &cut.root.schema())?;
            let (file, spilled) =
                write_chunks(store, dir, &keys, *chunk_rows, stream, task_err).await?;
            Written {
                files: vec![file],
                spilled,
                key_hashes: None,
            }
        }
        SinkKind::Hash(..) | SinkKind::Single => {
            // A hash exchange splits rows as DataFusion's repartition would; a gather keeps one
            // partition.
            let (mut hasher, n) = match &cut.sink {
                SinkKind::Hash(exprs, n) => (
                    Some(
                        BatchPartitioner::new_hash_partitioner(exprs.clone(), *n, Time::new())
                            .map_err(task_err)?,
                    ),
                    *n,
                ),
                _ => (None, 1),
            };
            let mut parts = Partitioner::by_caller(cut.root.schema(), n).within(&store.runtime);
            let mut keys = match &cut.sink {
                SinkKind::Hash(exprs, _) if cut.key_hashes => {
                    Some(KeyHashes::new(exprs.clone(), task_keys(pool)))
                }
                _ => None,
            };
            let mut stream = stream;
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(task_err)?;
                if let Some(k) = keys.as_mut() {
                    k.push(&batch).map_err(task_err)?;
                }
                match hasher.as_mut() {
                    Some(h) => {
                        for piece in h.partition_iter(batch).map_err(task_err)? {
                            let (p, b) = piece.map_err(task_err)?;
                            parts.push_to(p, b)?;
                        }
                    }
                    None => parts.push_to(0, batch)?,
                }
            }
            let spilled = parts.spilled_bytes();
            let shuffle = kask_core::shuffle::write(store, dir, parts, n).await?;
            let key_hashes = match keys.and_then(KeyHashes::finish) {
                Some((bytes, count)) => Some(write_key_hashes(store, dir, bytes, count).await?),
                None => None,
            };
            Written {
                files: vec![shuffle],
                spilled,
                key_hashes,
            }
        }
    })
}

/// What a task's sink wrote.
struct Written {
    files: Vec<TaskFile>,
    /// Bytes the shuffle writer spilled.
    spilled: u64,
    key_hashes: Option<TaskFile>,
}

/// Writes a map task's key hashes, `<dir>/key-hashes`, and describes them.
async fn write_key_hashes(store: &Store, dir: &str, bytes: Bytes, count: u64) -> Result<TaskFile> {
    let path = format!("{dir}/key-hashes");
    let crc = kask_core::store::checksum::crc32c(&bytes);
    let len = bytes.len() as u64;
    store.put(&path, bytes).await?;
    Ok(TaskFile {
        path,
        rows: count,
        bytes: len,
        crc32c: Some(crc),
        partitions: vec![],
        window: 0,
        samples: vec![],
    })
}

/// The task context of `ctx` with each operator held to half the pool: the sorts
/// under a sort-merge join run one after the other, and the first must leave room for the
/// second ([`kask_core::capped_pool`]).
fn capped(ctx: &SessionContext) -> Result<Arc<TaskContext>> {
    let runtime = kask_core::capped_pool::runtime(&ctx.runtime_env(), 2)
        .map_err(|e| Error::internal(format!("a runtime for spilling joins: {e}")))?;
    let state = SessionStateBuilder::new_from_existing(ctx.state())
        .with_runtime_env(runtime)
        .build();
    Ok(Arc::new(TaskContext::from(&state)))
}

/// A task failed on its data: when it scanned a table, find the file and the line. A stage
/// that scans one table with one partition per task read that task's own ranges; otherwise
/// every range of the tables it scans is tried, unless they are too large to read again.
async fn diagnose(
    store: &Store,
    plan: &Plan,
    stage: usize,
    task: usize,
    ctx: &SessionContext,
    original: Error,
) -> Error {
    const REREAD_LIMIT: u64 = 1 << 30;
    let st = &plan.stages[stage];
    let (Ok(q), Ok(sql)) = (crate::SqlStage::of(st), crate::SqlPlan::of(plan)) else {
        return original;
    };
    let tables = q.scanned_tables(plan);
    let mut err = original;
    for table in &tables {
        let Some(tasks) = sql.tables.get(*table) else {
            continue;
        };
        let fragments: Vec<Fragment> = if tables.len() == 1 && tasks.len() == st.tasks {
            tasks.get(task).cloned().unwrap_or_default()
        } else if plan
            .inputs
            .get(*table)
            .is_some_and(|i| i.bytes <= REREAD_LIMIT)
        {
            tasks.concat()
        } else {
            continue;
        };
        err = super::diagnose::diagnose(store, plan, ctx, table, &fragments, err).await;
        if !matches!(err, Error::Task { .. }) {
            return err;
        }
    }
    err
}

/// What the sub-plan's operators (sorts, aggregations, joins) spilled to disk.
fn spilled_bytes(plan: &Arc<dyn ExecutionPlan>) -> u64 {
    let own = plan.metrics().and_then(|m| m.spilled_bytes()).unwrap_or(0) as u64;
    own + plan.children().into_iter().map(spilled_bytes).sum::<u64>()
}

fn scans(plan: &Arc<dyn ExecutionPlan>, out: &mut Vec<Arc<dyn ExecutionPlan>>) {
    if plan.name() == "DataSourceExec" {
        out.push(Arc::clone(plan));
    }
    for c in plan.children() {
        scans(c, out);
    }
}

fn scanned_rows(root: &Arc<dyn ExecutionPlan>) -> u64 {
    let mut all = Vec::new();
    scans(root, &mut all);
    all.iter()
        .filter_map(|s| s.metrics()?.output_rows())
        .sum::<usize>() as u64
}

fn scanned_bytes(root: &Arc<dyn ExecutionPlan>) -> u64 {
    let mut all = Vec::new();
    scans(root, &mut all);
    all.iter()
        .filter_map(|s| s.metrics()?.sum_by_name("bytes_scanned"))
        .map(|v| v.as_usize() as u64)
        .sum()
}
