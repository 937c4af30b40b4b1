//! The first rows of each group, found before the sort of a window. A filter that keeps the
//! first `n` rows of each window partition (`row_number() OVER (PARTITION BY k ORDER BY v)
//! <= n`, pandas' `sort_values(v).groupby(k).head(n)`) would otherwise sort and shuffle every
//! row; [`GroupTopKExec`] drops, as the rows stream by, each row that `n` rows of its group
//! seen before it already precede, on the map side of the shuffle and again before the sort.
//! A row so dropped has at least `n` rows of its group strictly before it, so neither its
//! `row_number` nor its `rank` could be `n` or less, and no kept row's value changes.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, RecordBatch};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::ScalarValue;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::expressions::{BinaryExpr, CastExpr, Column, Literal};
use datafusion::physical_expr::window::{StandardWindowExpr, WindowExpr};
use datafusion::physical_expr::{LexOrdering, PhysicalExpr, PhysicalSortExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::group_values::GroupValues;
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::metrics::{
    Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::windows::{BoundedWindowAggExec, WindowAggExec, WindowUDFExpr};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};
use futures::StreamExt;

use crate::dense_groups;
use crate::one_input::only_input;
use crate::packed_merge::packed_width;

/// The most rows per group kept: each is held as its sort key, per group, while a task runs.
pub const MAX_N: usize = 1000;
/// Rows seen before judging whether the pruning pays.
const JUDGE_AFTER_ROWS: u64 = 1_000_000;
/// A pruning that keeps more than this share of the rows it has seen stops.
const WORTH_KEEPING: f64 = 0.9;

/// Passes on the rows that may be among the first `n` of their group (`keys`) in `order`.
#[derive(Debug)]
pub struct GroupTopKExec {
    input: Arc<dyn ExecutionPlan>,
    keys: Vec<Arc<dyn PhysicalExpr>>,
    order: Vec<PhysicalSortExpr>,
    n: usize,
    metrics: ExecutionPlanMetricsSet,
}

impl GroupTopKExec {
    pub fn new(
        input: Arc<dyn ExecutionPlan>,
        keys: Vec<Arc<dyn PhysicalExpr>>,
        order: Vec<PhysicalSortExpr>,
        n: usize,
    ) -> GroupTopKExec {
        GroupTopKExec {
            input,
            keys,
            order,
            n,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    pub fn keys(&self) -> &[Arc<dyn PhysicalExpr>] {
        &self.keys
    }

    pub fn order(&self) -> &[PhysicalSortExpr] {
        &self.order
    }

    pub fn n(&self) -> usize {
        self.n
    }
}

impl DisplayAs for GroupTopKExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<String> = self.keys.iter().map(|k| k.to_string()).collect();
        let order: Vec<String> = self.order.iter().map(|o| o.to_string()).collect();
        write!(
            f,
            "GroupTopKExec: the first {} rows of each [{}] by [{}], ties kept",
            self.n,
            keys.join(", "),
            order.join(", ")
        )
    }
}

impl ExecutionPlan for GroupTopKExec {
    fn name(&self) -> &str {
        "GroupTopKExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        for e in self.keys.iter().chain(self.order.iter().map(|o| &o.expr)) {
            if f(e)? == TreeNodeRecursion::Stop {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(GroupTopKExec::new(
            only_input(children, "GroupTopKExec")?,
            self.keys.clone(),
            self.order.clone(),
            self.n,
        )))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let input = self.input.execute(partition, Arc::clone(&context))?;
        let schema = input.schema();
        let key_fields = self
            .keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                Ok(Field::new(
                    format!("k{i}"),
                    k.data_type(&schema)?,
                    k.nullable(&schema)?,
                ))
            })
            .collect::<DfResult<Vec<_>>>()?;
        let sort_fields = self
            .order
            .iter()
            .map(|o| {
                Ok(SortField::new_with_options(
                    o.expr.data_type(&schema)?,
                    o.options,
                ))
            })
            .collect::<DfResult<Vec<_>>>()?;
        let reservation = MemoryConsumer::new(format!("GroupTopKExec[{partition}]"))
            .register(context.memory_pool());
        let mut pruning = Pruning {
            groups: Some(dense_groups::group_values_within(
                &Arc::new(Schema::new(key_fields)),
                DENSE_SPAN,
            )?),
            converter: RowConverter::new(sort_fields)?,
            keys: self.keys.clone(),
            order: self.order.clone(),
            n: self.n,
            best: Best::new(LexOrdering::new(self.order.clone()), &schema, self.n),
            ids: Vec::new(),
            reservation,
            seen: 0,
            kept: 0,
            removed: MetricBuilder::new(&self.metrics).counter("rows_removed", partition),
        };
        let stream = input.map(move |b| b.and_then(|b| pruning.batch(b)));
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

struct Pruning {
    /// The groups seen; `None` once the pruning has stopped and every row passes.
    groups: Option<Box<dyn GroupValues>>,
    converter: RowConverter,
    keys: Vec<Arc<dyn PhysicalExpr>>,
    order: Vec<PhysicalSortExpr>,
    n: usize,
    /// Per group, the sort keys of the first `n` rows seen, first first.
    best: Best,
    ids: Vec<usize>,
    reservation: MemoryReservation,
    seen: u64,
    kept: u64,
    removed: Count,
}

/// The first `n` sort keys seen of each group.
pub enum Best {
    /// Keys of fixed width that together fit 16 bytes, as `u128`s that order as their rows do
    /// (`packed_merge::packed_width`), `n` slots a group side by side: a row is judged against
    /// its group's last kept key in one load. Per group, `filled` slots are in use.
    Packed {
        width: usize,
        keys: Vec<u128>,
        filled: Vec<u16>,
    },
    /// Any other keys, as their rows (bytes order as the rows do), one list a group.
    Rows {
        lists: Vec<Vec<Box<[u8]>>>,
        bytes: usize,
    },
}

/// Integer group keys spanning up to this many values are numbered through an array (4 MiB),
/// not hashed: each group holds `n` keys of up to 16 bytes besides, and db-benchmark's
/// groupby q8 groups by `id6`, which spans a million values at 1e8 rows.
const DENSE_SPAN: u64 = 1 << 20;

/// Groups take `n` packed slots each from their first row: beyond this many, the lists.
pub const MOST_PACKED_N: usize = 16;

impl Best {
    pub fn new(order: Option<LexOrdering>, schema: &Schema, n: usize) -> Best {
        match order.and_then(|o| packed_width(&o, schema)) {
            Some(width) if (1..=MOST_PACKED_N).contains(&n) => Best::Packed {
                width,
                keys: Vec::new(),
                filled: Vec::new(),
            },
            _ => Best::Rows {
                lists: Vec::new(),
                bytes: 0,
            },
        }
    }

    /// Makes room for `groups` groups.
    fn grow(&mut self, groups: usize, n: usize) {
        match self {
            Best::Packed { keys, filled, .. } if filled.len() < groups => {
                keys.resize(groups * n, 0);
                filled.resize(groups, 0);
            }
            Best::Rows { lists, .. } if lists.len() < groups => lists.resize_with(groups, Vec::new),
            _ => {}
        }
    }

    /// Whether row `row`, of group `g`, may be among its first `n`, noting its key if it is
    /// among the first `n` seen.
    fn judge(&mut self, g: usize, row: &[u8], n: usize) -> DfResult<bool> {
        match self {
            Best::Packed {
                width,
                keys,
                filled,
            } => {
                if row.len() != *width {
                    return Err(DataFusionError::Internal(format!(
                        "a sort key of {} bytes where its types give {width}",
                        row.len()
                    )));
                }
                let mut word = [0u8; 16];
                word[..*width].copy_from_slice(row);
                let key = u128::from_be_bytes(word);
                let used = usize::from(filled[g]);
                let slots = &mut keys[g * n..(g + 1) * n];
                if used == n && slots[n - 1] < key {
                    return Ok(false);
                }
                let pos = slots[..used].partition_point(|&b| b <= key);
                let strictly_before = slots[..pos].partition_point(|&b| b < key);
                if pos < n {
                    let end = used.min(n - 1);
                    slots.copy_within(pos..end, pos + 1);
                    slots[pos] = key;
                    filled[g] = u16::try_from(end + 1).unwrap_or(u16::MAX);
                }
                Ok(strictly_before < n)
            }
            Best::Rows { lists, bytes } => {
                let best = &mut lists[g];
                if best.len() == n && best.last().is_some_and(|w| before(w, row)) {
                    // After the first rows of a group, most rows come after all `n` kept.
                    return Ok(false);
                }
                let pos = best.partition_point(|b| !before(row, b));
                // Kept unless `n` rows before it are strictly before it; ties stay for `rank`.
                let strictly_before = best.partition_point(|b| before(b, row));
                if pos < n {
                    if best.len() == n
                        && let Some(last) = best.pop()
                    {
                        *bytes -= last.len();
                    }
                    best.insert(pos, row.into());
                    *bytes += row.len();
                }
                Ok(strictly_before < n)
            }
        }
    }

    /// The bytes held.
    fn size(&self, n: usize) -> usize {
        match self {
            Best::Packed { keys, filled, .. } => keys.capacity() * 16 + filled.capacity() * 2,
            Best::Rows { lists, bytes } => {
                bytes
                    + lists.capacity() * std::mem::size_of::<Vec<Box<[u8]>>>()
                    + lists.len() * n * std::mem::size_of::<Box<[u8]>>()
            }
        }
    }
}

impl Pruning {
    fn batch(&mut self, batch: RecordBatch) -> DfResult<RecordBatch> {
        let Some(groups) = self.groups.as_mut() else {
            return Ok(batch);
        };
        let keys = evaluate(&self.keys, &batch)?;
        groups.intern(&keys, &mut self.ids)?;
        let sort_keys = evaluate(self.order.iter().map(|o| &o.expr), &batch)?;
        let rows = self.converter.convert_columns(&sort_keys)?;
        self.best.grow(groups.len(), self.n);
        let mut keep = Vec::with_capacity(batch.num_rows());
        for (i, &g) in self.ids.iter().enumerate() {
            keep.push(self.best.judge(g, rows.row(i).as_ref(), self.n)?);
        }
        let keep = BooleanArray::from(keep);
        let kept = filter_record_batch(&batch, &keep)?;
        self.seen += batch.num_rows() as u64;
        self.kept += kept.num_rows() as u64;
        self.removed.add(batch.num_rows() - kept.num_rows());
        let held = self.best.size(self.n) + groups.size();
        let worth =
            self.seen < JUDGE_AFTER_ROWS || (self.kept as f64) <= WORTH_KEEPING * self.seen as f64;
        // Without the memory for its groups, or when nearly every row passes, the pruning
        // stops: every later row passes, which is always right.
        if !worth || self.reservation.try_resize(held).is_err() {
            self.groups = None;
            self.best = Best::Rows {
                lists: Vec::new(),
                bytes: 0,
            };
            self.reservation.free();
        }
        Ok(kept)
    }
}

/// Whether row `a` sorts strictly before row `b` (row format: bytes compare as rows do).
/// Eight bytes at a time: sort keys are short, and a call to `memcmp` per comparison cost
/// more than the comparison.
#[inline]
pub fn before(a: &[u8], b: &[u8]) -> bool {
    let (mut a, mut b) = (a, b);
    while let (Some((x, ra)), Some((y, rb))) =
        (a.split_first_chunk::<8>(), b.split_first_chunk::<8>())
    {
        if x != y {
            return u64::from_be_bytes(*x) < u64::from_be_bytes(*y);
        }
        (a, b) = (ra, rb);
    }
    a < b
}

fn evaluate<'a>(
    exprs: impl IntoIterator<Item = &'a Arc<dyn PhysicalExpr>>,
    batch: &RecordBatch,
) -> DfResult<Vec<ArrayRef>> {
    exprs
        .into_iter()
        .map(|e| e.evaluate(batch)?.into_array(batch.num_rows()))
        .collect()
}

