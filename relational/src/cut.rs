//! The cutter: one physical plan for the whole job becomes stages. Wherever DataFusion moves
//! rows between partitions — a hash repartition, a coalesce into one partition, a sorted
//! merge — the plan below becomes a stage of its own whose tasks shuffle their rows, and the
//! plan above reads them with a [`ShuffleReaderExec`] (a coalesce becomes the reader itself,
//! which reads the tasks' rows in task order). Everything else runs inside a task, one
//! partition per task.

use std::sync::Arc;

use datafusion::common::JoinType;
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::physical_expr::Partitioning;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::joins::{HashJoinExec, NestedLoopJoinExec, PartitionMode};
use datafusion::physical_plan::limit::GlobalLimitExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};

use super::exchange::{ReadMode, ShuffleReaderExec, ShuffleSource, SinkKind};
use super::key_filter::KeyFilterExec;
use super::range_sort::CHUNK_ROWS;
use super::shared_build::share_builds;
use super::skew::share_skewed_joins;
use kask_core::error::{Error, Result};

/// One stage of the cut plan.
#[derive(Debug)]
pub struct CutStage {
    /// The sub-plan; task `t` runs its partition `t`.
    pub root: Arc<dyn ExecutionPlan>,
    /// Where its rows go.
    pub sink: SinkKind,
    /// The earlier stages it reads (their shuffles, or the key hashes of those that filter
    /// its rows).
    pub reads: Vec<usize>,
    /// Its tasks record their shuffle keys' hashes for a later stage's key filter.
    pub key_hashes: bool,
}

/// How a plan is cut into stages.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Partitions per exchange.
    pub partitions: usize,
    /// The fewest rows of a sorted result worth a task and a part of their own.
    pub min_range_rows: u64,
    /// The most bytes of files every task reads whole for the build side of a join whose
    /// tasks share one table: at least [`READ_WHOLE_BYTES`], more where one process runs
    /// every task and so reads it once ([`crate::session::read_whole_bytes`]).
    pub read_whole_bytes: u64,
}

/// Cuts `plan` into stages in the order they must run, after the `stages` cut before it (a
/// job graph's views and other outputs), which its shuffle readers may read, into
/// `partitions` per exchange; the last stage sinks into `sink`. Returns the last stage's id.
pub fn cut_into(
    stages: &mut Vec<CutStage>,
    plan: Arc<dyn ExecutionPlan>,
    source: &Arc<dyn ShuffleSource>,
    shape: Shape,
    sink: SinkKind,
) -> Result<usize> {
    if matches!(sink, SinkKind::Output)
        && let Some(merge) = plan.downcast_ref::<SortPreservingMergeExec>()
        && merge.fetch().is_none()
        && shape.partitions > 1
    {
        return sort_by_ranges(stages, &plan, source, shape);
    }
    let root = cut_node(plan, source, shape, stages)?;
    push(stages, root, sink, source)
}

/// A result in order whose rows come from several tasks is sorted by key range
/// ([`crate::range_sort`]): the tasks below write sorted runs, and `partitions` tasks each
/// merge one range of keys from all of them into one part of the output, instead of one task
/// merging every row; ranges of fewer than `min_range_rows` rows are not worth a part. A sort
/// with a limit keeps its one merging task: it holds only the top rows.
fn sort_by_ranges(
    stages: &mut Vec<CutStage>,
    plan: &Arc<dyn ExecutionPlan>,
    source: &Arc<dyn ShuffleSource>,
    shape: Shape,
) -> Result<usize> {
    let merge = plan
        .downcast_ref::<SortPreservingMergeExec>()
        .ok_or_else(|| Error::internal("a sort by key range of a plan that is no sorted merge"))?;
    let input = cut_node(Arc::clone(merge.input()), source, shape, stages)?;
    if self::partitions(&input) <= 1 {
        let root = renew(Arc::clone(plan), vec![input])?;
        return push(stages, root, SinkKind::Output, source);
    }
    let ordering = merge.expr().clone();
    let schema = input.schema();
    let runs = push(
        stages,
        input,
        SinkKind::Ranges(ordering.clone(), CHUNK_ROWS),
        source,
    )?;
    let reader: Arc<dyn ExecutionPlan> = Arc::new(ShuffleReaderExec::ranges(
        runs,
        schema,
        (ordering, shape.min_range_rows),
        shape.partitions,
        Arc::clone(source),
    ));
    push(stages, reader, SinkKind::Output, source)
}

