//! Array jobs: a NumPy expression over Zarr arrays, computed blockwise.
//!
//! The planner ([`planner`]) cuts the checked expression ([`expr`]) into stages: every
//! reduction becomes a *partials* stage (one task per block of its operand, each reducing its
//! block to small partial states) and a *combine* stage (one task per block of the result,
//! merging the partials); a reduction's result that feeds more of the expression is kept as a
//! Zarr array under the job's scratch prefix. The rest of the expression runs in a final
//! *blocks* stage, one task per block of output chunks ([`eval`]). Output chunks are written
//! under each attempt's own prefix and moved into place by the commit ([`commit`]), which then
//! writes `zarr.json` and the `_SUCCESS` manifest.

pub mod block;
pub mod block_cache;
pub mod chunks;
pub mod commit;
pub mod eval;
mod kind;
/// The expression language, a crate of its own so that it builds and tests without the engine.
pub use kask_array_expr as expr;
pub mod matmul;
pub mod partial;
pub mod planner;
pub mod task;
pub mod zarr;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use kask_core::plan::{Plan, Stage};
use kask_core::{Error, Result};

pub use kind::Array;

use zarr::ArrayMeta;

/// The array part of a plan.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct ArrayPlan {
    /// Every input, as opened at plan time.
    pub inputs: BTreeMap<String, ArrayMeta>,
    /// The output array's shape.
    pub shape: Vec<u64>,
    /// The output array's chunk shape.
    pub chunks: Vec<u64>,
    /// The output's NumPy dtype name.
    pub dtype: String,
}

/// What the tasks of one array stage compute. Task `t` takes block `t` of `grid`, in
/// row-major order.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum ArrayStage {
    /// Partial states of reduction `node` (its pre-order index in the expression), one per
    /// block of its operand.
    Partials {
        /// The reduction.
        node: usize,
        /// Block shape, in the operand's index space.
        block: Vec<u64>,
        /// Blocks per operand axis.
        grid: Vec<u64>,
    },
    /// Reduction `node`'s result, one task per block of it, from stage `partials`.
    Combine {
        /// The reduction.
        node: usize,
        /// The partials stage.
        partials: usize,
        /// Block shape, in the result's index space.
        block: Vec<u64>,
        /// Blocks per result axis.
        grid: Vec<u64>,
        /// Chunk shape of the array the result is written to.
        chunks: Vec<u64>,
        /// Whether the result is the job's output (else a scratch array).
        output: bool,
    },
    /// The whole expression, one task per block of output chunks.
    Blocks {
        /// Block shape.
        block: Vec<u64>,
        /// Blocks per output axis.
        grid: Vec<u64>,
    },
}

/// The scratch directory of reduction `node`'s result, when later stages read it.
pub fn intermediate_dir(scratch: &str, node: usize) -> String {
    format!("{scratch}/arrays/n{node}")
}

impl ArrayPlan {
    /// The array part of `plan`.
    pub fn of(plan: &Plan) -> Result<ArrayPlan> {
        plan.detail()
    }
}

impl ArrayStage {
    /// What the tasks of `stage`, a stage of an array plan, compute.
    pub fn of(stage: &Stage) -> Result<ArrayStage> {
        stage.detail()?.ok_or_else(|| {
            Error::internal(format!(
                "stage {} of an array plan has no array work",
                stage.name
            ))
        })
    }
}
