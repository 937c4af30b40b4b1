//! Each field's own description in the CRD. kube inlines the schema of a field's type into
//! the field, and for an optional enum (`Option<Format>`) the type's description then
//! replaces the field's: `kubectl explain daskjob.spec.output.format` said "A table file
//! format." instead of which formats the output takes and which is the default. The schema
//! schemars generates before kube's changes still has the field's own text; it is put back.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use serde_json::Value;

/// Gives every property under `node` the description its field has in `raw`, the schemars
/// schema of the same type.
pub fn restore(node: &mut JSONSchemaProps, raw: &schemars::Schema) {
    let root = raw.as_value();
    walk(node, root, root.get("$defs"));
}

fn walk(node: &mut JSONSchemaProps, raw: &Value, defs: Option<&Value>) {
    let forms = forms(raw, defs, 0);
    if let Some(props) = node.properties.as_mut() {
        for (name, child) in props.iter_mut() {
            let Some(field) = forms
                .iter()
                .find_map(|f| f.get("properties").and_then(|p| p.get(name)))
            else {
                continue;
            };
            if let Some(text) = field.get("description").and_then(Value::as_str) {
                child.description = Some(text.to_string());
            }
            walk(child, field, defs);
        }
    }
    if let Some(JSONSchemaPropsOrArray::Schema(items)) = node.items.as_mut()
        && let Some(raw_items) = forms.iter().find_map(|f| f.get("items"))
    {
        walk(items, raw_items, defs);
    }
    if let Some(JSONSchemaPropsOrBool::Schema(values)) = node.additional_properties.as_mut()
        && let Some(raw_values) = forms
            .iter()
            .find_map(|f| f.get("additionalProperties").filter(|v| v.is_object()))
    {
        walk(values, raw_values, defs);
    }
}

/// `raw` and the schemas it stands for: the definition it refers to, and the members of its
/// `anyOf`, `oneOf` or `allOf` (an optional field is `anyOf` its type and null).
fn forms<'a>(raw: &'a Value, defs: Option<&'a Value>, depth: usize) -> Vec<&'a Value> {
    let mut out = vec![raw];
    // Recursive types refer to themselves; the CRD has no such cycles, but stop anyway.
    if depth > 8 {
        return out;
    }
    if let Some(target) = raw
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/$defs/"))
        .and_then(|name| defs?.get(name))
    {
        out.extend(forms(target, defs, depth + 1));
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        for member in raw.get(key).and_then(Value::as_array).into_iter().flatten() {
            out.extend(forms(member, defs, depth + 1));
        }
    }
    out
}