impl CutStage {
    /// The stage of `root` sinking into `sink`, with the stages its readers read.
    pub fn new(root: Arc<dyn ExecutionPlan>, sink: SinkKind) -> CutStage {
        let mut reads = Vec::new();
        readers(&root, &mut reads);
        reads.sort_unstable();
        reads.dedup();
        CutStage {
            root,
            sink,
            reads,
            key_hashes: false,
        }
    }

    /// The stages whose key hashes filter its rows.
    pub fn filtered_by(&self) -> Vec<usize> {
        let mut out = Vec::new();
        key_filters(&self.root, &mut out);
        out
    }
}

/// Adds a stage whose sub-plan is `root`, its joins marked to share skewed partitions where
/// they may ([`crate::skew`]), and their collected build sides computed once per process
/// ([`crate::shared_build`]).
fn push(
    stages: &mut Vec<CutStage>,
    root: Arc<dyn ExecutionPlan>,
    sink: SinkKind,
    source: &Arc<dyn ShuffleSource>,
) -> Result<usize> {
    let root = share_skewed_joins(root)?;
    let root = share_builds(root, stages.len(), source).map_err(df)?;
    stages.push(CutStage::new(root, sink));
    Ok(stages.len() - 1)
}

fn readers(plan: &Arc<dyn ExecutionPlan>, out: &mut Vec<usize>) {
    if let Some(r) = plan.downcast_ref::<ShuffleReaderExec>() {
        out.push(r.stage());
    }
    if let Some(k) = plan.downcast_ref::<KeyFilterExec>() {
        out.push(k.stage());
    }
    for c in plan.children() {
        readers(c, out);
    }
}

fn key_filters(plan: &Arc<dyn ExecutionPlan>, out: &mut Vec<usize>) {
    if let Some(k) = plan.downcast_ref::<KeyFilterExec>() {
        out.push(k.stage());
    }
    for c in plan.children() {
        key_filters(c, out);
    }
}

fn partitions(plan: &Arc<dyn ExecutionPlan>) -> usize {
    plan.output_partitioning().partition_count()
}

fn df(e: datafusion::error::DataFusionError) -> Error {
    Error::internal(format!("cutting the SQL plan into stages: {e}"))
}

/// `plan` over new inputs, its properties derived from them.
pub(crate) fn renew(
    plan: Arc<dyn ExecutionPlan>,
    children: Vec<Arc<dyn ExecutionPlan>>,
) -> Result<Arc<dyn ExecutionPlan>> {
    plan.replace_children(
        children,
        ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
    )
    .map_err(df)
}

