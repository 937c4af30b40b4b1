//! SQL job files: what loads, and what is refused with its field path.

mod common;

use common::errors_of;
use kask_api::load_job;

const GOOD: &str = r#"
apiVersion: kask.dev/v1alpha1
kind: DaskJob
metadata: {name: priorities}
spec:
  sql:
    tables:
      orders: {path: "tpch/orders/*.parquet"}
      nation: {path: dims/nation.csv, csv: {delimiter: "|"}}
    query: |
      SELECT o_orderpriority, count(*) AS n FROM orders GROUP BY o_orderpriority ORDER BY 1
  output: {path: results/q4}
"#;

#[test]
fn an_sql_job_loads_with_its_tables_and_writes_parquet_by_default() {
    let job = load_job("job.yaml", GOOD).expect("valid");
    let sql = job.spec.sql.as_ref().expect("sql");
    assert_eq!(sql.tables.keys().collect::<Vec<_>>(), ["nation", "orders"]);
    assert!(
        sql.query
            .as_deref()
            .unwrap_or_default()
            .contains("GROUP BY o_orderpriority")
    );
    assert_eq!(job.spec.output_format(), kask_api::Format::Parquet);
    assert_eq!(
        job.spec.input_paths(),
        [
            ("spec.sql.tables.nation.path".to_string(), "dims/nation.csv"),
            (
                "spec.sql.tables.orders.path".to_string(),
                "tpch/orders/*.parquet"
            ),
        ]
    );
}

#[test]
fn an_empty_query_and_no_tables_are_refused_with_their_field_paths() {
    let yaml = r#"
apiVersion: kask.dev/v1alpha1
kind: DaskJob
metadata: {name: empty}
spec:
  sql: {tables: {}, query: "  "}
  output: {path: out}
"#;
    assert_eq!(
        errors_of(yaml),
        [
            "spec.sql.tables: needs at least one table",
            "spec.sql.query: must not be empty"
        ]
    );
}

#[test]
fn a_table_is_checked_like_a_dataframe_input() {
    let yaml = GOOD.replace("dims/nation.csv", "/abs/nation.csv").replace(
        "{path: \"tpch/orders/*.parquet\"}",
        "{path: o.zarr, format: zarr}",
    );
    let errors = errors_of(&yaml);
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("spec.sql.tables.nation.path:")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e
            == "spec.sql.tables.orders.format: a table is parquet, csv or json; Zarr arrays are inputs of array jobs"),
        "{errors:?}"
    );
}

#[test]
fn an_sql_job_may_not_also_be_another_kind_nor_write_zarr() {
    let both = GOOD.replace(
        "  output:",
        "  bag: {inputs: {l: {path: l.txt}}, steps: [{source: l}]}\n  output:",
    );
    assert!(
        errors_of(&both).contains(
            &"spec: only one of dataframe, sql, array or bag may be set (found bag, sql)"
                .to_string()
        ),
        "{:?}",
        errors_of(&both)
    );
    let zarr = GOOD.replace("{path: results/q4}", "{path: results/q4, format: zarr}");
    assert_eq!(
        errors_of(&zarr),
        ["spec.output.format: an SQL job cannot write zarr; use parquet or csv or json"]
    );
}

#[test]
fn an_output_inside_a_table_is_refused() {
    let yaml = GOOD.replace("{path: results/q4}", "{path: tpch/orders}");
    let errors = errors_of(&yaml);
    assert!(
        errors.iter().any(
            |e| e.starts_with("spec.output.path:") && e.contains("spec.sql.tables.orders.path")
        ),
        "{errors:?}"
    );
}

#[test]
fn views_keep_their_order_and_may_not_shadow_a_table() {
    let yaml = GOOD.replace(
        "    query: |",
        "    views:\n      z: SELECT 1 AS one\n      a: SELECT * FROM z\n    query: |",
    );
    let job = load_job("job.yaml", &yaml).expect("valid");
    let views = &job.spec.sql.as_ref().expect("sql").views;
    assert_eq!(
        views.keys().collect::<Vec<_>>(),
        ["z", "a"],
        "in the order written"
    );

    let clash = GOOD.replace(
        "    query: |",
        "    views:\n      Orders: SELECT 1 AS one\n      v: \"  \"\n    query: |",
    );
    assert_eq!(
        errors_of(&clash),
        [
            r#"spec.sql.views.Orders: "Orders" is also the name of a table"#,
            "spec.sql.views.v: must not be empty"
        ]
    );
}

