//! The `DaskJob` custom resource (`kask.dev/v1alpha1`): its types, reading it from YAML, and
//! structural validation. Operator and worker both depend on this crate alone for the API.

pub mod array;
pub mod bag;
pub mod groups;
pub mod history;
pub mod load;
pub mod paths;
pub mod pods;
pub mod report;
pub mod spec;
pub mod sql;
pub mod status;
pub mod validate;

pub use array::*;
pub use bag::*;
pub use load::{LoadError, load_job, parse_job};
pub use pods::PodTemplate;
pub use spec::*;
pub use sql::SqlJob;
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
            .map(|p| {
                p.keys()
                    .filter(|k| *k != MUTABLE_SPEC_FIELD)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let rule = fields
            .iter()
            .map(|f| {
                format!("(has(self.{f}) == has(oldSelf.{f}) && (!has(self.{f}) || self.{f} == oldSelf.{f}))")
            })
            .collect::<Vec<_>>()
            .join(" && ");
        add_yaml11_on_alias(spec);
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

/// A merge's `on` also as the property `true`: kubectl (YAML 1.1) sends an unquoted `on:` key
/// as `true`, which the API server would otherwise refuse as an unknown field. The types read
/// it back as `on` (a serde alias).
fn add_yaml11_on_alias(
    spec: &mut k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps,
) {
    let merge = spec
        .properties
        .as_mut()
        .and_then(|p| p.get_mut("dataframe"))
        .and_then(|d| d.properties.as_mut())
        .and_then(|p| p.get_mut("pipeline"))
        .and_then(|p| p.items.as_mut())
        .and_then(|items| match items {
            k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrArray::Schema(s) => Some(s),
            _ => None,
        })
        .and_then(|step| step.properties.as_mut())
        .and_then(|p| p.get_mut("merge"))
        .and_then(|m| m.properties.as_mut());
    if let Some(props) = merge
        && let Some(on) = props.get("on").cloned()
    {
        let mut alias = on;
        alias.description = Some(
            "`on` as kubectl spells an unquoted `on:` key (YAML 1.1 reads it as true); prefer \"on\"."
                .into(),
        );
        props.insert("true".into(), alias);
    }
}

/// The CRD manifest, as committed in `crds/` and printed by `kask crd`.
pub fn crd_yaml() -> String {
    let body = serde_yaml::to_string(&crd()).unwrap_or_else(|e| {
        // The CRD is built from our own types: failing to serialize it is a bug, not input.
        panic!("serializing the DaskJob CRD failed: {e}")
    });
    format!(
        "# Generated from the Rust types in api/ by `kask crd`; do not edit.\n---\n{}",
        quote_yaml11_booleans(&body)
    )
}

/// Quotes mapping keys that YAML 1.1 reads as booleans (`on`, `off`, `yes`, `no`, `y`, `n`).
/// kubectl reads YAML 1.1, so an unquoted `on:` in the CRD would define a property named
/// `true`; serde_yaml writes YAML 1.2, where they are plain strings and need no quotes.
fn quote_yaml11_booleans(yaml: &str) -> String {
    const WORDS: &[&str] = &["on", "off", "yes", "no", "y", "n"];
    let mut out = String::with_capacity(yaml.len() + 16);
    for line in yaml.lines() {
        let indent = line.len() - line.trim_start().len();
        let rest = &line[indent..];
        let key_end = rest.find(':').unwrap_or(0);
        let key = &rest[..key_end];
        let after = &rest[key_end..];
        if WORDS.iter().any(|w| key.eq_ignore_ascii_case(w))
            && (after == ":" || after.starts_with(": "))
        {
            out.push_str(&line[..indent]);
            out.push('"');
            out.push_str(key);
            out.push('"');
            out.push_str(after);
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}
