//! Sorts whose keys pack into one `u128` ([`crate::packed_merge::packed_width`]), sorted in
//! memory as integers.
//!
//! DataFusion's `SortExec` sorts each batch it receives by comparing the keys' bytes (one
//! `memcmp` a comparison for fixed-size binary keys), then merges the sorted batches through
//! its loser tree and `interleave`. `perf` of the sort benchmark (1 GB of GraySort records,
//! 10-byte keys, through MinIO) put 36% of Kask's samples in the map tasks' sorts: 16% in
//! sorting batches, 21% in merging them. [`PackedSortExec`] runs such a sort as a task-side
//! rewrite: it packs every row's key into a `u128`, sorts groups of rows small enough to
//! gather in the cache by those integers, and merges the sorted groups with
//! [`crate::packed_merge::merged`]. When the memory pool refuses the input, it hands what it
//! holds and the rest of its input to DataFusion's sort, which spills.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::MemoryConsumer;
use datafusion::physical_expr::{LexOrdering, PhysicalExpr};
use datafusion::physical_plan::metrics::{
    BaselineMetrics, Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::StreamingTableExec;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
    execute_stream, replace_children_if_necessary,
};
use futures::{StreamExt, TryStreamExt};

use crate::one_input::only_input;
use crate::packed_merge::{gathered, merged, packed, packed_width};
use crate::range_sort::{Once, SortKeys};

/// `plan` with every sort it can run on packed keys in a [`PackedSortExec`].
pub fn packed_sorts(plan: Arc<dyn ExecutionPlan>) -> DfResult<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        let wrapped = wrapped(Arc::clone(&node));
        Ok(match Arc::ptr_eq(&wrapped, &node) {
            true => Transformed::no(node),
            false => Transformed::yes(wrapped),
        })
    })
    .map(|t| t.data)
}

/// `node` (a `SortExec` of all its rows, by keys that pack) in a [`PackedSortExec`], else as
/// it is.
fn wrapped(node: Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan> {
    match node.downcast_ref::<SortExec>() {
        Some(sort)
            if sort.fetch().is_none()
                && packed_width(sort.expr(), &sort.input().schema()).is_some() =>
        {
            Arc::new(PackedSortExec {
                sort: node,
                metrics: ExecutionPlanMetricsSet::new(),
                spilling: Arc::new(Mutex::new(Vec::new())),
            })
        }
        _ => node,
    }
}

/// A [`SortExec`] run on its keys packed into `u128`s while its input fits in memory.
#[derive(Debug)]
pub struct PackedSortExec {
    /// The sort it runs (its input is this node's child).
    sort: Arc<dyn ExecutionPlan>,
    metrics: ExecutionPlanMetricsSet,
    /// The sorts it handed its input to, for their metrics (the bytes they spilled).
    spilling: Arc<Mutex<Vec<Arc<dyn ExecutionPlan>>>>,
}

impl PackedSortExec {
    fn sort(&self) -> DfResult<&SortExec> {
        self.sort
            .downcast_ref::<SortExec>()
            .ok_or_else(|| DataFusionError::Internal("PackedSortExec holds no SortExec".into()))
    }
}

impl DisplayAs for PackedSortExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "PackedSortExec: ")?;
        self.sort.fmt_as(t, f)
    }
}

impl ExecutionPlan for PackedSortExec {
    fn name(&self) -> &str {
        "PackedSortExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.sort.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        self.sort.children()
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        self.sort.apply_expressions(f)
    }

    fn metrics(&self) -> Option<MetricsSet> {
        let mut all = self.metrics.clone_inner();
        if let Ok(sorts) = self.spilling.lock() {
            for m in sorts.iter().filter_map(|s| s.metrics()) {
                for metric in m.iter() {
                    all.push(Arc::clone(metric));
                }
            }
        }
        Some(all)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let input = only_input(children, "PackedSortExec")?;
        Ok(wrapped(replace_children_if_necessary(
            Arc::clone(&self.sort),
            vec![input],
        )?))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let sort = self.sort()?;
        let schema = sort.schema();
        let ordering = sort.expr().clone();
        let width = packed_width(&ordering, &schema).ok_or_else(|| {
            DataFusionError::Internal("PackedSortExec of keys that do not pack".into())
        })?;
        let run = Sorting {
            keys: SortKeys::new(&ordering, &schema)
                .map_err(|e| DataFusionError::External(Box::new(e)))?,
            ordering,
            width,
            schema: Arc::clone(&schema),
            input: sort.input().execute(partition, Arc::clone(&context))?,
            partition,
            context,
            baseline: BaselineMetrics::new(&self.metrics, partition),
            groups: MetricBuilder::new(&self.metrics).counter("sorted_groups", partition),
            spilling: Arc::clone(&self.spilling),
        };
        let sorted = futures::stream::once(run.sorted()).try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, sorted)))
    }
}

/// Rows sorted and gathered at a time before the sorted groups are merged: about 3 MB of
/// the sort benchmark's 100-byte records, so that the gather's random reads hit the cache.
/// Sorting all of a task's rows at once and gathering them from memory at random took 19% of
/// the benchmark's samples in that gather alone.
pub const GROUP_ROWS: usize = 1 << 15;

/// Bytes of batches that make a group however few their rows, for wide rows.
const GROUP_BYTES: usize = 4 << 20;

