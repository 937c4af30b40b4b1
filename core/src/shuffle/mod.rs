//! The shuffle: a map task hash-partitions its output into the stage's reduce partitions and
//! writes one Arrow IPC object holding all of them, each an IPC stream at a byte range listed
//! in the task's marker. A reducer fetches its range from every map task with ranged GETs:
//! M objects per stage, not M × R.

use std::io::Cursor;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{ArrayRef, AsArray, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{cast, concat_batches, take_record_batch};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::common::hash_utils::{RandomState, create_hashes};
use futures::{StreamExt, TryStreamExt};

use crate::error::{Error, Result};
use crate::lineage::{Fetch, Recover, read_checked, with_recovery};
use crate::marker::{TaskFile, TaskMarker, latest_markers};
use crate::output::put_file;
use crate::plan::Plan;
use crate::store::Store;
use crate::store::checksum::crc32c;

/// Every process must send a key to the same partition, so the hash seed is fixed.
const HASH_STATE: RandomState = RandomState::with_seed(0x6b61_736b_7368_7566);

/// Reduce partitions get batches of at least this many rows, however finely a map task's
/// batches were split.
const MIN_BATCH_ROWS: usize = 16 * 1024;

pub use crate::marker::PartRange;

/// Splits a map task's output by key hash.
pub struct Partitioner {
    schema: SchemaRef,
    keys: Vec<usize>,
    parts: Vec<PartBuffer>,
}

#[derive(Default)]
struct PartBuffer {
    done: Vec<RecordBatch>,
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    rows: u64,
}

impl PartBuffer {
    fn push(&mut self, batch: RecordBatch, schema: &SchemaRef) -> Result<()> {
        self.rows += batch.num_rows() as u64;
        self.pending_rows += batch.num_rows();
        self.pending.push(batch);
        if self.pending_rows >= MIN_BATCH_ROWS {
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
}

/// String views taken from a larger batch still point into all of its buffers, which IPC
/// would write out whole for every partition: keep only the bytes the rows use.
fn compact_views(batch: RecordBatch) -> Result<RecordBatch> {
    let views = |dt: &DataType| matches!(dt, DataType::Utf8View | DataType::BinaryView);
    if !batch.schema().fields().iter().any(|f| views(f.data_type())) {
        return Ok(batch);
    }
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|c| -> ArrayRef {
            match c.data_type() {
                DataType::Utf8View => Arc::new(c.as_string_view().gc()),
                DataType::BinaryView => Arc::new(c.as_binary_view().gc()),
                _ => Arc::clone(c),
            }
        })
        .collect();
    RecordBatch::try_new(batch.schema(), columns).map_err(|e| Error::internal(e.to_string()))
}

/// The value a key is hashed as: equal values of different integer, float or string types
/// must land in the same partition.
fn hashable(a: &ArrayRef) -> Result<ArrayRef> {
    let target = match a.data_type() {
        dt if dt.is_integer() => DataType::Int64,
        DataType::Float16 | DataType::Float32 => DataType::Float64,
        DataType::Utf8 | DataType::LargeUtf8 => DataType::Utf8View,
        DataType::Dictionary(_, v) => match v.as_ref() {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8View,
            dt if dt.is_integer() => DataType::Int64,
            other => other.clone(),
        },
        _ => return Ok(a.clone()),
    };
    if a.data_type() == &target {
        return Ok(a.clone());
    }
    cast(a, &target).map_err(|e| Error::internal(format!("hashing a shuffle key: {e}")))
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
        Ok(Partitioner {
            schema,
            keys,
            parts: (0..partitions).map(|_| PartBuffer::default()).collect(),
        })
    }

    /// A partitioner into `partitions` whose caller chooses each batch's partition
    /// ([`Partitioner::push_to`]): an SQL stage hashes rows the way DataFusion's own
    /// repartitioning does.
    pub fn by_caller(schema: SchemaRef, partitions: usize) -> Self {
        Partitioner {
            schema,
            keys: vec![],
            parts: (0..partitions.max(1))
                .map(|_| PartBuffer::default())
                .collect(),
        }
    }

    /// Adds a batch to partition `partition`.
    pub fn push_to(&mut self, partition: usize, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let n = self.parts.len();
        let part = self
            .parts
            .get_mut(partition)
            .ok_or_else(|| Error::internal(format!("shuffle partition {partition} of {n}")))?;
        part.push(batch, &self.schema)
    }

    /// Adds a batch.
    pub fn push(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let n = self.parts.len();
        if n == 1 {
            return self.parts[0].push(batch, &self.schema);
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
            self.parts[p].push(part, &self.schema)?;
        }
        Ok(())
    }

    /// Rows added so far.
    pub fn rows(&self) -> u64 {
        self.parts.iter().map(|p| p.rows).sum()
    }

    /// The shuffle object and where each partition sits in it.
    pub fn finish(mut self, partitions: usize) -> Result<(Bytes, Vec<PartRange>)> {
        let mut out = Vec::new();
        let mut ranges = vec![PartRange::default(); partitions.max(1)];
        for (p, part) in self.parts.iter_mut().enumerate() {
            part.flush(&self.schema)?;
            if part.rows == 0 {
                ranges[p].offset = out.len() as u64;
                continue;
            }
            let offset = out.len() as u64;
            let mut w = StreamWriter::try_new(&mut out, &self.schema)
                .map_err(|e| Error::internal(e.to_string()))?;
            for b in &part.done {
                w.write(b).map_err(|e| Error::internal(e.to_string()))?;
            }
            w.finish().map_err(|e| Error::internal(e.to_string()))?;
            drop(w);
            ranges[p] = PartRange {
                offset,
                len: out.len() as u64 - offset,
                rows: part.rows,
                crc32c: Some(crc32c(&out[offset as usize..])),
            };
        }
        Ok((Bytes::from(out), ranges))
    }
}

/// Decodes one IPC stream.
pub fn decode(bytes: Bytes) -> Result<Vec<RecordBatch>> {
    let reader = StreamReader::try_new(Cursor::new(bytes), None)
        .map_err(|e| Error::internal(format!("corrupt shuffle data: {e}")))?;
    reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::internal(format!("corrupt shuffle data: {e}")))
}

