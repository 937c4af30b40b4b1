//! Reading and validating job files: errors name the field path or the line and column.

mod common;

use common::errors_of;
use kask_api::{LoadError, load_job, parse_job};

const GOOD: &str = r#"
apiVersion: kask.dev/v1alpha1
kind: DaskJob
metadata: {name: revenue}
spec:
  dataframe:
    inputs:
      orders: {path: "orders/*.parquet"}
      regions: {path: dims/regions.csv, format: csv}
    pipeline:
      - source: orders
      - filter: "amount > 0"
      - merge: {right: regions, on: [region_id], how: left}
      - groupby: {by: [region], aggs: {amount: [sum, mean], order_id: [count]}}
      - sort: {by: [amount_sum], descending: true}
  output: {path: reports/revenue, format: parquet, mode: overwrite}
"#;

#[test]
fn a_valid_job_loads_with_its_steps_in_order() {
    let job = load_job("job.yaml", GOOD).expect("valid");
    let df = job.spec.dataframe.expect("dataframe");
    assert_eq!(df.pipeline.len(), 5);
    assert_eq!(df.pipeline[3].kinds_set(), ["groupby"]);
    let aggs: Vec<&String> = df.pipeline[3]
        .groupby
        .as_ref()
        .expect("groupby")
        .aggs
        .keys()
        .collect();
    assert_eq!(
        aggs,
        ["amount", "order_id"],
        "aggregations keep the order written"
    );
    assert_eq!(job.metadata.name.as_deref(), Some("revenue"));
}

#[test]
fn an_unknown_merge_input_is_named_with_its_field_path_and_the_known_inputs() {
    let yaml = GOOD.replace("right: regions", "right: regionz");
    assert_eq!(
        errors_of(&yaml),
        [
            r#"spec.dataframe.pipeline[2].merge.right: no input named "regionz" (inputs: orders, regions)"#
        ]
    );
}

#[test]
fn every_error_is_reported_not_just_the_first() {
    let yaml = GOOD
        .replace("source: orders", "source: order")
        .replace(
            "by: [amount_sum], descending: true",
            "by: [amount_sum], descending: [true, false]",
        )
        .replace("path: reports/revenue", "path: /abs/out");
    let errors = errors_of(&yaml);
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(errors[0].starts_with("spec.dataframe.pipeline[0].source: no input named \"order\""));
    assert!(errors[1].starts_with("spec.dataframe.pipeline[4].sort.descending: has 2 entries"));
    assert!(errors[2].starts_with("spec.output.path: \"/abs/out\" must be relative"));
}

#[test]
fn a_step_with_two_kinds_is_refused() {
    let yaml = GOOD.replace(
        "- filter: \"amount > 0\"",
        "- {filter: \"amount > 0\", head: 3}",
    );
    let errors = errors_of(&yaml);
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].contains("pipeline[1]: a step has exactly one of"),
        "{errors:?}"
    );
    assert!(errors[0].ends_with("(found filter, head)"), "{errors:?}");
}

#[test]
fn the_pipeline_must_start_with_a_source() {
    let yaml = GOOD.replace("- source: orders\n      - filter", "- filter");
    let errors = errors_of(&yaml);
    assert!(
        errors
            .iter()
            .any(|e| e == "spec.dataframe.pipeline[0]: the first step must be `source: <input>`"),
        "{errors:?}"
    );
}

#[test]
fn only_one_kind_may_be_set() {
    let yaml = GOOD.replace(
        "  output:",
        "  bag: {inputs: {e: {path: e.jsonl}}, steps: [{source: e}]}\n  output:",
    );
    let errors = errors_of(&yaml);
    assert!(
        errors.contains(
            &"spec: only one of dataframe, sql, array or bag may be set (found dataframe, bag)"
                .to_string()
        ),
        "{errors:?}"
    );
}

const ARRAY: &str = r#"
apiVersion: kask.dev/v1alpha1
kind: DaskJob
metadata: {name: ab}
spec:
  array:
    inputs:
      a: {path: arrays/a.zarr}
      b: {path: arrays/b.zarr, missingChunks: fill}
    expr: "(a * b).sum(axis=0)"
    chunks: [1000]
  output: {path: results/ab.zarr}
"#;

