//! The two ends of an exchange between stages. The lower stage's tasks write their rows to
//! Kask's shuffle ([`ShuffleSink`]); the upper stage reads them back through
//! [`ShuffleReaderExec`], a leaf of its sub-plan that stands where DataFusion had placed a
//! repartition or the input of a coalesce.

use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::{EquivalenceProperties, LexOrdering, Partitioning, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};

use kask_core::error::{Error, Result};
use kask_core::marker::{TaskMarker, latest_markers};
use kask_core::shuffle::SliceReader;

use super::range_sort::RangeRead;

/// Map tasks' slices of a partition a reader opens ahead of the one it reads: enough requests
/// in flight to hide the store's latency. Each holds a window or two
/// ([`kask_core::shuffle::SliceReader`]), so a partition streams through the task instead of
/// being gathered whole.
const SLICES_IN_FLIGHT: usize = 8;

/// Where an upper stage's reader gets a lower stage's shuffled rows.
#[async_trait]
pub trait ShuffleSource: Send + Sync + fmt::Debug {
    /// The committed map tasks of stage `stage` (their newest markers), in task order.
    async fn maps(&self, stage: usize) -> Result<Vec<TaskMarker>>;
    /// Opens map task `map`'s slice of partition `partition` of its stage's shuffle.
    async fn open(&self, map: TaskMarker, partition: usize) -> Result<SliceReader>;
    /// The next batch of an opened slice.
    async fn next(&self, slice: &mut SliceReader) -> Result<Option<RecordBatch>>;
}

/// The source of a plan that is only displayed and cut, never run (the plan pod's).
#[derive(Debug)]
pub struct PlanningOnly;

#[async_trait]
impl ShuffleSource for PlanningOnly {
    async fn maps(&self, _stage: usize) -> Result<Vec<TaskMarker>> {
        Err(Error::internal("a plan made for planning only was run"))
    }
    async fn open(&self, _map: TaskMarker, _partition: usize) -> Result<SliceReader> {
        Err(Error::internal("a plan made for planning only was run"))
    }
    async fn next(&self, _slice: &mut SliceReader) -> Result<Option<RecordBatch>> {
        Err(Error::internal("a plan made for planning only was run"))
    }
}

/// An opened slice's batches.
fn batches(
    source: Arc<dyn ShuffleSource>,
    slice: SliceReader,
) -> impl futures::Stream<Item = Result<RecordBatch>> + Send {
    futures::stream::try_unfold((source, slice), |(source, mut slice)| async move {
        Ok(source.next(&mut slice).await?.map(|b| (b, (source, slice))))
    })
}

/// Which rows a reader's partition `p` holds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ReadMode {
    /// Partition `p` of the shuffle, from every map task (after a hash exchange).
    Partition,
    /// Everything map task `p` wrote (below a coalesce or a sorted merge, whose map tasks
    /// each wrote one partition).
    Map,
    /// Key range `p` of every map task's sorted run, merged in order
    /// ([`crate::range_sort`]).
    Range,
}

/// A leaf that reads an earlier stage's shuffle.
#[derive(Debug)]
pub struct ShuffleReaderExec {
    stage: usize,
    mode: ReadMode,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    source: Arc<dyn ShuffleSource>,
    /// The order of a [`ReadMode::Range`] reader's rows.
    ordering: Option<LexOrdering>,
    /// The fewest rows worth a range of their own.
    min_range_rows: u64,
    metrics: ExecutionPlanMetricsSet,
    /// The sorts a range reader ran (see [`RangeRead::sorts`]).
    sorts: Arc<Mutex<Vec<Arc<dyn ExecutionPlan>>>>,
}

