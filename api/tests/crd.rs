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
    assert_eq!(columns, ["Phase", "Progress", "Age"]);
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
