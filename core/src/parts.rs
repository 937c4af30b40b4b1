//! The files that make up a result, as a job kind names them to the commit: each is moved
//! into the output under its name when the commit lands.

use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::marker::TaskMarker;
use crate::plan::{Plan, Target};
use crate::store::Store;

/// A file the commit moves into the output.
#[derive(Clone, Debug, PartialEq)]
pub struct Part {
    /// Where it is now, relative to the storage root.
    pub from: String,
    /// Its name under the output prefix.
    pub name: String,
    /// Rows (array elements) in it.
    pub rows: u64,
    /// Bytes.
    pub bytes: u64,
    /// Its CRC-32C, when known.
    pub crc32c: Option<u32>,
    /// The last-stage task that wrote it (none for files the commit writes itself).
    pub task: Option<usize>,
}

/// What the commit publishes for one result.
pub struct OutputParts {
    /// The files, in order.
    pub parts: Vec<Part>,
    /// The result's columns (empty for an array).
    pub schema: SchemaRef,
    /// An array result's shape.
    pub array: Option<ManifestArray>,
    /// Input records skipped as bad (bag jobs with `onError: skip`).
    pub skipped_records: u64,
}

impl OutputParts {
    /// A table's parts: the last stage's files in task order, under the stage's schema.
    pub fn table(plan: &Plan, target: &Target, markers: &[TaskMarker]) -> OutputParts {
        let schema = plan
            .stages
            .get(target.stage)
            .map(|s| crate::output::plain_schema(&s.output_schema.schema()))
            .unwrap_or_else(|| Arc::new(Schema::empty()));
        let ext = target.format.extension();
        let folders = target.output.partition_by.len();
        OutputParts {
            parts: table_parts(plan, markers, ext, folders),
            schema,
            array: None,
            skipped_records: 0,
        }
    }
}

/// A table's parts: the last stage's files in task order, named `part-NNNNN-<job id>.<ext>`,
/// each below the `folders` folders (`key=value`, written by column) it was written in.
pub fn table_parts(plan: &Plan, markers: &[TaskMarker], ext: &str, folders: usize) -> Vec<Part> {
    markers
        .iter()
        .flat_map(|m| m.files.iter().map(move |f| (m.task, f)))
        .enumerate()
        .map(|(i, (task, f))| Part {
            from: f.path.clone(),
            name: format!(
                "{}part-{i:05}-{}.{ext}",
                folders_of(&f.path, folders),
                plan.job_id
            ),
            rows: f.rows,
            bytes: f.bytes,
            crc32c: f.crc32c,
            task: Some(task),
        })
        .collect()
}

/// The last `n` folders of `path`, each followed by `/`.
fn folders_of(path: &str, n: usize) -> String {
    let segments: Vec<&str> = path.split('/').collect();
    let dirs = &segments[..segments.len().saturating_sub(1)];
    dirs[dirs.len().saturating_sub(n)..]
        .iter()
        .map(|d| format!("{d}/"))
        .collect()
}

/// Writes a file the commit makes itself (an array's `zarr.json`, an empty result) into the
/// scratch space, as a part to move in.
pub async fn written(
    store: &Store,
    from: String,
    name: String,
    rows: u64,
    body: Bytes,
) -> Result<Part> {
    let part = Part {
        bytes: body.len() as u64,
        crc32c: Some(crate::store::checksum::crc32c(&body)),
        from,
        name,
        rows,
        task: None,
    };
    store.put(&part.from, body).await?;
    Ok(part)
}

/// The shape of an array result.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ManifestArray {
    /// Shape.
    pub shape: Vec<u64>,
    /// Chunk shape.
    pub chunks: Vec<u64>,
    /// NumPy dtype name.
    pub dtype: String,
}