impl ShuffleReaderExec {
    /// A reader of stage `stage`'s sorted runs in `ranges` key ranges, a partition each, in
    /// `ordering`; only as many ranges hold rows as have `min_rows` rows each.
    pub fn ranges(
        stage: usize,
        schema: SchemaRef,
        (ordering, min_rows): (LexOrdering, u64),
        ranges: usize,
        source: Arc<dyn ShuffleSource>,
    ) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new_with_orderings(
                Arc::clone(&schema),
                [ordering.iter().cloned().collect::<Vec<_>>()],
            ),
            Partitioning::UnknownPartitioning(ranges.max(1)),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        ShuffleReaderExec {
            stage,
            mode: ReadMode::Range,
            schema,
            properties: Arc::new(properties),
            source,
            ordering: Some(ordering),
            min_range_rows: min_rows,
            metrics: ExecutionPlanMetricsSet::new(),
            sorts: Arc::default(),
        }
    }

    /// The order of a range reader's rows.
    pub fn ordering(&self) -> Option<&LexOrdering> {
        self.ordering.as_ref()
    }

    /// The fewest rows worth a range of their own, for a range reader.
    pub fn min_range_rows(&self) -> u64 {
        self.min_range_rows
    }

    /// A reader of stage `stage` with the partitioning the exchange it replaces had.
    pub fn new(
        stage: usize,
        mode: ReadMode,
        schema: SchemaRef,
        partitioning: Partitioning,
        source: Arc<dyn ShuffleSource>,
    ) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            partitioning,
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        ShuffleReaderExec {
            stage,
            mode,
            schema,
            properties: Arc::new(properties),
            source,
            ordering: None,
            min_range_rows: 0,
            metrics: ExecutionPlanMetricsSet::new(),
            sorts: Arc::default(),
        }
    }

    /// The stage it reads.
    pub fn stage(&self) -> usize {
        self.stage
    }

    /// Which rows each of its partitions holds.
    pub fn mode(&self) -> ReadMode {
        self.mode
    }
}

impl DisplayAs for ShuffleReaderExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let how = match self.mode {
            ReadMode::Partition => "one partition from every task",
            ReadMode::Map => "each task's output as a partition",
            ReadMode::Range => "a key range of every task's sorted output",
        };
        write!(
            f,
            "ShuffleReaderExec: stage={}, partitions={}, reads {how}",
            self.stage,
            self.properties.partitioning.partition_count()
        )?;
        if let Some(o) = &self.ordering {
            write!(
                f,
                ", merged by [{o}], a range per {} rows at least",
                self.min_range_rows
            )?;
        }
        Ok(())
    }
}

impl ExecutionPlan for ShuffleReaderExec {
    fn name(&self) -> &str {
        "ShuffleReaderExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            Err(DataFusionError::Internal(
                "ShuffleReaderExec has no inputs".into(),
            ))
        }
    }

    fn metrics(&self) -> Option<MetricsSet> {
        let mut all = self.metrics.clone_inner();
        if let Ok(sorts) = self.sorts.lock() {
            for m in sorts.iter().filter_map(|s| s.metrics()) {
                for metric in m.iter() {
                    all.push(Arc::clone(metric));
                }
            }
        }
        Some(all)
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        if self.mode == ReadMode::Range {
            let Some(ordering) = &self.ordering else {
                return Err(DataFusionError::Internal(
                    "a key-range shuffle reader without its order".into(),
                ));
            };
            let read = RangeRead {
                source: Arc::clone(&self.source),
                stage: self.stage,
                range: partition,
                ranges: self.properties.partitioning.partition_count(),
                min_rows: self.min_range_rows,
                schema: Arc::clone(&self.schema),
                ordering: ordering.clone(),
                sorts: Arc::clone(&self.sorts),
            };
            return read.execute(context, &self.metrics);
        }
        let source = Arc::clone(&self.source);
        let stage = self.stage;
        let maps = {
            let source = Arc::clone(&source);
            futures::stream::once(async move { source.maps(stage).await })
        };
        // Opened slices, in map-task order.
        let slices: BoxStream<'static, Result<SliceReader>> = match self.mode {
            ReadMode::Partition => {
                let source = Arc::clone(&source);
                maps.map_ok(move |maps| {
                    let source = Arc::clone(&source);
                    futures::stream::iter(maps)
                        .map(move |m| {
                            let source = Arc::clone(&source);
                            async move { source.open(m, partition).await }
                        })
                        .buffered(SLICES_IN_FLIGHT)
                })
                .try_flatten()
                .boxed()
            }
            ReadMode::Map | ReadMode::Range => {
                // (a range reader returned above)
                let source = Arc::clone(&source);
                maps.and_then(move |maps| {
                    let source = Arc::clone(&source);
                    async move {
                        match maps.into_iter().find(|m| m.task == partition) {
                            Some(m) => Ok(Some(source.open(m, 0).await?)),
                            None => Ok(None),
                        }
                    }
                })
                .try_filter_map(|s| async move { Ok(s) })
                .boxed()
            }
        };
        let stream = slices
            .map_ok(move |slice| batches(Arc::clone(&source), slice))
            .try_flatten()
            .map_err(|e| DataFusionError::External(Box::new(e)));
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream.boxed(),
        )))
    }
}

