//! Lineage: a committed file that a later step finds missing or corrupt is made again by
//! running the task that wrote it once more, as Spark re-runs a map stage after a fetch
//! failure, instead of failing the job. Tasks are deterministic functions of the plan and the
//! inputs, so the new files stand in for the lost ones; the re-run commits under a new marker
//! epoch ([`crate::marker`]), a bounded number of times.
//!
//! Reading goes through [`read_checked`]: a byte range whose length or CRC-32C is wrong is read
//! once more (a transport glitch), and only then reported as lost.

use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::{Error, Result};
use crate::marker::TaskMarker;
use crate::store::Store;
use crate::store::checksum::crc32c;

/// How many times one run may make one task's output again before the job fails (a rerun of
/// the job starts counting afresh, so a store that lost data for a while does not doom it).
pub const MAX_RECOVERIES: u32 = 3;

/// Runs a task again when its committed output was lost.
#[async_trait]
pub trait Recover: Send + Sync {
    /// Task `task` of stage `stage` committed files at epoch `lost` that are `why` (missing,
    /// corrupt): run it again and return the marker of the replacement (or of another
    /// reader's replacement, when one got there first).
    async fn recover(&self, stage: usize, task: usize, lost: u32, why: &str) -> Result<TaskMarker>;
}

/// Why a committed file could not be used.
#[derive(Debug)]
pub enum Fetch {
    /// It is missing, or its bytes are not the ones committed: make it again.
    Lost(String),
    /// Reading failed for another reason (the store is down): an ordinary error.
    Failed(Error),
}

impl From<Error> for Fetch {
    fn from(e: Error) -> Fetch {
        Fetch::Failed(e)
    }
}

/// Reads `range` of `path` (the whole file when `None`), checking that it has `len` bytes and,
/// when given, the CRC-32C `crc`.
pub async fn read_checked(
    store: &Store,
    path: &str,
    range: Option<Range<u64>>,
    len: u64,
    crc: Option<u32>,
) -> std::result::Result<Bytes, Fetch> {
    read_parts(store, path, range, &[(len, crc)]).await
}

/// [`read_checked`] of consecutive parts of `path` in one request: `parts` are each part's
/// length and checksum, in order, and `range` (the whole file when `None`) covers them all.
pub async fn read_parts(
    store: &Store,
    path: &str,
    range: Option<Range<u64>>,
    parts: &[(u64, Option<u32>)],
) -> std::result::Result<Bytes, Fetch> {
    let len: u64 = parts.iter().map(|(l, _)| l).sum();
    let mut why = String::new();
    for _ in 0..2 {
        let data = match &range {
            Some(r) => store.get_range_opt(path, r.clone()).await?,
            None => store.get_opt(path).await?,
        };
        let Some(data) = data else {
            return Err(Fetch::Lost(format!("{path} is missing")));
        };
        if data.len() as u64 != len {
            why = format!(
                "{path}: read {} bytes where {len} were committed",
                data.len()
            );
            continue;
        }
        match mismatch(&data, parts) {
            Some((got, want)) => {
                why = format!("{path}: checksum {got:08x} where {want:08x} was committed");
            }
            None => return Ok(data),
        }
    }
    Err(Fetch::Lost(why))
}

/// The first part of `data` whose checksum is not the committed one: (found, committed).
fn mismatch(data: &[u8], parts: &[(u64, Option<u32>)]) -> Option<(u32, u32)> {
    let mut at = 0usize;
    for &(len, crc) in parts {
        let end = at
            + usize::try_from(len)
                .unwrap_or(usize::MAX)
                .min(data.len() - at);
        if let Some(want) = crc {
            let got = crc32c(&data[at..end]);
            if got != want {
                return Some((got, want));
            }
        }
        at = end;
    }
    None
}

/// The error when a task's output was lost too often to go on.
pub fn lost_too_often(stage: &str, task: usize, why: &str) -> Error {
    Error::DataLost(format!(
        "stage {stage} task {task}: its output was lost or corrupt {} times after it was \
         committed (last: {why}); the object store is losing or altering data",
        MAX_RECOVERIES + 1
    ))
}

/// Reads from a task's committed files with `read`; when it finds them lost, the task is made
/// again ([`Recover`]) and `read` tried on the replacement.
pub async fn with_recovery<T, F, Fut>(
    lineage: &dyn Recover,
    mut marker: TaskMarker,
    mut read: F,
) -> Result<T>
where
    F: FnMut(TaskMarker) -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, Fetch>>,
{
    loop {
        match read(marker.clone()).await {
            Ok(v) => return Ok(v),
            Err(Fetch::Failed(e)) => return Err(e),
            Err(Fetch::Lost(why)) => {
                marker = lineage
                    .recover(marker.stage, marker.task, marker.epoch, &why)
                    .await?;
            }
        }
    }
}
