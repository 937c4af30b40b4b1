//! The DataFusion session a relational job (SQL or a pipeline) is planned and run in, the
//! same in the plan pod and in every task, so that every process derives the same stages.

use std::sync::Arc;

use datafusion::execution::SessionStateBuilder;
use datafusion::execution::memory_pool::MemoryLimit;
use datafusion::optimizer::{Optimizer, OptimizerRule};
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::group_keys::FilterGroupsByKeys;
use crate::join_order::JoinOrder;
use crate::tables::{ScanTable, batch_size};
use kask_api::DaskJobSpec;
use kask_core::error::{Error, Result};
use kask_core::plan::Plan;
use kask_core::store::Store;

/// Rows a partial aggregation sees before it judges whether aggregating pays.
const PARTIAL_AGGREGATION_PROBE_ROWS: usize = 1_000_000;

/// A session whose physical plans Kask can cut into stages: `partitions` for every hash
/// exchange; scans keep one partition per task; no round-robin repartitioning (it needs
/// rows to move between partitions of one process); no work stealing between a scan's
/// partitions (in one task, its partition would steal every other task's files); no dynamic
/// filters and no scalar subquery operator (they pass state between operators of one
/// process); no sort pushdown (see below). A join whose build side is small (a scan's
/// estimate is its bytes) collects it whole in every task instead of shuffling both sides:
/// below `spec.broadcastBytes` and a sixteenth of the memory pool, a join's output by the
/// estimate of [`crate::size_hint`]. Joins
/// are reordered by estimated size ([`JoinOrder`]). A pipeline's column names are
/// case-sensitive, as in pandas; an SQL query's follow SQL.
pub fn session(store: &Store, spec: &DaskJobSpec, partitions: usize) -> SessionContext {
    let mut config = SessionConfig::new()
        .with_target_partitions(partitions.max(1))
        .with_batch_size(batch_size(store))
        .with_round_robin_repartition(false)
        .with_repartition_file_scans(false);
    let o = &mut config.options_mut().optimizer;
    o.enable_dynamic_filter_pushdown = false;
    o.enable_join_dynamic_filter_pushdown = false;
    o.enable_topk_dynamic_filter_pushdown = false;
    o.enable_aggregate_dynamic_filter_pushdown = false;
    // A scalar subquery evaluated by its own operator fills a value that expressions in other
    // operators read; once those operators run in another stage's task, they would read it
    // unfilled. Rewritten as a join, it is data that flows through the shuffle like any other.
    o.enable_physical_uncorrelated_scalar_subquery = false;
    // Sort pushdown leaves hints in a Parquet scan (the order to read its row groups in) that
    // datafusion-proto does not carry, so the stage a task decodes would differ from the one
    // the plan pod cut. They only let a top-k stop early on sorted files.
    o.enable_sort_pushdown = false;
    // A shuffle writes both sides to the store and reads them back; a side read whole costs
    // each task one read of it. At TPC-H SF1 on 2 cores, 64 MiB (the spec's default) against
    // DataFusion's 1 MB took the 22 queries from 9.0-9.4 s to 7.1-7.6 s.
    o.hash_join_single_partition_threshold =
        usize::try_from(broadcast_bytes(spec, store)).unwrap_or(usize::MAX);
    config.options_mut().sql_parser.collect_spans = true;
    if spec.dataframe.is_some() {
        config.options_mut().sql_parser.enable_ident_normalization = false;
    }
    let execution = &mut config.options_mut().execution;
    execution.enable_file_stream_work_stealing = false;
    // A partial aggregation stops aggregating when it still finds new groups in most rows after
    // this many: DataFusion's 100,000 gives up on 1e6 groups in a task's 5.5 million rows
    // (95% new after 100,000 rows, 63% after 1,000,000) and sends every row through the
    // object store's shuffle instead of one per group.
    execution.skip_partial_aggregation_probe_rows_threshold = PARTIAL_AGGREGATION_PROBE_ROWS;
    // A sort keeps this much back for merging its spilled runs; DataFusion's 10 MiB default
    // leaves nothing for a second sort (a sort-merge join has two) in a small budget.
    if let MemoryLimit::Finite(pool) = store.runtime.memory_pool.memory_limit() {
        execution.sort_spill_reservation_bytes =
            execution.sort_spill_reservation_bytes.min(pool / 16);
    }
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(Arc::clone(&store.runtime))
        .with_default_features()
        .with_optimizer_rules(optimizer_rules());
    let state = crate::size_hint::install(state).build();
    SessionContext::new_with_state(state)
}

