//! The `DaskJob` custom resource (`kask.dev/v1alpha1`): its types, reading it from YAML, and
//! structural validation. Operator and worker both depend on this crate alone for the API.

pub mod load;
pub mod spec;
pub mod status;
pub mod validate;

pub use load::{LoadError, load_job, parse_job};
pub use spec::*;
pub use status::*;
pub use validate::{FieldError, StepRef, ValidationErrors, validate};

use kube::CustomResourceExt;

/// The CRD manifest, as committed in `crds/` and printed by `kask crd`.
pub fn crd_yaml() -> String {
    let crd = DaskJob::crd();
    let body = serde_yaml::to_string(&crd).unwrap_or_else(|e| {
        // The CRD is built from our own types: failing to serialize it is a bug, not input.
        panic!("serializing the DaskJob CRD failed: {e}")
    });
    format!("# Generated from the Rust types in api/ by `kask crd`; do not edit.\n---\n{body}")
}
