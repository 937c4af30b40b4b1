//! Task commit markers: the first attempt of a task to create its marker (a create-only put)
//! wins; later stages and the commit read only files that markers name.
//!
//! A marker has an epoch. Epoch 0 is the task's commit. When a later stage finds a committed
//! file lost or corrupt, the task is run again and its new files are committed as epoch 1
//! (then 2, ...), again create-only, so that two readers finding the same loss agree on one
//! replacement; readers take each task's newest epoch ([`latest_markers`]).

use std::collections::BTreeMap;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::store::Store;

/// A file a task attempt wrote.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TaskFile {
    /// Path relative to the storage root.
    pub path: String,
    /// Rows in the file.
    pub rows: u64,
    /// Bytes.
    pub bytes: u64,
    /// CRC-32C of the whole file.
    #[serde(
        default,
        with = "crate::store::checksum::hex",
        skip_serializing_if = "Option::is_none"
    )]
    pub crc32c: Option<u32>,
    /// For shuffle files: where each reduce partition sits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<PartRange>,
    /// For shuffle files: the size of the windows a long range is checked in
    /// ([`PartRange::windows`]); 0 when no range has windows.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub window: u64,
    /// For a sorted run ([`crate::plan::Sink::Ranges`]): the sort keys of rows spread
    /// through it, for a later stage to cut key ranges of about equal rows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<KeySample>,
}

/// A row of a sorted run and its sort key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KeySample {
    /// Its row number in the run.
    pub row: u64,
    /// Its sort key, in a byte form that compares as the rows sort, as hex.
    pub key: String,
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

/// What a committed task did; also the task's termination message in a pod.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TaskMarker {
    /// Stage index.
    pub stage: usize,
    /// Task index.
    pub task: usize,
    /// 0 for the task's commit; n when its files were lost or corrupt and it ran again.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub epoch: u32,
    /// The attempt that won.
    pub attempt: String,
    /// Its files.
    pub files: Vec<TaskFile>,
    /// Rows read.
    pub rows_in: u64,
    /// Bytes read.
    pub bytes_in: u64,
    /// Rows written.
    pub rows_out: u64,
    /// Bytes written.
    pub bytes_out: u64,
    /// Wall-clock seconds of the attempt.
    pub seconds: f64,
    /// Input lines skipped as malformed (bag jobs with `onBadRecord: skip`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skipped: u64,
    /// Bytes its operators spilled to disk to stay within the memory budget.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub spilled_bytes: u64,
    /// The Arrow schema of the task's output file, for outputs whose columns are only known
    /// once the data is seen (a bag's records written as Parquet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<crate::plan::PlanSchema>,
    /// The distinct hashes of the task's shuffle keys, when a later stage filters its rows by
    /// them (`rows`: how many); none when it had too many keys to record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_hashes: Option<TaskFile>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

/// How many markers are read at once.
const READ_CONCURRENCY: usize = 16;

fn parse(path: &str, bytes: &[u8]) -> Result<TaskMarker> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::internal(format!("marker {path} is not valid: {e}")))
}

/// Reads a task's marker of epoch `epoch`, if there is one.
pub async fn read_marker_at(
    store: &Store,
    plan: &Plan,
    stage: usize,
    task: usize,
    epoch: u32,
) -> Result<Option<TaskMarker>> {
    let path = plan.marker_path_at(stage, task, epoch);
    match store.get_opt(&path).await? {
        None => Ok(None),
        Some(bytes) => parse(&path, &bytes).map(Some),
    }
}

/// Reads a task's commit (its epoch-0 marker), if the task has committed.
pub async fn read_marker(
    store: &Store,
    plan: &Plan,
    stage: usize,
    task: usize,
) -> Result<Option<TaskMarker>> {
    read_marker_at(store, plan, stage, task, 0).await
}

/// A task's newest marker (its commit, or the latest re-run after a loss), if it committed.
pub async fn latest_marker(
    store: &Store,
    plan: &Plan,
    stage: usize,
    task: usize,
) -> Result<Option<TaskMarker>> {
    let mut found = None;
    // Epochs are made one after another, each from the one before.
    for epoch in 0.. {
        match read_marker_at(store, plan, stage, task, epoch).await? {
            Some(m) => found = Some(m),
            None => break,
        }
    }
    Ok(found)
}

