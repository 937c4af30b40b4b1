//! The `_SUCCESS` manifest: what a committed result consists of. Readers that go through it
//! see exactly one whole result; every file it names carries its size, rows and CRC-32C.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store::Store;
use kask_api::Format;
use kask_api::paths::SCRATCH_DIR;

/// The manifest's file name.
pub const MANIFEST: &str = "_SUCCESS";

/// The manifest format this kask writes. Version 2 added checksums, the job's name and
/// per-job part names.
pub const MANIFEST_VERSION: u32 = 2;

/// The `_SUCCESS` manifest.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Manifest format version.
    pub version: u32,
    /// The job that wrote it (the DaskJob's UID, or a local run's id).
    pub job_id: String,
    /// The job's name, for people (`namespace/name` on a cluster).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub job: String,
    /// File format of the parts.
    pub format: Format,
    /// Total rows.
    pub rows: u64,
    /// The parts, in order (for an array, its chunks and `zarr.json`).
    pub files: Vec<ManifestFile>,
    /// The columns (empty for an array).
    pub schema: Vec<ManifestColumn>,
    /// Input lines skipped as malformed (bag jobs with `onBadRecord: skip`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skipped_records: u64,
    /// The array, for a Zarr output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array: Option<ManifestArray>,
    /// When it was committed (RFC 3339).
    pub created_at: String,
    /// The job's history (`kask report`), relative to this output's folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<String>,
}

impl Manifest {
    /// Who wrote it, for messages: `job "ns/name" (id)`, or the id alone.
    pub fn writer(&self) -> String {
        describe_job(&self.job_id, &self.job)
    }

    /// Whether a file under the output (relative to it) is one of this result's.
    pub fn names(&self, rel: &str) -> bool {
        self.files.iter().any(|f| f.path == rel)
    }
}

/// A job for messages: `job "ns/name" (id)`, or `job id` when it has no name.
pub fn describe_job(id: &str, name: &str) -> String {
    if name.is_empty() {
        format!("job {id}")
    } else {
        format!("job {name:?} ({id})")
    }
}

/// One file of the result.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ManifestFile {
    /// Path relative to the output prefix, e.g. `part-00000-<job id>.parquet`.
    pub path: String,
    /// Rows in it (array elements for a chunk).
    pub rows: u64,
    /// Bytes.
    pub bytes: u64,
    /// CRC-32C of its bytes, as eight hex digits.
    #[serde(
        default,
        with = "crate::store::checksum::hex",
        skip_serializing_if = "Option::is_none"
    )]
    pub crc32c: Option<u32>,
}

pub use crate::parts::ManifestArray;

/// One column of the result.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ManifestColumn {
    /// Name.
    pub name: String,
    /// Arrow type, as Arrow prints it.
    #[serde(rename = "type")]
    pub type_: String,
    /// Whether it may hold nulls.
    pub nullable: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// An output prefix without surrounding slashes.
pub fn output_dir(output: &str) -> String {
    output.trim_matches('/').to_string()
}

/// The manifest path of an output prefix.
pub fn manifest_path(output: &str) -> String {
    format!("{}/{MANIFEST}", output_dir(output))
}

/// The folder of an output's commit records.
pub fn records_dir(output: &str) -> String {
    format!("{}/{SCRATCH_DIR}/commits", output_dir(output))
}

/// Where the record of job `job_id`'s commit to `output` is kept: a copy of its manifest, so
/// that a commit run again after the job's result was replaced by a later one still knows it
/// had succeeded.
pub fn record_path(output: &str, job_id: &str) -> String {
    format!("{}/{job_id}.json", records_dir(output))
}

fn parse(output: &str, path: &str, body: &[u8]) -> Result<Manifest> {
    serde_json::from_slice(body).map_err(|e| Error::Output {
        path: output.to_string(),
        message: format!("{path} is not a kask manifest: {e}"),
    })
}

/// Reads the manifest at an output prefix, if there is one.
pub async fn read_manifest(store: &Store, output: &str) -> Result<Option<Manifest>> {
    let path = manifest_path(output);
    match store.get_opt(&path).await? {
        None => Ok(None),
        Some(b) => parse(output, &path, &b).map(Some),
    }
}

/// Reads the record of job `job_id`'s commit to `output`, if it committed there.
pub async fn read_record(store: &Store, output: &str, job_id: &str) -> Result<Option<Manifest>> {
    let path = record_path(output, job_id);
    match store.get_opt(&path).await? {
        None => Ok(None),
        Some(b) => parse(output, &path, &b).map(Some),
    }
}

/// The manifest as it is stored.
pub fn to_json(m: &Manifest) -> Result<bytes::Bytes> {
    serde_json::to_vec_pretty(m)
        .map(bytes::Bytes::from)
        .map_err(|e| Error::internal(format!("serializing the manifest: {e}")))
}
