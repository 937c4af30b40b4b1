//! The distributed sort. A result in order (`ORDER BY` without `LIMIT`, a pipeline's `sort`
//! without `head`) is sorted by key range in many tasks, not merged in one.
//!
//! Each map task sorts its rows and writes them to its shuffle object as chunks of a fixed
//! number of rows, each chunk a reduce partition whose first and last sort keys its marker
//! records. Reduce task `r` of `k` takes the `r`-th of `k` key ranges, cut at the chunks'
//! first keys so that each range holds about as many rows; it reads from every map task the
//! chunks that overlap its range, keeps the rows inside it, and merges them. Part `r` of the
//! output then holds range `r`, so the parts in order are the whole result in order.
//!
//! Every reducer must cut the same ranges, or rows would be lost or read twice. The chunks
//! depend only on the rows: a map task's rows in sorted order are the same on every run (rows
//! with equal keys may swap, but not their keys), and a chunk is a count of them, not of how
//! the sort happened to batch or spill them. A map task run again after its output was lost
//! records the same chunks.

use std::cmp::Ordering;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{RecordBatch, UInt32Array};
use datafusion::arrow::compute::take_record_batch;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::row::{RowConverter, Rows, SortField};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryLimit};
use datafusion::physical_expr::LexOrdering;
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet};
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::sorts::streaming_merge::StreamingMergeBuilder;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::{ExecutionPlan, SendableRecordBatchStream};
use futures::{StreamExt, TryStreamExt};

use super::exchange::ShuffleSource;
use crate::packed_merge;
use kask_core::error::{Error, Result};
use kask_core::marker::{KeySample, PartRange, TaskFile, TaskMarker};
use kask_core::shuffle::Partitioner;
use kask_core::store::Store;

/// Rows in each chunk of a sorted run: a reducer reads the chunks that overlap its range, so
/// at most two chunks per map task are read only in part; large enough that a reducer does
/// not make a request per handful of rows.
pub const CHUNK_ROWS: u64 = 16_384;

/// A map task records the key of every this-many-th row of its run...
pub const SAMPLE_EVERY: u64 = 256;

/// ...and keeps at most this many of them, evenly spread: the ranges then come out even to
/// within a thousandth of each run, whatever its length.
pub const MAX_SAMPLES: usize = 1_024;

/// Rows in each batch of a run: a reducer's merge holds a batch of every run at once.
const RUN_BATCH_ROWS: usize = 1_024;

/// Sort keys as bytes that compare as the rows sort (Arrow's row format).
pub struct SortKeys {
    ordering: LexOrdering,
    converter: RowConverter,
}

fn df_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::internal(format!("{what}: {e}"))
}

impl SortKeys {
    /// The keys of `ordering` over rows of `schema`.
    pub fn new(ordering: &LexOrdering, schema: &Schema) -> Result<Self> {
        let fields = ordering
            .iter()
            .map(|e| {
                e.expr
                    .data_type(schema)
                    .map(|t| SortField::new_with_options(t, e.options))
            })
            .collect::<DfResult<Vec<_>>>()
            .map_err(|e| df_err("the types of a sort's keys", e))?;
        let converter =
            RowConverter::new(fields).map_err(|e| df_err("sort keys in Arrow's row format", e))?;
        Ok(SortKeys {
            ordering: ordering.clone(),
            converter,
        })
    }

    /// The keys of every row of `batch`.
    pub fn rows(&self, batch: &RecordBatch) -> Result<Rows> {
        let columns = self
            .ordering
            .iter()
            .map(|e| e.expr.evaluate(batch)?.into_array(batch.num_rows()))
            .collect::<DfResult<Vec<_>>>()
            .map_err(|e| df_err("evaluating a sort's keys", e))?;
        self.converter
            .convert_columns(&columns)
            .map_err(|e| df_err("encoding a sort's keys", e))
    }

    /// The key of row `i` of `batch`.
    pub fn key(&self, batch: &RecordBatch, i: usize) -> Result<Vec<u8>> {
        let rows = self.rows(&batch.slice(i, 1))?;
        Ok(rows.row(0).as_ref().to_vec())
    }

    /// The keys of rows `rows` of `batch`.
    fn keys_at(&self, batch: &RecordBatch, rows: &[u32]) -> Result<Vec<Vec<u8>>> {
        let picked = take_record_batch(batch, &UInt32Array::from(rows.to_vec()))
            .map_err(|e| df_err("sampling a sort's keys", e))?;
        let encoded = self.rows(&picked)?;
        Ok(encoded.iter().map(|r| r.as_ref().to_vec()).collect())
    }
}

