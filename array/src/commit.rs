//! What an array job's commit moves into place: every chunk the last stage's winning attempts
//! wrote, under its chunk key, and the `zarr.json` that makes the directory an array.

use super::expr::DType;
use super::{ArrayPlan, zarr};
use kask_core::error::{Error, Result};
use kask_core::marker::TaskMarker;
use kask_core::parts::Part;
use kask_core::plan::Plan;
use kask_core::store::Store;

/// The chunk files to move, named by chunk key, from the last stage's newest markers.
pub fn parts(plan: &Plan, markers: &[TaskMarker]) -> Result<Vec<Part>> {
    let last = plan
        .stages
        .last()
        .ok_or_else(|| Error::internal("a plan without stages"))?;
    let mut parts = Vec::new();
    for m in markers {
        let dir = plan.attempt_dir(last.id, m.task, &m.attempt);
        for f in &m.files {
            let key = f
                .path
                .strip_prefix(&format!("{dir}/"))
                .ok_or_else(|| Error::internal(format!("{} is outside its attempt {dir}", f.path)))?
                .to_string();
            parts.push(Part {
                from: f.path.clone(),
                name: key,
                rows: f.rows,
                bytes: f.bytes,
                crc32c: f.crc32c,
                task: Some(m.task),
            });
        }
    }
    parts.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(parts)
}

/// The output's `zarr.json`.
pub fn metadata(store: &Store, out_dir: &str, array: &ArrayPlan) -> Result<Vec<u8>> {
    let dtype: DType = zarr::dtype_from_name(&array.dtype)
        .ok_or_else(|| Error::internal(format!("the plan names dtype {:?}", array.dtype)))?;
    let a = zarr::new_array(
        zarr::storage_at(store, out_dir),
        &array.shape,
        &array.chunks,
        dtype,
    )?;
    zarr::metadata_json(&a)
}