/// How a stage's task hands its rows to the next stage.
#[derive(Clone, Debug)]
pub enum SinkKind {
    /// The job's output files.
    Output,
    /// Hash-partitioned by these expressions into this many partitions, as DataFusion's
    /// repartition would.
    Hash(Vec<Arc<dyn PhysicalExpr>>, usize),
    /// Everything into one partition.
    Single,
    /// Sorted in this order, in chunks of this many rows ([`crate::range_sort`]).
    Ranges(LexOrdering, u64),
}

/// A shuffle source of a running task: the job's store and plan, and the first error met,
/// kept whole (DataFusion would pass on only its text).
pub struct TaskShuffles {
    store: kask_core::store::Store,
    plan: Arc<kask_core::plan::Plan>,
    recoveries: kask_core::task::recover::Recoveries,
    /// The first error, with its kind (a store that failed is worth another attempt).
    pub error: Mutex<Option<Error>>,
    /// Bytes and rows read from shuffles.
    pub read: Mutex<(u64, u64)>,
}

impl fmt::Debug for TaskShuffles {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "TaskShuffles({})", self.plan.job_id)
    }
}

impl TaskShuffles {
    /// The shuffles of `plan` in `store`.
    pub fn new(store: kask_core::store::Store, plan: Arc<kask_core::plan::Plan>) -> Self {
        TaskShuffles {
            store,
            plan,
            recoveries: kask_core::task::recover::Recoveries::default(),
            error: Mutex::new(None),
            read: Mutex::new((0, 0)),
        }
    }

    fn keep<T>(&self, r: Result<T>) -> Result<T> {
        match r {
            Ok(v) => Ok(v),
            Err(e) => {
                let text = e.to_string();
                if let Ok(mut first) = self.error.lock()
                    && first.is_none()
                {
                    *first = Some(e);
                }
                Err(Error::internal(text))
            }
        }
    }

    fn count(&self, bytes: u64, rows: usize) {
        if let Ok(mut r) = self.read.lock() {
            r.0 += bytes;
            r.1 += rows as u64;
        }
    }

    fn lineage(&self) -> kask_core::task::recover::Lineage<'_> {
        kask_core::task::recover::Lineage {
            store: &self.store,
            plan: &self.plan,
            recoveries: &self.recoveries,
        }
    }
}

#[async_trait]
impl ShuffleSource for TaskShuffles {
    async fn maps(&self, stage: usize) -> Result<Vec<TaskMarker>> {
        let r = latest_markers(&self.store, &self.plan, stage).await;
        self.keep(r)
    }

    async fn open(&self, map: TaskMarker, partition: usize) -> Result<SliceReader> {
        let r = SliceReader::open_or_recover(&self.store, map, partition, &self.lineage()).await;
        let slice = self.keep(r)?;
        self.count(slice.bytes(), 0);
        Ok(slice)
    }

    async fn next(&self, slice: &mut SliceReader) -> Result<Option<RecordBatch>> {
        let before = slice.bytes();
        let r = slice.next_or_recover(&self.lineage()).await;
        let batch = self.keep(r)?;
        self.count(
            slice.bytes() - before,
            batch.as_ref().map_or(0, |b| b.num_rows()),
        );
        Ok(batch)
    }
}
