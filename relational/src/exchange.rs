//! The two ends of an exchange between stages. The lower stage's tasks write their rows to
//! Kask's shuffle ([`ShuffleSink`]); the upper stage reads them back through
//! [`ShuffleReaderExec`], a leaf of its sub-plan that stands where DataFusion had placed a
//! repartition or the input of a coalesce.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
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

use super::coalesce::Runs;
use super::key_filter::{KeyBloom, MAX_FILTER_KEYS};
use super::range_sort::RangeRead;
use super::shares::{Shares, Side};
use super::skew::SharedJoin;

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
    /// Opens map task `map`'s slices of the adjacent `partitions` of its stage's shuffle, one
    /// after the other.
    async fn open(&self, map: TaskMarker, partitions: Range<usize>) -> Result<SliceReader>;
    /// What each task of `join` (into `partitions` tasks) joins: decided by the first task
    /// that asks, from its map tasks' sizes, the same for every task after.
    async fn shares(&self, join: SharedJoin, partitions: usize) -> Result<Arc<Shares>>;
    /// Which partitions each task of a stage that reads the shuffles of `stages` (cut into
    /// `partitions`) reads ([`crate::coalesce`]): decided like [`ShuffleSource::shares`]. A
    /// source that cannot store a decision gives each task its own partition.
    async fn runs(&self, stages: &[usize], partitions: usize) -> Result<Arc<Runs>> {
        let _ = stages;
        Ok(Arc::new(Runs::own(partitions)))
    }
    /// The next batch of an opened slice.
    async fn next(&self, slice: &mut SliceReader) -> Result<Option<RecordBatch>>;
    /// What names the job whose tasks read from it, with its store, for the values the
    /// tasks of one process share ([`crate::process_cache`]); `None` for a plan that is not
    /// run.
    fn scope(&self) -> Option<String>;
    /// A filter of the key hashes that finished stage `stage`'s tasks recorded
    /// ([`crate::key_filter`]); `None` when any task recorded none or they cannot be read.
    async fn key_filter(&self, stage: usize) -> Result<Option<Arc<KeyBloom>>>;
}

/// The source of a plan that is only displayed and cut, never run (the plan pod's).
#[derive(Debug)]
pub struct PlanningOnly;

