//! The same engine tests on every store: a local directory and a real S3 server (MinIO).

use crate::support::{Lab, V, batch, floats, ints, sorted, strs};

/// Declares a test per store for a conformance case.
macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {
        mod local {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(&crate::support::Lab::local()).await;
                }
            )*
        }
        mod s3 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(lab) = crate::support::Lab::s3() {
                        super::$name(&lab).await;
                    }
                }
            )*
        }
    };
}

on_every_store!(
    groupby_across_tasks_matches_a_single_task,
    narrow_integer_and_float_columns_aggregate_as_pandas_does,
    json_lines_in_and_csv_or_json_out,
    shuffled_and_broadcast_merges_agree,
    csv_byte_ranges_lose_and_duplicate_no_line,
    sort_then_head_takes_the_global_top,
    output_mode_error_refuses_and_overwrite_replaces,
    distinct_keeps_one_row_per_subset_key,
);

fn orders() -> datafusion::arrow::array::RecordBatch {
    let n = 400;
    let k: Vec<Option<i64>> = (0..n)
        .map(|i| if i % 17 == 0 { None } else { Some(i % 7) })
        .collect();
    let v: Vec<Option<f64>> = (0..n)
        .map(|i| {
            if i % 11 == 0 {
                None
            } else {
                Some((i as f64) * 0.5 - 40.0)
            }
        })
        .collect();
    let s: Vec<Option<&str>> = (0..n)
        .map(|i| Some(["a", "b", "c"][i as usize % 3]))
        .collect();
    batch(vec![("k", ints(&k)), ("s", strs(&s)), ("v", floats(&v))])
}

async fn groupby_across_tasks_matches_a_single_task(lab: &Lab) {
    lab.put_partitioned("orders", &orders(), 4, 25).await;
    let job = |target: u64, out: &str| {
        format!(
            "  dataframe:\n    inputs:\n      o: {{path: \"orders/*.parquet\"}}\n    pipeline:\n      - source: o\n      - filter: \"v > -30\"\n      - groupby: {{by: [k, s], aggs: {{v: [count, sum, mean, min, max, std, median, nunique]}}}}\n  targetTaskBytes: {target}\n  shufflePartitions: 3\n  output: {{path: {out}}}\n"
        )
    };
    let many = lab.run(&job(600, "many")).await.expect("many tasks");
    let one = lab.run(&job(1 << 30, "one")).await.expect("one task");
    assert!(
        many.stages >= 2 && many.tasks > 4,
        "the small target cuts the input into several tasks and a shuffle"
    );
    assert_eq!(one.stages, 1, "a single task needs no shuffle");
    let (names, a) = lab.result("many").await;
    let (_, b) = lab.result("one").await;
    assert_eq!(
        names,
        [
            "k",
            "s",
            "v_count",
            "v_sum",
            "v_mean",
            "v_min",
            "v_max",
            "v_std",
            "v_median",
            "v_nunique"
        ]
    );
    assert_eq!(sorted(a.clone()), sorted(b));
    assert!(
        a.iter().all(|r| r[0] != V::Null),
        "dropna drops the null-key group"
    );
    let total: i64 = a
        .iter()
        .map(|r| if let V::I(c) = r[2] { c } else { 0 })
        .sum();
    let expected = (0..400)
        .filter(|i| i % 17 != 0 && i % 11 != 0 && (*i as f64) * 0.5 - 40.0 > -30.0)
        .count();
    assert_eq!(
        total as usize, expected,
        "counts add up to the non-null values kept"
    );
}

async fn narrow_integer_and_float_columns_aggregate_as_pandas_does(lab: &Lab) {
    use datafusion::arrow::array::{Float32Array, Int32Array};
    use std::sync::Arc;
    let n = 300;
    let t = batch(vec![
        (
            "g",
            Arc::new(Int32Array::from_iter_values((0..n).map(|i| i % 3))),
        ),
        (
            "a",
            Arc::new(Int32Array::from_iter_values((0..n).map(|i| i32::MAX - i))) as _,
        ),
        (
            "b",
            Arc::new(Float32Array::from_iter_values(
                (0..n).map(|i| i as f32 / 2.0),
            )) as _,
        ),
    ]);
    lab.put_partitioned("n", &t, 3, 50).await;
    lab.run("  dataframe:\n    inputs:\n      n: {path: \"n/*.parquet\"}\n    pipeline:\n      - source: n\n      - groupby: {by: [g], aggs: {a: [sum, mean, median, min, var], b: [sum, mean, max]}}\n  targetTaskBytes: 600\n  output: {path: out}\n")
        .await
        .expect("int32 and float32 columns aggregate");
    let (_, rows) = sorted_result(lab, "out").await;
    let g0: Vec<i64> = (0..n)
        .filter(|i| i % 3 == 0)
        .map(|i| i64::from(i32::MAX - i))
        .collect();
    let sum: i64 = g0.iter().sum();
    assert_eq!(rows[0][0], V::I(0));
    assert_eq!(
        rows[0][1],
        V::I(sum),
        "int32 sums do not overflow: they are int64, as in pandas"
    );
    assert_eq!(rows[0][2], V::F(sum as f64 / g0.len() as f64));
    assert_eq!(
        rows[0][3],
        V::F((g0[49] + g0[50]) as f64 / 2.0),
        "the median of integers is a float"
    );
}

