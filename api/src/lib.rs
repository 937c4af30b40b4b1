//! The `DaskJob` custom resource (`kask.dev/v1alpha1`): its types, reading it from YAML, and
//! structural validation. Operator and worker both depend on this crate alone for the API.

pub mod groups;
pub mod load;
pub mod report;
pub mod spec;
pub mod status;
pub mod validate;

pub use load::{LoadError, load_job, parse_job};
pub use spec::*;
pub use status::*;
pub use validate::{FieldError, StepRef, ValidationErrors, validate};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// The one spec field that may change after creation.
pub const MUTABLE_SPEC_FIELD: &str = "suspend";

/// The DaskJob CRD: the schema the Rust types generate, plus a CEL rule that makes the spec
/// immutable except `suspend`. The rule is derived from the schema's own property list, so a
/// new field is covered without an edit here.
pub fn crd() -> CustomResourceDefinition {
    let mut crd = DaskJob::crd();
    for version in &mut crd.spec.versions {
        let Some(spec) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
            .and_then(|s| s.properties.as_mut())
            .and_then(|p| p.get_mut("spec"))
        else {
            continue;
        };
        let fields: Vec<String> = spec
            .properties
            .as_ref()
            .map(|p| p.keys().filter(|k| *k != MUTABLE_SPEC_FIELD).cloned().collect())
            .unwrap_or_default();
        let rule = fields
            .iter()
            .map(|f| {
                format!("(has(self.{f}) == has(oldSelf.{f}) && (!has(self.{f}) || self.{f} == oldSelf.{f}))")
            })
            .collect::<Vec<_>>()
            .join(" && ");
        spec.x_kubernetes_validations = Some(vec![
            k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::ValidationRule {
                rule,
                message: Some(format!(
                    "a DaskJob's spec cannot change after creation, except spec.{MUTABLE_SPEC_FIELD}; delete the job and create it again"
                )),
                reason: Some("FieldValueForbidden".into()),
                ..Default::default()
            },
        ]);
    }
    crd
}

/// The CRD manifest, as committed in `crds/` and printed by `kask crd`.
pub fn crd_yaml() -> String {
    let body = serde_yaml::to_string(&crd()).unwrap_or_else(|e| {
        // The CRD is built from our own types: failing to serialize it is a bug, not input.
        panic!("serializing the DaskJob CRD failed: {e}")
    });
    format!("# Generated from the Rust types in api/ by `kask crd`; do not edit.\n---\n{body}")
}