/// Writes a map task's sorted rows as chunks of `chunk_rows` rows into its shuffle object,
/// each chunk's first and last keys in its range. Returns the file and the bytes spilled.
pub async fn write_chunks(
    store: &Store,
    dir: &str,
    keys: &SortKeys,
    chunk_rows: u64,
    mut stream: SendableRecordBatchStream,
    task_err: &(dyn Fn(DataFusionError) -> Error + Sync),
) -> Result<(TaskFile, u64)> {
    let chunk_rows = chunk_rows.max(1);
    let mut parts = Partitioner::by_caller(stream.schema(), 1)
        .with_batch_rows(RUN_BATCH_ROWS)
        .within(&store.runtime);
    let mut bounds: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut samples: Vec<KeySample> = Vec::new();
    let mut seen = 0u64;
    // Rows in the last chunk so far; a full chunk starts the next one.
    let mut filled = chunk_rows;
    while let Some(batch) = stream.next().await {
        let mut batch = batch.map_err(task_err)?;
        let n = batch.num_rows() as u64;
        let picked: Vec<u32> = (seen.next_multiple_of(SAMPLE_EVERY)..seen + n)
            .step_by(SAMPLE_EVERY as usize)
            .map(|row| (row - seen) as u32)
            .collect();
        if !picked.is_empty() {
            for (i, key) in picked.iter().zip(keys.keys_at(&batch, &picked)?) {
                samples.push(KeySample {
                    row: seen + u64::from(*i),
                    key: to_hex(&key),
                });
            }
        }
        seen += n;
        while batch.num_rows() > 0 {
            if filled == chunk_rows {
                bounds.push((Vec::new(), Vec::new()));
                filled = 0;
            }
            let take = (chunk_rows - filled)
                .min(batch.num_rows() as u64)
                .min(RUN_BATCH_ROWS as u64) as usize;
            let piece = batch.slice(0, take);
            batch = batch.slice(take, batch.num_rows() - take);
            let chunk = bounds.len() - 1;
            if filled == 0 {
                bounds[chunk].0 = keys.key(&piece, 0)?;
            }
            bounds[chunk].1 = keys.key(&piece, take - 1)?;
            parts.grow_to(chunk + 1);
            parts.push_to(chunk, piece)?;
            filled += take as u64;
        }
    }
    let spilled = parts.spilled_bytes();
    let n = parts.partitions();
    let mut file = kask_core::shuffle::write(store, dir, parts, n).await?;
    for (range, (first, last)) in file.partitions.iter_mut().zip(bounds) {
        range.first_key = Some(to_hex(&first));
        range.last_key = Some(to_hex(&last));
    }
    file.samples = spread(samples, MAX_SAMPLES);
    Ok((file, spilled))
}

/// Every `n / most`-th of `samples` (rounded up), so that at most `most` are left; which ones
/// depends only on how many there are.
pub fn spread(samples: Vec<KeySample>, most: usize) -> Vec<KeySample> {
    let step = samples.len().div_ceil(most.max(1)).max(1);
    samples.into_iter().step_by(step).collect()
}

/// One chunk of a sorted run, as a reducer finds it in the markers.
#[derive(Clone, Debug, PartialEq)]
struct Chunk {
    /// Its partition in the map task's shuffle object.
    partition: usize,
    first: Vec<u8>,
    last: Vec<u8>,
    /// Bytes a reader holds of it at once: all of it, or two windows of a long one.
    held: u64,
}

/// Each map task's chunks with rows, in its order.
fn chunks_of(maps: &[TaskMarker]) -> Result<Vec<Vec<Chunk>>> {
    maps.iter()
        .map(|marker| {
            let mut out = Vec::new();
            for f in &marker.files {
                for (p, r) in f.partitions.iter().enumerate() {
                    if r.rows == 0 {
                        continue;
                    }
                    let (Some(first), Some(last)) = (&r.first_key, &r.last_key) else {
                        return Err(Error::internal(format!(
                            "chunk {p} of {} has rows but no sort keys in its marker",
                            f.path
                        )));
                    };
                    out.push(Chunk {
                        partition: p,
                        first: from_hex(first).map_err(|e| df_err(&f.path, e))?,
                        last: from_hex(last).map_err(|e| df_err(&f.path, e))?,
                        held: held_of(r, f.window),
                    });
                }
            }
            Ok(out)
        })
        .collect()
}

