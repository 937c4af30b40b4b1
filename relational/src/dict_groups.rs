//! Partial aggregations grouped by string columns that Parquet holds dictionary-encoded, by the
//! dictionaries' codes.
//!
//! db-benchmark's groupby q1 sums `v1` by `id1`, 100 strings over 1e8 rows; TPC-H q01 groups
//! 60 million rows by two one-letter flags. DataFusion looks each row's strings up in a hash
//! table: 36% of q1's CPU samples were `ArrowBytesViewMap::insert_if_new` (`perf record` of
//! `kask run groupby-q1.yaml`), and a table keyed by the strings' 128-bit views saved only 10%,
//! each row still one lookup whose latency the processor cannot hide. The files hold those
//! columns as dictionary codes, though, and a row group's 100 distinct values are all there is
//! to look up.
//!
//! A task therefore runs such a partial aggregation with [`DictGroupsExec`]
//! ([`dictionary_group_aggregates`], a task-side rewrite). When every file of its partition
//! holds the group columns wholly dictionary-encoded, it plans the scan again to read them as
//! dictionary arrays ([`crate::dict_route`]), looks up each dictionary value once when a row
//! first uses it, and numbers each row's group by its codes, one array index per row; the
//! aggregates are DataFusion's own group accumulators, so the partial states are those of the
//! `AggregateExec` it replaces. Otherwise it runs that `AggregateExec`.
//!
//! Like DataFusion's partial aggregation it emits what it holds when the memory pool refuses it
//! more (a partial aggregation's output is merged later, so emitting early is always right),
//! and stops aggregating when, after the session's probe rows, most rows still start a group
//! (`skip_partial_aggregation_probe_*`): it then hands each batch on as states.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, DictionaryArray, StringViewBuilder, UInt32Array,
};
use datafusion::arrow::buffer::Buffer;
use datafusion::arrow::compute::{cast, take};
use datafusion::arrow::datatypes::{DataType, Int32Type, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::utils::collect_columns;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, InputOrderMode, PlanProperties,
    SendableRecordBatchStream, displayable, replace_children_if_necessary,
};
use futures::TryStreamExt;
use tracing::debug;

use crate::dict_route::{Route, dictionary_type, route};
use crate::one_input::only_input;
use crate::queued_stream::{Queue, queue_sliced, queued};
use crate::radix_groups::{RadixGroupsExec, accumulators, boolean};

/// At most this many group columns (their codes are packed into 128 bits).
const MOST_COLUMNS: usize = 4;

/// Combinations of dictionary keys numbered in one array while the dictionaries stay the same:
/// a row's group is then one index into it.
const MOST_COMBINATIONS: usize = 1 << 18;

/// `plan` with every partial aggregation that [`DictGroupsExec`] can run wrapped in one.
/// Results are unchanged.
pub fn dictionary_group_aggregates(
    plan: Arc<dyn ExecutionPlan>,
) -> DfResult<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        let wrapped = wrapped(Arc::clone(&node));
        Ok(match Arc::ptr_eq(&wrapped, &node) {
            true => Transformed::no(node),
            false => Transformed::yes(wrapped),
        })
    })
    .map(|t| t.data)
}