/// The largest estimated build side a join collects whole in every task: `spec.broadcastBytes`,
/// but no more than a sixteenth of the memory pool. A table's bytes in its files grow several
/// times once decoded and hashed, and the tasks that run at once each hold their own copy;
/// a side too large for that is shuffled instead, and a partitioned join can spill. Where one
/// process runs every task (`kask run`) and the spec sets no size, a 32nd of the pool
/// ([`LOCAL_COLLECT_SHARE`]): the tasks there share one table ([`crate::shared_table`]), so
/// collecting a side costs the job one read and one table, against writing both sides to the
/// store and reading them back. db-benchmark's join q5 at 1e7 rows (two tables of 10 million
/// rows, 252 MB of files each) shuffled both; collected, see
/// `bench/results/2026-12-07-local-broadcast.md`.
pub(crate) fn broadcast_bytes(spec: &DaskJobSpec, store: &Store) -> u64 {
    match store.runtime.memory_pool.memory_limit() {
        MemoryLimit::Finite(pool) if spec.broadcast_bytes.is_none() && store.runs_every_task() => {
            pool as u64 / LOCAL_COLLECT_SHARE
        }
        MemoryLimit::Finite(pool) => spec.broadcast_bytes().min(pool as u64 / 16),
        _ => spec.broadcast_bytes(),
    }
}

/// The share of the pool whose worth of files `kask run` collects: a collected side cannot
/// spill, and files that decode to ten times their bytes (long runs of a dictionary) still
/// leave two thirds of the pool to the other operators. join q5's side, 252 MB of files (the
/// whole run peaked at 1.94 GB resident), is below a 24 GiB machine's 372 MB.
const LOCAL_COLLECT_SHARE: u64 = 32;

/// The most bytes of files each task reads whole for a join's build side whose table the
/// tasks share ([`crate::cut::Shape::read_whole_bytes`]): where one process runs every task,
/// as much as it may collect, since the process reads it once; elsewhere each task reads it
/// again, and a larger side is read once by a stage of its own.
pub(crate) fn read_whole_bytes(spec: &DaskJobSpec, store: &Store) -> u64 {
    match store.runs_every_task() {
        true => broadcast_bytes(spec, store),
        false => crate::cut::READ_WHOLE_BYTES,
    }
}

/// DataFusion's logical optimizer rules with Kask's among them: aggregations filtered by the
/// keys a join keeps, and the join order; after filters are pushed to the tables (the
/// estimates read them) and before projections are added between the joins.
fn optimizer_rules() -> Vec<Arc<dyn OptimizerRule + Send + Sync>> {
    let mut rules = Optimizer::new().rules;
    let at = rules
        .iter()
        .position(|r| r.name() == "optimize_projections")
        .unwrap_or(rules.len());
    rules.insert(at, Arc::new(JoinOrder));
    rules.insert(at, Arc::new(FilterGroupsByKeys));
    rules
}

/// Registers every table of an SQL plan, each scanned with one partition per task.
pub fn register_tables(ctx: &SessionContext, store: &Store, plan: &Plan) -> Result<()> {
    let sql = crate::SqlPlan::of(plan)?;
    for (name, tasks) in &sql.tables {
        let input = plan
            .inputs
            .get(name)
            .ok_or_else(|| Error::internal(format!("table {name:?} was not listed")))?;
        let table = ScanTable::grouped(store, input, tasks)?;
        ctx.register_table(name.as_str(), Arc::new(table))
            .map_err(|e| Error::internal(format!("registering table {name:?}: {e}")))?;
    }
    Ok(())
}