fn cut_node(
    plan: Arc<dyn ExecutionPlan>,
    source: &Arc<dyn ShuffleSource>,
    shape: Shape,
    stages: &mut Vec<CutStage>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let plan = one_probe_partition(plan, shape.partitions)?;
    if let Some(rep) = plan.downcast_ref::<RepartitionExec>() {
        let Partitioning::Hash(exprs, n) = rep.partitioning().clone() else {
            return Err(Error::internal(format!(
                "a repartition Kask cannot run across tasks: {}",
                rep.partitioning()
            )));
        };
        let preserve_order = rep.preserve_order();
        let input = cut_node(Arc::clone(rep.input()), source, shape, stages)?;
        let schema = input.schema();
        let ordering = input.output_ordering().cloned();
        let id = push(stages, input, SinkKind::Hash(exprs.clone(), n), source)?;
        let reader: Arc<dyn ExecutionPlan> = Arc::new(ShuffleReaderExec::new(
            id,
            ReadMode::Partition,
            schema,
            Partitioning::Hash(exprs, n),
            Arc::clone(source),
        ));
        // Rows of one partition arrive from many tasks: sort them again where order mattered.
        return match (preserve_order, ordering) {
            (true, Some(o)) => Ok(Arc::new(
                SortExec::new(o, reader).with_preserve_partitioning(true),
            )),
            _ => Ok(reader),
        };
    }
    let coalesces = plan.is::<CoalescePartitionsExec>();
    if (coalesces || plan.is::<SortPreservingMergeExec>())
        && let [input] = plan.children().as_slice()
    {
        let input = cut_node(Arc::clone(input), source, shape, stages)?;
        let maps = partitions(&input);
        if maps <= 1 {
            return renew(plan, vec![input]);
        }
        let schema = input.schema();
        let id = push(stages, input, SinkKind::Single, source)?;
        if coalesces {
            // The one partition, in map-task order: the same rows in the same order on every
            // run, where a coalesce passes them on as they arrive.
            let reader: Arc<dyn ExecutionPlan> = Arc::new(ShuffleReaderExec::new(
                id,
                ReadMode::Partition,
                schema,
                Partitioning::UnknownPartitioning(1),
                Arc::clone(source),
            ));
            return Ok(match plan.fetch() {
                Some(n) => Arc::new(GlobalLimitExec::new(reader, 0, Some(n))),
                None => reader,
            });
        }
        let reader: Arc<dyn ExecutionPlan> = Arc::new(ShuffleReaderExec::new(
            id,
            ReadMode::Map,
            schema,
            Partitioning::UnknownPartitioning(maps),
            Arc::clone(source),
        ));
        return renew(plan, vec![reader]);
    }
    if matches!(plan.name(), "RecursiveQueryExec" | "WorkTableExec") {
        return Err(Error::spec(
            "spec.sql.query",
            "recursive queries (WITH RECURSIVE) are not supported yet",
        ));
    }
    let children: Vec<Arc<dyn ExecutionPlan>> = plan.children().into_iter().cloned().collect();
    if children.is_empty() {
        return Ok(plan);
    }
    let broadcast = read_whole_in_every_task(&plan, shape.read_whole_bytes);
    let cut_children = children
        .into_iter()
        .enumerate()
        .map(|(i, c)| match (i, &broadcast) {
            (0, Some(left)) => Ok(Arc::clone(left)),
            _ => cut_node(c, source, shape, stages),
        })
        .collect::<Result<Vec<_>>>()?;
    if let Some((from, to)) = key_filter_of(&plan, &cut_children, stages) {
        filter_by_keys(stages, from, to, source);
    }
    renew(plan, cut_children)
}

/// Whether key filters are made (`KASK_KEY_FILTERS`: `on`, the default, or `off`, to
/// compare).
pub fn key_filters_enabled() -> Result<bool> {
    key_filters_named(std::env::var("KASK_KEY_FILTERS").ok().as_deref())
}

pub fn key_filters_named(value: Option<&str>) -> Result<bool> {
    match value {
        None | Some("on") => Ok(true),
        Some("off") => Ok(false),
        Some(other) => Err(Error::Environment(format!(
            "KASK_KEY_FILTERS is {other:?}: it takes on or off"
        ))),
    }
}

/// For a partitioned hash join whose sides were both just cut into stages of their own
/// (`cut_children` are their readers), the stage of its left side and of its right side when
/// the join drops every right row whose keys no left row has, so that the right side's rows
/// can be filtered by the left side's keys ([`crate::key_filter`]). Both stages must hash
/// the join's keys, in its order, of the same types on both sides, so that equal keys hash
/// alike.
fn key_filter_of(
    plan: &Arc<dyn ExecutionPlan>,
    cut_children: &[Arc<dyn ExecutionPlan>],
    stages: &[CutStage],
) -> Option<(usize, usize)> {
    let j = plan.downcast_ref::<HashJoinExec>()?;
    // Only a stage cut for this join may be filtered: a shared view's stage has other
    // readers.
    let fresh = plan.children().iter().all(|c| c.is::<RepartitionExec>());
    if !fresh
        || !key_filters_enabled().unwrap_or(false)
        || *j.partition_mode() != PartitionMode::Partitioned
        || j.null_aware
        || !drops_unmatched_right_rows(*j.join_type())
    {
        return None;
    }
    let [left, right] = cut_children else {
        return None;
    };
    let reader = |c: &Arc<dyn ExecutionPlan>| {
        c.downcast_ref::<ShuffleReaderExec>()
            .filter(|r| r.mode() == ReadMode::Partition && r.shared().is_none())
            .map(ShuffleReaderExec::stage)
    };
    let (from, to) = (reader(left)?, reader(right)?);
    if from >= to || reads_every_row(&stages.get(from)?.root) {
        return None;
    }
    let (SinkKind::Hash(from_keys, _), SinkKind::Hash(to_keys, _)) =
        (&stages.get(from)?.sink, &stages.get(to)?.sink)
    else {
        return None;
    };
    let on = j.on();
    let (from_schema, to_schema) = (stages[from].root.schema(), stages[to].root.schema());
    let same = from_keys.len() == on.len()
        && to_keys.len() == on.len()
        && on
            .iter()
            .zip(from_keys.iter().zip(to_keys))
            .all(|((l, r), (f, t))| {
                l.as_ref() == f.as_ref()
                    && r.as_ref() == t.as_ref()
                    && matches!(
                        (f.data_type(&from_schema), t.data_type(&to_schema)),
                        (Ok(a), Ok(b)) if a == b
                    )
            });
    same.then_some((from, to))
}