const GRAPH: &str = r#"
apiVersion: kask.dev/v1alpha1
kind: DaskJob
metadata: {name: reports}
spec:
  sql:
    tables:
      orders: {path: "lake/orders/*.parquet"}
    views:
      paid: "SELECT * FROM orders WHERE status = 'paid'"
    outputs:
      by_region: {query: "SELECT region, sum(amount) FROM paid GROUP BY region", path: reports/by_region}
      top: {query: "SELECT * FROM paid ORDER BY amount DESC LIMIT 100", path: reports/top, format: csv}
"#;

#[test]
fn a_job_graph_loads_with_its_outputs_in_order_each_with_its_format() {
    let job = load_job("job.yaml", GRAPH).expect("valid");
    let outs = job.spec.outputs();
    let names: Vec<&str> = outs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["by_region", "top"]);
    let formats: Vec<kask_api::Format> =
        outs.iter().map(|o| job.spec.format_of(&o.output)).collect();
    assert_eq!(formats, [kask_api::Format::Parquet, kask_api::Format::Csv]);
    assert_eq!(job.spec.main_output().path, "reports/by_region");
    assert_eq!(job.spec.scratch_prefix("j1"), "reports/by_region/_kask/j1");
}

#[test]
fn a_job_graph_s_mistakes_are_refused_with_their_field_paths() {
    // Outputs in one another's folder, or over an input; a name with a dot; an empty query.
    let yaml = r#"
apiVersion: kask.dev/v1alpha1
kind: DaskJob
metadata: {name: reports}
spec:
  sql:
    tables:
      orders: {path: "lake/orders/*.parquet"}
    outputs:
      by.region: {query: "SELECT 1", path: reports/by_region}
      top: {query: "SELECT 2", path: reports/by_region/top}
      other: {query: " ", path: lake}
"#;
    let errors = errors_of(yaml);
    for want in [
        "spec.sql.outputs.by.region: an output name must not be empty nor contain '.', '/' or '\"'",
        "spec.sql.outputs.top.path: \"reports/by_region/top\" overlaps spec.sql.outputs.by.region.path (\"reports/by_region\"): each output needs a folder of its own",
        "spec.sql.outputs.other.query: must not be empty",
    ] {
        assert!(errors.iter().any(|e| e == want), "{want}\n{errors:#?}");
    }
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("spec.sql.outputs.other.path:")
                && e.contains("overlaps spec.sql.tables.orders.path")),
        "{errors:#?}"
    );
}

#[test]
fn a_job_graph_has_outputs_or_a_query_with_spec_output_never_both() {
    let both = GRAPH.replace("    outputs:", "    query: SELECT 1\n    outputs:");
    assert_eq!(
        errors_of(&both),
        ["spec.sql: has both query and outputs; a job graph puts each query in outputs"]
    );
    let stray = format!("{GRAPH}  output: {{path: elsewhere}}\n");
    assert_eq!(
        errors_of(&stray),
        [
            "spec.output: is not used by a job graph, whose results are in spec.sql.outputs; remove it"
        ]
    );
    let neither = GOOD.replace("    query: |\n      SELECT o_orderpriority, count(*) AS n FROM orders GROUP BY o_orderpriority ORDER BY 1\n", "");
    assert_eq!(
        errors_of(&neither),
        ["spec.sql: needs a query (with spec.output) or outputs (a job graph)"]
    );
    let no_output = GOOD.replace("  output: {path: results/q4}\n", "");
    assert_eq!(
        errors_of(&no_output),
        ["spec.output: is required with spec.sql.query"]
    );
    let zarr = GRAPH.replace("format: csv", "format: zarr");
    assert_eq!(
        errors_of(&zarr),
        ["spec.sql.outputs.top.format: an SQL job cannot write zarr; use parquet or csv or json"]
    );
}
