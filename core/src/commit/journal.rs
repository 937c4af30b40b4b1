//! The commit's journal (`<scratch>/commit.json`): the manifest a commit is about to publish,
//! where each of its files comes from, and the manifest it replaces. It is written under the
//! output's lock before any file moves, so whoever runs next (the commit again, the job's
//! cleanup, or a job taking over the lock) can finish the commit or undo it, and knows which
//! files are Kask's.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::manifest::{Manifest, output_dir};
use crate::error::{Error, Result};
use crate::store::Store;
use kask_api::paths::SCRATCH_DIR;

/// One file moving into the output.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Move {
    /// Where it is now, relative to the storage root.
    pub from: String,
    /// Its name under the output.
    pub to: String,
    /// Its size, to recognise it once moved.
    pub bytes: u64,
    /// Its CRC-32C, when known.
    #[serde(
        default,
        with = "crate::store::checksum::hex",
        skip_serializing_if = "Option::is_none"
    )]
    pub crc32c: Option<u32>,
    /// The task that made it, as (stage, task, marker epoch), to make it again if it is lost
    /// before it moves; none for files the commit writes itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<(usize, usize, u32)>,
}

/// A commit in progress.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Journal {
    /// The result being published.
    pub manifest: Manifest,
    /// Where its files come from.
    pub moves: Vec<Move>,
    /// The result it replaces, whose files are removed once the new manifest is in place.
    pub previous: Option<Manifest>,
}

impl Journal {
    /// The files of the previous result that the new one does not name: removed after the
    /// new manifest is published.
    pub fn retired(&self) -> Vec<String> {
        let Some(prev) = &self.previous else {
            return vec![];
        };
        prev.files
            .iter()
            .filter(|f| !self.manifest.names(&f.path))
            .map(|f| f.path.clone())
            .collect()
    }
}

/// The journal path of job `job_id` under `output`.
pub fn journal_path(output: &str, job_id: &str) -> String {
    format!("{}/{SCRATCH_DIR}/{job_id}/commit.json", output_dir(output))
}

/// Reads job `job_id`'s journal under `output`, if it has one.
pub async fn read(store: &Store, output: &str, job_id: &str) -> Result<Option<Journal>> {
    let path = journal_path(output, job_id);
    match store.get_opt(&path).await? {
        None => Ok(None),
        Some(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| Error::internal(format!("{path} is not a commit journal: {e}"))),
    }
}

/// Writes job `job_id`'s journal.
pub async fn write(store: &Store, output: &str, job_id: &str, journal: &Journal) -> Result<()> {
    let body = serde_json::to_vec_pretty(journal)
        .map_err(|e| Error::internal(format!("serializing the commit journal: {e}")))?;
    store
        .put(&journal_path(output, job_id), Bytes::from(body))
        .await
}