/// Whether `plan` is a scan of whole tables without a filter: it holds every key of its
/// table, which the rows of a table that refers to it usually all have, so a key filter would
/// keep about every row, and the stage it filters would wait for this one to finish first
/// for nothing.
fn reads_every_row(plan: &Arc<dyn ExecutionPlan>) -> bool {
    if let Some(scan) = plan.downcast_ref::<DataSourceExec>() {
        return scan
            .data_source()
            .downcast_ref::<FileScanConfig>()
            .is_some_and(|c| c.file_source().filter().is_none() && c.limit.is_none());
    }
    let passes_rows = plan.is::<ProjectionExec>() || plan.name() == "CoalesceBatchesExec";
    passes_rows && plan.children().into_iter().all(reads_every_row)
}

/// Whether a join's right rows that match no left row leave no trace in its result.
fn drops_unmatched_right_rows(t: JoinType) -> bool {
    matches!(
        t,
        JoinType::Inner
            | JoinType::Left
            | JoinType::LeftSemi
            | JoinType::LeftAnti
            | JoinType::LeftMark
            | JoinType::RightSemi
    )
}

/// Makes stage `from` record its keys' hashes and stage `to` keep only the rows whose keys
/// are among them, after `from` is done.
fn filter_by_keys(
    stages: &mut [CutStage],
    from: usize,
    to: usize,
    source: &Arc<dyn ShuffleSource>,
) {
    let SinkKind::Hash(keys, _) = &stages[to].sink else {
        return;
    };
    let filtered: Arc<dyn ExecutionPlan> = Arc::new(KeyFilterExec::new(
        Arc::clone(&stages[to].root),
        from,
        keys.clone(),
        Arc::clone(source),
    ));
    let mut filtered_stage = CutStage::new(filtered, stages[to].sink.clone());
    filtered_stage.key_hashes = stages[to].key_hashes;
    stages[to] = filtered_stage;
    stages[from].key_hashes = true;
}

/// The build side of a join that collects it whole, when every task can read it whole on its
/// own: a coalesce over a sub-plan without exchanges (a small table, filtered and projected)
/// whose files are at most [`READ_WHOLE_BYTES`], or `shared_up_to` when the join's tasks
/// share its table ([`crate::shared_table`]). Every task then scans the table itself, as a
/// broadcast, instead of waiting for a stage that would gather the same rows into the shuffle
/// for each task to read whole anyway. A larger table that its filters make small (TPC-H q12's
/// `lineitem`) is scanned once, in a stage of its own.
fn read_whole_in_every_task(
    plan: &Arc<dyn ExecutionPlan>,
    shared_up_to: u64,
) -> Option<Arc<dyn ExecutionPlan>> {
    let j = plan.downcast_ref::<HashJoinExec>()?;
    if *j.partition_mode() != PartitionMode::CollectLeft {
        return None;
    }
    let most = match crate::shared_table::shares_table(j) {
        true => shared_up_to.max(READ_WHOLE_BYTES),
        false => READ_WHOLE_BYTES,
    };
    let left = j.left();
    let whole = left.is::<CoalescePartitionsExec>()
        && left.children().len() == 1
        && !left.children().into_iter().any(has_exchange)
        && scanned_bytes(left).is_none_or(|b| b <= most);
    whole.then(|| Arc::clone(left))
}

/// The most files a task reads whole for a join's build side.
pub const READ_WHOLE_BYTES: u64 = 64 << 20;