#[test]
fn an_array_job_loads_and_writes_zarr_by_default() {
    let job = load_job("job.yaml", ARRAY).expect("valid");
    let array = job.spec.array.as_ref().expect("array");
    assert_eq!(array.inputs.len(), 2);
    assert_eq!(array.chunks, Some(vec![1000]));
    assert_eq!(job.spec.output_format(), kask_api::Format::Zarr);
}

#[test]
fn an_array_job_names_its_bad_fields() {
    let yaml = ARRAY
        .replace("a: {path: arrays/a.zarr}", "a-1: {path: /abs/a.zarr}")
        .replace("chunks: [1000]", "chunks: [0]")
        .replace(
            "{path: results/ab.zarr}",
            "{path: results/ab, format: parquet}",
        );
    assert_eq!(
        errors_of(&yaml),
        [
            "spec.output.format: an array job cannot write parquet; use zarr",
            r#"spec.array.inputs.a-1: "a-1" cannot be named in an expression; use letters, digits and _, not starting with a digit"#,
            r#"spec.array.inputs.a-1.path: "/abs/a.zarr" must be relative to spec.storage.url"#,
            "spec.array.chunks: every chunk length must be at least 1",
        ]
    );
}

const BAG: &str = r#"
apiVersion: kask.dev/v1alpha1
kind: DaskJob
metadata: {name: countries}
spec:
  bag:
    inputs:
      events: {path: "events/*.jsonl"}
    steps:
      - source: events
      - filter: "status = 'ok'"
      - pluck: user.country
      - distinct: {}
    onBadRecord: skip
  output: {path: results/countries}
"#;

#[test]
fn a_bag_job_loads_and_writes_json_lines_by_default() {
    let job = load_job("job.yaml", BAG).expect("valid");
    let bag = job.spec.bag.as_ref().expect("bag");
    assert_eq!(bag.steps[2].kinds_set(), ["pluck"]);
    assert_eq!(bag.on_bad_record, kask_api::OnBadRecord::Skip);
    assert_eq!(bag.inputs["events"].format(), kask_api::BagFormat::Json);
    assert_eq!(job.spec.output_format(), kask_api::Format::Json);
}

#[test]
fn a_bag_job_names_its_bad_steps() {
    let yaml = BAG
        .replace("- source: events", "- source: event")
        .replace(
            "- pluck: user.country",
            "- pluck: user..country\n      - topk: {k: 0}",
        )
        .replace("- distinct: {}", "- {distinct: {}, count: {}}");
    assert_eq!(
        errors_of(&yaml),
        [
            r#"spec.bag.steps[0].source: no input named "event" (inputs: events)"#,
            r#"spec.bag.steps[2].pluck: "user..country" is not a field path; write names joined by dots, e.g. user.country"#,
            "spec.bag.steps[3].topk.k: must be at least 1",
            "spec.bag.steps[4]: a step has exactly one of source, map, pluck, filter, split, flatten, distinct, frequencies, count, topk (found distinct, count)",
        ]
    );
}

#[test]
fn merge_needs_on_or_both_left_on_and_right_on() {
    let yaml = GOOD.replace("on: [region_id]", "leftOn: [region_id]");
    let errors = errors_of(&yaml);
    assert_eq!(
        errors,
        ["spec.dataframe.pipeline[2].merge: give either `on`, or both `leftOn` and `rightOn`"]
    );
}

#[test]
fn invalid_yaml_reports_line_and_column() {
    let err = parse_job(
        "job.yaml",
        "apiVersion: kask.dev/v1alpha1\nkind: DaskJob\nspec:\n  output: {path: x\n",
    )
    .expect_err("must fail");
    match err {
        LoadError::Yaml {
            line,
            column,
            ref source_name,
            ..
        } => {
            assert_eq!(source_name, "job.yaml");
            assert_eq!(line, 5, "{err}");
            assert!(column >= 1, "{err}");
            assert!(err.to_string().starts_with("job.yaml:5:"), "{err}");
        }
        other => panic!("expected a YAML error, got {other:?}"),
    }
}

#[test]
fn a_misspelled_field_is_an_error_at_its_line() {
    let yaml = GOOD.replace("- filter: \"amount > 0\"", "- filtr: \"amount > 0\"");
    let err = parse_job("job.yaml", &yaml)
        .expect_err("must fail")
        .to_string();
    assert!(err.starts_with("job.yaml:12:"), "{err}");
    assert!(err.contains("unknown field `filtr`"), "{err}");
}

