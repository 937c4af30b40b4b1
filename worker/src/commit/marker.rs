//! Task commit markers: the first attempt of a task to create its marker (create-only put)
//! wins; later stages and the commit read only files that markers name.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::shuffle::PartRange;
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
    /// For shuffle files: where each reduce partition sits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<PartRange>,
}

/// What a committed task did; also the task's termination message in a pod.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TaskMarker {
    /// Stage index.
    pub stage: usize,
    /// Task index.
    pub task: usize,
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
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Reads a task's marker, if the task has committed.
pub async fn read_marker(
    store: &Store,
    plan: &Plan,
    stage: usize,
    task: usize,
) -> Result<Option<TaskMarker>> {
    let path = plan.marker_path(stage, task);
    match store.get_opt(&path).await? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::internal(format!("marker {path} is not valid: {e}"))),
    }
}

/// Commits a task attempt: `Ok(None)` when this attempt won, `Ok(Some(winner))` when
/// another attempt had committed first (this attempt's files are then deleted).
pub async fn commit_task(
    store: &Store,
    plan: &Plan,
    marker: &TaskMarker,
) -> Result<Option<TaskMarker>> {
    let path = plan.marker_path(marker.stage, marker.task);
    let body = serde_json::to_vec_pretty(marker).map_err(|e| Error::internal(e.to_string()))?;
    if store.put_create(&path, Bytes::from(body)).await? {
        return Ok(None);
    }
    for f in &marker.files {
        store.delete(&f.path).await?;
    }
    read_marker(store, plan, marker.stage, marker.task)
        .await?
        .map(Some)
        .ok_or_else(|| Error::internal(format!("marker {path} exists but cannot be read")))
}
