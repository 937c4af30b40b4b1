//! The exactly-once output protocol. Task attempts write under their own prefixes and commit
//! with create-only markers ([`marker`]); the job commit gives the winning files their final
//! names (`part-00000.parquet`, ...) and then writes the `_SUCCESS` manifest, itself
//! create-only. Until the manifest exists, nothing at the output path is a result.

pub mod marker;
pub mod output;

use bytes::Bytes;
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::store::Store;
use kask_api::{Format, OutputMode};
use marker::read_marker;

/// The manifest's file name.
pub const MANIFEST: &str = "_SUCCESS";

/// The `_SUCCESS` manifest: what the result consists of.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Manifest format version.
    pub version: u32,
    /// The job that wrote it.
    pub job_id: String,
    /// File format of the parts.
    pub format: Format,
    /// Total rows.
    pub rows: u64,
    /// The parts, in order.
    pub files: Vec<ManifestFile>,
    /// The columns.
    pub schema: Vec<ManifestColumn>,
    /// When it was committed (RFC 3339).
    pub created_at: String,
}

/// One part of the result.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ManifestFile {
    /// Path relative to the output prefix, e.g. `part-00000.parquet`.
    pub path: String,
    /// Rows in it.
    pub rows: u64,
    /// Bytes.
    pub bytes: u64,
}

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

fn output_dir(plan_output: &str) -> String {
    plan_output.trim_matches('/').to_string()
}

/// The manifest path of an output prefix.
pub fn manifest_path(output: &str) -> String {
    format!("{}/{MANIFEST}", output_dir(output))
}

/// Reads the manifest at an output prefix, if there is one.
pub async fn read_manifest(store: &Store, output: &str) -> Result<Option<Manifest>> {
    let path = manifest_path(output);
    match store.get_opt(&path).await? {
        None => Ok(None),
        Some(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| Error::Output {
                path: output.to_string(),
                message: format!("{path} is not a kask manifest: {e}"),
            }),
    }
}

/// With `mode: error`, refuses an output that already holds a result.
pub async fn check_output_free(store: &Store, output: &str, mode: OutputMode) -> Result<()> {
    if mode == OutputMode::Error && store.get_opt(&manifest_path(output)).await?.is_some() {
        return Err(already_there(output));
    }
    Ok(())
}

fn already_there(output: &str) -> Error {
    Error::Output {
        path: output.to_string(),
        message: format!(
            "already holds a result ({} exists); set output.mode: overwrite to replace it, or choose another path",
            manifest_path(output)
        ),
    }
}

/// Commits the job: final names, manifest, then scratch removal. Safe to run again after a
/// crash part-way: files already moved are recognised.
pub async fn commit_job(store: &Store, plan: &Plan) -> Result<Manifest> {
    let output = &plan.spec.output;
    let out_dir = output_dir(&output.path);
    let last = plan
        .stages
        .last()
        .ok_or_else(|| Error::internal("a plan without stages"))?;

    let mut winners = Vec::new();
    for t in 0..last.tasks {
        let m = read_marker(store, plan, last.id, t).await?.ok_or_else(|| {
            Error::internal(format!(
                "commit: stage {} task {t} has not committed",
                last.name
            ))
        })?;
        winners.extend(m.files);
    }

    let previous = read_manifest(store, &output.path).await?;
    if previous.is_some() {
        if output.mode == OutputMode::Error {
            return Err(already_there(&output.path));
        }
        // The old result stops being one before its files are replaced.
        store.delete(&manifest_path(&output.path)).await?;
    }

    let ext = output.format.extension();
    let mut files = Vec::new();
    for (i, f) in winners.iter().enumerate() {
        let name = format!("part-{i:05}.{ext}");
        let target = format!("{out_dir}/{name}");
        move_file(store, &f.path, &target, f.bytes).await?;
        files.push(ManifestFile {
            path: name,
            rows: f.rows,
            bytes: f.bytes,
        });
    }
    if files.is_empty() {
        let name = format!("part-00000.{ext}");
        let bytes = output::write_empty(
            store,
            &format!("{out_dir}/{name}"),
            output.format,
            plan.output_schema(),
        )
        .await?;
        files.push(ManifestFile {
            path: name,
            rows: 0,
            bytes,
        });
    }
    if let Some(prev) = previous {
        for old in prev
            .files
            .iter()
            .filter(|o| !files.iter().any(|f| f.path == o.path))
        {
            store.delete(&format!("{out_dir}/{}", old.path)).await?;
        }
    }

    let schema = plan.output_schema();
    let manifest = Manifest {
        version: 1,
        job_id: plan.job_id.clone(),
        format: output.format,
        rows: files.iter().map(|f| f.rows).sum(),
        files,
        schema: schema
            .fields()
            .iter()
            .map(|f| ManifestColumn {
                name: f.name().clone(),
                type_: f.data_type().to_string(),
                nullable: f.is_nullable(),
            })
            .collect(),
        created_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
    };
    let body = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::internal(e.to_string()))?;
    if !store
        .put_create(&manifest_path(&output.path), Bytes::from(body))
        .await?
    {
        return Err(already_there(&output.path));
    }
    store.delete_prefix(&plan.scratch()).await?;
    let kask_dir = format!("{out_dir}/_kask");
    if store.list(&kask_dir).await?.is_empty() {
        store.delete_prefix(&kask_dir).await?;
    }
    Ok(manifest)
}

/// Moves an attempt's file to its final name; a file already moved by an earlier, interrupted
/// commit (source gone, target of the same size) counts as moved.
async fn move_file(store: &Store, from: &str, to: &str, bytes: u64) -> Result<()> {
    match store.inner.rename(&store.path(from), &store.path(to)).await {
        Ok(()) => Ok(()),
        Err(object_store::Error::NotFound { .. }) => {
            let done = store
                .list(to)
                .await?
                .iter()
                .any(|(p, size)| p == to && *size == bytes);
            if done {
                Ok(())
            } else {
                Err(Error::internal(format!(
                    "commit: {from} is missing and {to} is not in place"
                )))
            }
        }
        Err(e) => Err(store.err(format!("moving {from} to {to}"), e)),
    }
}