#[async_trait]
impl ShuffleSource for PlanningOnly {
    async fn maps(&self, _stage: usize) -> Result<Vec<TaskMarker>> {
        Err(Error::internal("a plan made for planning only was run"))
    }
    async fn open(&self, _map: TaskMarker, _partitions: Range<usize>) -> Result<SliceReader> {
        Err(Error::internal("a plan made for planning only was run"))
    }
    async fn shares(&self, _join: SharedJoin, _partitions: usize) -> Result<Arc<Shares>> {
        Err(Error::internal("a plan made for planning only was run"))
    }
    async fn runs(&self, _stages: &[usize], _partitions: usize) -> Result<Arc<Runs>> {
        Err(Error::internal("a plan made for planning only was run"))
    }
    async fn next(&self, _slice: &mut SliceReader) -> Result<Option<RecordBatch>> {
        Err(Error::internal("a plan made for planning only was run"))
    }
    fn scope(&self) -> Option<String> {
        None
    }
    async fn key_filter(&self, _stage: usize) -> Result<Option<Arc<KeyBloom>>> {
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
    /// For a side of a join whose tasks share out a skewed partition: the join; the reader
    /// reads what the join's shares give its task ([`crate::shares`]).
    shared: Option<SharedJoin>,
    /// For a reader of a stage whose tasks take small partitions together, the stages that
    /// stage's readers read; the reader reads the partitions the stage's runs give its task
    /// ([`crate::coalesce`]).
    coalesced: Option<Arc<[usize]>>,
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
            shared: None,
            coalesced: None,
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
            shared: None,
            coalesced: None,
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

    /// The join whose side it reads, when that join's tasks share out skewed partitions.
    pub fn shared(&self) -> Option<SharedJoin> {
        self.shared
    }

    /// This reader as side `join.side` of `join`, whose tasks share out skewed partitions.
    pub fn sharing(&self, join: SharedJoin) -> Self {
        ShuffleReaderExec {
            stage: self.stage,
            mode: self.mode,
            schema: Arc::clone(&self.schema),
            properties: Arc::clone(&self.properties),
            source: Arc::clone(&self.source),
            ordering: self.ordering.clone(),
            min_range_rows: self.min_range_rows,
            metrics: ExecutionPlanMetricsSet::new(),
            sorts: Arc::default(),
            shared: Some(join),
            coalesced: None,
        }
    }

    /// For a reader of a stage whose tasks take small partitions together, the stages that
    /// stage's readers read.
    pub fn coalesced(&self) -> Option<&[usize]> {
        self.coalesced.as_deref()
    }

    /// This reader as one of a stage whose tasks take small partitions together, deciding
    /// from the shuffles of `stages` (every stage its stage's readers read).
    pub fn coalescing(&self, stages: &[usize]) -> Self {
        ShuffleReaderExec {
            stage: self.stage,
            mode: self.mode,
            schema: Arc::clone(&self.schema),
            properties: Arc::clone(&self.properties),
            source: Arc::clone(&self.source),
            ordering: self.ordering.clone(),
            min_range_rows: self.min_range_rows,
            metrics: ExecutionPlanMetricsSet::new(),
            sorts: Arc::default(),
            shared: self.shared,
            coalesced: Some(stages.into()),
        }
    }

    /// Partition `task` of a reader of a stage whose tasks take small partitions together:
    /// the partitions the stage's runs give task `task`, each from every map task.
    fn execute_coalesced(&self, stages: Arc<[usize]>, task: usize) -> SendableRecordBatchStream {
        let source = Arc::clone(&self.source);
        let stage = self.stage;
        let partitions = self.properties.partitioning.partition_count();
        let wanted = {
            let source = Arc::clone(&source);
            futures::stream::once(async move {
                let runs = source.runs(&stages, partitions).await?;
                let maps = check_partitions(source.maps(stage).await?, stage, partitions)?;
                // Each map task's slices of the whole run in one reader, which reads
                // adjacent small slices together.
                let run = runs.of(task);
                let wanted: Vec<(TaskMarker, Range<usize>)> = if run.is_empty() {
                    Vec::new()
                } else {
                    maps.into_iter().map(|m| (m, run.clone())).collect()
                };
                Ok::<_, Error>(wanted)
            })
        };
        let opened = {
            let source = Arc::clone(&source);
            wanted
                .map_ok(move |wanted| {
                    let source = Arc::clone(&source);
                    futures::stream::iter(wanted)
                        .map(move |(m, run)| {
                            let source = Arc::clone(&source);
                            async move { source.open(m, run).await }
                        })
                        .buffered(SLICES_IN_FLIGHT)
                })
                .try_flatten()
        };
        let stream = opened
            .map_ok(move |slice| batches(Arc::clone(&source), slice))
            .try_flatten()
            .map_err(|e| DataFusionError::External(Box::new(e)));
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream.boxed(),
        ))
    }

    /// Partition `partition` of a reader of a join's side whose tasks share out skewed
    /// partitions: the rows that the join's shares give task `partition`.
    fn execute_shared(&self, join: SharedJoin, partition: usize) -> SendableRecordBatchStream {
        let source = Arc::clone(&self.source);
        let stage = self.stage;
        let partitions = self.properties.partitioning.partition_count();
        let wanted = {
            let source = Arc::clone(&source);
            futures::stream::once(async move {
                let shares = source.shares(join, partitions).await?;
                let maps = source.maps(stage).await?;
                let mut wanted = Vec::new();
                for read in shares.reads(partition, join.side) {
                    for m in &maps {
                        if read
                            .maps
                            .is_none_or(|(from, to)| (from..to).contains(&m.task))
                        {
                            wanted.push((m.clone(), read.partition, read.part));
                        }
                    }
                }
                Ok::<_, Error>(wanted)
            })
        };
        let opened = {
            let source = Arc::clone(&source);
            wanted
                .map_ok(move |wanted| {
                    let source = Arc::clone(&source);
                    futures::stream::iter(wanted)
                        .map(move |(m, p, part)| {
                            let source = Arc::clone(&source);
                            async move { Ok::<_, Error>((source.open(m, p..p + 1).await?, part)) }
                        })
                        .buffered(SLICES_IN_FLIGHT)
                })
                .try_flatten()
        };
        let stream = opened
            .map_ok(move |(slice, part)| {
                batches(Arc::clone(&source), slice)
                    .and_then(move |b| futures::future::ready(keep_part(b, part)))
            })
            .try_flatten()
            .map_err(|e| DataFusionError::External(Box::new(e)));
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream.boxed(),
        ))
    }
}