/// Puts a [`GroupTopKExec`] before the sort (and before the shuffle) of each window whose
/// only function, `row_number` or `rank`, a filter holds to at most `n`.
#[derive(Debug, Default)]
pub struct PruneGroupTopK;

impl PhysicalOptimizerRule for PruneGroupTopK {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(filter) = node.downcast_ref::<FilterExec>() else {
                return Ok(Transformed::no(node));
            };
            Ok(match pruned(filter)? {
                Some(input) => Transformed::yes(over(Arc::clone(&node), input)?),
                None => Transformed::no(node),
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "kask_group_top_k"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// The filter's window with a [`GroupTopKExec`] under it, if the filter keeps the first rows
/// of each of its partitions.
fn pruned(filter: &FilterExec) -> DfResult<Option<Arc<dyn ExecutionPlan>>> {
    let window = filter.input();
    let (exprs, input) = if let Some(w) = window.downcast_ref::<BoundedWindowAggExec>() {
        (w.window_expr(), w.input())
    } else if let Some(w) = window.downcast_ref::<WindowAggExec>() {
        (w.window_expr(), w.input())
    } else {
        return Ok(None);
    };
    // Another function of the same window would see fewer rows.
    let [expr] = exprs else { return Ok(None) };
    let width = input.schema().fields().len();
    let Some((column, n)) = at_most(filter.predicate()) else {
        return Ok(None);
    };
    if column != width || !(1..=MAX_N).contains(&n) || !is_rank(expr.as_ref()) {
        return Ok(None);
    }
    if expr.partition_by().is_empty() || expr.order_by().is_empty() {
        return Ok(None);
    }
    let spec = Spec {
        keys: expr.partition_by().to_vec(),
        order: expr.order_by().to_vec(),
        n,
    };
    let below = spec.insert(input)?;
    Ok(Some(over(Arc::clone(window), below)?))
}

/// `node` over a new input, its properties derived from it.
fn over(
    node: Arc<dyn ExecutionPlan>,
    input: Arc<dyn ExecutionPlan>,
) -> DfResult<Arc<dyn ExecutionPlan>> {
    node.replace_children(
        vec![input],
        ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
    )
}

/// `#column <= n` or `#column < n + 1`, the column possibly cast: the column and `n`.
pub fn at_most(predicate: &Arc<dyn PhysicalExpr>) -> Option<(usize, usize)> {
    let b = predicate.downcast_ref::<BinaryExpr>()?;
    let mut left = b.left();
    if let Some(cast) = left.downcast_ref::<CastExpr>() {
        left = cast.expr();
    }
    let column = left.downcast_ref::<Column>()?.index();
    let literal = b.right().downcast_ref::<Literal>()?.value();
    let bound = match literal {
        ScalarValue::UInt64(Some(v)) => i128::from(*v),
        ScalarValue::Int64(Some(v)) => i128::from(*v),
        ScalarValue::Int32(Some(v)) => i128::from(*v),
        ScalarValue::UInt32(Some(v)) => i128::from(*v),
        _ => return None,
    };
    let n = match b.op() {
        Operator::LtEq => bound,
        Operator::Lt => bound - 1,
        _ => return None,
    };
    Some((column, usize::try_from(n).ok()?))
}

/// Whether the window function numbers rows so that a row with `n` rows strictly before it
/// in its partition gets more than `n`: `row_number` and `rank` (not `dense_rank`).
fn is_rank(expr: &dyn WindowExpr) -> bool {
    expr.as_any()
        .downcast_ref::<StandardWindowExpr>()
        .and_then(|s| {
            s.get_standard_func_expr()
                .as_any()
                .downcast_ref::<WindowUDFExpr>()
        })
        .is_some_and(|f| matches!(f.fun().name(), "row_number" | "rank"))
}

struct Spec {
    keys: Vec<Arc<dyn PhysicalExpr>>,
    order: Vec<PhysicalSortExpr>,
    n: usize,
}

impl Spec {
    fn top_k(&self, input: Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan> {
        Arc::new(GroupTopKExec::new(
            input,
            self.keys.clone(),
            self.order.clone(),
            self.n,
        ))
    }

    /// `node` with the pruning at the bottom of its chain of sorts and repartitions (which
    /// keep the columns where they are), and again right above each repartition: once per
    /// map task, once per reduce task.
    fn insert(&self, node: &Arc<dyn ExecutionPlan>) -> DfResult<Arc<dyn ExecutionPlan>> {
        let sort = node.is::<SortExec>();
        if sort || node.is::<RepartitionExec>() {
            let [child] = node.children()[..] else {
                return Ok(self.top_k(Arc::clone(node)));
            };
            let child = self.insert(child)?;
            let rebuilt = over(Arc::clone(node), child)?;
            return Ok(if sort { rebuilt } else { self.top_k(rebuilt) });
        }
        Ok(self.top_k(Arc::clone(node)))
    }
}
