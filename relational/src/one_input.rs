//! Kask's plan nodes and expressions that stand over a single input rebuild themselves from new
//! children; this is their shared check that there is exactly one.

use datafusion::error::{DataFusionError, Result};

/// The only one of `inputs`, or an internal error naming `node` and how many it was given.
pub fn only_input<T>(mut inputs: Vec<T>, node: &str) -> Result<T> {
    match inputs.len() {
        1 => Ok(inputs.swap_remove(0)),
        n => Err(DataFusionError::Internal(format!(
            "{node} has one input, not {n}"
        ))),
    }
}