/// `node` (an `AggregateExec`) in a [`DictGroupsExec`] when one can run it, else as it is.
fn wrapped(node: Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan> {
    let Some(agg) = aggregate_of(&node) else {
        return node;
    };
    let Some(columns) = groups(agg) else {
        if *agg.mode() == AggregateMode::Partial {
            debug!(
                aggregation = %displayable(node.as_ref()).one_line(),
                "a partial aggregation left to DataFusion: not grouped by string columns only, \
                 or an aggregate reads one"
            );
        }
        return node;
    };
    let Some(route) = route(agg.input(), &columns) else {
        debug!(
            aggregation = %displayable(node.as_ref()).one_line(),
            input = %displayable(agg.input().as_ref()).indent(true),
            "a partial aggregation left to DataFusion: its group columns do not come untouched \
             from a Parquet scan"
        );
        return node;
    };
    Arc::new(DictGroupsExec {
        agg: node,
        route,
        columns,
        metrics: ExecutionPlanMetricsSet::new(),
    })
}

/// The input columns `agg` groups by, when [`DictGroupsExec`] runs `agg` as `agg` would: a
/// partial aggregation of unordered input, without grouping sets, limit or dynamic filter,
/// grouped by string view columns, whose aggregates all have DataFusion's group accumulators,
/// no ordering and no distinct, and read no group column.
fn groups(agg: &AggregateExec) -> Option<Vec<usize>> {
    let group = agg.group_expr();
    let schema = agg.input_schema();
    let simple = *agg.mode() == AggregateMode::Partial
        && group.is_single()
        && (1..=MOST_COLUMNS).contains(&group.expr().len())
        && agg.limit_options().is_none()
        && agg.dynamic_expressions_produced().is_empty()
        && *agg.input_order_mode() == InputOrderMode::Linear;
    if !simple {
        return None;
    }
    let columns: Vec<usize> = group
        .expr()
        .iter()
        .map(|(e, _)| {
            let c = e.downcast_ref::<Column>()?;
            matches!(schema.field(c.index()).data_type(), DataType::Utf8View).then(|| c.index())
        })
        .collect::<Option<_>>()?;
    let reads_group = |e: &Arc<dyn PhysicalExpr>| {
        collect_columns(e)
            .iter()
            .any(|c| columns.contains(&c.index()))
    };
    let aggregates_fit = agg.aggr_expr().iter().all(|e| {
        e.groups_accumulator_supported()
            && e.order_bys().is_empty()
            && !e.is_distinct()
            && !e.expressions().iter().any(reads_group)
    }) && agg.filter_expr().iter().flatten().all(|f| !reads_group(f));
    aggregates_fit.then_some(columns)
}

/// A partial [`AggregateExec`] grouped by string columns, run over their dictionary codes when
/// its partition's files hold them so.
#[derive(Debug)]
pub struct DictGroupsExec {
    /// The aggregation it runs when the files are not dictionary-encoded (its input is this
    /// node's child): an `AggregateExec` or a [`RadixGroupsExec`].
    agg: Arc<dyn ExecutionPlan>,
    route: Route,
    /// The input columns it groups by.
    columns: Vec<usize>,
    /// `coded_partitions`: the partitions grouped by dictionary codes.
    metrics: ExecutionPlanMetricsSet,
}

/// The aggregation `node` runs: an `AggregateExec`, or the one a [`RadixGroupsExec`] runs
/// (which then runs the partitions whose files are not dictionary-encoded).
fn aggregate_of(node: &Arc<dyn ExecutionPlan>) -> Option<&AggregateExec> {
    node.downcast_ref::<AggregateExec>().or_else(|| {
        node.downcast_ref::<RadixGroupsExec>()
            .and_then(|r| r.aggregate().ok())
    })
}

impl DictGroupsExec {
    fn aggregate(&self) -> DfResult<&AggregateExec> {
        aggregate_of(&self.agg).ok_or_else(|| {
            DataFusionError::Internal("DictGroupsExec holds no AggregateExec".into())
        })
    }
}

impl DisplayAs for DictGroupsExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "DictGroupsExec: ")?;
        self.agg.fmt_as(t, f)
    }
}