/// The memory a reader holds of chunk `r` at once, decoded: all of it, or two windows of a
/// long one (windows are of its compressed bytes).
pub fn held_of(r: &PartRange, window: u64) -> u64 {
    let decoded = r.decoded_bytes();
    if window == 0 || r.len <= 2 * window {
        return decoded;
    }
    let share = (2 * window) as f64 / r.len as f64;
    (decoded as f64 * share).ceil() as u64
}

/// The runs' samples as keys with the rows each stands for: those from it up to the next
/// sample of its run.
pub fn weighted_samples(maps: &[TaskMarker]) -> Result<Vec<(Vec<u8>, u64)>> {
    let mut out = Vec::new();
    for f in maps.iter().flat_map(|m| &m.files) {
        for (i, s) in f.samples.iter().enumerate() {
            let next = f.samples.get(i + 1).map_or(f.rows, |n| n.row);
            let key = from_hex(&s.key).map_err(|e| df_err(&f.path, e))?;
            out.push((key, next.saturating_sub(s.row)));
        }
    }
    Ok(out)
}

/// How many of `tasks` key ranges hold rows: one per `min_rows` rows at least, so that a
/// small result is one part, not one per task. It depends on the row count alone, which
/// every reducer finds the same.
pub fn ranges_for(rows: u64, min_rows: u64, tasks: usize) -> usize {
    let wanted = rows.div_ceil(min_rows.max(1)).max(1);
    usize::try_from(wanted)
        .unwrap_or(usize::MAX)
        .min(tasks.max(1))
}

/// The `k - 1` keys that cut the sampled rows into `k` ranges of about equal rows: range `r`
/// holds the keys from cut `r - 1` (inclusive; the first range from the smallest key) up to
/// cut `r` (exclusive; the last range to the largest). Each cut is the key of the sample, in
/// key order, in whose rows its range's first row falls. `None` when there are no rows.
pub fn cut_points(samples: &[(Vec<u8>, u64)], k: usize) -> Option<Vec<Vec<u8>>> {
    let mut sorted: Vec<&(Vec<u8>, u64)> = samples.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let total: u64 = sorted.iter().map(|s| s.1).sum();
    if total == 0 {
        return None;
    }
    let mut cuts = Vec::with_capacity(k.saturating_sub(1));
    let mut before = 0u64;
    for (key, rows) in sorted {
        let after = before + rows;
        // Range `cuts.len() + 1` starts at row `total * (cuts.len() + 1) / k`.
        while cuts.len() + 1 < k
            && (u128::from(total) * (cuts.len() as u128 + 1) / k as u128) < u128::from(after)
        {
            cuts.push(key.clone());
        }
        before = after;
    }
    Some(cuts)
}

/// Whether `key` lies in `[lo, hi)` (an open end where there is none).
fn compare_range(key: &[u8], lo: Option<&[u8]>, hi: Option<&[u8]>) -> Ordering {
    if lo.is_some_and(|lo| key < lo) {
        Ordering::Less
    } else if hi.is_some_and(|hi| key >= hi) {
        Ordering::Greater
    } else {
        Ordering::Equal
    }
}

/// The rows of sorted `batch` whose keys lie in `[lo, hi)`.
pub fn keep_range(
    keys: &SortKeys,
    batch: RecordBatch,
    lo: Option<&[u8]>,
    hi: Option<&[u8]>,
) -> Result<RecordBatch> {
    let rows = keys.rows(&batch)?;
    let n = batch.num_rows();
    let at = |i: usize| compare_range(rows.row(i).as_ref(), lo, hi);
    let start = partition_point(n, |i| at(i) == Ordering::Less);
    let end = partition_point(n, |i| at(i) != Ordering::Greater);
    Ok(batch.slice(start, end.saturating_sub(start)))
}

