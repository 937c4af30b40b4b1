//! Partial aggregations over many groups, in tables that fit the processor's cache.
//!
//! db-benchmark's groupby q5 sums three columns by `id6`, a million integers over 1e8 rows: a
//! task of 6.25 million rows finds nearly every group, and DataFusion's partial aggregation
//! keeps them in one hash table (16 MB of buckets, 4 MB of keys, 24 MB of sums). Each row then
//! misses the cache on every array it touches: `perf record` of `kask run groupby-q5.yaml
//! --memory 2Gi` put 57% of the samples in `GroupValuesPrimitive::intern` and 14% in the sums'
//! `NullState::accumulate`, 2% in decoding Parquet.
//!
//! [`RadixGroupsExec`] ([`radix_group_aggregates`], a task-side rewrite) runs such a partial
//! aggregation as DuckDB's radix-partitioned tables do. It starts with one table, as
//! DataFusion's; once that table holds more groups than a cache holds, it hands them on and
//! splits the groups by the top bits of a hash of their keys into [`PARTS`] tables. Each input
//! batch is reordered by part (within the batch, which the cache holds) and its parts queued;
//! every [`CHUNK_ROWS`] rows the queued rows are aggregated part after part, so that each table
//! is loaded into the cache once for thousands of rows instead of once for each. The aggregates
//! are DataFusion's group accumulators (for `corr`, [`crate::corr_groups`]), so the partial
//! states are those of the `AggregateExec` it replaces; the tables are DataFusion's
//! (`new_group_values`), or for one integer key over a narrow range an array indexed by the key
//! ([`crate::dense_groups`]); a table indexed so is never split.
//!
//! Like DataFusion's partial aggregation it hands on what it holds when the memory pool refuses
//! it more (a partial aggregation's output is merged later, so emitting early is always right),
//! and stops aggregating when, after the session's probe rows, most rows still start a group
//! (`skip_partial_aggregation_probe_*`): it then hands each batch on as states.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, UInt32Array};
use datafusion::arrow::compute::{concat_batches, take};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::hash_utils::{QualityRandomState, create_hashes};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::metrics::{
    Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, InputOrderMode, PlanProperties,
    SendableRecordBatchStream, replace_children_if_necessary,
};

use crate::corr_groups::{self, CorrGroups};
use crate::dense_groups::{IndexedGroups, group_values};
use crate::one_input::only_input;
use crate::queued_stream::{Queue, queue_sliced, queued};

/// Bits of the hash that choose a row's part.
const PART_BITS: u32 = 6;

/// Tables a partitioned aggregation keeps: a million groups make 16,000 a table, under a
/// megabyte with their sums, which a core's L2 cache holds.
const PARTS: usize = 1 << PART_BITS;

/// Groups the single table holds before the aggregation splits into parts: beyond this its
/// buckets, keys and sums outgrow the cache.
const SINGLE_TABLE_GROUPS: usize = 1 << 15;

/// Rows queued before they are aggregated part after part.
pub const CHUNK_ROWS: usize = 1 << 20;

/// The hash that parts rows; seeded apart from the tables' own so that a part's keys spread
/// over its table's buckets.
const PART_HASH: QualityRandomState = QualityRandomState::with_seed(0x6b61_736b);

/// `plan` with every partial aggregation that [`RadixGroupsExec`] can run wrapped in one.
/// Results are unchanged.
pub fn radix_group_aggregates(plan: Arc<dyn ExecutionPlan>) -> DfResult<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        let wrapped = wrapped(Arc::clone(&node));
        Ok(match Arc::ptr_eq(&wrapped, &node) {
            true => Transformed::no(node),
            false => Transformed::yes(wrapped),
        })
    })
    .map(|t| t.data)
}

