//! The Helm chart's documentation and schema follow its values.yaml:
//!
//! - every value is documented by a `# --` comment above it (or above a parent documented as
//!   a whole, like `resources`), and the chart README's values table is generated from those
//!   comments (`KASK_BLESS=1 cargo test -p kask-operator --test chart` rewrites it);
//! - every value has a place in values.schema.json, whose objects refuse unknown keys.
//!
//! `helm lint`, `helm template` and the install tests are in tests/chart/run (they need helm).

use std::path::PathBuf;

use serde_json::Value as Json;
use serde_yaml::Value as Yaml;

const START: &str = "<!-- values:start (generated from values.yaml by operator/tests/chart.rs) -->";
const END: &str = "<!-- values:end -->";

fn chart() -> PathBuf {
    // The run-time value: CI clones share a target directory (see api/tests/crd.rs).
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir.join("../charts/kask")
}

fn read(name: &str) -> String {
    let path = chart().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A value with its documentation: the dotted path and the `# --` comment's text.
#[derive(Debug, PartialEq)]
struct Doc {
    path: String,
    text: String,
}

/// The documented values of a values.yaml, in file order. Only block mappings are followed
/// (flow values and lists are leaves), which is how the chart's values.yaml is written.
fn documented(values: &str) -> Vec<Doc> {
    let mut docs = Vec::new();
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut text: Option<String> = None;
    for line in values.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if trimmed.is_empty() {
            text = None;
        } else if let Some(rest) = trimmed.strip_prefix("# --") {
            text = Some(rest.trim().to_string());
        } else if let Some(rest) = trimmed.strip_prefix('#') {
            if let Some(t) = text.as_mut() {
                t.push(' ');
                t.push_str(rest.trim());
            }
        } else if let Some((key, _)) = trimmed.split_once(':') {
            if key.starts_with('-') || key.contains(' ') {
                continue; // a list item or a flow value's continuation
            }
            while stack.last().is_some_and(|(i, _)| *i >= indent) {
                stack.pop();
            }
            stack.push((indent, key.to_string()));
            if let Some(t) = text.take() {
                let path = stack.iter().map(|(_, k)| k.as_str()).collect::<Vec<_>>();
                docs.push(Doc {
                    path: path.join("."),
                    text: t,
                });
            }
        }
    }
    docs
}

fn lookup<'a>(values: &'a Yaml, path: &str) -> Option<&'a Yaml> {
    path.split('.').try_fold(values, |v, k| v.get(k))
}

/// The paths of the leaves: scalars, lists, and empty mappings.
fn leaves(value: &Yaml, prefix: &str, out: &mut Vec<String>) {
    match value.as_mapping() {
        Some(map) if !map.is_empty() => {
            for (k, v) in map {
                let key = k.as_str().unwrap_or_default();
                let path = if prefix.is_empty() {
                    key.to_string()
                } else {
                    format!("{prefix}.{key}")
                };
                leaves(v, &path, out);
            }
        }
        _ => out.push(prefix.to_string()),
    }
}

fn values_table(values: &Yaml, docs: &[Doc]) -> String {
    let mut out = String::from("| value | default | description |\n|---|---|---|\n");
    for d in docs {
        let default = lookup(values, &d.path).expect("a documented path has a value");
        let json = serde_json::to_string(default).expect("values are JSON");
        out.push_str(&format!(
            "| `{}` | `{}` | {} |\n",
            d.path,
            json.replace('|', "\\|"),
            d.text.replace('|', "\\|")
        ));
    }
    out
}