async fn json_lines_in_and_csv_or_json_out(lab: &Lab) {
    let mut text = String::new();
    for i in 0..3000 {
        let city = if i % 10 == 0 {
            "null".to_string()
        } else {
            format!("\"c{}\"", i % 4)
        };
        text.push_str(&format!(
            "{{\"id\": {i}, \"city\": {city}, \"amount\": {}.5}}\n",
            i % 50
        ));
    }
    lab.put("events/a.jsonl", text.clone()).await;
    lab.put("events/b.jsonl", text).await;
    for format in ["json", "csv"] {
        let s = lab
            .run(&format!(
                "  dataframe:\n    inputs:\n      e: {{path: \"events/*.jsonl\", format: json}}\n    pipeline:\n      - source: e\n      - filter: \"amount > 10\"\n      - groupby: {{by: [city], aggs: {{id: [count]}}, dropna: false}}\n      - sort: {{by: [city]}}\n  targetTaskBytes: 20000\n  output: {{path: {format}-out, format: {format}}}\n"
            ))
            .await
            .expect("json job");
        assert!(s.tasks > 4, "JSON lines are cut into byte ranges too");
        let m = lab
            .manifest(&format!("{format}-out"))
            .await
            .expect("manifest");
        let text = String::from_utf8(
            lab.store
                .get_opt(&format!("{format}-out/{}", m.files[0].path))
                .await
                .expect("read")
                .expect("part")
                .to_vec(),
        )
        .expect("utf8");
        let lines: Vec<&str> = text.lines().collect();
        let expected_count = 2
            * (0..3000)
                .filter(|i| i % 50 > 10 && i % 10 != 0 && i % 4 == 0)
                .count();
        if format == "json" {
            assert_eq!(lines.len(), 5, "four cities and the null city: {text}");
            let first: serde_json::Value =
                serde_json::from_str(lines[0]).expect("a JSON object per line");
            assert_eq!(first["city"], "c0");
            assert_eq!(first["id_count"], expected_count);
        } else {
            assert_eq!(lines[0], "city,id_count", "a header line");
            assert_eq!(lines[1], format!("c0,{expected_count}"));
            assert_eq!(lines.len(), 6);
        }
    }
}

async fn sorted_result(lab: &Lab, out: &str) -> (Vec<String>, Vec<Vec<V>>) {
    let (names, rows) = lab.result(out).await;
    (names, sorted(rows))
}

async fn shuffled_and_broadcast_merges_agree(lab: &Lab) {
    lab.put_partitioned("orders", &orders(), 3, 50).await;
    let regions = batch(vec![
        (
            "k",
            ints(&[Some(0), Some(1), Some(2), Some(3), None, Some(9)]),
        ),
        (
            "region",
            strs(&[
                Some("n"),
                Some("s"),
                Some("e"),
                Some("w"),
                Some("nullkey"),
                Some("nine"),
            ]),
        ),
        (
            "s",
            strs(&[Some("x"), Some("y"), None, Some("x"), Some("y"), Some("z")]),
        ),
    ]);
    lab.put_parquet("regions/r.parquet", &regions, 2).await;
    for how in ["inner", "left", "right", "outer"] {
        let job = |broadcast: u64, out: &str| {
            format!(
                "  dataframe:\n    inputs:\n      o: {{path: \"orders/*.parquet\"}}\n      r: {{path: \"regions/*.parquet\"}}\n    pipeline:\n      - source: o\n      - merge: {{right: r, on: [k], how: {how}}}\n  targetTaskBytes: 2000\n  broadcastBytes: {broadcast}\n  output: {{path: {out}}}\n"
            )
        };
        let shuffled = lab
            .run(&job(0, &format!("{how}-shuffled")))
            .await
            .expect("shuffled merge");
        let broadcast = lab
            .run(&job(1 << 30, &format!("{how}-broadcast")))
            .await
            .expect("broadcast merge");
        assert!(
            shuffled.stages == 3,
            "{how}: a shuffled merge has two map stages and a join stage"
        );
        if matches!(how, "inner" | "left") {
            assert_eq!(
                broadcast.stages, 1,
                "{how}: a small right side is broadcast"
            );
        }
        let (names, a) = lab.result(&format!("{how}-shuffled")).await;
        let (_, b) = lab.result(&format!("{how}-broadcast")).await;
        assert_eq!(
            names,
            ["k", "s_x", "v", "region", "s_y"],
            "{how}: one key column, suffixes on the clash"
        );
        assert_eq!(sorted(a.clone()), sorted(b), "{how}");
        let null_key_rows = a
            .iter()
            .filter(|r| r[0] == V::Null && r[3] == V::S("nullkey".into()))
            .count();
        let left_nulls = (0..400).filter(|i| i % 17 == 0).count();
        assert_eq!(
            null_key_rows, left_nulls,
            "{how}: null keys match each other, as in pandas"
        );
    }
}