/// One partition's sort.
struct Sorting {
    keys: SortKeys,
    ordering: LexOrdering,
    width: usize,
    schema: SchemaRef,
    input: SendableRecordBatchStream,
    partition: usize,
    context: Arc<TaskContext>,
    baseline: BaselineMetrics,
    /// `sorted_groups`: the groups of rows it sorted and gathered before merging them.
    groups: Count,
    spilling: Arc<Mutex<Vec<Arc<dyn ExecutionPlan>>>>,
}

/// A row's key, split so that the entry takes 24 bytes, and its batch and row.
#[derive(Clone, Copy)]
struct Entry {
    high: u64,
    low: u64,
    /// The batch in its upper 32 bits, the row in its lower: equal keys keep their input
    /// order, so that the same input sorts the same on every run.
    at: u64,
}

impl Sorting {
    async fn sorted(mut self) -> DfResult<SendableRecordBatchStream> {
        let reservation = MemoryConsumer::new(format!("PackedSortExec[{}]", self.partition))
            .register(self.context.memory_pool());
        let batch_rows = self.context.session_config().batch_size().max(1);
        let mut runs: Vec<Vec<RecordBatch>> = Vec::new();
        let mut group: Vec<RecordBatch> = Vec::new();
        let mut entries: Vec<Entry> = Vec::new();
        let mut group_bytes = 0;
        loop {
            let next = self.input.next().await.transpose()?;
            let ended = next.is_none();
            if let Some(batch) = next.filter(|b| b.num_rows() > 0) {
                let wanted = batch.get_array_memory_size() + batch.num_rows() * size_of::<Entry>();
                if reservation.try_grow(wanted).is_err() {
                    // DataFusion's sort reserves its own memory: give this back first.
                    drop(entries);
                    reservation.free();
                    let held = runs.into_iter().flatten().chain(group).chain([batch]);
                    return self.spilled(held.collect());
                }
                let start = Instant::now();
                let b = group.len() as u64;
                let keys = packed(&self.keys, self.width, &batch)?;
                entries.extend(keys.into_iter().enumerate().map(|(row, key)| Entry {
                    high: (key >> 64) as u64,
                    low: key as u64,
                    at: b << 32 | row as u64,
                }));
                group_bytes += batch.get_array_memory_size();
                group.push(batch);
                self.baseline.elapsed_compute().add_elapsed(start);
            }
            let full = entries.len() >= GROUP_ROWS || group_bytes >= GROUP_BYTES;
            if full || (ended && !entries.is_empty()) {
                let start = Instant::now();
                let before = group_bytes + entries.len() * size_of::<Entry>();
                group_bytes = 0;
                let run = self.sorted_group(&mut group, &mut entries, batch_rows)?;
                // The run takes the place of the group and its entries, reused for the next.
                let after: usize = run.iter().map(|b| b.get_array_memory_size()).sum();
                reservation.grow(after.saturating_sub(before));
                reservation.shrink(before.saturating_sub(after));
                runs.push(run);
                self.groups.add(1);
                self.baseline.elapsed_compute().add_elapsed(start);
            }
            if ended {
                break;
            }
        }
        let streams: Vec<SendableRecordBatchStream> = runs
            .into_iter()
            .map(|run| {
                Box::pin(RecordBatchStreamAdapter::new(
                    Arc::clone(&self.schema),
                    futures::stream::iter(run.into_iter().map(Ok)),
                )) as SendableRecordBatchStream
            })
            .collect();
        let merged = merged(
            streams,
            Arc::new(self.keys),
            self.width,
            Arc::clone(&self.schema),
            batch_rows,
            // The runs' memory is this sort's reservation, held until the last row is out.
            None,
            self.baseline,
        )
        .map(move |batch| {
            let _held = &reservation;
            batch
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema, merged)))
    }

    /// `group`'s rows in the order of their `entries`, as batches of `batch_rows` rows; both
    /// are left empty. A group is small enough that gathering its rows at random stays in the
    /// cache.
    fn sorted_group(
        &self,
        group: &mut Vec<RecordBatch>,
        entries: &mut Vec<Entry>,
        batch_rows: usize,
    ) -> DfResult<Vec<RecordBatch>> {
        entries.sort_unstable_by_key(|e| (e.high, e.low, e.at));
        let run = entries
            .chunks(batch_rows)
            .map(|chunk| {
                let picks: Vec<(usize, usize)> = chunk
                    .iter()
                    .map(|e| ((e.at >> 32) as usize, (e.at & 0xffff_ffff) as usize))
                    .collect();
                gathered(&self.schema, group, &picks)
            })
            .collect::<DfResult<Vec<_>>>()?;
        group.clear();
        entries.clear();
        Ok(run)
    }

    /// The rows held and the rest of the input through DataFusion's sort, which spills.
    fn spilled(self, held: Vec<RecordBatch>) -> DfResult<SendableRecordBatchStream> {
        let rows = futures::stream::iter(held.into_iter().map(Ok)).chain(self.input);
        let input = StreamingTableExec::try_new(
            Arc::clone(&self.schema),
            vec![Arc::new(Once(
                Arc::clone(&self.schema),
                Mutex::new(Some(Box::pin(RecordBatchStreamAdapter::new(
                    Arc::clone(&self.schema),
                    rows,
                )))),
            ))],
            None,
            [],
            false,
            None,
        )?;
        let sort: Arc<dyn ExecutionPlan> = Arc::new(SortExec::new(self.ordering, Arc::new(input)));
        if let Ok(mut sorts) = self.spilling.lock() {
            sorts.push(Arc::clone(&sort));
        }
        execute_stream(sort, self.context)
    }
}