#[test]
fn every_value_is_documented_and_the_readme_lists_them() {
    let text = read("values.yaml");
    let values: Yaml = serde_yaml::from_str(&text).expect("values.yaml is YAML");
    let docs = documented(&text);

    let mut all = Vec::new();
    leaves(&values, "", &mut all);
    let undocumented: Vec<&String> = all
        .iter()
        .filter(|leaf| {
            !docs
                .iter()
                .any(|d| *leaf == &d.path || leaf.starts_with(&format!("{}.", d.path)))
        })
        .collect();
    assert!(
        undocumented.is_empty(),
        "values without a `# --` comment in charts/kask/values.yaml: {undocumented:?}"
    );
    for d in &docs {
        assert!(
            lookup(&values, &d.path).is_some(),
            "{} is documented but has no value",
            d.path
        );
    }

    let table = values_table(&values, &docs);
    let readme_path = chart().join("README.md");
    let readme = read("README.md");
    let (head, rest) = readme
        .split_once(START)
        .expect("the chart README has the values:start marker");
    let (_, tail) = rest
        .split_once(END)
        .expect("the chart README has the values:end marker");
    let generated = format!("{head}{START}\n{table}{END}{tail}");
    if std::env::var_os("KASK_BLESS").is_some() {
        // Blessing rewrites the expected file, so a run with it can never fail: never in CI.
        assert!(
            std::env::var_os("CI").is_none(),
            "KASK_BLESS is refused when CI is set: it would rewrite what the test checks"
        );
        std::fs::write(&readme_path, &generated).expect("writing the chart README");
    }
    assert!(
        read("README.md") == generated,
        "the values table of {} is out of date; run `KASK_BLESS=1 cargo test -p kask-operator --test chart` and commit it",
        readme_path.display()
    );
}

/// The schema node for `key` under `node`, following `$ref`s into the definitions.
fn child<'a>(schema: &'a Json, node: &'a Json, key: &str) -> Option<&'a Json> {
    let node = resolve(schema, node);
    node.get("properties")
        .and_then(|p| p.get(key))
        .or_else(|| node.get("additionalProperties").filter(|a| a.is_object()))
        .map(|n| resolve(schema, n))
}

fn resolve<'a>(schema: &'a Json, node: &'a Json) -> &'a Json {
    match node.get("$ref").and_then(Json::as_str) {
        Some(r) => r
            .strip_prefix("#/")
            .map(|p| p.split('/').fold(schema, |s, k| &s[k]))
            .unwrap_or(node),
        None => node,
    }
}

#[test]
fn the_schema_has_every_value_and_refuses_unknown_keys() {
    let schema: Json = serde_json::from_str(&read("values.schema.json")).expect("schema is JSON");
    let values: Yaml = serde_yaml::from_str(&read("values.yaml")).expect("values.yaml is YAML");
    let mut all = Vec::new();
    leaves(&values, "", &mut all);
    for leaf in &all {
        let mut node = &schema;
        for key in leaf.split('.') {
            node = child(&schema, node, key)
                .unwrap_or_else(|| panic!("values.schema.json has no place for {leaf}"));
        }
    }
    // Each object the chart defines itself (every one reached through `properties`) says
    // what it accepts: a misspelt value is an error, not silently ignored.
    fn closed(schema: &Json, node: &Json, path: &str) {
        let node = resolve(schema, node);
        if let Some(props) = node.get("properties").and_then(Json::as_object) {
            assert!(
                node.get("additionalProperties").is_some(),
                "values.schema.json: {path} must set additionalProperties"
            );
            for (k, v) in props {
                closed(schema, v, &format!("{path}.{k}"));
            }
        }
    }
    closed(&schema, &schema, "(root)");
    assert_eq!(schema["additionalProperties"], Json::Bool(false));
}

#[test]
fn comments_attach_to_the_key_below_them_with_its_full_path() {
    let text =
        "# -- one\na: 1\nb:\n  # -- two\n  # continued\n  c: {}\n\n  # not attached\n\n  d: 2\n";
    let docs = documented(text);
    assert_eq!(
        docs,
        [
            Doc {
                path: "a".into(),
                text: "one".into()
            },
            Doc {
                path: "b.c".into(),
                text: "two continued".into()
            }
        ]
    );
}
