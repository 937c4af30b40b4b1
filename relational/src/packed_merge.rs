//! The merge of a range sort's runs when the sort keys pack into one `u128`.
//!
//! DataFusion's merge compares keys in Arrow's row format through `memcmp`, one call per
//! comparison, and builds its output with `interleave`, which copies a `FixedSizeBinary`
//! column value by value through `MutableArrayData`. `perf` of the sort benchmark (1 GB of
//! GraySort records through MinIO) put 29% of Kask's samples in that merge: 15% in its loser
//! tree and comparisons, 14% in `interleave`. Keys of fixed width (integers, floats, dates,
//! times, booleans, fixed-size binary) whose row encodings together take at most 16 bytes
//! compare, as the rows do, as big-endian `u128`s; this merge compares those, and copies
//! fixed-size binary columns without nulls with one slice copy per value.

use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{Array, ArrayRef, FixedSizeBinaryArray, RecordBatch};
use datafusion::arrow::buffer::Buffer;
use datafusion::arrow::compute::interleave;
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::memory_pool::MemoryReservation;
use datafusion::physical_expr::LexOrdering;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::metrics::{BaselineMetrics, Time};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;

use crate::range_sort::SortKeys;

/// The bytes of one row of `ordering`'s keys in Arrow's row format, when every key has a
/// fixed width and together they fit a `u128`.
pub fn packed_width(ordering: &LexOrdering, schema: &Schema) -> Option<usize> {
    let mut width = 0;
    for e in ordering.iter() {
        // Arrow's row format: a byte for null or valid, then the value's bytes.
        width += match e.expr.data_type(schema).ok()? {
            DataType::Boolean => 2,
            DataType::FixedSizeBinary(n) => 1 + usize::try_from(n).ok()?,
            t if t.is_primitive() => 1 + t.primitive_width()?,
            _ => return None,
        };
    }
    (width > 0 && width <= 16).then_some(width)
}

/// Each row's key as a `u128` that orders as its row-format bytes do.
pub(crate) fn packed(keys: &SortKeys, width: usize, batch: &RecordBatch) -> DfResult<Vec<u128>> {
    let rows = keys.rows(batch).map_err(external)?;
    let mut out = Vec::with_capacity(rows.num_rows());
    for row in rows.iter() {
        let bytes = row.as_ref();
        if bytes.len() != width {
            return Err(DataFusionError::Internal(format!(
                "a sort key of {} bytes where its types give {width}",
                bytes.len()
            )));
        }
        let mut word = [0u8; 16];
        word[..width].copy_from_slice(bytes);
        out.push(u128::from_be_bytes(word));
    }
    Ok(out)
}

