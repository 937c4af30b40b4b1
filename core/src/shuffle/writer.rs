//! The map side of the shuffle: a task's output split into reduce partitions, held in memory
//! within the worker's memory budget, spilled to a local file when the budget is spent, and
//! streamed into one object (`shuffle.arrow`) at the end. Each partition's byte range in the
//! object is one Arrow IPC stream per spill and one for the rows still in memory, back to back;
//! the reader decodes streams until the range ends.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{RecordBatch, UInt32Array};
use datafusion::arrow::compute::{concat_batches, take_record_batch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::common::hash_utils::create_hashes;
use datafusion::execution::SpillFile;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::runtime_env::RuntimeEnv;

use super::{HASH_STATE, MIN_BATCH_ROWS, PartRange, compact_views, hashable, ipc_options};
use crate::error::{Error, Result};
use crate::marker::TaskFile;
use crate::store::Store;
use crate::store::checksum::crc32c_append;
use crate::store::upload::Upload;

/// Splits a map task's output by key hash.
pub struct Partitioner {
    schema: SchemaRef,
    keys: Vec<usize>,
    parts: Vec<PartBuffer>,
    budget: Option<Budget>,
    spill: Option<Spill>,
    /// Rows gathered into each batch written.
    batch_rows: usize,
}

/// The memory the buffered rows hold, reserved from the worker's pool.
struct Budget {
    reservation: MemoryReservation,
    runtime: Arc<RuntimeEnv>,
}

/// Rows written out to a local file to free memory: each partition's IPC streams in it.
struct Spill {
    /// Kept so that the file lives as long as the writer.
    _file: Arc<dyn SpillFile>,
    handle: File,
    len: u64,
    /// Per partition, the (offset, length) of each stream in the file.
    segments: Vec<Vec<(u64, u64)>>,
    bytes: u64,
}

#[derive(Default)]
struct PartBuffer {
    done: Vec<RecordBatch>,
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    rows: u64,
    /// The bytes its rows take in memory, however many of them were spilled.
    decoded: u64,
}

impl PartBuffer {
    fn push(
        &mut self,
        batch: RecordBatch,
        size: usize,
        schema: &SchemaRef,
        batch_rows: usize,
    ) -> Result<()> {
        self.rows += batch.num_rows() as u64;
        self.decoded += size as u64;
        self.pending_rows += batch.num_rows();
        self.pending.push(batch);
        if self.pending_rows >= batch_rows {
            self.flush(schema)?;
        }
        Ok(())
    }

    fn flush(&mut self, schema: &SchemaRef) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let merged =
            concat_batches(schema, &self.pending).map_err(|e| Error::internal(e.to_string()))?;
        self.pending.clear();
        self.done.push(compact_views(merged)?);
        self.pending_rows = 0;
        Ok(())
    }

    /// Writes the buffered rows to `out` as one IPC stream (nothing when nothing is
    /// buffered), emptying the buffer; returns the bytes written.
    /// The pending slices are written one by one rather than gathered first: gathering
    /// copies them while the slices (and the batches they were cut from) are still held, so
    /// a spill, which happens when memory is short, would need twice the buffered bytes.
    fn write_stream<W: Write>(&mut self, schema: &SchemaRef, out: W) -> Result<u64> {
        if self.done.is_empty() && self.pending.is_empty() {
            return Ok(0);
        }
        let io = |e: ArrowError| Error::Environment(format!("writing a shuffle spill file: {e}"));
        let mut w = StreamWriter::try_new_with_options(
            Counting { inner: out, n: 0 },
            schema,
            ipc_options()?,
        )
        .map_err(io)?;
        for b in self.done.drain(..) {
            w.write(&b).map_err(io)?;
        }
        for b in self.pending.drain(..) {
            w.write(&compact_views(b)?).map_err(io)?;
        }
        self.pending_rows = 0;
        w.finish().map_err(io)?;
        let mut out = w.into_inner().map_err(io)?;
        out.flush()
            .map_err(|e| Error::Environment(format!("writing a shuffle spill file: {e}")))?;
        Ok(out.n)
    }

    /// Uploads the buffered rows as one IPC stream, a few MiB at a time (rather than encoding
    /// them whole first, which would hold them twice), emptying the buffer.
    async fn upload_stream(&mut self, schema: &SchemaRef, out: &mut RangeOut<'_>) -> Result<()> {
        self.flush(schema)?;
        if self.done.is_empty() {
            return Ok(());
        }
        let encode = |e: ArrowError| Error::internal(format!("encoding shuffle data: {e}"));
        let mut w = StreamWriter::try_new_with_options(Vec::new(), schema, ipc_options()?)
            .map_err(encode)?;
        for b in std::mem::take(&mut self.done) {
            w.write(&b).map_err(encode)?;
            drop(b);
            if w.get_ref().len() >= CHUNK_BYTES {
                out.put(std::mem::take(w.get_mut())).await?;
            }
        }
        w.finish().map_err(encode)?;
        out.put(w.into_inner().map_err(encode)?).await
    }
}

