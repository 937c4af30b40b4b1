//! The shuffle: a map task hash-partitions its output into the stage's reduce partitions and
//! writes one Arrow IPC object holding all of them, each partition at a byte range listed in
//! the task's marker ([`writer`]: within the memory budget, spilling to local disk). A reducer
//! fetches its range from every map task with ranged GETs, a window at a time ([`reader`]):
//! M objects per stage, not M × R.

use std::ops::Range;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::ipc::CompressionType;
use datafusion::arrow::ipc::writer::IpcWriteOptions;
use datafusion::common::hash_utils::RandomState;
use futures::{StreamExt, TryStreamExt};

use crate::error::{Error, Result};
use crate::lineage::{Fetch, Recover, with_recovery};
use crate::marker::{TaskMarker, latest_markers};
use crate::plan::Plan;
use crate::store::Store;

/// Every process must send a key to the same partition, so the hash seed is fixed.
pub const HASH_STATE: RandomState = RandomState::with_seed(0x6b61_736b_7368_7566);

/// Reduce partitions get batches of at least this many rows, however finely a map task's
/// batches were split.
pub const MIN_BATCH_ROWS: usize = 16 * 1024;

pub use crate::marker::PartRange;
pub use reader::SliceReader;
pub use writer::{Partitioner, WINDOW_BYTES, write};

pub mod reader;
pub mod runs;
pub mod writer;

/// How the IPC streams of shuffle objects and their spill files are compressed:
/// `KASK_SHUFFLE_COMPRESSION` (`none`, `lz4` or `zstd`) for measuring, else [`DEFAULT_COMPRESSION`].
/// Readers need no setting: each IPC message says how its buffers are compressed.
pub fn ipc_options() -> Result<IpcWriteOptions> {
    static CHOSEN: std::sync::OnceLock<std::result::Result<Option<CompressionType>, String>> =
        std::sync::OnceLock::new();
    let chosen = CHOSEN
        .get_or_init(|| compression_named(std::env::var("KASK_SHUFFLE_COMPRESSION").ok()))
        .clone()
        .map_err(Error::Environment)?;
    IpcWriteOptions::default()
        .try_with_compression(chosen)
        .map_err(|e| Error::internal(format!("shuffle compression {chosen:?}: {e}")))
}

/// The compression `KASK_SHUFFLE_COMPRESSION` names.
pub fn compression_named(
    value: Option<String>,
) -> std::result::Result<Option<CompressionType>, String> {
    match value.as_deref() {
        None | Some("") => Ok(DEFAULT_COMPRESSION),
        Some("none") => Ok(None),
        Some("lz4") => Ok(Some(CompressionType::LZ4_FRAME)),
        Some("zstd") => Ok(Some(CompressionType::ZSTD)),
        Some(other) => Err(format!(
            "KASK_SHUFFLE_COMPRESSION={other:?}: expected none, lz4 or zstd"
        )),
    }
}

/// LZ4, by measurement: on this project's 2-core machines, writing a shuffle object costs
/// more than compressing it, since each page of it is memory the kernel must hand out fresh.
/// TPC-H SF10 q03, q05, q09, q10, q18 and q21, median of 3 `kask run`s each: 25.1 s
/// uncompressed (22.5 s user, 21.3 s system), 20.7 s with LZ4 (29.6 s user, 7.3 s system);
/// zstd saved as many system seconds but cost more user seconds than it saved (q18: 5.5 s,
/// against 4.5 s with LZ4 and 6.6 s without).
const DEFAULT_COMPRESSION: Option<CompressionType> = Some(CompressionType::LZ4_FRAME);

/// String views taken from a larger batch still point into all of its buffers, which IPC
/// would write out whole for every partition: keep only the bytes the rows use.
pub fn compact_views(batch: RecordBatch) -> Result<RecordBatch> {
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
pub fn hashable(a: &ArrayRef) -> Result<ArrayRef> {
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

/// How many map outputs a reducer fetches at once.
const FETCH_CONCURRENCY: usize = 8;

/// Folds reduce partitions `partitions` of stage `from` (adjacent ones, which a task taking
/// small partitions together reads: [`runs`]) into `fold` batch by batch, in map-task order,
/// holding no more than a few map tasks' slices at once rather than the whole run. Returns the
/// bytes fetched.
pub async fn fold_partitions(
    store: &Store,
    plan: &Plan,
    from: usize,
    partitions: Range<usize>,
    lineage: &dyn Recover,
    fold: &mut (dyn FnMut(RecordBatch) -> Result<()> + Send),
) -> Result<u64> {
    if partitions.is_empty() {
        return Ok(0);
    }
    let markers = latest_markers(store, plan, from).await?;
    let mut slices = futures::stream::iter(markers)
        .map(|m| {
            let partitions = partitions.clone();
            with_recovery(lineage, m, move |m| fetch(store, m, partitions.clone()))
        })
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

/// One map task's slices of adjacent partitions, whole.
async fn fetch(
    store: &Store,
    marker: TaskMarker,
    partitions: Range<usize>,
) -> std::result::Result<(Vec<RecordBatch>, u64), Fetch> {
    SliceReader::open_run(store, &marker, partitions)
        .await?
        .read_all()
        .await
}