/// `node` (an `AggregateExec`) in a [`RadixGroupsExec`] when one can run it, else as it is.
fn wrapped(node: Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan> {
    match node.downcast_ref::<AggregateExec>() {
        Some(agg) if fits(agg) => Arc::new(RadixGroupsExec {
            agg: node,
            metrics: ExecutionPlanMetricsSet::new(),
        }),
        _ => node,
    }
}

/// Whether [`RadixGroupsExec`] runs `agg` as `agg` would: a partial aggregation of unordered
/// input, without grouping sets, limit or dynamic filter, whose aggregates all have
/// DataFusion's group accumulators, no ordering and no distinct.
fn fits(agg: &AggregateExec) -> bool {
    let group = agg.group_expr();
    *agg.mode() == AggregateMode::Partial
        && group.is_single()
        && !group.expr().is_empty()
        && agg.limit_options().is_none()
        && agg.dynamic_expressions_produced().is_empty()
        && *agg.input_order_mode() == InputOrderMode::Linear
        && agg.aggr_expr().iter().all(|e| {
            e.groups_accumulator_supported() && e.order_bys().is_empty() && !e.is_distinct()
        })
}

/// A partial [`AggregateExec`] run in cache-sized tables once it holds many groups.
#[derive(Debug)]
pub struct RadixGroupsExec {
    /// The aggregation it runs (its input is this node's child).
    agg: Arc<dyn ExecutionPlan>,
    /// `partitioned_rows`: the rows aggregated in parts.
    metrics: ExecutionPlanMetricsSet,
}

impl RadixGroupsExec {
    /// The aggregation it runs.
    pub fn aggregate(&self) -> DfResult<&AggregateExec> {
        self.agg.downcast_ref::<AggregateExec>().ok_or_else(|| {
            DataFusionError::Internal("RadixGroupsExec holds no AggregateExec".into())
        })
    }
}

impl DisplayAs for RadixGroupsExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "RadixGroupsExec: ")?;
        self.agg.fmt_as(t, f)
    }
}

impl ExecutionPlan for RadixGroupsExec {
    fn name(&self) -> &str {
        "RadixGroupsExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.agg.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        self.agg.children()
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        self.agg.apply_expressions(f)
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let input = only_input(children, "RadixGroupsExec")?;
        Ok(wrapped(replace_children_if_necessary(
            Arc::clone(&self.agg),
            vec![input],
        )?))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let agg = self.aggregate()?;
        let schema = agg.schema();
        let options = &context.session_config().options().execution;
        let aggregates = agg.aggr_expr().to_vec();
        let converters = accumulators(&aggregates)?;
        let groups = Groups {
            schema: Arc::clone(&schema),
            group_schema: agg.group_expr().group_schema(&agg.input_schema())?,
            keys: agg.group_expr().input_exprs(),
            arguments: aggregates.iter().map(|e| e.expressions()).collect(),
            filters: agg.filter_expr().to_vec(),
            aggregates,
            converters,
            tables: Vec::new(),
            queued: Vec::new(),
            queued_rows: 0,
            queued_bytes: 0,
            hashes: Vec::new(),
            reservation: MemoryConsumer::new(format!("RadixGroupsExec[{partition}]"))
                .register(context.memory_pool()),
            rows: 0,
            probe_rows: options.skip_partial_aggregation_probe_rows_threshold,
            probe_ratio: options.skip_partial_aggregation_probe_ratio_threshold,
            decided: false,
            passing: false,
            batch_size: context.session_config().batch_size().max(1),
            ready: VecDeque::new(),
            partitioned_rows: MetricBuilder::new(&self.metrics)
                .counter("partitioned_rows", partition),
        };
        let input = agg.input().execute(partition, context)?;
        Ok(queued(input, groups, schema))
    }
}

/// A fresh group accumulator of each aggregate: DataFusion's, or for `corr` Kask's
/// ([`crate::corr_groups`]), whose partial states are the same.
pub(crate) fn accumulators(
    aggregates: &[Arc<AggregateFunctionExpr>],
) -> DfResult<Vec<Box<dyn GroupsAccumulator>>> {
    aggregates
        .iter()
        .map(|e| match corr_groups::computes(e) {
            true => Ok(Box::new(CorrGroups::default()) as Box<dyn GroupsAccumulator>),
            false => e.create_groups_accumulator(),
        })
        .collect()
}