fn external(e: kask_core::error::Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// One sorted input and where the merge stands in it.
struct Run {
    stream: SendableRecordBatchStream,
    batch: Option<RecordBatch>,
    keys: Vec<u128>,
    at: usize,
    /// Its batch's place in [`Merge::held`].
    slot: usize,
}

impl Run {
    fn key(&self) -> Option<u128> {
        self.keys.get(self.at).copied()
    }
}

/// The merge's state between output batches.
struct Merge {
    runs: Vec<Run>,
    /// Batches the output being built may take rows from: each run's batch, and those it
    /// finished since the last output.
    held: Vec<RecordBatch>,
    /// A loser tree: node `i` (from 1) holds the run that lost the match there; leaves are
    /// `runs.len()..2 * runs.len()`.
    losers: Vec<usize>,
    winner: usize,
    keys: Arc<SortKeys>,
    width: usize,
    schema: SchemaRef,
    batch_rows: usize,
    /// The memory of the held batches; none when their memory is reserved already.
    reservation: Option<MemoryReservation>,
    baseline: BaselineMetrics,
    /// The baseline's compute time.
    compute: Time,
    started: bool,
}

impl Merge {
    /// Whether run `a`'s next row comes before run `b`'s: the smaller key, then the earlier
    /// run; a finished run comes last.
    fn before(&self, a: usize, b: usize) -> bool {
        match (self.runs[a].key(), self.runs[b].key()) {
            (Some(x), Some(y)) => (x, a) < (y, b),
            (Some(_), None) => true,
            (None, _) => false,
        }
    }

    fn build(&mut self, node: usize) -> usize {
        let k = self.runs.len();
        if node >= k {
            return node - k;
        }
        let (a, b) = (self.build(2 * node), self.build(2 * node + 1));
        if self.before(b, a) {
            self.losers[node] = a;
            b
        } else {
            self.losers[node] = b;
            a
        }
    }

    /// The tree again after run `run`'s key changed, it having been the winner.
    fn replay(&mut self, run: usize) {
        let mut winner = run;
        let mut node = (run + self.runs.len()) / 2;
        while node >= 1 {
            let loser = self.losers[node];
            if self.before(loser, winner) {
                self.losers[node] = winner;
                winner = loser;
            }
            node /= 2;
        }
        self.winner = winner;
    }

    /// Run `r`'s next batch with rows, or none when its stream has ended.
    async fn load(&mut self, r: usize) -> DfResult<()> {
        loop {
            let Some(batch) = self.runs[r].stream.next().await.transpose()? else {
                self.runs[r].batch = None;
                self.runs[r].keys.clear();
                self.runs[r].at = 0;
                return Ok(());
            };
            if batch.num_rows() == 0 {
                continue;
            }
            let start = Instant::now();
            let keys = packed(&self.keys, self.width, &batch)?;
            if let Some(r) = &mut self.reservation {
                r.try_grow(batch.get_array_memory_size())?;
            }
            self.held.push(batch.clone());
            let run = &mut self.runs[r];
            run.slot = self.held.len() - 1;
            run.batch = Some(batch);
            run.keys = keys;
            run.at = 0;
            self.compute.add_elapsed(start);
            return Ok(());
        }
    }

    /// The next batch of merged rows, or none when every run has ended.
    async fn next_batch(&mut self) -> DfResult<Option<RecordBatch>> {
        if !self.started {
            self.started = true;
            for r in 0..self.runs.len() {
                self.load(r).await?;
            }
            self.losers = vec![0; self.runs.len()];
            // One run has no matches: it is the winner.
            self.winner = if self.runs.len() > 1 {
                self.build(1)
            } else {
                0
            };
        }
        let mut picks: Vec<(usize, usize)> = Vec::with_capacity(self.batch_rows);
        // Compute time, apart from the waits for the runs' batches.
        let mut start = Instant::now();
        while picks.len() < self.batch_rows {
            let w = self.winner;
            if self.runs[w].key().is_none() {
                break;
            }
            let run = &mut self.runs[w];
            picks.push((run.slot, run.at));
            run.at += 1;
            if run.at == run.keys.len() {
                self.compute.add_elapsed(start);
                self.load(w).await?;
                start = Instant::now();
            }
            self.replay(w);
        }
        if picks.is_empty() {
            if let Some(r) = &mut self.reservation {
                r.free();
            }
            return Ok(None);
        }
        let batch = gathered(&self.schema, &self.held, &picks)?;
        self.release();
        self.compute.add_elapsed(start);
        self.baseline.record_output(batch.num_rows());
        Ok(Some(batch))
    }

    /// Keeps of the held batches only those the runs still read.
    fn release(&mut self) {
        self.held.clear();
        let mut bytes = 0;
        for run in &mut self.runs {
            if let Some(b) = &run.batch {
                bytes += b.get_array_memory_size();
                self.held.push(b.clone());
                run.slot = self.held.len() - 1;
            }
        }
        if let Some(r) = &mut self.reservation {
            r.resize(bytes);
        }
    }
}

/// The rows `picks` (batch of `batches`, row) as one batch of `schema`.
pub(crate) fn gathered(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    picks: &[(usize, usize)],
) -> DfResult<RecordBatch> {
    let columns = (0..schema.fields().len())
        .map(|c| {
            let arrays: Vec<&dyn Array> = batches.iter().map(|b| b.column(c).as_ref()).collect();
            match fixed_gathered(&arrays, picks) {
                Some(array) => array,
                None => Ok(interleave(&arrays, picks)?),
            }
        })
        .collect::<DfResult<Vec<_>>>()?;
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

/// A fixed-size binary column without nulls gathered by slice copies; `None` for any other
/// column, which `interleave` gathers.
fn fixed_gathered(arrays: &[&dyn Array], picks: &[(usize, usize)]) -> Option<DfResult<ArrayRef>> {
    let typed: Vec<&FixedSizeBinaryArray> = arrays
        .iter()
        .map(|a| a.as_any().downcast_ref::<FixedSizeBinaryArray>())
        .collect::<Option<_>>()?;
    if typed.iter().any(|a| a.null_count() > 0) {
        return None;
    }
    let size = typed.first()?.value_length();
    let width = usize::try_from(size).ok()?;
    let data: Vec<&[u8]> = typed.iter().map(|a| a.value_data()).collect();
    let mut out = Vec::with_capacity(picks.len() * width);
    for &(a, row) in picks {
        out.extend_from_slice(&data[a][row * width..(row + 1) * width]);
    }
    Some(
        FixedSizeBinaryArray::try_new(size, Buffer::from_vec(out), None)
            .map(|a| Arc::new(a) as ArrayRef)
            .map_err(DataFusionError::from),
    )
}

/// `streams`, each sorted by `keys` (whose width [`packed_width`] gave), merged into one
/// sorted stream of batches of `batch_rows` rows; equal keys come in the order of their
/// streams. The batches it holds are reserved in `reservation`, if any.
pub fn merged(
    streams: Vec<SendableRecordBatchStream>,
    keys: Arc<SortKeys>,
    width: usize,
    schema: SchemaRef,
    batch_rows: usize,
    reservation: Option<MemoryReservation>,
    baseline: BaselineMetrics,
) -> SendableRecordBatchStream {
    let runs = streams
        .into_iter()
        .map(|stream| Run {
            stream,
            batch: None,
            keys: Vec::new(),
            at: 0,
            slot: 0,
        })
        .collect();
    let merge = Merge {
        runs,
        held: Vec::new(),
        losers: Vec::new(),
        winner: 0,
        keys,
        width,
        schema: Arc::clone(&schema),
        batch_rows: batch_rows.max(1),
        reservation,
        compute: baseline.elapsed_compute().clone(),
        baseline,
        started: false,
    };
    let batches = futures::stream::try_unfold(merge, |mut merge| async move {
        if merge.runs.is_empty() {
            return Ok(None);
        }
        Ok(merge.next_batch().await?.map(|b| (b, merge)))
    });
    Box::pin(RecordBatchStreamAdapter::new(schema, batches))
}