/// The first of `0..n` for which `pred` is false, `pred` being true up to some point and
/// false from there on.
fn partition_point(n: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// What reduce task `range` of `ranges` reads of stage `stage`'s sorted runs: its key range
/// of every run, merged into one sorted stream (nothing, when fewer ranges are worth it).
pub struct RangeRead {
    pub source: Arc<dyn ShuffleSource>,
    pub stage: usize,
    pub range: usize,
    pub ranges: usize,
    /// The fewest rows worth a range of their own.
    pub min_rows: u64,
    pub schema: SchemaRef,
    pub ordering: LexOrdering,
    /// Where a sort this read runs is kept, for its metrics (the bytes it spilled).
    pub sorts: Arc<Mutex<Vec<Arc<dyn ExecutionPlan>>>>,
}

impl RangeRead {
    /// The merged stream; its runs are found when it is first polled.
    pub fn execute(
        self,
        context: Arc<TaskContext>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> DfResult<SendableRecordBatchStream> {
        let schema = Arc::clone(&self.schema);
        let baseline = BaselineMetrics::new(metrics, self.range);
        let merged = futures::stream::once(async move {
            self.merged(context, baseline)
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))
        })
        .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, merged)))
    }

    async fn merged(
        self,
        context: Arc<TaskContext>,
        baseline: BaselineMetrics,
    ) -> Result<SendableRecordBatchStream> {
        if self.range >= self.ranges {
            return Err(Error::internal(format!(
                "key range {} of {}",
                self.range, self.ranges
            )));
        }
        let maps = self.source.maps(self.stage).await?;
        let chunks = chunks_of(&maps)?;
        let keys = Arc::new(SortKeys::new(&self.ordering, &self.schema)?);
        let samples = weighted_samples(&maps)?;
        let ranges = ranges_for(
            samples.iter().map(|s| s.1).sum(),
            self.min_rows,
            self.ranges,
        );
        if self.range >= ranges {
            return Ok(empty(&self.schema));
        }
        let Some(cuts) = cut_points(&samples, ranges) else {
            return Ok(empty(&self.schema));
        };
        let lo = self.range.checked_sub(1).and_then(|i| cuts.get(i)).cloned();
        let hi = cuts.get(self.range).cloned();
        let mut streams = Vec::new();
        // What the merge holds of each run it reads: a chunk, or two windows of a long one.
        let mut held = 0u64;
        for (marker, own) in maps.into_iter().zip(&chunks) {
            // A chunk overlaps the range unless it ends below it or starts above it.
            let wanted: Vec<(usize, bool)> = own
                .iter()
                .filter(|c| {
                    lo.as_deref().is_none_or(|lo| c.last.as_slice() >= lo)
                        && hi.as_deref().is_none_or(|hi| c.first.as_slice() < hi)
                })
                .map(|c| {
                    let inside = compare_range(&c.first, lo.as_deref(), hi.as_deref())
                        == Ordering::Equal
                        && compare_range(&c.last, lo.as_deref(), hi.as_deref()) == Ordering::Equal;
                    (c.partition, !inside)
                })
                .collect();
            if wanted.is_empty() {
                continue;
            }
            held += own.iter().map(|c| c.held).max().unwrap_or(0);
            streams.push(run_stream(
                Arc::clone(&self.source),
                marker,
                wanted,
                Arc::clone(&keys),
                (lo.clone(), hi.clone()),
                Arc::clone(&self.schema),
            ));
        }
        if streams.is_empty() {
            return Ok(empty(&self.schema));
        }
        let limit = match context.memory_pool().memory_limit() {
            MemoryLimit::Finite(n) => n as u64,
            MemoryLimit::Infinite | MemoryLimit::Unknown => u64::MAX,
        };
        // Tasks running at once share the pool: a merge of more runs than a quarter of it
        // holds would fail, so the range's rows are sorted again instead, by a sort that
        // spills. Rarely needed: only a small budget over many map tasks comes to this.
        if streams.len() > 1 && held > limit / 4 {
            return self.sorted_again(streams, context);
        }
        let reservation = MemoryConsumer::new(format!("kask range merge {}", self.range))
            .register(context.memory_pool());
        let batch_rows = context.session_config().batch_size();
        if streams.len() > 1
            && let Some(width) = packed_merge::packed_width(&self.ordering, &self.schema)
        {
            return Ok(packed_merge::merged(
                streams,
                keys,
                width,
                Arc::clone(&self.schema),
                batch_rows,
                Some(reservation),
                baseline,
            ));
        }
        StreamingMergeBuilder::new()
            .with_streams(streams)
            .with_schema(Arc::clone(&self.schema))
            .with_expressions(&self.ordering)
            .with_metrics(baseline)
            .with_batch_size(batch_rows)
            .with_reservation(reservation)
            .build()
            .map_err(|e| df_err("merging the runs of a sort", e))
    }
}