/// Rows with their group keys, aggregate arguments and aggregate filters evaluated.
struct Rows {
    keys: Vec<ArrayRef>,
    arguments: Vec<Vec<ArrayRef>>,
    filters: Vec<Option<ArrayRef>>,
}

impl Rows {
    fn len(&self) -> usize {
        self.keys.first().map_or(0, |k| k.len())
    }

    fn map(&self, f: impl Fn(&ArrayRef) -> DfResult<ArrayRef>) -> DfResult<Rows> {
        Ok(Rows {
            keys: self.keys.iter().map(&f).collect::<DfResult<_>>()?,
            arguments: self
                .arguments
                .iter()
                .map(|a| a.iter().map(&f).collect::<DfResult<_>>())
                .collect::<DfResult<_>>()?,
            filters: self
                .filters
                .iter()
                .map(|o| o.as_ref().map(&f).transpose())
                .collect::<DfResult<_>>()?,
        })
    }

    fn bytes(&self) -> usize {
        let arrays = self
            .keys
            .iter()
            .chain(self.arguments.iter().flatten())
            .chain(self.filters.iter().flatten());
        arrays.map(|a| a.get_array_memory_size()).sum()
    }
}

/// Filter `f` of an aggregate, a boolean array by planning.
pub(crate) fn boolean(f: &Option<ArrayRef>) -> DfResult<Option<&BooleanArray>> {
    f.as_ref()
        .map(|a| {
            a.as_boolean_opt().ok_or_else(|| {
                DataFusionError::Internal(format!(
                    "an aggregate filter evaluated to {}, not booleans",
                    a.data_type()
                ))
            })
        })
        .transpose()
}

/// One hash table of groups with the aggregates' states.
struct Table {
    values: Box<dyn IndexedGroups>,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
    indices: Vec<usize>,
}

impl Table {
    fn new(group_schema: &SchemaRef, aggregates: &[Arc<AggregateFunctionExpr>]) -> DfResult<Table> {
        Ok(Table {
            values: group_values(group_schema)?,
            accumulators: accumulators(aggregates)?,
            indices: Vec::new(),
        })
    }

    fn update(&mut self, rows: &Rows) -> DfResult<()> {
        self.values.intern(&rows.keys, &mut self.indices)?;
        let groups = self.values.len();
        for ((acc, values), filter) in self
            .accumulators
            .iter_mut()
            .zip(&rows.arguments)
            .zip(&rows.filters)
        {
            acc.update_batch(values, &self.indices, boolean(filter)?, groups)?;
        }
        Ok(())
    }

    /// Every group's key and partial states; the table is left empty.
    fn emit(&mut self, schema: &SchemaRef) -> DfResult<Option<RecordBatch>> {
        if self.values.is_empty() {
            return Ok(None);
        }
        let mut columns = self.values.emit(EmitTo::All)?;
        for acc in &mut self.accumulators {
            columns.extend(acc.state(EmitTo::All)?);
        }
        RecordBatch::try_new(Arc::clone(schema), columns)
            .map(Some)
            .map_err(Into::into)
    }

    fn size(&self) -> usize {
        self.values.size()
            + self.accumulators.iter().map(|a| a.size()).sum::<usize>()
            + self.indices.capacity() * size_of::<usize>()
    }
}

