//! The DaskJob CRD as the API server gets it: the schema the Rust types generate, each field
//! with its own description, and the rules the API server enforces at admission (CEL): a
//! spec that changes only in `suspend`, exactly one job kind, exactly one key per step. The
//! rules are derived from the schema's own property lists, so a new field or step is covered
//! without an edit here.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
    ValidationRule,
};
use kube::CustomResourceExt;

use crate::{DaskJob, DaskJobSpec, DaskJobStatus};

/// The one spec field that may change after creation.
pub const MUTABLE_SPEC_FIELD: &str = "suspend";

/// The spec fields of which a job sets exactly one.
pub const JOB_KINDS: [&str; 4] = ["dataframe", "sql", "array", "bag"];

/// The most steps a pipeline (or a bag job) has at admission. The API server bounds what a
/// rule may cost by the largest list a request could hold: without a bound, a rule over each
/// step of each view could cost more than it allows, and the CRD would be refused.
pub const MAX_STEPS: i64 = 256;

/// The most views, and the most outputs, of a dataframe job graph at admission (as
/// [`MAX_STEPS`]).
pub const MAX_PIPELINES: i64 = 64;

/// The DaskJob CRD.
pub fn crd() -> CustomResourceDefinition {
    let mut crd = DaskJob::crd();
    for version in &mut crd.spec.versions {
        let Some(props) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
            .and_then(|s| s.properties.as_mut())
        else {
            continue;
        };
        if let Some(status) = props.get_mut("status") {
            crate::crd_docs::restore(status, &schemars::schema_for!(DaskJobStatus));
        }
        let Some(spec) = props.get_mut("spec") else {
            continue;
        };
        crate::crd_docs::restore(spec, &schemars::schema_for!(DaskJobSpec));
        add_yaml11_on_alias(spec);
        for (what, steps) in step_lists(spec) {
            one_key_per_step(what, steps);
        }
        spec.x_kubernetes_validations = Some(vec![immutable_rule(spec), one_kind_rule()]);
    }
    crd
}

/// The spec may change only in [`MUTABLE_SPEC_FIELD`].
fn immutable_rule(spec: &JSONSchemaProps) -> ValidationRule {
    let rule = property_names(spec)
        .into_iter()
        .filter(|f| f != MUTABLE_SPEC_FIELD)
        .map(|f| {
            format!(
                "(has(self.{f}) == has(oldSelf.{f}) && (!has(self.{f}) || self.{f} == oldSelf.{f}))"
            )
        })
        .collect::<Vec<_>>()
        .join(" && ");
    ValidationRule {
        rule,
        message: Some(format!(
            "a DaskJob's spec cannot change after creation, except spec.{MUTABLE_SPEC_FIELD}; delete the job and create it again"
        )),
        reason: Some("FieldValueForbidden".into()),
        ..Default::default()
    }
}

/// Exactly one of [`JOB_KINDS`].
fn one_kind_rule() -> ValidationRule {
    ValidationRule {
        rule: exactly_one(JOB_KINDS.iter().map(|k| k.to_string())),
        message: Some(format!(
            "a DaskJob sets exactly one of spec.{}",
            JOB_KINDS.join(", spec.")
        )),
        reason: Some("FieldValueInvalid".into()),
        ..Default::default()
    }
}

/// A CEL expression true when exactly one of `fields` of `self` is set.
fn exactly_one(fields: impl Iterator<Item = String>) -> String {
    let set: Vec<String> = fields.map(|f| format!("has(self.{f})")).collect();
    format!("[{}].exists_one(x, x)", set.join(", "))
}

/// Each item of the step list `steps` (the schema of a list) sets exactly one of its
/// properties; the list holds at most [`MAX_STEPS`].
fn one_key_per_step(what: &str, steps: &mut JSONSchemaProps) {
    steps.max_items = Some(MAX_STEPS);
    let Some(JSONSchemaPropsOrArray::Schema(step)) = steps.items.as_mut() else {
        return;
    };
    let keys = property_names(step);
    step.x_kubernetes_validations = Some(vec![ValidationRule {
        rule: exactly_one(keys.iter().cloned()),
        message: Some(format!(
            "each step of {what} sets exactly one of {}",
            keys.join(", ")
        )),
        reason: Some("FieldValueInvalid".into()),
        ..Default::default()
    }]);
}

/// The schemas of the spec's step lists, each with the field path users know it by: the
/// dataframe pipeline, each view's and each output's, and the bag job's steps. A map of
/// pipelines holds at most [`MAX_PIPELINES`].
fn step_lists(spec: &mut JSONSchemaProps) -> Vec<(&'static str, &mut JSONSchemaProps)> {
    let mut lists = Vec::new();
    let Some(props) = spec.properties.as_mut() else {
        return lists;
    };
    let mut dataframe = None;
    let mut bag = None;
    for (name, node) in props.iter_mut() {
        match name.as_str() {
            "dataframe" => dataframe = node.properties.as_mut(),
            "bag" => bag = node.properties.as_mut(),
            _ => {}
        }
    }
    if let Some(df) = dataframe {
        for (name, node) in df.iter_mut() {
            match name.as_str() {
                "pipeline" => lists.push(("spec.dataframe.pipeline", node)),
                "views" => {
                    node.max_properties = Some(MAX_PIPELINES);
                    if let Some(JSONSchemaPropsOrBool::Schema(view)) =
                        node.additional_properties.as_mut()
                    {
                        lists.push(("a view in spec.dataframe.views", view.as_mut()));
                    }
                }
                "outputs" => {
                    node.max_properties = Some(MAX_PIPELINES);
                    if let Some(JSONSchemaPropsOrBool::Schema(output)) =
                        node.additional_properties.as_mut()
                        && let Some(pipeline) = output
                            .properties
                            .as_mut()
                            .and_then(|p| p.get_mut("pipeline"))
                    {
                        lists.push(("an output's pipeline in spec.dataframe.outputs", pipeline));
                    }
                }
                _ => {}
            }
        }
    }
    if let Some(steps) = bag.and_then(|b| b.get_mut("steps")) {
        lists.push(("spec.bag.steps", steps));
    }
    lists
}

fn property_names(node: &JSONSchemaProps) -> Vec<String> {
    node.properties
        .as_ref()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

/// A merge's `on` also as the property `true`: kubectl (YAML 1.1) sends an unquoted `on:` key
/// as `true`, which the API server would otherwise refuse as an unknown field. The types read
/// it back as `on` (a serde alias).
fn add_yaml11_on_alias(spec: &mut JSONSchemaProps) {
    let merge = spec
        .properties
        .as_mut()
        .and_then(|p| p.get_mut("dataframe"))
        .and_then(|d| d.properties.as_mut())
        .and_then(|p| p.get_mut("pipeline"))
        .and_then(|p| p.items.as_mut())
        .and_then(|items| match items {
            JSONSchemaPropsOrArray::Schema(s) => Some(s),
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