/// The bytes of the files that `plan` scans; `None` when it has a leaf other than a file scan.
fn scanned_bytes(plan: &Arc<dyn ExecutionPlan>) -> Option<u64> {
    if let Some(scan) = plan.downcast_ref::<DataSourceExec>() {
        let files = scan.data_source().downcast_ref::<FileScanConfig>()?;
        return Some(
            files
                .file_groups
                .iter()
                .flat_map(|g| g.files())
                .map(|f| {
                    f.range.as_ref().map_or(f.object_meta.size, |r| {
                        u64::try_from(r.end.saturating_sub(r.start)).unwrap_or(0)
                    })
                })
                .sum(),
        );
    }
    let children = plan.children();
    if children.is_empty() {
        return None;
    }
    children
        .into_iter()
        .map(scanned_bytes)
        .try_fold(0u64, |sum, b| Some(sum.saturating_add(b?)))
}

fn has_exchange(plan: &Arc<dyn ExecutionPlan>) -> bool {
    plan.is::<RepartitionExec>()
        || plan.is::<CoalescePartitionsExec>()
        || plan.is::<SortPreservingMergeExec>()
        || plan.children().into_iter().any(has_exchange)
}

/// Whether a join that collects its left side emits left rows after it has seen every right
/// row (unmatched rows, semi and anti joins, marks): in one process the last partition to
/// finish does that once; in separate tasks every task would.
fn needs_every_right_row(t: JoinType) -> bool {
    matches!(
        t,
        JoinType::Left
            | JoinType::Full
            | JoinType::LeftSemi
            | JoinType::LeftAnti
            | JoinType::LeftMark
    )
}

/// A join that collects its left side and emits left rows once it has seen every right row
/// cannot run in several tasks as it is. A hash join becomes a partitioned one (both sides
/// hash-repartitioned on its keys, into the partitions of the job's other exchanges), as
/// DataFusion plans it when the left side is not small. A nested-loop join, which has no
/// keys, and a null-aware anti join (`NOT IN`), whose answer depends on whether any right
/// key is null, get one task (the right side coalesced into one partition).
fn one_probe_partition(
    plan: Arc<dyn ExecutionPlan>,
    n_partitions: usize,
) -> Result<Arc<dyn ExecutionPlan>> {
    if let Some(j) = plan.downcast_ref::<HashJoinExec>()
        && *j.partition_mode() == PartitionMode::CollectLeft
        && needs_every_right_row(*j.join_type())
        && partitions(j.right()) > 1
        && !j.null_aware
    {
        let (left_keys, right_keys): (Vec<_>, Vec<_>) = j.on().iter().cloned().unzip();
        let n = n_partitions.max(1);
        // The collected side was gathered into one partition for the collecting join; hashed
        // from its own partitions instead, each of its tasks writes its rows into the
        // shuffle, rather than one task reading them all to hash them (TPC-H q21 had two such
        // stages of one task).
        let gathered = j.left().downcast_ref::<CoalescePartitionsExec>();
        let left_input = match gathered {
            Some(c) => Arc::clone(c.input()),
            None => Arc::clone(j.left()),
        };
        let left: Arc<dyn ExecutionPlan> = Arc::new(
            RepartitionExec::try_new(left_input, Partitioning::Hash(left_keys, n)).map_err(df)?,
        );
        let right: Arc<dyn ExecutionPlan> = Arc::new(
            RepartitionExec::try_new(Arc::clone(j.right()), Partitioning::Hash(right_keys, n))
                .map_err(df)?,
        );
        return j
            .builder()
            .with_partition_mode(PartitionMode::Partitioned)
            .with_new_children(vec![left, right])
            .map_err(df)?
            .recompute_properties()
            .reset_state()
            .build_exec()
            .map_err(df);
    }
    let collected_left = if let Some(j) = plan.downcast_ref::<HashJoinExec>() {
        (*j.partition_mode() == PartitionMode::CollectLeft && needs_every_right_row(*j.join_type()))
            .then(|| (Arc::clone(j.left()), Arc::clone(j.right())))
    } else if let Some(j) = plan.downcast_ref::<NestedLoopJoinExec>() {
        needs_every_right_row(*j.join_type()).then(|| (Arc::clone(j.left()), Arc::clone(j.right())))
    } else {
        None
    };
    match collected_left {
        Some((left, right)) if partitions(&right) > 1 => {
            let right: Arc<dyn ExecutionPlan> = Arc::new(CoalescePartitionsExec::new(right));
            renew(plan, vec![left, right])
        }
        _ => Ok(plan),
    }
}