/// One partition's groups.
struct Groups {
    schema: SchemaRef,
    group_schema: SchemaRef,
    keys: Vec<Arc<dyn PhysicalExpr>>,
    arguments: Vec<Vec<Arc<dyn PhysicalExpr>>>,
    filters: Vec<Option<Arc<dyn PhysicalExpr>>>,
    aggregates: Vec<Arc<AggregateFunctionExpr>>,
    /// Accumulators that turn rows into states once the aggregation stops aggregating.
    converters: Vec<Box<dyn GroupsAccumulator>>,
    /// One table at first, [`PARTS`] once that one held too many groups.
    tables: Vec<Table>,
    /// With [`PARTS`] tables: each part's rows not yet aggregated.
    queued: Vec<Vec<Rows>>,
    queued_rows: usize,
    queued_bytes: usize,
    hashes: Vec<u64>,
    reservation: MemoryReservation,
    /// Rows aggregated so far; after `probe_rows`, if groups / rows > `probe_ratio`, the
    /// aggregation stops and hands rows on as states.
    rows: usize,
    probe_rows: usize,
    probe_ratio: f64,
    decided: bool,
    passing: bool,
    batch_size: usize,
    ready: VecDeque<RecordBatch>,
    partitioned_rows: Count,
}

impl Queue for Groups {
    fn push(&mut self, batch: RecordBatch) -> DfResult<()> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let rows = self.evaluate(&batch)?;
        if self.passing {
            return self.hand_on(&rows);
        }
        if self.tables.is_empty() {
            self.tables
                .push(Table::new(&self.group_schema, &self.aggregates)?);
        }
        if self.tables.len() == 1 {
            self.tables[0].update(&rows)?;
            self.rows += n;
            // A table that numbers its keys through an array stays whole: its groups are
            // bounded by the array's span, and split, each row would cost a reordering and a
            // hash. groupby q5 at 1e7 (sums of three columns by `id6`, 100,000 integers):
            // 0.42 s of user CPU a run split, 0.27 s whole.
            if self.tables[0].values.len() > SINGLE_TABLE_GROUPS && !self.tables[0].values.indexed()
            {
                self.split()?;
            }
        } else {
            self.queue(&rows)?;
            if self.queued_rows >= CHUNK_ROWS {
                self.aggregate_queued()?;
            }
        }
        self.probe()?;
        if self.reservation.try_resize(self.size()).is_err() {
            self.aggregate_queued()?;
            self.emit()?;
            // Emitting frees what the groups held; what is left is small, and is counted.
            let _ = self.reservation.try_resize(self.size());
        }
        Ok(())
    }

    fn finish(&mut self) -> DfResult<()> {
        self.aggregate_queued()?;
        self.emit()?;
        self.reservation.free();
        Ok(())
    }

    fn ready(&mut self) -> &mut VecDeque<RecordBatch> {
        &mut self.ready
    }
}

impl Groups {
    fn evaluate(&self, batch: &RecordBatch) -> DfResult<Rows> {
        let n = batch.num_rows();
        let value = |e: &Arc<dyn PhysicalExpr>| e.evaluate(batch).and_then(|v| v.into_array(n));
        Ok(Rows {
            keys: self.keys.iter().map(value).collect::<DfResult<_>>()?,
            arguments: self
                .arguments
                .iter()
                .map(|exprs| exprs.iter().map(value).collect::<DfResult<_>>())
                .collect::<DfResult<_>>()?,
            filters: self
                .filters
                .iter()
                .map(|f| f.as_ref().map(value).transpose())
                .collect::<DfResult<_>>()?,
        })
    }

    /// Hands on the single table's groups and goes on in [`PARTS`] tables.
    fn split(&mut self) -> DfResult<()> {
        self.emit()?;
        self.tables = (0..PARTS)
            .map(|_| Table::new(&self.group_schema, &self.aggregates))
            .collect::<DfResult<_>>()?;
        self.queued = (0..PARTS).map(|_| Vec::new()).collect();
        Ok(())
    }

