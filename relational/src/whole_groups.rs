//! Aggregations whose groups no two tasks share. A grouped aggregation is planned in two
//! steps because any group may have rows in any task: each task aggregates its own rows
//! (partial), a shuffle brings each group's partial rows together, and a final step combines
//! them in a hash table of every group of the job. When a group key is a column of a Parquet
//! table whose row groups' statistics put each task's values in a range no other task's range
//! overlaps (a table written in key order: TPC-H's `lineitem` by `l_orderkey`, event logs by
//! time or id), every group has all its rows in one task. That task aggregates them to the
//! end, and the shuffle carries finished groups, hash-partitioned as before so that whatever
//! reads them is unchanged; the final step goes. A filter over the result (`HAVING`) then
//! runs before the shuffle, and a shuffle that only feeds a coalesce goes too.
//!
//! The key must reach the aggregation unchanged from the scan, through filters, projections
//! and the probe side of joins that collect their build side whole (each of which keeps a
//! task's rows in that task); its statistics must be exact, without nulls, of a signed
//! integer or date type.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::common::JoinType;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::physical_plan::parquet::metadata::DFParquetMetadata;
use datafusion::datasource::source::DataSourceExec;
use datafusion::parquet::basic::{ConvertedType, LogicalType, Type as PhysicalType};
use datafusion::parquet::file::metadata::ParquetMetaData;
use datafusion::parquet::file::statistics::Statistics;
use datafusion::physical_expr::Partitioning;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use futures::FutureExt;
use tracing::debug;

use kask_core::error::Result;
use kask_core::store::Store;

/// A column of a file scan, by the scan node's address and the column's name in the files.
type Traced = (usize, String);

/// Each partition's lowest and highest value of a column (`None` for a partition without
/// rows), or `None` when some row group lacks exact statistics.
type Ranges = Option<Vec<Option<(i64, i64)>>>;