impl RangeRead {
    /// The runs' rows of the range one run after the other, through a sort that spills.
    fn sorted_again(
        self,
        runs: Vec<SendableRecordBatchStream>,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let rows = Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            futures::stream::iter(runs).flatten(),
        ));
        let input = StreamingTableExec::try_new(
            Arc::clone(&self.schema),
            vec![Arc::new(Once(
                Arc::clone(&self.schema),
                Mutex::new(Some(rows)),
            ))],
            None,
            [],
            false,
            None,
        )
        .map_err(|e| df_err("sorting a key range", e))?;
        let sort: Arc<dyn ExecutionPlan> =
            Arc::new(SortExec::new(self.ordering.clone(), Arc::new(input)));
        if let Ok(mut sorts) = self.sorts.lock() {
            sorts.push(Arc::clone(&sort));
        }
        sort.execute(0, capped(&context)?)
            .map_err(|e| df_err("sorting a key range", e))
    }
}

/// `context` with each of its operators' reservations held to a quarter of the pool. The
/// merge of a sort's spilled runs reserves a buffer for as many runs as the pool has room for,
/// outside what it can give back; with tasks that run at once sharing the pool, that left the
/// other task's sort without the few kilobytes its own merge needed, and the task failed (two
/// of 25 runs of the engine test under load). Held to a quarter, the merge takes fewer runs
/// per pass.
fn capped(context: &Arc<TaskContext>) -> Result<Arc<TaskContext>> {
    let runtime = kask_core::capped_pool::runtime(&context.runtime_env(), 4)
        .map_err(|e| Error::internal(format!("a runtime for sorting a key range: {e}")))?;
    Ok(Arc::new(TaskContext::new(
        context.task_id(),
        context.session_id(),
        context.session_config().clone(),
        context.scalar_functions().clone(),
        context.higher_order_functions().clone(),
        context.aggregate_functions().clone(),
        context.window_functions().clone(),
        runtime,
    )))
}

/// A stream handed to DataFusion as a plan's one partition, once.
pub(crate) struct Once(pub SchemaRef, pub Mutex<Option<SendableRecordBatchStream>>);

impl std::fmt::Debug for Once {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Once")
    }
}

impl PartitionStream for Once {
    fn schema(&self) -> &SchemaRef {
        &self.0
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let taken = self.1.lock().ok().and_then(|mut s| s.take());
        taken.unwrap_or_else(|| empty(&self.0))
    }
}

fn empty(schema: &SchemaRef) -> SendableRecordBatchStream {
    Box::pin(RecordBatchStreamAdapter::new(
        Arc::clone(schema),
        futures::stream::empty(),
    ))
}

/// One map task's chunks of a range, in order, cut to the range where a chunk reaches
/// outside it.
fn run_stream(
    source: Arc<dyn ShuffleSource>,
    marker: TaskMarker,
    wanted: Vec<(usize, bool)>,
    keys: Arc<SortKeys>,
    (lo, hi): (Option<Vec<u8>>, Option<Vec<u8>>),
    schema: SchemaRef,
) -> SendableRecordBatchStream {
    let opener = Arc::clone(&source);
    let stream =
        futures::stream::iter(wanted)
            .map(move |(partition, cut)| {
                let source = Arc::clone(&opener);
                let marker = marker.clone();
                async move {
                    Ok::<_, Error>((source.open(marker, partition..partition + 1).await?, cut))
                }
            })
            // One chunk at a time: a merge of many runs holds the chunk it reads of each.
            .buffered(1)
            .map_ok(move |(slice, cut)| {
                let source = Arc::clone(&source);
                let keys = Arc::clone(&keys);
                let (lo, hi) = (lo.clone(), hi.clone());
                futures::stream::try_unfold((source, slice), |(source, mut slice)| async move {
                    Ok(source.next(&mut slice).await?.map(|b| (b, (source, slice))))
                })
                .and_then(move |batch| {
                    let keys = Arc::clone(&keys);
                    let (lo, hi) = (lo.clone(), hi.clone());
                    async move {
                        if cut {
                            keep_range(&keys, batch, lo.as_deref(), hi.as_deref())
                        } else {
                            Ok(batch)
                        }
                    }
                })
            })
            .try_flatten()
            .try_filter(|b| futures::future::ready(b.num_rows() > 0))
            .map_err(|e| DataFusionError::External(Box::new(e)));
    Box::pin(RecordBatchStreamAdapter::new(schema, stream))
}

pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

pub fn from_hex(text: &str) -> std::result::Result<Vec<u8>, String> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        _ => Err(format!("{:?} is not a hex digit", c as char)),
    };
    let b = text.as_bytes();
    if !b.len().is_multiple_of(2) {
        return Err("a sort key of an odd number of hex digits".into());
    }
    b.chunks(2)
        .map(|p| Ok(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}