    /// Reorders `rows` by part and queues each part's run of them.
    fn queue(&mut self, rows: &Rows) -> DfResult<()> {
        let n = rows.len();
        self.hashes.clear();
        self.hashes.resize(n, 0);
        create_hashes(&rows.keys, &PART_HASH, &mut self.hashes)?;
        let part = |h: u64| (h >> (u64::BITS - PART_BITS)) as usize;
        let mut starts = [0u32; PARTS + 1];
        for &h in &self.hashes {
            starts[part(h) + 1] += 1;
        }
        for p in 0..PARTS {
            starts[p + 1] += starts[p];
        }
        let mut next = starts;
        let mut order = vec![0u32; n];
        for (row, &h) in self.hashes.iter().enumerate() {
            let p = part(h);
            order[next[p] as usize] = row as u32;
            next[p] += 1;
        }
        let order = UInt32Array::from(order);
        let sorted = rows.map(|a| take(a, &order, None).map_err(Into::into))?;
        self.queued_bytes += sorted.bytes();
        for p in 0..PARTS {
            let (start, end) = (starts[p] as usize, starts[p + 1] as usize);
            if end > start {
                let run = sorted.map(|a| Ok(a.slice(start, end - start)))?;
                self.queued[p].push(run);
            }
        }
        self.queued_rows += n;
        Ok(())
    }

    /// Aggregates the queued rows, each table's in one go.
    fn aggregate_queued(&mut self) -> DfResult<()> {
        if self.queued_rows == 0 {
            return Ok(());
        }
        for (table, runs) in self.tables.iter_mut().zip(&mut self.queued) {
            for run in runs.drain(..) {
                table.update(&run)?;
            }
        }
        self.partitioned_rows.add(self.queued_rows);
        self.rows += self.queued_rows;
        self.queued_rows = 0;
        self.queued_bytes = 0;
        Ok(())
    }

    /// After the probe rows, stops aggregating if most rows still start a group.
    fn probe(&mut self) -> DfResult<()> {
        if self.decided || self.rows < self.probe_rows {
            return Ok(());
        }
        self.decided = true;
        let groups: usize = self.tables.iter().map(|t| t.values.len()).sum();
        if groups as f64 > self.probe_ratio * self.rows as f64 {
            self.passing = true;
            self.aggregate_queued()?;
            self.emit()?;
            self.tables.clear();
            self.queued.clear();
        }
        Ok(())
    }

    /// Hands rows on as partial states, one row each, as DataFusion's partial aggregation
    /// does once it stops aggregating.
    fn hand_on(&mut self, rows: &Rows) -> DfResult<()> {
        let mut out = rows.keys.clone();
        for ((acc, values), filter) in self
            .converters
            .iter()
            .zip(&rows.arguments)
            .zip(&rows.filters)
        {
            out.extend(acc.convert_to_state(values, boolean(filter)?)?);
        }
        self.ready
            .push_back(RecordBatch::try_new(Arc::clone(&self.schema), out)?);
        Ok(())
    }

    /// Queues every table's groups and partial states, and leaves the tables empty.
    fn emit(&mut self) -> DfResult<()> {
        // Tables emptied often (a small pool) hold few groups each: their rows are handed on
        // together, not as a batch of a handful of rows per table.
        let mut small = Vec::new();
        let mut small_rows = 0;
        for table in &mut self.tables {
            let Some(batch) = table.emit(&self.schema)? else {
                continue;
            };
            // Emptied accumulators keep their allocations; new ones hand the memory back.
            *table = Table::new(&self.group_schema, &self.aggregates)?;
            let rows = batch.num_rows();
            if rows < self.batch_size {
                small_rows += rows;
                small.push(batch);
                if small_rows >= self.batch_size {
                    self.ready.push_back(concat_batches(&self.schema, &small)?);
                    small.clear();
                    small_rows = 0;
                }
                continue;
            }
            queue_sliced(&mut self.ready, &batch, self.batch_size);
        }
        if !small.is_empty() {
            self.ready.push_back(concat_batches(&self.schema, &small)?);
        }
        Ok(())
    }

    /// The bytes the groups and queued rows hold, about.
    fn size(&self) -> usize {
        self.tables.iter().map(Table::size).sum::<usize>()
            + self.queued_bytes
            + self.hashes.capacity() * size_of::<u64>()
    }
}