#[test]
fn another_kind_of_resource_is_refused() {
    let yaml = GOOD.replace("kind: DaskJob", "kind: Job");
    let err = parse_job("job.yaml", &yaml)
        .expect_err("must fail")
        .to_string();
    assert!(
        err.contains("expected apiVersion kask.dev/v1alpha1 and kind DaskJob"),
        "{err}"
    );
}

#[test]
fn unknown_aggregations_are_refused_with_the_allowed_list() {
    let yaml = GOOD.replace("[sum, mean]", "[sum, avg]");
    let err = parse_job("job.yaml", &yaml)
        .expect_err("must fail")
        .to_string();
    assert!(err.contains("unknown variant `avg`"), "{err}");
    assert!(err.contains("median"), "{err}");
}

#[test]
fn a_merge_key_list_stored_by_kubectl_as_true_reads_as_on() {
    // kubectl reads YAML 1.1, where an unquoted `on` key is the boolean true; the API server
    // keeps the key as "true". The operator must read that object back as `on`.
    let yaml = GOOD.replace("on: [region_id]", "\"true\": [region_id]");
    let job = load_job("job.yaml", &yaml).expect("valid");
    let df = job.spec.dataframe.expect("dataframe");
    let merge = df.pipeline[2].merge.as_ref().expect("merge");
    assert_eq!(merge.on.as_deref(), Some(&["region_id".to_string()][..]));
}

#[test]
fn an_output_that_overlaps_an_input_is_refused_for_every_job_kind() {
    let inside = GOOD.replace("path: reports/revenue,", "path: orders,");
    let e = errors_of(&inside);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("spec.output.path: \"orders\" overlaps spec.dataframe.inputs.orders.path"),
        "{e:?}"
    );
    let array = r#"
apiVersion: kask.dev/v1alpha1
kind: DaskJob
metadata: {name: a}
spec:
  array:
    inputs:
      a: {path: arrays/a.zarr}
    expr: "a * 2"
  output: {path: OUT}
"#;
    for out in ["arrays", "arrays/a.zarr", "arrays/a.zarr/out", "./arrays/"] {
        let e = errors_of(&array.replace("OUT", out));
        assert!(
            e.iter()
                .any(|m| m.contains("overlaps spec.array.inputs.a.path")),
            "{out}: {e:?}"
        );
    }
    assert!(load_job("job.yaml", &array.replace("OUT", "arrays-out")).is_ok());
    let bag = r#"
apiVersion: kask.dev/v1alpha1
kind: DaskJob
metadata: {name: b}
spec:
  bag:
    inputs:
      logs: {path: "logs/*/events.jsonl"}
    steps:
      - source: logs
      - count: {}
  output: {path: logs/2026}
"#;
    let e = errors_of(bag);
    assert!(
        e.iter()
            .any(|m| m.contains("overlaps spec.bag.inputs.logs.path")),
        "the glob could match under the output: {e:?}"
    );
}

#[test]
fn the_storage_root_scratch_folders_and_globs_are_not_outputs() {
    for (out, says) in [
        ("\".\"", "is the storage root"),
        ("\"./\"", "is the storage root"),
        ("\"\"", "must not be empty"),
        ("/", "must be relative"),
        ("reports/_kask/x", "inside a _kask/ folder"),
        ("\"reports/*\"", "is a folder, not a glob"),
    ] {
        let yaml = GOOD.replace("path: reports/revenue,", &format!("path: {out},"));
        let e = errors_of(&yaml);
        assert!(
            e.iter()
                .any(|m| m.starts_with("spec.output.path") && m.contains(says)),
            "{out}: {e:?}"
        );
    }
}

