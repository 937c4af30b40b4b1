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
    assert!(sql.query.contains("GROUP BY o_orderpriority"));
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