/// `plan` with every two-step aggregation whose groups are whole in their tasks done in one
/// step in those tasks. Statistics are read through the runtime's metadata cache (the listing
/// filled it); a file whose footer cannot be read leaves its aggregations as they were.
pub async fn aggregate_whole_groups(
    plan: Arc<dyn ExecutionPlan>,
    store: &Store,
) -> Result<Arc<dyn ExecutionPlan>> {
    let mut wanted: Vec<(Arc<dyn ExecutionPlan>, String)> = Vec::new();
    plan.apply(|node| {
        if let Some((_, partial, _)) = two_steps(node) {
            for key in group_columns(partial) {
                if let Some((scan, column)) = trace(partial.input(), key)
                    && !wanted
                        .iter()
                        .any(|(s, c)| Arc::ptr_eq(s, &scan) && *c == column)
                {
                    wanted.push((scan, column));
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .map_err(|e| kask_core::error::Error::internal(format!("grouped aggregations: {e}")))?;
    if wanted.is_empty() {
        return Ok(plan);
    }
    let mut disjoint: HashMap<Traced, bool> = HashMap::new();
    for (scan, column) in wanted {
        let ranges = scan_ranges(&scan, &column, store).await;
        let whole = ranges.as_deref().is_some_and(disjoint_ranges);
        debug!(column = %column, whole, "per-task ranges of a group key");
        disjoint.insert((address(&scan), column), whole);
    }
    let rewritten = plan
        .transform_up(|node| {
            if let Some(done) = in_one_step(&node, &disjoint)? {
                return Ok(Transformed::yes(done));
            }
            Ok(match after_one_step(&node)? {
                Some(moved) => Transformed::yes(moved),
                None => Transformed::no(node),
            })
        })
        .map_err(|e| kask_core::error::Error::internal(format!("grouped aggregations: {e}")))?;
    Ok(rewritten.data)
}

/// A final aggregation over a hash shuffle of a partial one: (final, partial, shuffle).
fn two_steps(
    node: &Arc<dyn ExecutionPlan>,
) -> Option<(&AggregateExec, &AggregateExec, &RepartitionExec)> {
    let last = node.downcast_ref::<AggregateExec>()?;
    let shuffle = last.input().downcast_ref::<RepartitionExec>()?;
    let first = shuffle.input().downcast_ref::<AggregateExec>()?;
    let plain = |a: &AggregateExec| a.group_expr().is_single() && a.limit_options().is_none();
    (*last.mode() == AggregateMode::FinalPartitioned
        && *first.mode() == AggregateMode::Partial
        && matches!(shuffle.partitioning(), Partitioning::Hash(..))
        && plain(last)
        && plain(first)
        && !first.group_expr().expr().is_empty())
    .then_some((last, first, shuffle))
}

/// The input columns that the partial aggregation groups by as they are.
fn group_columns(partial: &AggregateExec) -> Vec<usize> {
    partial
        .group_expr()
        .expr()
        .iter()
        .filter_map(|(e, _)| e.downcast_ref::<Column>().map(Column::index))
        .collect()
}

/// The final aggregation `node` done in one step in each task when one of its keys has
/// disjoint ranges: the shuffle, now of finished groups, over an aggregation of the partial
/// one's input.
fn in_one_step(
    node: &Arc<dyn ExecutionPlan>,
    disjoint: &HashMap<Traced, bool>,
) -> datafusion::common::Result<Option<Arc<dyn ExecutionPlan>>> {
    let Some((last, partial, shuffle)) = two_steps(node) else {
        return Ok(None);
    };
    let whole = group_columns(partial).into_iter().any(|key| {
        trace(partial.input(), key)
            .is_some_and(|(scan, column)| disjoint.get(&(address(&scan), column)) == Some(&true))
    });
    if !whole {
        return Ok(None);
    }
    let one_step = AggregateExec::try_new(
        AggregateMode::SinglePartitioned,
        partial.group_expr().clone(),
        partial.aggr_expr().to_vec(),
        partial.filter_expr().to_vec(),
        Arc::clone(partial.input()),
        partial.input_schema(),
    )?;
    let same = |a: &AggregateExec| {
        a.schema()
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect::<Vec<_>>()
    };
    // The shuffle's keys are the group columns, first in both outputs.
    let groups = partial.group_expr().expr().len();
    let keys_are_groups = match shuffle.partitioning() {
        Partitioning::Hash(exprs, _) => exprs.iter().all(|e| {
            e.downcast_ref::<Column>()
                .is_some_and(|c| c.index() < groups)
        }),
        _ => false,
    };
    if same(&one_step) != same(last) || !keys_are_groups {
        return Ok(None);
    }
    let shuffle = RepartitionExec::try_new(Arc::new(one_step), shuffle.partitioning().clone())?;
    Ok(Some(Arc::new(shuffle)))
}

/// What follows an aggregation done in one step, brought before its shuffle: a filter (the
/// query's `HAVING`), whose rows keep their partitions; and the shuffle dropped where a
/// coalesce takes all its partitions together.
fn after_one_step(
    node: &Arc<dyn ExecutionPlan>,
) -> datafusion::common::Result<Option<Arc<dyn ExecutionPlan>>> {
    // A filter's fetch limits each partition's rows: below the shuffle it would limit each
    // task's instead.
    if let Some(filter) = node.downcast_ref::<FilterExec>()
        && filter.fetch().is_none()
        && let Some(shuffle) = finished_groups(filter.input())
        && let Partitioning::Hash(exprs, n) = shuffle.partitioning()
    {
        // The shuffle's keys, as columns of the filter's output.
        let keys: Option<Vec<_>> = exprs
            .iter()
            .map(|e| {
                let c = e.downcast_ref::<Column>()?;
                let at = match filter.projection() {
                    Some(p) => p.iter().position(|&i| i == c.index())?,
                    None => c.index(),
                };
                Some(Arc::new(Column::new(c.name(), at)) as _)
            })
            .collect();
        let Some(keys) = keys else {
            return Ok(None);
        };
        let filtered = renew(Arc::clone(node), Arc::clone(shuffle.input()))?;
        let shuffle = RepartitionExec::try_new(filtered, Partitioning::Hash(keys, *n))?;
        return Ok(Some(Arc::new(shuffle)));
    }
    if let Some(coalesce) = node.downcast_ref::<CoalescePartitionsExec>()
        && let Some(shuffle) = finished_groups(coalesce.input())
    {
        let input = Arc::clone(shuffle.input());
        return Ok(Some(renew(Arc::clone(node), input)?));
    }
    Ok(None)
}

/// A hash shuffle of an aggregation done in one step, directly or below filters already
/// brought before it.
fn finished_groups(node: &Arc<dyn ExecutionPlan>) -> Option<&RepartitionExec> {
    let shuffle = node.downcast_ref::<RepartitionExec>()?;
    let mut below = shuffle.input();
    while let Some(f) = below.downcast_ref::<FilterExec>() {
        below = f.input();
    }
    let agg = below.downcast_ref::<AggregateExec>()?;
    (*agg.mode() == AggregateMode::SinglePartitioned
        && matches!(shuffle.partitioning(), Partitioning::Hash(..)))
    .then_some(shuffle)
}

/// `node` over `child` instead of its one child, its properties computed again.
fn renew(
    node: Arc<dyn ExecutionPlan>,
    child: Arc<dyn ExecutionPlan>,
) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
    node.replace_children(
        vec![child],
        ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
    )
}

fn address(plan: &Arc<dyn ExecutionPlan>) -> usize {
    Arc::as_ptr(plan).cast::<()>() as usize
}

/// The Parquet scan and file column that output column `index` of `plan` is, when each
/// partition's rows of it are rows that partition of the scan read.
pub fn trace(
    plan: &Arc<dyn ExecutionPlan>,
    index: usize,
) -> Option<(Arc<dyn ExecutionPlan>, String)> {
    if let Some(scan) = plan.downcast_ref::<DataSourceExec>() {
        let config = scan.data_source().downcast_ref::<FileScanConfig>()?;
        config
            .file_source()
            .downcast_ref::<datafusion::datasource::physical_plan::ParquetSource>()?;
        let file_schema = config.file_schema();
        let at = match config.file_source().projection() {
            Some(p) => {
                let e = p.as_ref().get(index)?;
                e.expr.downcast_ref::<Column>()?.index()
            }
            None => index,
        };
        // Past the file's columns are the folder keys, which the files have no statistics of.
        let field = file_schema.fields().get(at)?;
        return Some((Arc::clone(plan), field.name().clone()));
    }
    if let Some(p) = plan.downcast_ref::<ProjectionExec>() {
        let c = p.expr().get(index)?.expr.downcast_ref::<Column>()?;
        return trace(p.input(), c.index());
    }
    if let Some(f) = plan.downcast_ref::<FilterExec>() {
        let at = match f.projection() {
            Some(p) => *p.get(index)?,
            None => index,
        };
        return trace(f.input(), at);
    }
    if let Some(j) = plan.downcast_ref::<HashJoinExec>() {
        // A collected build side is the same in every task; the probe side's rows are the
        // task's own, and only its columns are traced.
        if *j.partition_mode() != PartitionMode::CollectLeft {
            return None;
        }
        let at = match &j.projection {
            Some(p) => *p.get(index)?,
            None => index,
        };
        let left = j.left().schema().fields().len();
        let right_at = match j.join_type() {
            // A build-side key of an inner join equals the probe-side key on every row.
            JoinType::Inner if at < left => j.on().iter().find_map(|(l, r)| {
                let l = l.downcast_ref::<Column>()?;
                let r = r.downcast_ref::<Column>()?;
                (l.index() == at).then(|| r.index())
            })?,
            JoinType::Inner | JoinType::Right => at.checked_sub(left)?,
            JoinType::RightSemi | JoinType::RightAnti => at,
            _ => return None,
        };
        return trace(j.right(), right_at);
    }
    let name = plan.name();
    if name == "CoalesceBatchesExec" {
        return trace(plan.children().first()?, index);
    }
    None
}

/// Each partition's range of `column` in the scan `scan`, from its files' row group
/// statistics.
async fn scan_ranges(scan: &Arc<dyn ExecutionPlan>, column: &str, store: &Store) -> Ranges {
    let config = scan
        .downcast_ref::<DataSourceExec>()?
        .data_source()
        .downcast_ref::<FileScanConfig>()?;
    let cache = store.runtime.cache_manager.get_file_metadata_cache();
    let mut out = Vec::with_capacity(config.file_groups.len());
    for group in &config.file_groups {
        let mut range: Option<(i64, i64)> = None;
        for file in group.files() {
            let fetched = std::panic::AssertUnwindSafe(
                DFParquetMetadata::new(store.inner.as_ref(), &file.object_meta)
                    .with_file_metadata_cache(Some(Arc::clone(&cache)))
                    .fetch_metadata(),
            )
            .catch_unwind()
            .await;
            let meta = fetched.ok()?.ok()?;
            let bytes = file.range.as_ref().map(|r| (r.start, r.end));
            for (lo, hi) in row_group_ranges(&meta, column, bytes)? {
                range = Some(match range {
                    Some((a, b)) => (a.min(lo), b.max(hi)),
                    None => (lo, hi),
                });
            }
        }
        out.push(range);
    }
    Some(out)
}

/// The ranges of `column` in the row groups of a file that a scan of byte range `bytes`
/// reads (those whose first page starts in it, as DataFusion assigns them), or `None` when a
/// row group with rows has no exact statistics without nulls of it.
pub fn row_group_ranges(
    meta: &ParquetMetaData,
    column: &str,
    bytes: Option<(i64, i64)>,
) -> Option<Vec<(i64, i64)>> {
    let schema = meta.file_metadata().schema_descr();
    let at = schema
        .columns()
        .iter()
        .position(|c| c.path().parts() == [column])?;
    let descr = schema.column(at);
    let signed = match descr.logical_type_ref() {
        Some(LogicalType::Integer(int)) => int.is_signed,
        Some(LogicalType::Date | LogicalType::Timestamp { .. } | LogicalType::Decimal { .. }) => {
            true
        }
        Some(_) => false,
        // Files from writers before logical types say unsigned this way only.
        None => !matches!(
            descr.converted_type(),
            ConvertedType::UINT_8
                | ConvertedType::UINT_16
                | ConvertedType::UINT_32
                | ConvertedType::UINT_64
        ),
    };
    if !signed
        || !matches!(
            descr.physical_type(),
            PhysicalType::INT32 | PhysicalType::INT64
        )
    {
        return None;
    }
    let mut out = Vec::new();
    for rg in meta.row_groups() {
        if rg.num_columns() == 0 {
            continue;
        }
        if let Some((start, end)) = bytes {
            let first = rg.column(0);
            let offset = first
                .dictionary_page_offset()
                .unwrap_or_else(|| first.data_page_offset());
            if offset < start || offset >= end {
                continue;
            }
        }
        if rg.num_rows() == 0 {
            continue;
        }
        let stats = rg.column(at).statistics()?;
        if stats.null_count_opt() != Some(0) {
            return None;
        }
        let range = match stats {
            Statistics::Int32(s) if s.min_is_exact() && s.max_is_exact() => {
                (i64::from(*s.min_opt()?), i64::from(*s.max_opt()?))
            }
            Statistics::Int64(s) if s.min_is_exact() && s.max_is_exact() => {
                (*s.min_opt()?, *s.max_opt()?)
            }
            _ => return None,
        };
        out.push(range);
    }
    Some(out)
}

/// Whether no two partitions' ranges overlap (partitions without rows aside).
pub fn disjoint_ranges(ranges: &[Option<(i64, i64)>]) -> bool {
    let mut r: Vec<(i64, i64)> = ranges.iter().flatten().copied().collect();
    r.sort_unstable();
    r.windows(2).all(|w| w[0].1 < w[1].0)
}