#[test]
fn a_pod_template_may_not_set_kasks_own_labels_or_variables_nor_a_bad_account_name() {
    let yaml = GOOD.replace(
        "  output: {path: reports/revenue",
        "  serviceAccountName: Lake_Reader\n  podTemplate:\n    labels: {kask.dev/stage: mine}\n    \
         env: [{name: KASK_LOG, value: debug}, {name: KASK_JOB_ID, value: x}]\n  \
         output: {path: reports/revenue",
    );
    assert_eq!(
        errors_of(&yaml),
        [
            "spec.podTemplate.labels.kask.dev/stage: keys under kask.dev/ are Kask's own; choose another key",
            "spec.podTemplate.env[1].name: KASK_JOB_ID is set by Kask; of its variables only KASK_LOG and KASK_LOG_FORMAT may be set here",
            "spec.serviceAccountName: \"Lake_Reader\" is not a service account name (lowercase letters, digits, '-' and '.')",
        ]
    );
    let fine = GOOD.replace(
        "  output: {path: reports/revenue",
        "  serviceAccountName: lake-reader\n  podTemplate:\n    labels: {team: risk}\n    \
         env: [{name: KASK_LOG, value: debug}]\n  output: {path: reports/revenue",
    );
    let job = load_job("job.yaml", &fine).expect("valid");
    assert_eq!(
        job.spec.service_account_name.as_deref(),
        Some("lake-reader")
    );
}

#[test]
fn a_groupby_may_have_no_keys_and_named_expressions_but_no_clashing_names() {
    let global = GOOD.replace(
        "{by: [region], aggs: {amount: [sum, mean], order_id: [count]}}",
        r#"{by: [], expressions: {r2: "power(corr(amount, order_id), 2)"}}"#,
    );
    let job = load_job("job.yaml", &global).expect("a global aggregate of an expression");
    let g = job.spec.dataframe.expect("dataframe").pipeline[3]
        .groupby
        .clone()
        .expect("groupby");
    assert!(g.by.is_empty() && g.aggs.is_empty());
    assert_eq!(g.expressions["r2"], "power(corr(amount, order_id), 2)");

    let clashes = GOOD.replace(
        "{by: [region], aggs: {amount: [sum, mean], order_id: [count]}}",
        r#"{by: [region, amount_sum], aggs: {amount: [sum]}, expressions: {region: "count(*)", e: " "}}"#,
    );
    assert_eq!(
        errors_of(&clashes),
        [
            r#"spec.dataframe.pipeline[3].groupby.aggs.amount: sum's column "amount_sum" is also a key"#,
            r#"spec.dataframe.pipeline[3].groupby.expressions.region: "region" is already a key or an aggregation's column"#,
            r#"spec.dataframe.pipeline[3].groupby.expressions.e: needs a SQL aggregate expression, e.g. "corr(v1, v2)""#,
        ]
    );
    let nothing = GOOD.replace(
        "{by: [region], aggs: {amount: [sum, mean], order_id: [count]}}",
        "{by: [region]}",
    );
    assert_eq!(
        errors_of(&nothing),
        [
            "spec.dataframe.pipeline[3].groupby.aggs: needs at least one `column: [aggregation, ...]` (or `expressions`)"
        ]
    );
}

#[test]
fn concat_melt_and_explode_name_their_bad_fields() {
    let yaml = GOOD.replace(
        "      - sort: {by: [amount_sum], descending: true}\n",
        "      - concat: [orders, nope]\n      - melt: {idVars: [a, b], valueVars: [b, c], varName: x, valueName: x}\n      - explode: \"\"\n      - concat: []\n",
    );
    assert_eq!(
        errors_of(&yaml),
        [
            r#"spec.dataframe.pipeline[4].concat[1]: no input named "nope" (inputs: orders, regions)"#,
            r#"spec.dataframe.pipeline[5].melt.valueVars: "b" is also in idVars"#,
            r#"spec.dataframe.pipeline[5].melt.valueName: "x" is also the varName"#,
            "spec.dataframe.pipeline[6].explode: needs the list column to explode",
            "spec.dataframe.pipeline[7].concat: needs at least one input or pipeline whose rows to append",
        ]
    );
}

#[test]
fn folder_keys_are_distinct_names_of_table_results() {
    let yaml = GOOD.replace(
        "mode: overwrite}",
        "mode: overwrite, partitionBy: [region, \"\", region]}",
    );
    assert_eq!(
        errors_of(&yaml),
        [
            "spec.output.partitionBy: a column name is empty",
            "spec.output.partitionBy: \"region\" is named twice",
        ]
    );
    let ok = GOOD.replace(
        "mode: overwrite}",
        "mode: overwrite, partitionBy: [region]}",
    );
    let job = kask_api::load_job("job.yaml", &ok).expect("one folder key");
    assert_eq!(job.spec.main_output().partition_by, ["region"]);
}