/// Writes a map task's shuffle object, `<dir>/shuffle.arrow`, and describes it.
pub async fn write(
    store: &Store,
    dir: &str,
    p: Partitioner,
    partitions: usize,
) -> Result<TaskFile> {
    let rows = p.rows();
    let (bytes, ranges) = p.finish(partitions)?;
    let mut file = put_file(store, format!("{dir}/shuffle.arrow"), rows, bytes).await?;
    file.partitions = ranges;
    Ok(file)
}

/// How many map outputs a reducer fetches at once.
const FETCH_CONCURRENCY: usize = 8;

/// Reads reduce partition `partition` of stage `from` from every map task's committed
/// output, in map-task order, checking each range's length and checksum; a map output found
/// lost or corrupt is made again through `lineage`. Returns the batches and the bytes fetched.
pub async fn read_partition(
    store: &Store,
    plan: &Plan,
    from: usize,
    partition: usize,
    lineage: &dyn Recover,
) -> Result<(Vec<RecordBatch>, u64)> {
    let (parts, bytes) = read_partition_by_map(store, plan, from, partition, lineage).await?;
    Ok((parts.into_iter().flatten().collect(), bytes))
}

/// [`read_partition`], keeping each map task's batches apart (in map-task order): what a
/// merge of sorted map outputs needs.
pub async fn read_partition_by_map(
    store: &Store,
    plan: &Plan,
    from: usize,
    partition: usize,
    lineage: &dyn Recover,
) -> Result<(Vec<Vec<RecordBatch>>, u64)> {
    let markers = latest_markers(store, plan, from).await?;
    let parts: Vec<(Vec<RecordBatch>, u64)> = futures::stream::iter(markers)
        .map(|m| with_recovery(lineage, m, move |m| fetch(store, m, partition)))
        .buffered(FETCH_CONCURRENCY)
        .try_collect()
        .await?;
    let bytes = parts.iter().map(|(_, b)| b).sum();
    Ok((parts.into_iter().map(|(b, _)| b).collect(), bytes))
}

/// Partition 0 of map task `map`'s output alone: a stage whose tasks each keep their rows as
/// one partition, read task by task (an empty list if the stage has no such task).
pub async fn read_map_output(
    store: &Store,
    plan: &Plan,
    from: usize,
    map: usize,
    lineage: &dyn Recover,
) -> Result<(Vec<RecordBatch>, u64)> {
    let markers = latest_markers(store, plan, from).await?;
    match markers.into_iter().find(|m| m.task == map) {
        Some(m) => with_recovery(lineage, m, move |m| fetch(store, m, 0)).await,
        None => Ok((vec![], 0)),
    }
}

/// One map task's slice of a partition.
async fn fetch(
    store: &Store,
    marker: TaskMarker,
    partition: usize,
) -> std::result::Result<(Vec<RecordBatch>, u64), Fetch> {
    let mut batches = Vec::new();
    let mut bytes = 0;
    for f in &marker.files {
        let Some(range) = f.partitions.get(partition) else {
            continue;
        };
        if range.len == 0 {
            continue;
        }
        let r = range.offset..range.offset + range.len;
        let data = read_checked(store, &f.path, Some(r), range.len, range.crc32c).await?;
        bytes += data.len() as u64;
        let decoded = decode(data).map_err(|e| Fetch::Lost(format!("{}: {e}", f.path)))?;
        batches.extend(decoded);
    }
    Ok((batches, bytes))
}
