//! Bad input gets a clear error naming the input and what is wrong, and a failed job leaves no
//! `_SUCCESS` manifest.

use crate::support::{Lab, batch, floats, ints, strs};

fn job(inputs: &str, pipeline: &str) -> String {
    format!("  dataframe:\n    inputs:\n{inputs}    pipeline:\n{pipeline}  output: {{path: out}}\n")
}

async fn fails(lab: &Lab, spec: &str) -> String {
    let err = lab
        .run(spec)
        .await
        .expect_err("the job must fail")
        .to_string();
    assert!(
        lab.manifest("out").await.is_none(),
        "a failed job leaves no _SUCCESS manifest"
    );
    err
}

fn table() -> datafusion::arrow::array::RecordBatch {
    batch(vec![
        ("id", ints(&[Some(1), Some(2), Some(3)])),
        ("amount", floats(&[Some(1.5), None, Some(3.0)])),
        ("name", strs(&[Some("a"), Some("b"), None])),
    ])
}

#[tokio::test]
async fn malformed_parquet_names_the_file() {
    let lab = Lab::local();
    lab.put_parquet("t/good.parquet", &table(), 10).await;
    lab.put("t/broken.parquet", "PAR1 this is not parquet at all")
        .await;
    let err = fails(
        &lab,
        &job("      t: {path: \"t/*.parquet\"}\n", "      - source: t\n"),
    )
    .await;
    assert!(err.contains("input \"t\""), "{err}");
    assert!(
        err.contains("t/broken.parquet is not a valid Parquet file"),
        "{err}"
    );
}

#[tokio::test]
async fn a_bad_csv_line_names_the_file_and_the_line() {
    let lab = Lab::local();
    lab.put("c/a.csv", "id,amount\n1,2.5\n2,3.5\n").await;
    let mut text = String::from("id,amount\n");
    for i in 0..1200 {
        text.push_str(&format!("{i},{i}.5\n"));
    }
    text.push_str("1200,not-a-number\n1201,1.0\n");
    lab.put("c/b.csv", text).await;
    // Types are inferred from the first 1000 rows, so the bad value is met while reading: on
    // line 1202 of the file, after the header and 1200 good rows.
    let err = fails(
        &lab,
        &job(
            "      c: {path: \"c/*.csv\", format: csv}\n",
            "      - source: c\n      - filter: \"amount > 0\"\n",
        ),
    )
    .await;
    assert!(err.contains("c/b.csv"), "{err}");
    assert!(err.contains("at line 1202"), "{err}");
}

#[tokio::test]
async fn a_bad_csv_line_in_a_later_byte_range_reports_its_line_in_the_file() {
    let lab = Lab::local();
    let mut text = String::from("id,amount\n");
    for i in 1..=2000 {
        text.push_str(&format!("{i},{i}.5\n"));
    }
    text.push_str("2001,oops\n");
    lab.put("c/big.csv", text).await;
    let spec = format!(
        "{}  targetTaskBytes: 4096\n",
        job(
            "      c: {path: \"c/*.csv\", format: csv, csv: {header: true}}\n",
            "      - source: c\n      - filter: \"amount > 1e9\"\n"
        )
    );
    // The inferred type of `amount` is float from the first rows; line 2002 (header is line 1)
    // holds the bad value.
    let err = fails(&lab, &spec).await;
    assert!(err.contains("c/big.csv"), "{err}");
    assert!(err.contains("line 2002"), "{err}");
}

#[tokio::test]
async fn columns_whose_types_differ_between_files_name_both_files_and_the_column() {
    let lab = Lab::local();
    lab.put_parquet("t/a.parquet", &table(), 10).await;
    let other = batch(vec![
        ("id", ints(&[Some(4)])),
        ("amount", strs(&[Some("lots")])),
        ("name", strs(&[Some("d")])),
    ]);
    lab.put_parquet("t/b.parquet", &other, 10).await;
    let err = fails(
        &lab,
        &job("      t: {path: \"t/*.parquet\"}\n", "      - source: t\n"),
    )
    .await;
    assert!(err.contains("column \"amount\""), "{err}");
    assert!(
        err.contains("t/a.parquet") && err.contains("t/b.parquet"),
        "{err}"
    );
}

#[tokio::test]
async fn a_glob_matching_nothing_names_the_glob() {
    let lab = Lab::local();
    lab.put_parquet("t/a.parquet", &table(), 10).await;
    let err = fails(
        &lab,
        &job(
            "      t: {path: \"tables/*.parquet\"}\n",
            "      - source: t\n",
        ),
    )
    .await;
    assert!(
        err.contains("input \"t\": path \"tables/*.parquet\" matches no files"),
        "{err}"
    );
}

#[tokio::test]
async fn an_unknown_column_in_an_expression_is_named_with_its_position() {
    let lab = Lab::local();
    lab.put_parquet("t/a.parquet", &table(), 10).await;
    let err = fails(
        &lab,
        &job(
            "      t: {path: \"t/*.parquet\"}\n",
            "      - source: t\n      - filter: \"amount > 1 AND nmae = 'a'\"\n",
        ),
    )
    .await;
    assert!(
        err.starts_with("spec.dataframe.pipeline[1].filter: unknown column \"nmae\" at column 16"),
        "{err}"
    );
    assert!(err.contains("columns: id, amount, name"), "{err}");
}

#[tokio::test]
async fn an_unknown_column_in_a_groupby_is_named_with_its_field_path() {
    let lab = Lab::local();
    lab.put_parquet("t/a.parquet", &table(), 10).await;
    let err = fails(
        &lab,
        &job(
            "      t: {path: \"t/*.parquet\"}\n",
            "      - source: t\n      - groupby: {by: [name], aggs: {amout: [sum]}}\n",
        ),
    )
    .await;
    assert!(
        err.starts_with("spec.dataframe.pipeline[1].groupby.aggs.amout: no column \"amout\""),
        "{err}"
    );
}

#[tokio::test]
async fn a_task_failing_at_run_time_leaves_no_manifest() {
    let lab = Lab::local();
    lab.put_parquet("t/a.parquet", &table(), 1).await;
    // Division by zero fails at run time in one of the tasks, not at plan time.
    let spec = format!(
        "{}  targetTaskBytes: 1\n",
        job(
            "      t: {path: \"t/*.parquet\"}\n",
            "      - source: t\n      - assign: {x: \"CAST(10 AS INT) / CAST(id - 3 AS INT)\"}\n"
        )
    );
    let err = fails(&lab, &spec).await;
    assert!(err.contains("Divide by zero"), "{err}");
}
