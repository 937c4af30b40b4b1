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
    /// The columns (empty for an array).
    pub schema: Vec<ManifestColumn>,
    /// Input lines skipped as malformed (bag jobs with `onBadRecord: skip`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skipped_records: u64,
    /// The array, for a Zarr output (whose files are its chunks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array: Option<ManifestArray>,
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

/// A file the commit moves into the output.
#[derive(Clone, Debug, PartialEq)]
pub struct Part {
    /// Where the winning attempt wrote it.
    pub from: String,
    /// Its name under the output prefix.
    pub name: String,
    /// Rows (array elements) in it.
    pub rows: u64,
    /// Bytes.
    pub bytes: u64,
}

/// The part files of a table output: the last stage's winning files as `part-NNNNN.<ext>`.
async fn table_parts(store: &Store, plan: &Plan, ext: &str) -> Result<Vec<Part>> {
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
    Ok(winners
        .into_iter()
        .enumerate()
        .map(|(i, f)| Part {
            from: f.path,
            name: format!("part-{i:05}.{ext}"),
            rows: f.rows,
            bytes: f.bytes,
        })
        .collect())
}

/// Commits the job: final names, manifest, then scratch removal. Safe to run again after a
/// crash part-way: files already moved are recognised.
pub async fn commit_job(store: &Store, plan: &Plan) -> Result<Manifest> {
    let output = &plan.spec.output;
    let out_dir = output_dir(&output.path);
    let format = plan.spec.output_format();
    let ext = format.extension();
    let parts = match &plan.array {
        Some(_) => crate::array::commit::parts(store, plan).await?,
        None => table_parts(store, plan, ext).await?,
    };

    let previous = read_manifest(store, &output.path).await?;
    if previous.is_some() {
        if output.mode == OutputMode::Error {
            return Err(already_there(&output.path));
        }
        // The old result stops being one before its files are replaced.
        store.delete(&manifest_path(&output.path)).await?;
    }
    if plan.array.is_some() {
        // An array's chunk keys may clash with what an earlier array left there as file and
        // directory (a 1-d array's `c/0` under a 2-d array's `c/0/0`), and stray chunks would
        // read as part of the new array: clear the directory, except the scratch prefix,
        // before the chunks move in. No manifest names it any more, so nothing is lost.
        let scratch = format!("{out_dir}/_kask/");
        for (path, _) in store.list(&out_dir).await? {
            if !path.starts_with(&scratch) {
                store.delete(&path).await?;
            }
        }
        store.prune_empty_dirs(&out_dir);
    }

    let mut files = Vec::new();
    for p in &parts {
        move_file(store, &p.from, &format!("{out_dir}/{}", p.name), p.bytes).await?;
        files.push(ManifestFile {
            path: p.name.clone(),
            rows: p.rows,
            bytes: p.bytes,
        });
    }
    let array = match &plan.array {
        Some(a) => {
            let meta = crate::array::commit::metadata(store, &out_dir, a)?;
            store
                .put(&format!("{out_dir}/zarr.json"), Bytes::from(meta))
                .await?;
            Some(ManifestArray {
                shape: a.shape.clone(),
                chunks: a.chunks.clone(),
                dtype: a.dtype.clone(),
            })
        }
        None => None,
    };
    if files.is_empty() && array.is_none() {
        let name = format!("part-00000.{ext}");
        let bytes = output::write_empty(
            store,
            &format!("{out_dir}/{name}"),
            format,
            plan.output_schema(),
        )
        .await?;
        files.push(ManifestFile {
            path: name,
            rows: 0,
            bytes,
        });
    }
    if let (Some(prev), None) = (previous, &plan.array) {
        for old in prev
            .files
            .iter()
            .filter(|o| !files.iter().any(|f| f.path == o.path))
        {
            store.delete(&format!("{out_dir}/{}", old.path)).await?;
        }
    }

    let mut skipped_records = 0;
    if plan.spec.bag.is_some()
        && let Some(first) = plan.stages.first()
    {
        for t in 0..first.tasks {
            if let Some(m) = read_marker(store, plan, first.id, t).await? {
                skipped_records += m.skipped;
            }
        }
    }
    let schema = plan.output_schema();
    let manifest = Manifest {
        version: 1,
        job_id: plan.job_id.clone(),
        format,
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
        skipped_records,
        array,
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