/// `maps`, once each is found to have cut its rows into the `partitions` this reader reads:
/// a map output cut another way (by another plan) would have its other partitions' rows
/// silently left out, or read twice.
fn check_partitions(
    maps: Vec<TaskMarker>,
    stage: usize,
    partitions: usize,
) -> Result<Vec<TaskMarker>> {
    for m in &maps {
        for f in &m.files {
            if f.partitions.len() != partitions {
                return Err(Error::internal(format!(
                    "task {} of stage {stage} cut its output {} into {} partitions, but this \
                     stage reads {partitions}: the map output belongs to another plan",
                    m.task,
                    f.path,
                    f.partitions.len()
                )));
            }
        }
    }
    Ok(maps)
}

/// Seeds the hash that cuts one map task's rows of a skewed partition into parts: not the
/// hash partitioning's own, whose value every row of the partition shares modulo the
/// partition count.
const PART_SEED: u64 = 0x6b61_736b_736b_6577;

/// The rows of `batch` in hash part `part` (index, of how many) of its rows, hashed whole.
fn keep_part(batch: RecordBatch, part: Option<(u32, u32)>) -> Result<RecordBatch> {
    let Some((index, of)) = part else {
        return Ok(batch);
    };
    let mut hashes = vec![0u64; batch.num_rows()];
    let state = datafusion::common::hash_utils::RandomState::with_seed(PART_SEED);
    datafusion::common::hash_utils::create_hashes(batch.columns().iter(), &state, &mut hashes)
        .map_err(|e| Error::internal(format!("hashing rows of a skewed partition: {e}")))?;
    let keep: datafusion::arrow::array::BooleanArray = hashes
        .iter()
        .map(|h| Some(h % u64::from(of) == u64::from(index)))
        .collect();
    datafusion::arrow::compute::filter_record_batch(&batch, &keep)
        .map_err(|e| Error::internal(format!("cutting rows of a skewed partition: {e}")))
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
        if let Some(j) = &self.shared {
            let sides = match (j.split_left, j.split_right) {
                (true, true) => "either side",
                (true, false) => "the left side",
                _ => "the right side",
            };
            let side = match j.side {
                Side::Left => "left",
                Side::Right => "right",
            };
            write!(
                f,
                ", the {side} side of a join of stages {} and {} whose skewed partitions are shared out ({sides} split)",
                j.left, j.right
            )?;
        }
        if self.coalesced.is_some() {
            write!(f, ", small partitions taken together")?;
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
        if let Some(join) = self.shared {
            return Ok(self.execute_shared(join, partition));
        }
        if let Some(stages) = &self.coalesced
            && self.mode == ReadMode::Partition
        {
            return Ok(self.execute_coalesced(Arc::clone(stages), partition));
        }
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
                let partitions = self.properties.partitioning.partition_count();
                maps.and_then(move |maps| {
                    futures::future::ready(check_partitions(maps, stage, partitions))
                })
                .map_ok(move |maps| {
                    let source = Arc::clone(&source);
                    futures::stream::iter(maps)
                        .map(move |m| {
                            let source = Arc::clone(&source);
                            async move { source.open(m, partition..partition + 1).await }
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
                            Some(m) => Ok(Some(source.open(m, 0..1).await?)),
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

/// What the tasks of a stage decide once, from their map tasks' sizes, and share through the
/// store: the first to decide stores it, the others read it.
trait Decision: serde::Serialize + serde::de::DeserializeOwned + Send + Sync {
    /// How many tasks it gives work to.
    fn tasks(&self) -> usize;
    /// Says what decision `name` decided, when it changes anything.
    fn log(&self, name: &str, partitions: usize);
}

impl Decision for Shares {
    fn tasks(&self) -> usize {
        self.tasks.len()
    }
    fn log(&self, name: &str, partitions: usize) {
        if self.splits() {
            let pieces: usize = self.tasks.iter().map(Vec::len).sum();
            tracing::info!(
                decision = name,
                "a join's skewed partitions are shared out: {pieces} pieces over {partitions} tasks"
            );
        }
    }
}

impl Decision for Runs {
    fn tasks(&self) -> usize {
        self.tasks.len()
    }
    fn log(&self, name: &str, partitions: usize) {
        if self.busy() < partitions {
            tracing::info!(
                decision = name,
                "small partitions taken together: {partitions} partitions in {} tasks",
                self.busy()
            );
        }
    }
}

/// A task's decisions of one kind, by name, each made or read once.
type Decisions<T> = Mutex<HashMap<String, Arc<tokio::sync::OnceCell<Arc<T>>>>>;

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
    /// The shares of the joins this task runs, once decided (both sides' readers ask).
    shares: Decisions<Shares>,
    /// The runs of the stages this task reads with small partitions taken together, once
    /// decided (every reader of the stage asks).
    runs: Decisions<Runs>,
    /// The key filters of the stages this task's rows are filtered by, once read.
    filters: Mutex<HashMap<usize, Arc<super::key_filter::FilterCell>>>,
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
            shares: Mutex::default(),
            runs: Mutex::default(),
            filters: Mutex::default(),
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

    /// Decision `name` for `partitions` tasks, once per task: the stored one, or the one
    /// `decide` makes, stored unless another task stored one first (then that one).
    async fn agreed<T, F, Fut>(
        &self,
        cells: &Decisions<T>,
        name: String,
        partitions: usize,
        decide: F,
    ) -> Result<Arc<T>>
    where
        T: Decision,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let cell = match cells.lock() {
            Ok(mut all) => Arc::clone(all.entry(name.clone()).or_default()),
            Err(_) => return Err(Error::internal(format!("the task's {name} was poisoned"))),
        };
        let r = cell
            .get_or_try_init(|| async {
                let path = self.plan.decision_path(&name);
                let fits = |d: &T| kask_core::decision::check_tasks(&path, d.tasks(), partitions);
                let (decided, here) =
                    kask_core::decision::agree(&self.store, &path, fits, decide).await?;
                if here {
                    decided.log(&name, partitions);
                }
                Ok(Arc::new(decided))
            })
            .await
            .map(Arc::clone);
        self.keep(r)
    }

    /// Stage `stage`'s key filter, built from every task's recorded hashes. Any hash file
    /// that is missing, unreadable or not as its marker describes it leaves the rows
    /// unfiltered: a filter missing some keys would drop rows the join needs.
    async fn read_key_filter(&self, stage: usize) -> Result<Option<Arc<KeyBloom>>> {
        let maps = latest_markers(&self.store, &self.plan, stage).await?;
        let Some(files) = maps
            .iter()
            .map(|m| m.key_hashes.clone())
            .collect::<Option<Vec<_>>>()
        else {
            tracing::info!(
                stage,
                "a task recorded no key hashes (too many keys): no key filter"
            );
            return Ok(None);
        };
        let keys: u64 = files.iter().map(|f| f.rows).sum();
        if keys > MAX_FILTER_KEYS {
            tracing::info!(stage, keys, "too many keys for a key filter");
            return Ok(None);
        }
        let mut bloom = KeyBloom::with_capacity(keys);
        let store = self.store.clone();
        let mut fetched = futures::stream::iter(files)
            .map(move |f| {
                let store = store.clone();
                async move {
                    let bytes = store.get(&f.path).await;
                    (f, bytes)
                }
            })
            .buffered(8)
            .boxed();
        while let Some((f, bytes)) = fetched.next().await {
            let whole = match &bytes {
                Ok(b) => {
                    b.len() as u64 == f.bytes
                        && f.bytes == f.rows * 8
                        && f.crc32c == Some(kask_core::store::checksum::crc32c(b))
                }
                Err(_) => false,
            };
            match bytes {
                Ok(b) if whole => bloom.insert_file(&b),
                Ok(_) => {
                    tracing::warn!(stage, path = %f.path, "key hashes not as their marker says: no key filter");
                    return Ok(None);
                }
                Err(e) => {
                    tracing::warn!(stage, path = %f.path, error = %e, "key hashes cannot be read: no key filter");
                    return Ok(None);
                }
            }
        }
        tracing::debug!(stage, keys, bytes = bloom.bytes(), "key filter built");
        Ok(Some(Arc::new(bloom)))
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

    async fn open(&self, map: TaskMarker, partitions: Range<usize>) -> Result<SliceReader> {
        let r = SliceReader::open_or_recover(&self.store, map, partitions, &self.lineage()).await;
        let slice = self.keep(r)?;
        self.count(slice.bytes(), 0);
        Ok(slice)
    }

    async fn shares(&self, join: SharedJoin, partitions: usize) -> Result<Arc<Shares>> {
        let name = format!(
            "join-{}-{}-{}{}",
            join.left,
            join.right,
            if join.split_left { "l" } else { "" },
            if join.split_right { "r" } else { "" }
        );
        self.agreed(&self.shares, name, partitions, || async {
            let left = map_sizes(&latest_markers(&self.store, &self.plan, join.left).await?);
            let right = map_sizes(&latest_markers(&self.store, &self.plan, join.right).await?);
            Ok(super::shares::decide(
                &left,
                &right,
                partitions,
                (join.split_left, join.split_right),
            ))
        })
        .await
    }

    async fn runs(&self, stages: &[usize], partitions: usize) -> Result<Arc<Runs>> {
        let name = kask_core::decision::runs_name(stages);
        self.agreed(&self.runs, name, partitions, || {
            kask_core::decision::runs_from_markers(&self.store, &self.plan, stages, partitions)
        })
        .await
    }

    fn scope(&self) -> Option<String> {
        Some(format!(
            "{} {}",
            self.store.url,
            self.store.path(&self.plan.markers_dir(0))
        ))
    }

    async fn key_filter(&self, stage: usize) -> Result<Option<Arc<KeyBloom>>> {
        let cell = match self.filters.lock() {
            Ok(mut all) => Arc::clone(all.entry(stage).or_insert_with(|| {
                super::key_filter::shared_cell(format!(
                    "{} {}",
                    self.store.url,
                    self.store.path(&self.plan.markers_dir(stage))
                ))
            })),
            Err(_) => return Err(Error::internal("the task's key filters were poisoned")),
        };
        let r = cell
            .get_or_try_init(|| self.read_key_filter(stage))
            .await
            .cloned();
        self.keep(r)
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

/// The bytes each map task (by index) wrote to each partition, from its marker, as decoded:
/// what a task joining them holds and works through (compressed, a partition of repetitive
/// rows would look too small to share out).
fn map_sizes(maps: &[TaskMarker]) -> Vec<Vec<u64>> {
    let mut out = vec![Vec::new(); maps.iter().map(|m| m.task + 1).max().unwrap_or(0)];
    for m in maps {
        let row = &mut out[m.task];
        for f in &m.files {
            if row.len() < f.partitions.len() {
                row.resize(f.partitions.len(), 0);
            }
            for (p, range) in f.partitions.iter().enumerate() {
                row[p] += range.decoded.max(range.len);
            }
        }
    }
    out
}