/// The task and epoch a marker file name stands for: `7.json` is task 7 epoch 0, `7.2.json`
/// task 7 epoch 2.
pub fn marker_name(name: &str) -> Option<(usize, u32)> {
    let stem = name.strip_suffix(".json")?;
    match stem.split_once('.') {
        None => Some((stem.parse().ok()?, 0)),
        Some((t, e)) => Some((t.parse().ok()?, e.parse().ok()?)),
    }
}

/// Every task's newest marker of a finished stage, in task order. A task without a marker is
/// an error: the stage was meant to be done.
pub async fn latest_markers(store: &Store, plan: &Plan, stage: usize) -> Result<Vec<TaskMarker>> {
    let st = &plan.stages[stage];
    let dir = plan.markers_dir(stage);
    let mut newest: BTreeMap<usize, u32> = BTreeMap::new();
    for (path, _) in store.list(&dir).await? {
        let name = path.rsplit('/').next().unwrap_or_default();
        if let Some((task, epoch)) = marker_name(name) {
            let e = newest.entry(task).or_insert(epoch);
            *e = (*e).max(epoch);
        }
    }
    if let Some(missing) = (0..st.tasks).find(|t| !newest.contains_key(t)) {
        return Err(Error::internal(format!(
            "stage {} task {missing} has no commit marker but its stage is done",
            st.name
        )));
    }
    futures::stream::iter(0..st.tasks)
        .map(|t| {
            let epoch = newest.get(&t).copied().unwrap_or(0);
            async move {
                read_marker_at(store, plan, stage, t, epoch)
                    .await?
                    .ok_or_else(|| {
                        Error::internal(format!(
                            "marker {} was listed but cannot be read",
                            plan.marker_path_at(stage, t, epoch)
                        ))
                    })
            }
        })
        .buffered(READ_CONCURRENCY)
        .try_collect()
        .await
}

/// Commits a task attempt at its marker's epoch: `Ok(None)` when this attempt won,
/// `Ok(Some(winner))` when another attempt had committed first (this attempt's files are then
/// deleted).
pub async fn commit_task(
    store: &Store,
    plan: &Plan,
    marker: &TaskMarker,
) -> Result<Option<TaskMarker>> {
    let path = plan.marker_path_at(marker.stage, marker.task, marker.epoch);
    let body = serde_json::to_vec_pretty(marker).map_err(|e| Error::internal(e.to_string()))?;
    if store.put_create(&path, Bytes::from(body)).await? {
        return Ok(None);
    }
    // The attempt's whole folder: its files and what else it left (upload records).
    store
        .delete_prefix(&plan.attempt_dir(marker.stage, marker.task, &marker.attempt))
        .await?;
    read_marker_at(store, plan, marker.stage, marker.task, marker.epoch)
        .await?
        .map(Some)
        .ok_or_else(|| Error::internal(format!("marker {path} exists but cannot be read")))
}

/// Where one reduce partition sits in a map task's shuffle object.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PartRange {
    /// First byte.
    pub offset: u64,
    /// Length in bytes (0: no rows for this partition).
    pub len: u64,
    /// Rows.
    pub rows: u64,
    /// The bytes its rows take in memory once decoded (the range itself is compressed);
    /// 0 in markers written before this was recorded, whose ranges were not compressed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub decoded: u64,
    /// CRC-32C of the range's bytes, which the reducer checks.
    #[serde(
        default,
        with = "crate::store::checksum::hex",
        skip_serializing_if = "Option::is_none"
    )]
    pub crc32c: Option<u32>,
    /// For a range longer than its file's `window`: the CRC-32C of each window of it in turn
    /// (the last one shorter), so that a reducer can check and decode it piece by piece
    /// instead of holding it whole.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<u32>,
    /// For a chunk of a sorted run ([`crate::plan::Sink::Ranges`]): the sort key of its first
    /// row, in a byte form that compares as the rows sort, as hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_key: Option<String>,
    /// The sort key of the chunk's last row, in the same form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_key: Option<String>,
}

impl PartRange {
    /// The bytes its rows take in memory once decoded.
    pub fn decoded_bytes(&self) -> u64 {
        if self.decoded > 0 {
            self.decoded
        } else {
            self.len
        }
    }
}
