//! The array job kind: a NumPy expression over named Zarr arrays.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An array job: named Zarr arrays and one NumPy expression over them.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArrayJob {
    /// Named Zarr arrays (v3, or v2 for reading). Each name can appear in `expr`.
    pub inputs: BTreeMap<String, ArrayInput>,
    /// A NumPy expression, e.g. `(a * b).sum(axis=0)`, `a @ b.T` or `where(a > 0, a, 0)`.
    pub expr: String,
    /// The output's chunk shape, one length per output dimension (default: derived from the
    /// inputs' chunks as dask.array does; see the README).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunks: Option<Vec<u64>>,
}

/// One Zarr array.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArrayInput {
    /// The array's directory relative to `storage.url`, e.g. `arrays/a.zarr`.
    pub path: String,
    /// What a chunk missing from storage means: `error` (default; a lost chunk fails the job
    /// before any task runs) or `fill` (the array's fill value, as Zarr readers assume; writers
    /// that skip empty chunks, like zarr-python by default, need this).
    #[serde(default)]
    pub missing_chunks: MissingChunks,
}

/// What a chunk missing from storage means.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MissingChunks {
    /// The job fails, naming the array and the chunk.
    #[default]
    Error,
    /// The chunk holds the array's fill value.
    Fill,
}

impl ArrayJob {
    /// Structural checks; names, shapes and dtypes are checked when the worker plans the job,
    /// from the arrays' metadata.
    pub(crate) fn check(&self, e: &mut crate::validate::Errors) {
        if self.inputs.is_empty() {
            e.add("spec.array.inputs", "needs at least one Zarr array");
        }
        for (name, input) in &self.inputs {
            let at = format!("spec.array.inputs.{name}");
            if !is_identifier(name) {
                e.add(
                    &at,
                    format!(
                        "{name:?} cannot be named in an expression; use letters, digits and _, not starting with a digit"
                    ),
                );
            }
            crate::validate::check_relative_path(&format!("{at}.path"), &input.path, e);
        }
        if self.expr.trim().is_empty() {
            e.add(
                "spec.array.expr",
                "needs a NumPy expression, e.g. \"(a * b).sum(axis=0)\"",
            );
        }
        if let Some(chunks) = &self.chunks
            && chunks.contains(&0)
        {
            e.add("spec.array.chunks", "every chunk length must be at least 1");
        }
    }
}

/// Whether a name can stand in an expression (a Python identifier, ASCII only).
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
