//! The shuffle: a map task hash-partitions its output into the stage's reduce partitions and
//! writes one Arrow IPC object holding all of them, each partition at a byte range listed in
//! the task's marker ([`writer`]: within the memory budget, spilling to local disk). A reducer
//! fetches its range from every map task with ranged GETs: M objects per stage, not M × R.

use std::io::Cursor;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::common::hash_utils::RandomState;
use futures::{StreamExt, TryStreamExt};

use crate::error::{Error, Result};
use crate::lineage::{Fetch, Recover, read_checked, with_recovery};
use crate::marker::{TaskMarker, latest_markers};
use crate::plan::Plan;
use crate::store::Store;

/// Every process must send a key to the same partition, so the hash seed is fixed.
const HASH_STATE: RandomState = RandomState::with_seed(0x6b61_736b_7368_7566);

/// Reduce partitions get batches of at least this many rows, however finely a map task's
/// batches were split.
const MIN_BATCH_ROWS: usize = 16 * 1024;

pub use crate::marker::PartRange;
pub use writer::{Partitioner, write};

mod writer;

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

/// Decodes a partition's byte range: Arrow IPC streams back to back (one per spill of the map
/// task, and one for the rows it still held at the end).
pub fn decode(bytes: Bytes) -> Result<Vec<RecordBatch>> {
    let corrupt = |e: ArrowError| Error::internal(format!("corrupt shuffle data: {e}"));
    let len = bytes.len() as u64;
    let mut cursor = Cursor::new(bytes);
    let mut batches = Vec::new();
    while cursor.position() < len {
        // Unbuffered: each stream's reader stops right after its end-of-stream marker.
        let reader = StreamReader::try_new(&mut cursor, None).map_err(corrupt)?;
        for batch in reader {
            batches.push(batch.map_err(corrupt)?);
        }
    }
    Ok(batches)
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

/// Folds reduce partition `partition` of stage `from` into `fold` batch by batch, in map-task
/// order, holding no more than a few map tasks' slices at once (rather than the whole partition,
/// as [`read_partition`] does). Returns the bytes fetched.
pub async fn fold_partition(
    store: &Store,
    plan: &Plan,
    from: usize,
    partition: usize,
    lineage: &dyn Recover,
    fold: &mut (dyn FnMut(RecordBatch) -> Result<()> + Send),
) -> Result<u64> {
    let markers = latest_markers(store, plan, from).await?;
    let mut slices = futures::stream::iter(markers)
        .map(|m| with_recovery(lineage, m, move |m| fetch(store, m, partition)))
        .buffered(FETCH_CONCURRENCY);
    let mut bytes = 0;
    while let Some((batches, n)) = slices.try_next().await? {
        bytes += n;
        for b in batches {
            fold(b)?;
        }
    }
    Ok(bytes)
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

/// Map task `marker`'s slice of reduce partition `partition`, checked, and made again through
/// `lineage` when found lost or corrupt: what a reducer streams, one map task at a time.
/// Returns the batches and the bytes fetched.
pub async fn read_slice(
    store: &Store,
    marker: TaskMarker,
    partition: usize,
    lineage: &dyn Recover,
) -> Result<(Vec<RecordBatch>, u64)> {
    with_recovery(lineage, marker, move |m| fetch(store, m, partition)).await
}