impl ExecutionPlan for DictGroupsExec {
    fn name(&self) -> &str {
        "DictGroupsExec"
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
        // With the metrics of the aggregation that ran the partitions not read by codes.
        let mut metrics = self.metrics.clone_inner();
        for m in self.agg.metrics().iter().flat_map(|m| m.iter()) {
            metrics.push(Arc::clone(m));
        }
        Some(metrics)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let input = only_input(children, "DictGroupsExec")?;
        let agg = replace_children_if_necessary(Arc::clone(&self.agg), vec![input])?;
        // The route was found below the old input; a new one may not have it.
        Ok(wrapped(agg))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let agg = self.aggregate()?;
        let schema = agg.schema();
        let route = self.route.clone();
        let plain = Arc::clone(&self.agg);
        let options = &context.session_config().options().execution;
        let coded_columns = self.columns.clone();
        let groups = Groups {
            schema: Arc::clone(&schema),
            keys: self.columns.iter().map(|&i| KeyColumn::new(i)).collect(),
            arguments: agg.aggr_expr().iter().map(|e| e.expressions()).collect(),
            filters: agg.filter_expr().to_vec(),
            aggregates: agg.aggr_expr().to_vec(),
            accumulators: accumulators(agg.aggr_expr())?,
            combos: Vec::new(),
            combo_dictionaries: Vec::new(),
            by_codes: HashMap::new(),
            group_codes: Vec::new(),
            count: 0,
            indices: Vec::new(),
            reservation: MemoryConsumer::new(format!("DictGroupsExec[{partition}]"))
                .register(context.memory_pool()),
            rows: 0,
            probe_rows: options.skip_partial_aggregation_probe_rows_threshold,
            probe_ratio: options.skip_partial_aggregation_probe_ratio_threshold,
            decided: false,
            passing: false,
            batch_size: context.session_config().batch_size().max(1),
            ready: VecDeque::new(),
        };
        let stream_schema = Arc::clone(&schema);
        let coded_partitions =
            MetricBuilder::new(&self.metrics).counter("coded_partitions", partition);
        // A partition whose scan may read other partitions' files (work stealing) reads what
        // the others leave; the others, planned again, would not leave their files to it.
        let own_files = !options.enable_file_stream_work_stealing;
        let stream = futures::stream::once(async move {
            let planned = match own_files {
                true => route.dictionary_plan(partition, &context).await?,
                false => None,
            };
            // The planned-again input must hand on the group columns as dictionaries.
            let coded = planned.filter(|c| {
                let schema = c.schema();
                coded_columns.iter().all(|&i| {
                    schema.fields().get(i).map(|f| f.data_type()) == Some(&dictionary_type())
                })
            });
            let Some(coded) = coded else {
                return plain.execute(partition, context);
            };
            coded_partitions.add(1);
            let input = coded.execute(0, context)?;
            Ok(queued(input, groups, stream_schema))
        })
        .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// One group column: the code of each value seen (numbered in order of first use), and for
/// the dictionary of the last batch, the code of each of its keys.
struct KeyColumn {
    /// The column's index in the input batches.
    index: usize,
    codes: HashMap<Box<str>, u32>,
    null: Option<u32>,
    /// Each code's value.
    values: StringViewBuilder,
    count: u32,
    value_bytes: usize,
    /// The code of each key of `dictionary` (`UNSEEN` until a row uses it), and after them
    /// the code of a null key.
    by_key: Vec<u32>,
    dictionary: Option<ArrayRef>,
}

const UNSEEN: u32 = u32::MAX;

impl KeyColumn {
    fn new(index: usize) -> KeyColumn {
        KeyColumn {
            index,
            codes: HashMap::new(),
            null: None,
            values: StringViewBuilder::new(),
            count: 0,
            value_bytes: 0,
            by_key: Vec::new(),
            dictionary: None,
        }
    }

    /// Starts a batch whose column is `array`.
    fn start(&mut self, array: &DictionaryArray<Int32Type>) {
        let same = self
            .dictionary
            .as_ref()
            .is_some_and(|d| same_dictionary(d, array.values()));
        if !same {
            self.by_key.clear();
            self.by_key.resize(array.values().len() + 1, UNSEEN);
            self.dictionary = Some(Arc::clone(array.values()));
        }
    }

    /// The code of key slot `slot` (a key, or the dictionary's length for a null key).
    fn code(&mut self, slot: usize) -> u32 {
        let known = self.by_key[slot];
        if known != UNSEEN {
            return known;
        }
        let value = self.dictionary.as_ref().and_then(|d| {
            let strings = d.as_string::<i32>();
            (slot < strings.len() && strings.is_valid(slot)).then(|| strings.value(slot))
        });
        let code = match value {
            None => *self.null.get_or_insert_with(|| {
                self.values.append_null();
                self.count += 1;
                self.count - 1
            }),
            Some(v) => match self.codes.get(v) {
                Some(c) => *c,
                None => {
                    self.values.append_value(v);
                    self.codes.insert(v.into(), self.count);
                    self.value_bytes += v.len() + size_of::<(Box<str>, u32)>();
                    self.count += 1;
                    self.count - 1
                }
            },
        };
        self.by_key[slot] = code;
        code
    }

    fn clear(&mut self) {
        *self = KeyColumn::new(self.index);
    }

    fn bytes(&self) -> usize {
        self.value_bytes + self.values.allocated_size() + self.by_key.capacity() * size_of::<u32>()
    }
}

/// Whether `held` and `next` are the same dictionary: the same array, or arrays over the same
/// buffers. The Parquet reader builds a new values array for every batch of a column chunk,
/// over that chunk's one dictionary, so comparing the arrays alone took every batch for a new
/// dictionary: `perf` of db-benchmark groupby q2 at 1e7 rows put 35% of the samples in looking
/// up codes again. `held` is kept while it is compared, so its buffers cannot have been freed
/// and their memory reused by another dictionary.
pub fn same_dictionary(held: &ArrayRef, next: &ArrayRef) -> bool {
    if Arc::ptr_eq(held, next) {
        return true;
    }
    let (a, b) = (held.to_data(), next.to_data());
    let same_buffer = |x: &Buffer, y: &Buffer| x.as_ptr() == y.as_ptr() && x.len() == y.len();
    a.data_type() == b.data_type()
        && a.len() == b.len()
        && a.offset() == b.offset()
        && a.child_data().is_empty()
        && b.child_data().is_empty()
        && a.buffers().len() == b.buffers().len()
        && a.buffers()
            .iter()
            .zip(b.buffers())
            .all(|(x, y)| same_buffer(x, y))
        && match (a.nulls(), b.nulls()) {
            (None, None) => true,
            (Some(x), Some(y)) => x.offset() == y.offset() && same_buffer(x.buffer(), y.buffer()),
            _ => false,
        }
}

/// The key slot of row `row` of `array`: its key, or the dictionary's length when null.
fn slot(array: &DictionaryArray<Int32Type>, row: usize) -> usize {
    if array.is_null(row) {
        array.values().len()
    } else {
        array.keys().value(row) as usize
    }
}

/// One partition's groups and accumulators.
struct Groups {
    schema: SchemaRef,
    keys: Vec<KeyColumn>,
    arguments: Vec<Vec<Arc<dyn PhysicalExpr>>>,
    filters: Vec<Option<Arc<dyn PhysicalExpr>>>,
    aggregates: Vec<Arc<AggregateFunctionExpr>>,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
    /// The group of each combination of key slots (`UNSEEN` until a row has it) while the
    /// dictionaries are `combo_dictionaries`; empty when there are too many combinations.
    combos: Vec<u32>,
    combo_dictionaries: Vec<ArrayRef>,
    /// The group of each combination of codes, packed 32 bits a column.
    by_codes: HashMap<u128, u32>,
    /// Each group's codes, a column after another.
    group_codes: Vec<u32>,
    count: usize,
    indices: Vec<usize>,
    reservation: MemoryReservation,
    /// Rows aggregated so far; after `probe_rows`, if `count / rows >= probe_ratio`, the
    /// aggregation stops and hands rows on as states.
    rows: usize,
    probe_rows: usize,
    probe_ratio: f64,
    decided: bool,
    passing: bool,
    batch_size: usize,
    ready: VecDeque<RecordBatch>,
}

impl Queue for Groups {
    fn push(&mut self, batch: RecordBatch) -> DfResult<()> {
        let batch = &batch;
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let arguments = self
            .arguments
            .iter()
            .map(|exprs| {
                exprs
                    .iter()
                    .map(|e| e.evaluate(batch).and_then(|v| v.into_array(n)))
                    .collect::<DfResult<Vec<ArrayRef>>>()
            })
            .collect::<DfResult<Vec<_>>>()?;
        let filters = self
            .filters
            .iter()
            .map(|f| {
                f.as_ref()
                    .map(|e| e.evaluate(batch).and_then(|v| v.into_array(n)))
                    .transpose()
            })
            .collect::<DfResult<Vec<Option<ArrayRef>>>>()?;
        let columns: Vec<&DictionaryArray<Int32Type>> = self
            .keys
            .iter()
            .map(|k| {
                batch
                    .column(k.index)
                    .as_dictionary_opt::<Int32Type>()
                    .filter(|d| d.data_type() == &dictionary_type())
                    .ok_or_else(|| {
                        DataFusionError::Internal(format!(
                            "DictGroupsExec: column {} is {}, not a dictionary of strings",
                            k.index,
                            batch.column(k.index).data_type()
                        ))
                    })
            })
            .collect::<DfResult<_>>()?;
        if self.passing {
            return self.hand_on(&columns, &arguments, &filters);
        }
        self.intern(&columns);
        for ((acc, values), filter) in self.accumulators.iter_mut().zip(&arguments).zip(&filters) {
            acc.update_batch(values, &self.indices, boolean(filter)?, self.count)?;
        }
        self.rows += n;
        if !self.decided && self.rows >= self.probe_rows {
            self.decided = true;
            if self.count as f64 >= self.probe_ratio * self.rows as f64 {
                self.passing = true;
                return self.emit();
            }
        }
        if self.reservation.try_resize(self.size()).is_err() {
            self.emit()?;
            // Emitting frees what the groups held; what is left is small, and is counted.
            let _ = self.reservation.try_resize(self.size());
        }
        Ok(())
    }

    fn finish(&mut self) -> DfResult<()> {
        self.emit()
    }

    fn ready(&mut self) -> &mut VecDeque<RecordBatch> {
        &mut self.ready
    }
}

impl Groups {
    /// Numbers each row's group in `indices`, adding groups for combinations not seen before.
    fn intern(&mut self, columns: &[&DictionaryArray<Int32Type>]) {
        for (key, array) in self.keys.iter_mut().zip(columns) {
            key.start(array);
        }
        let slots: Vec<usize> = columns.iter().map(|c| c.values().len() + 1).collect();
        let combinations = slots
            .iter()
            .try_fold(1usize, |a, s| a.checked_mul(*s))
            .filter(|c| *c <= MOST_COMBINATIONS);
        let same = self.combo_dictionaries.len() == columns.len()
            && self
                .combo_dictionaries
                .iter()
                .zip(columns)
                .all(|(d, c)| same_dictionary(d, c.values()));
        if !same {
            self.combo_dictionaries = columns.iter().map(|c| Arc::clone(c.values())).collect();
            self.combos.clear();
            if let Some(c) = combinations {
                self.combos.resize(c, UNSEEN);
            }
        }
        let n = columns.first().map_or(0, |c| c.len());
        let mut indices = std::mem::take(&mut self.indices);
        indices.clear();
        indices.reserve(n);
        if combinations.is_some() {
            // Without null keys a row's slots are its keys, read straight from their buffers:
            // `perf` of groupby q1 at 1e7 put 25% of the samples in this loop when every row
            // asked each column whether it was null.
            let dense: Option<Vec<&[i32]>> = columns
                .iter()
                .map(|c| (c.null_count() == 0).then(|| c.keys().values().as_ref()))
                .collect();
            match dense.as_deref() {
                Some([keys]) => {
                    for (row, key) in keys.iter().enumerate() {
                        indices.push(self.combination_group(columns, *key as usize, row));
                    }
                }
                Some(keys) => {
                    for row in 0..n {
                        let combo = keys
                            .iter()
                            .zip(&slots)
                            .fold(0usize, |combo, (k, s)| combo * s + k[row] as usize);
                        indices.push(self.combination_group(columns, combo, row));
                    }
                }
                None => {
                    for row in 0..n {
                        let mut combo = 0usize;
                        for (c, s) in columns.iter().zip(&slots) {
                            combo = combo * s + slot(c, row);
                        }
                        indices.push(self.combination_group(columns, combo, row));
                    }
                }
            }
        } else {
            for row in 0..n {
                indices.push(self.group_of(columns, row) as usize);
            }
        }
        self.indices = indices;
    }

    /// The group of combination `combo` of key slots, which row `row` has, added if new.
    #[inline]
    fn combination_group(
        &mut self,
        columns: &[&DictionaryArray<Int32Type>],
        combo: usize,
        row: usize,
    ) -> usize {
        let mut group = self.combos[combo];
        if group == UNSEEN {
            group = self.group_of(columns, row);
            self.combos[combo] = group;
        }
        group as usize
    }

    /// The group of row `row`, added if new.
    fn group_of(&mut self, columns: &[&DictionaryArray<Int32Type>], row: usize) -> u32 {
        let mut packed = 0u128;
        for (key, c) in self.keys.iter_mut().zip(columns) {
            packed = (packed << 32) | u128::from(key.code(slot(c, row)));
        }
        if let Some(g) = self.by_codes.get(&packed) {
            return *g;
        }
        let group = self.count as u32;
        self.by_codes.insert(packed, group);
        for i in (0..self.keys.len()).rev() {
            self.group_codes.push((packed >> (32 * i)) as u32);
        }
        self.count += 1;
        group
    }

    /// Hands a batch on as partial states, one row each, as DataFusion's partial aggregation
    /// does once it stops aggregating.
    fn hand_on(
        &mut self,
        columns: &[&DictionaryArray<Int32Type>],
        arguments: &[Vec<ArrayRef>],
        filters: &[Option<ArrayRef>],
    ) -> DfResult<()> {
        let mut out = Vec::with_capacity(self.schema.fields().len());
        for c in columns {
            out.push(cast(*c, &DataType::Utf8View)?);
        }
        for ((acc, values), filter) in self.accumulators.iter().zip(arguments).zip(filters) {
            let filter = boolean(filter)?;
            out.extend(acc.convert_to_state(values, filter)?);
        }
        self.ready
            .push_back(RecordBatch::try_new(Arc::clone(&self.schema), out)?);
        Ok(())
    }

    /// Queues every group's key and partial states, and starts again with none.
    fn emit(&mut self) -> DfResult<()> {
        if self.count == 0 {
            return Ok(());
        }
        let width = self.keys.len();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for (j, key) in self.keys.iter_mut().enumerate() {
            let values: ArrayRef = Arc::new(key.values.finish());
            let codes: UInt32Array = self
                .group_codes
                .iter()
                .skip(j)
                .step_by(width)
                .copied()
                .collect();
            columns.push(take(&values, &codes, None)?);
        }
        for acc in &mut self.accumulators {
            columns.extend(acc.state(EmitTo::All)?);
        }
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), columns)?;
        // Accumulators that emitted everything start empty; new ones make sure of it.
        self.accumulators = accumulators(&self.aggregates)?;
        for key in &mut self.keys {
            key.clear();
        }
        self.combos.clear();
        self.combo_dictionaries.clear();
        self.by_codes.clear();
        self.group_codes.clear();
        self.count = 0;
        queue_sliced(&mut self.ready, &batch, self.batch_size);
        Ok(())
    }

    /// The bytes the groups hold, about.
    fn size(&self) -> usize {
        let accumulators: usize = self.accumulators.iter().map(|a| a.size()).sum();
        let keys: usize = self.keys.iter().map(KeyColumn::bytes).sum();
        accumulators
            + keys
            + self.combos.capacity() * size_of::<u32>()
            + self.by_codes.capacity() * (size_of::<(u128, u32)>() + 1)
            + self.group_codes.capacity() * size_of::<u32>()
            + self.indices.capacity() * size_of::<usize>()
    }
}