/// Bytes written through a writer.
struct Counting<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The size of the pieces a map task's object is uploaded in.
const CHUNK_BYTES: usize = 8 << 20;

/// One partition's range of the object being uploaded: its length and checksums so far.
struct RangeOut<'a> {
    upload: &'a mut Upload,
    path: &'a str,
    store: &'a Store,
    len: u64,
    crc: u32,
    windows: Windows,
}

impl RangeOut<'_> {
    async fn put(&mut self, bytes: Vec<u8>) -> Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.crc = crc32c_append(self.crc, &bytes);
        self.windows.add(&bytes);
        self.len += bytes.len() as u64;
        self.upload
            .put(Bytes::from(bytes))
            .await
            .map_err(|e| self.store.err(format!("writing {}", self.path), e))
    }
}

impl Partitioner {
    /// A partitioner into `partitions` by `keys` (no keys: everything to partition 0).
    pub fn new(schema: SchemaRef, keys: &[String], partitions: usize) -> Result<Self> {
        let keys = keys
            .iter()
            .map(|k| {
                schema.index_of(k).map_err(|_| {
                    Error::internal(format!("shuffle key {k:?} is not in the task's output"))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let partitions = if keys.is_empty() {
            1
        } else {
            partitions.max(1)
        };
        Ok(Self::with_parts(schema, keys, partitions))
    }

    /// A partitioner into `partitions` whose caller chooses each batch's partition
    /// ([`Partitioner::push_to`]): an SQL stage hashes rows the way DataFusion's own
    /// repartitioning does.
    pub fn by_caller(schema: SchemaRef, partitions: usize) -> Self {
        Self::with_parts(schema, vec![], partitions.max(1))
    }

    fn with_parts(schema: SchemaRef, keys: Vec<usize>, partitions: usize) -> Self {
        Partitioner {
            schema,
            keys,
            parts: (0..partitions).map(|_| PartBuffer::default()).collect(),
            budget: None,
            spill: None,
            batch_rows: MIN_BATCH_ROWS,
        }
    }

    /// Writes batches of `rows` rows (from batches pushed no larger) instead of gathering
    /// small ones into batches of at least [`MIN_BATCH_ROWS`]: a reducer that merges many
    /// sorted runs holds a batch of each.
    pub fn with_batch_rows(mut self, rows: usize) -> Self {
        self.batch_rows = rows.max(1);
        self
    }

    /// Holds the buffered rows within `runtime`'s memory pool, spilling them to its disk
    /// manager's directory when the pool has no more room.
    pub fn within(mut self, runtime: &Arc<RuntimeEnv>) -> Self {
        let reservation = MemoryConsumer::new("kask shuffle writer")
            .with_can_spill(true)
            .register(&runtime.memory_pool);
        self.budget = Some(Budget {
            reservation,
            runtime: Arc::clone(runtime),
        });
        self
    }

    /// Partitions so far.
    pub fn partitions(&self) -> usize {
        self.parts.len()
    }

    /// Adds partitions up to `n` (a sorted run cut into chunks does not know its count before
    /// it ends).
    pub fn grow_to(&mut self, n: usize) {
        while self.parts.len() < n {
            self.parts.push(PartBuffer::default());
        }
    }

    /// Adds a batch to partition `partition`.
    pub fn push_to(&mut self, partition: usize, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let n = self.parts.len();
        let size = held_bytes(&batch);
        let part = self
            .parts
            .get_mut(partition)
            .ok_or_else(|| Error::internal(format!("shuffle partition {partition} of {n}")))?;
        part.push(batch, size, &self.schema, self.batch_rows)?;
        self.account(size)
    }

    /// Adds a batch.
    pub fn push(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let n = self.parts.len();
        if n == 1 {
            return self.push_to(0, batch);
        }
        let arrays = self
            .keys
            .iter()
            .map(|&i| hashable(batch.column(i)))
            .collect::<Result<Vec<_>>>()?;
        let mut hashes = vec![0u64; batch.num_rows()];
        create_hashes(&arrays, &HASH_STATE, &mut hashes)
            .map_err(|e| Error::internal(e.to_string()))?;
        let mut indices: Vec<Vec<u32>> = vec![Vec::new(); n];
        for (row, h) in hashes.iter().enumerate() {
            indices[(*h % n as u64) as usize].push(row as u32);
        }
        for (p, idx) in indices.into_iter().enumerate() {
            if idx.is_empty() {
                continue;
            }
            let part = if idx.len() == batch.num_rows() {
                batch.clone()
            } else {
                take_record_batch(&batch, &UInt32Array::from(idx))
                    .map_err(|e| Error::internal(e.to_string()))?
            };
            self.push_to(p, part)?;
        }
        Ok(())
    }

    /// Counts `size` more bytes against the budget; spills everything buffered when the pool
    /// cannot give them.
    fn account(&mut self, size: usize) -> Result<()> {
        let Some(budget) = &self.budget else {
            return Ok(());
        };
        if budget.reservation.try_grow(size).is_ok() {
            return Ok(());
        }
        self.spill_all()
    }

    /// Writes every buffered partition to the spill file as an IPC stream and frees its
    /// memory.
    fn spill_all(&mut self) -> Result<()> {
        let Some(budget) = &self.budget else {
            return Ok(());
        };
        if self.spill.is_none() {
            let file = budget
                .runtime
                .disk_manager
                .create_tmp_file("kask shuffle writer")
                .map_err(|e| Error::Environment(format!("a shuffle spill file: {e}")))?;
            // DataFusion's disk manager names a file in the spill directory (and removes it when
            // dropped); the writer appends to it and reads its ranges back directly.
            let handle = file
                .path()
                .ok_or_else(|| {
                    Error::Environment("the spill directory is not on a local disk".into())
                })
                .and_then(|path| {
                    std::fs::OpenOptions::new()
                        .read(true)
                        .append(true)
                        .open(path)
                        .map_err(|e| Error::Environment(format!("a shuffle spill file: {e}")))
                })?;
            self.spill = Some(Spill {
                _file: file,
                handle,
                len: 0,
                segments: vec![Vec::new(); self.parts.len()],
                bytes: 0,
            });
        }
        let Some(spill) = self.spill.as_mut() else {
            return Ok(());
        };
        if spill.segments.len() < self.parts.len() {
            spill.segments.resize(self.parts.len(), Vec::new());
        }
        for (p, part) in self.parts.iter_mut().enumerate() {
            let out = BufWriter::with_capacity(1 << 20, &spill.handle);
            let n = part.write_stream(&self.schema, out)?;
            if n == 0 {
                continue;
            }
            spill.segments[p].push((spill.len, n));
            spill.len += n;
            spill.bytes += n;
        }
        budget.reservation.free();
        Ok(())
    }

    /// Rows added so far.
    pub fn rows(&self) -> u64 {
        self.parts.iter().map(|p| p.rows).sum()
    }

    /// Bytes written to the spill file.
    pub fn spilled_bytes(&self) -> u64 {
        self.spill.as_ref().map_or(0, |s| s.bytes)
    }
}

/// The bytes `batch`'s rows take once gathered into a batch of their own: a slice of a larger
/// batch counts its own rows, not the whole batch it shares buffers with (the partition's
/// pending rows are gathered into new batches as they fill).
fn held_bytes(batch: &RecordBatch) -> usize {
    batch
        .columns()
        .iter()
        .map(|c| {
            c.to_data()
                .get_slice_memory_size()
                .unwrap_or_else(|_| c.get_array_memory_size())
        })
        .sum()
}

/// Writes a map task's shuffle object, `<dir>/shuffle.arrow`, partition after partition, and
/// describes it.
pub async fn write(
    store: &Store,
    dir: &str,
    p: Partitioner,
    partitions: usize,
) -> Result<TaskFile> {
    write_windowed(store, dir, p, partitions, WINDOW_BYTES).await
}

/// [`write`], checking ranges longer than `window` bytes window by window.
pub async fn write_windowed(
    store: &Store,
    dir: &str,
    mut p: Partitioner,
    partitions: usize,
    window: u64,
) -> Result<TaskFile> {
    let path = format!("{dir}/shuffle.arrow");
    let rows = p.rows();
    let mut upload = Upload::new(store, &path);
    let mut ranges = vec![PartRange::default(); partitions.max(1)];
    let mut offset = 0u64;
    let fail = |e: object_store::Error| store.err(format!("writing {path}"), e);
    for (i, range) in ranges.iter_mut().enumerate() {
        let mut out = RangeOut {
            upload: &mut upload,
            path: &path,
            store,
            len: 0,
            crc: 0,
            windows: Windows::new(window),
        };
        let spilled = p
            .spill
            .as_ref()
            .map(|s| s.segments.get(i).cloned().unwrap_or_default())
            .unwrap_or_default();
        for (at, n) in spilled {
            let Some(spill) = p.spill.as_ref() else { break };
            let mut done = 0;
            while done < n {
                let mut buf = vec![0u8; (n - done).min(CHUNK_BYTES as u64) as usize];
                spill
                    .handle
                    .read_exact_at(&mut buf, at + done)
                    .map_err(|e| {
                        Error::Environment(format!("reading a shuffle spill file: {e}"))
                    })?;
                done += buf.len() as u64;
                out.put(buf).await?;
            }
        }
        let (rows, decoded) = p.parts.get(i).map_or((0, 0), |b| (b.rows, b.decoded));
        if let Some(part) = p.parts.get_mut(i) {
            part.upload_stream(&p.schema, &mut out).await?;
        }
        let RangeOut {
            len, crc, windows, ..
        } = out;
        *range = PartRange {
            offset,
            len,
            rows,
            decoded,
            crc32c: (len > 0).then_some(crc),
            windows: windows.finish(),
            ..PartRange::default()
        };
        offset += len;
    }
    upload.finish().await.map_err(fail)?;
    let windowed = ranges.iter().any(|r| !r.windows.is_empty());
    Ok(TaskFile {
        path,
        rows,
        bytes: upload.bytes(),
        crc32c: Some(upload.crc32c()),
        partitions: ranges,
        window: if windowed { window } else { 0 },
        samples: vec![],
    })
}

/// The size of the windows a long range is checked and read in: large enough that a window
/// is one worthwhile request, small enough that a merge of many map outputs, each holding a
/// window or two, stays within a task's memory.
pub const WINDOW_BYTES: u64 = 2 << 20;

/// The CRC-32C of each `size`-byte window of a range, computed as its bytes go by.
struct Windows {
    size: u64,
    filled: u64,
    crc: u32,
    done: Vec<u32>,
}

impl Windows {
    fn new(size: u64) -> Self {
        Windows {
            size: size.max(1),
            filled: 0,
            crc: 0,
            done: Vec::new(),
        }
    }

    fn add(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let take = bytes.len().min((self.size - self.filled) as usize);
            self.crc = crc32c_append(self.crc, &bytes[..take]);
            self.filled += take as u64;
            bytes = &bytes[take..];
            if self.filled == self.size {
                self.done.push(self.crc);
                self.crc = 0;
                self.filled = 0;
            }
        }
    }

    /// The windows' checksums; none for a range of one window, which its whole-range
    /// checksum covers.
    fn finish(mut self) -> Vec<u32> {
        if self.filled > 0 {
            self.done.push(self.crc);
        }
        if self.done.len() <= 1 {
            return Vec::new();
        }
        self.done
    }
}