async fn csv_byte_ranges_lose_and_duplicate_no_line(lab: &Lab) {
    let mut text = String::from("id,name,amount\n");
    for i in 0..5000 {
        text.push_str(&format!("{i},name-{},{}.25\n", i % 13, i % 100));
    }
    lab.put("csv/a.csv", text.clone()).await;
    lab.put("csv/b.csv", text).await;
    let s = lab
        .run("  dataframe:\n    inputs:\n      c: {path: \"csv/*.csv\", format: csv}\n    pipeline:\n      - source: c\n      - groupby: {by: [name], aggs: {id: [count, sum]}}\n  targetTaskBytes: 4096\n  output: {path: out}\n")
        .await
        .expect("csv job");
    assert!(
        s.tasks > 20,
        "4 KiB ranges cut each ~100 KiB file into many tasks"
    );
    let (_, rows) = lab.result("out").await;
    let count: i64 = rows
        .iter()
        .map(|r| if let V::I(c) = r[1] { c } else { 0 })
        .sum();
    let sum: i64 = rows
        .iter()
        .map(|r| if let V::I(c) = r[2] { c } else { 0 })
        .sum();
    assert_eq!(count, 10_000);
    assert_eq!(sum, 2 * (0..5000).sum::<i64>());
}

async fn sort_then_head_takes_the_global_top(lab: &Lab) {
    lab.put_partitioned("orders", &orders(), 4, 30).await;
    lab.run("  dataframe:\n    inputs:\n      o: {path: \"orders/*.parquet\"}\n    pipeline:\n      - source: o\n      - sort: {by: [v, k], descending: [true, false]}\n      - head: 5\n  targetTaskBytes: 500\n  output: {path: top}\n")
        .await
        .expect("top");
    let (_, rows) = lab.result("top").await;
    let vs: Vec<V> = rows.iter().map(|r| r[2].clone()).collect();
    // i = 396 is a multiple of 11, so 158.0 is null and comes last.
    assert_eq!(
        vs,
        [
            V::F(159.5),
            V::F(159.0),
            V::F(158.5),
            V::F(157.5),
            V::F(157.0)
        ],
        "in order, nulls last"
    );
}

async fn output_mode_error_refuses_and_overwrite_replaces(lab: &Lab) {
    lab.put_partitioned("orders", &orders(), 2, 100).await;
    let job = |filter: &str, mode: &str| {
        format!(
            "  dataframe:\n    inputs:\n      o: {{path: \"orders/*.parquet\"}}\n    pipeline:\n      - source: o\n      - filter: \"{filter}\"\n  targetTaskBytes: 1000\n  output: {{path: res, mode: {mode}}}\n"
        )
    };
    let first = lab.run(&job("k = 1", "error")).await.expect("first");
    let again = lab
        .run(&job("k = 2", "error"))
        .await
        .expect_err("an existing result is refused");
    assert!(
        again.to_string().contains(&format!(
            "already holds the result of job \"test\" ({})",
            first.manifest.job_id
        )),
        "the refusal names the job whose result is there: {again}"
    );
    assert_eq!(
        lab.manifest("res").await.expect("still there").rows,
        first.manifest.rows
    );
    let second = lab
        .run(&job("k = 2 AND v > 0", "overwrite"))
        .await
        .expect("overwrite");
    let (_, rows) = lab.result("res").await;
    assert_eq!(rows.len() as u64, second.manifest.rows);
    assert!(
        rows.iter().all(|r| r[0] == V::I(2)),
        "only the new result remains"
    );
    let listed = lab.store.list("res").await.expect("list");
    let parts = listed.iter().filter(|(p, _)| p.contains("part-")).count();
    assert_eq!(
        parts,
        second.manifest.files.len(),
        "no file of the old result is left: {listed:?}"
    );
    for job in [&first.manifest.job_id, &second.manifest.job_id] {
        assert!(
            !listed
                .iter()
                .any(|(p, _)| p.starts_with(&format!("res/_kask/{job}/"))),
            "the scratch space of {job} is gone after success: {listed:?}"
        );
    }
}

async fn distinct_keeps_one_row_per_subset_key(lab: &Lab) {
    lab.put_partitioned("orders", &orders(), 3, 40).await;
    lab.run("  dataframe:\n    inputs:\n      o: {path: \"orders/*.parquet\"}\n    pipeline:\n      - source: o\n      - distinct: {subset: [k, s]}\n  targetTaskBytes: 800\n  output: {path: d}\n")
        .await
        .expect("distinct");
    let (names, rows) = lab.result("d").await;
    assert_eq!(names, ["k", "s", "v"], "columns keep their order");
    let mut keys: Vec<String> = rows
        .iter()
        .map(|r| format!("{:?}/{:?}", r[0], r[1]))
        .collect();
    let n = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), n, "one row per key");
    assert_eq!(
        n,
        7 * 3 + 3,
        "7 keys × 3 strings, and the null key with each string"
    );
}
