//! The committed CRD is what the Rust types generate. Regenerate with
//! `KASK_BLESS=1 cargo test -p kask-api --test crd`, which also copies it into the Helm chart.

use std::path::PathBuf;

/// The checkout being tested. `cargo test` sets the variable at run time too, which matters:
/// the compile-time value is the path of whichever clone built this binary, and CI clones
/// share one target directory, where cargo reuses a binary built from another clone.
fn checkout() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir.join("..")
}

/// `path` (relative to the checkout) holds `generated`, or is rewritten with it under
/// KASK_BLESS.
fn assert_committed(path: &str, generated: &str) {
    let path = checkout().join(path);
    if std::env::var_os("KASK_BLESS").is_some() {
        // Blessing rewrites the expected file, so a run with it can never fail: never in CI.
        assert!(
            std::env::var_os("CI").is_none(),
            "KASK_BLESS is refused when CI is set: it would rewrite what the test checks"
        );
        std::fs::write(&path, generated).expect("writing the CRD");
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == generated,
        "{} differs from the CRD the Rust types generate; run `KASK_BLESS=1 cargo test -p kask-api --test crd` and commit it",
        path.display()
    );
}

#[test]
fn committed_crd_matches_the_rust_types() {
    assert_committed("crds/kask.dev_daskjobs.yaml", &kask_api::crd_yaml());
}

/// Helm installs the CRD from the chart's own crds/ folder: the same file.
#[test]
fn the_charts_crd_is_the_generated_one() {
    assert_committed(
        "charts/kask/crds/kask.dev_daskjobs.yaml",
        &kask_api::crd_yaml(),
    );
}

#[test]
fn crd_has_the_names_columns_and_subresources_kubectl_shows() {
    let crd: serde_yaml::Value = serde_yaml::from_str(&kask_api::crd_yaml()).expect("CRD is YAML");
    let spec = &crd["spec"];
    assert_eq!(spec["group"], "kask.dev");
    assert_eq!(spec["scope"], "Namespaced");
    assert_eq!(spec["names"]["shortNames"][0], "dj");
    assert_eq!(spec["names"]["categories"][0], "kask");
    let version = &spec["versions"][0];
    assert_eq!(version["name"], "v1alpha1");
    assert!(version["subresources"]["status"].is_mapping());
    let columns: Vec<&str> = version["additionalPrinterColumns"]
        .as_sequence()
        .expect("printer columns")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(
        columns,
        [
            "Phase", "Progress", "Workers", "Rows", "Started", "Duration", "Age", "Message"
        ]
    );
    let message = &version["additionalPrinterColumns"][7];
    assert_eq!(message["jsonPath"], ".status.message");
    assert_eq!(
        message["priority"], 1,
        "the message shows with -o wide only"
    );
    let props = &version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
    for field in [
        "storage",
        "dataframe",
        "array",
        "bag",
        "output",
        "workers",
        "targetTaskBytes",
        "retries",
    ] {
        assert!(props[field].is_mapping(), "spec.{field} is in the schema");
    }
}

fn schema() -> serde_yaml::Value {
    let crd: serde_yaml::Value = serde_yaml::from_str(&kask_api::crd_yaml()).expect("CRD is YAML");
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

#[test]
fn kubectl_explain_shows_each_fields_own_text_and_the_defaults() {
    let root = schema();
    let text = root["description"].as_str().expect("a description");
    assert!(
        text.starts_with("A partitioned data job run by Kask"),
        "the resource's description is ours, not kube's placeholder: {text}"
    );
    let spec = &root["properties"]["spec"]["properties"];
    // An optional enum field kept its own text, not its type's ("A table file format.").
    assert_eq!(
        spec["output"]["properties"]["format"]["description"]
            .as_str()
            .expect("text")
            .lines()
            .next(),
        Some("parquet, csv or json (JSON lines); zarr for array jobs, which write nothing else.")
    );
    assert_eq!(
        spec["dataframe"]["properties"]["inputs"]["additionalProperties"]["properties"]["format"]["description"],
        "The file format (default: from the glob's extension, else parquet)."
    );
    for (field, default) in [
        ("workers", 4u64),
        ("retries", 3),
        ("targetTaskBytes", 134_217_728),
        ("broadcastBytes", 67_108_864),
        ("startupDeadlineSeconds", 600),
    ] {
        assert_eq!(
            spec[field]["default"].as_u64(),
            Some(default),
            "spec.{field} has its default in the schema"
        );
    }
}

#[test]
fn status_conditions_are_a_map_by_type_and_times_are_date_times() {
    let status = &schema()["properties"]["status"]["properties"];
    let conditions = &status["conditions"];
    assert_eq!(conditions["x-kubernetes-list-type"], "map");
    assert_eq!(conditions["x-kubernetes-list-map-keys"][0], "type");
    for time in [
        &status["startTime"],
        &status["completionTime"],
        &conditions["items"]["properties"]["lastTransitionTime"],
    ] {
        assert_eq!(time["format"], "date-time");
    }
    assert_eq!(status["duration"]["type"], "string");
}

/// The rules of `node` (its `x-kubernetes-validations`), as (rule, message).
fn rules(node: &serde_yaml::Value) -> Vec<(String, String)> {
    node["x-kubernetes-validations"]
        .as_sequence()
        .map(|rules| {
            rules
                .iter()
                .map(|r| {
                    (
                        r["rule"].as_str().unwrap_or_default().to_string(),
                        r["message"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn admission_rules_ask_for_one_job_kind_and_one_key_per_step() {
    let spec = &schema()["properties"]["spec"];
    let found = rules(spec);
    assert!(
        found.iter().any(|(rule, message)| rule
            == "[has(self.dataframe), has(self.sql), has(self.array), has(self.bag)].exists_one(x, x)"
            && message.contains("exactly one of spec.dataframe, spec.sql, spec.array, spec.bag")),
        "the one-kind rule: {found:?}"
    );
    let props = &spec["properties"];
    let df = &props["dataframe"]["properties"];
    let lists = [
        &df["pipeline"],
        &df["views"]["additionalProperties"],
        &df["outputs"]["additionalProperties"]["properties"]["pipeline"],
        &props["bag"]["properties"]["steps"],
    ];
    for list in lists {
        assert_eq!(list["maxItems"], 256, "a bounded list: {list:?}");
        let step = &list["items"];
        let keys: Vec<&str> = step["properties"]
            .as_mapping()
            .expect("a step's keys")
            .keys()
            .filter_map(|k| k.as_str())
            .collect();
        let (rule, _) = rules(step).into_iter().next().expect("a step rule");
        let has: Vec<String> = keys.iter().map(|k| format!("has(self.{k})")).collect();
        assert_eq!(rule, format!("[{}].exists_one(x, x)", has.join(", ")));
        assert!(keys.contains(&"source") && keys.len() > 5, "{keys:?}");
    }
    assert_eq!(df["views"]["maxProperties"], 64);
    assert_eq!(df["outputs"]["maxProperties"], 64);
}
