//! `concat`, `melt`, `explode` and semi/anti merges, over several files and tasks and through a view that two
//! outputs share, against plain implementations here; and a union that meets a shared view's
//! never-null column with a null one, in a dataframe and in an SQL job graph, and scans whose
//! projections hold casts and nulls.

use std::collections::BTreeSet;

use crate::support::{Lab, V, batch, floats, ints, run, sorted, strs};

fn key(k: Option<i64>) -> V {
    k.map_or(V::Null, V::I)
}

/// `a`: k (nulls, duplicates), v; `b`: k, s. 90 and 40 rows.
async fn tables(lab: &Lab) -> (Vec<(Option<i64>, f64)>, Vec<(Option<i64>, String)>) {
    let a: Vec<(Option<i64>, f64)> = (0..90)
        .map(|i| ((i % 9 != 0).then_some(i % 12), i as f64 / 2.0))
        .collect();
    let b: Vec<(Option<i64>, String)> = (0..40)
        .map(|i| ((i % 7 != 0).then_some(3 + i % 15), format!("s{i}")))
        .collect();
    let ak: Vec<Option<i64>> = a.iter().map(|r| r.0).collect();
    let av: Vec<Option<f64>> = a.iter().map(|r| Some(r.1)).collect();
    let bk: Vec<Option<i64>> = b.iter().map(|r| r.0).collect();
    let bs: Vec<Option<&str>> = b.iter().map(|r| Some(r.1.as_str())).collect();
    lab.put_partitioned(
        "a",
        &batch(vec![("k", ints(&ak)), ("v", floats(&av))]),
        3,
        10,
    )
    .await;
    lab.put_partitioned("b", &batch(vec![("k", ints(&bk)), ("s", strs(&bs))]), 2, 10)
        .await;
    (a, b)
}

#[test]
fn concat_matches_columns_by_name_and_fills_the_missing_with_nulls() {
    run(async {
        let lab = Lab::local();
        let (a, b) = tables(&lab).await;
        // `big` is used by both outputs: computed once and read back as a table.
        lab.run(
            "  dataframe:\n    inputs:\n      a: {path: \"a/*.parquet\"}\n      b: {path: \"b/*.parquet\"}\n    views:\n      big: [{source: a}, {filter: \"v >= 30\"}, {assign: {tag: \"'big'\"}}]\n    outputs:\n      all:\n        pipeline: [{source: big}, {concat: [b, a]}]\n        path: all\n      n:\n        pipeline: [{source: big}, {groupby: {by: [], aggs: {v: [count]}}}]\n        path: n\n  targetTaskBytes: 300\n  shufflePartitions: 2\n",
        )
        .await
        .expect("concat of a view, an input and an input");
        let (names, types, rows) = lab.typed_result("all").await;
        assert_eq!(names, ["k", "v", "tag", "s"], "by first appearance");
        assert_eq!(types, ["Int64", "Float64", "Utf8", "Utf8"]);
        let mut want: Vec<Vec<V>> = a
            .iter()
            .filter(|r| r.1 >= 30.0)
            .map(|r| vec![key(r.0), V::F(r.1), V::S("big".into()), V::Null])
            .collect();
        want.extend(
            b.iter()
                .map(|r| vec![key(r.0), V::Null, V::Null, V::S(r.1.clone())]),
        );
        want.extend(
            a.iter()
                .map(|r| vec![key(r.0), V::F(r.1), V::Null, V::Null]),
        );
        assert_eq!(sorted(rows), sorted(want));
        let (_, n) = lab.result("n").await;
        let big = a.iter().filter(|r| r.1 >= 30.0).count() as i64;
        assert_eq!(n, [vec![V::I(big)]]);
    });
}

#[test]
fn semi_and_anti_merges_keep_left_rows_once_null_keys_matching() {
    run(async {
        let lab = Lab::local();
        let (a, b) = tables(&lab).await;
        for (how, keep) in [("semi", true), ("anti", false)] {
            lab.run(&format!(
                "  dataframe:\n    inputs:\n      a: {{path: \"a/*.parquet\"}}\n      b: {{path: \"b/*.parquet\"}}\n    pipeline:\n      - source: a\n      - merge: {{right: b, \"on\": [k], how: {how}}}\n  targetTaskBytes: 300\n  broadcastBytes: 0\n  shufflePartitions: 3\n  output: {{path: {how}}}\n"
            ))
            .await
            .expect("merge");
            let (names, rows) = lab.result(how).await;
            assert_eq!(names, ["k", "v"], "{how}: the left columns only");
            // pandas' isin: a missing key matches a missing key.
            let right: BTreeSet<Option<i64>> = b.iter().map(|r| r.0).collect();
            let want: Vec<Vec<V>> = a
                .iter()
                .filter(|r| right.contains(&r.0) == keep)
                .map(|r| vec![key(r.0), V::F(r.1)])
                .collect();
            assert_eq!(sorted(rows), sorted(want), "{how}");
        }
    });
}

#[test]
fn concat_refuses_columns_whose_types_cannot_meet() {
    run(async {
        let lab = Lab::local();
        tables(&lab).await;
        let err = lab
            .run("  dataframe:\n    inputs:\n      a: {path: \"a/*.parquet\"}\n      b: {path: \"b/*.parquet\"}\n    pipeline:\n      - source: a\n      - rename: {v: s}\n      - assign: {s: \"[1, 2]\"}\n      - concat: [b]\n  output: {path: out}\n")
            .await
            .expect_err("a list and a string do not meet")
            .to_string();
        assert!(
            err.contains("spec.dataframe.pipeline[3].concat[0]: column \"s\" is List(Int64) before but Utf8View in \"b\"; the rows cannot share it"),
            "{err}"
        );
    });
}

#[test]
fn an_sql_union_meets_a_shared_views_never_null_column_with_nulls() {
    run(async {
        let lab = Lab::local();
        let (a, _) = tables(&lab).await;
        lab.run(
            "  sql:\n    tables:\n      a: {path: \"a/*.parquet\"}\n    views:\n      v: \"SELECT k, 'x' AS tag FROM a WHERE v >= 30\"\n    outputs:\n      u: {query: \"SELECT * FROM v UNION ALL SELECT k, NULL FROM a WHERE v < 5\", path: u}\n      n: {query: \"SELECT count(*) AS n FROM v\", path: n}\n      w: {query: \"SELECT CAST(k AS INT) AS k, NULL AS z FROM a UNION ALL SELECT NULL, CAST(v AS INT) FROM a\", path: w}\n  targetTaskBytes: 300\n",
        )
        .await
        .expect("a union over a shared view");
        let (_, rows) = lab.result("u").await;
        let mut want: Vec<Vec<V>> = a
            .iter()
            .filter(|r| r.1 >= 30.0)
            .map(|r| vec![key(r.0), V::S("x".into())])
            .collect();
        want.extend(
            a.iter()
                .filter(|r| r.1 < 5.0)
                .map(|r| vec![key(r.0), V::Null]),
        );
        assert_eq!(sorted(rows), sorted(want));
        // Scans whose projections hold casts and nulls, which a union meets.
        let (_, types, rows) = lab.typed_result("w").await;
        assert_eq!(types, ["Int32", "Int32"]);
        let mut want: Vec<Vec<V>> = a.iter().map(|r| vec![key(r.0), V::Null]).collect();
        want.extend(a.iter().map(|r| vec![V::Null, V::I(r.1.trunc() as i64)]));
        assert_eq!(sorted(rows), sorted(want));
    });
}

#[test]
fn melt_turns_each_value_column_into_rows_of_a_shared_type() {
    run(async {
        let lab = Lab::local();
        let (a, _) = tables(&lab).await;
        lab.run(
            "  dataframe:\n    inputs:\n      a: {path: \"a/*.parquet\"}\n    pipeline:\n      - source: a\n      - assign: {i: \"k * 10\"}\n      - melt: {idVars: [k], valueName: x}\n  targetTaskBytes: 300\n  output: {path: out}\n",
        )
        .await
        .expect("melt");
        let (names, types, rows) = lab.typed_result("out").await;
        assert_eq!(names, ["k", "variable", "x"]);
        // pandas: int64 and float64 values share float64.
        assert_eq!(types, ["Int64", "Utf8", "Float64"]);
        let mut want = Vec::new();
        for (k, v) in &a {
            want.push(vec![key(*k), V::S("v".into()), V::F(*v)]);
            want.push(vec![
                key(*k),
                V::S("i".into()),
                k.map_or(V::Null, |k| V::F((k * 10) as f64)),
            ]);
        }
        assert_eq!(sorted(rows), sorted(want));
    });
}

#[test]
fn explode_gives_a_row_per_element_and_one_for_a_null_or_empty_list() {
    run(async {
        let lab = Lab::local();
        let (a, _) = tables(&lab).await;
        // k = null: a null list; k = 0: an empty list; else the elements k, k + 1, ..., k + k % 3.
        lab.run(
            "  dataframe:\n    inputs:\n      a: {path: \"a/*.parquet\"}\n    pipeline:\n      - source: a\n      - assign: {l: \"CASE WHEN k = 0 THEN make_array() ELSE range(k, k + k % 3 + 1) END\"}\n      - explode: l\n  targetTaskBytes: 300\n  output: {path: out}\n",
        )
        .await
        .expect("explode");
        let (names, types, rows) = lab.typed_result("out").await;
        assert_eq!(names, ["k", "v", "l"], "the column keeps its place");
        assert_eq!(types, ["Int64", "Float64", "Int64"]);
        let mut want = Vec::new();
        for (k, v) in &a {
            match k {
                None | Some(0) => want.push(vec![key(*k), V::F(*v), V::Null]),
                Some(k) => {
                    for e in *k..=k + k % 3 {
                        want.push(vec![V::I(*k), V::F(*v), V::I(e)]);
                    }
                }
            }
        }
        assert_eq!(sorted(rows), sorted(want));
    });
}

#[test]
fn melt_and_explode_refuse_what_they_cannot_reshape() {
    run(async {
        let lab = Lab::local();
        tables(&lab).await;
        let job = |step: &str| {
            format!(
                "  dataframe:\n    inputs:\n      a: {{path: \"a/*.parquet\"}}\n    pipeline:\n      - source: a\n      - assign: {{l: \"[k]\"}}\n      - {step}\n  output: {{path: out}}\n"
            )
        };
        for (step, want) in [
            (
                "explode: v",
                "spec.dataframe.pipeline[2].explode: column \"v\" is Float64, not a list",
            ),
            (
                "explode: w",
                "spec.dataframe.pipeline[2].explode: no column \"w\" (columns: k, v, l)",
            ),
            (
                "melt: {idVars: [k]}",
                "spec.dataframe.pipeline[2].melt: the value columns have no type in common: v (Float64), l (List(Int64))",
            ),
            (
                "melt: {idVars: [k], varName: k}",
                "spec.dataframe.pipeline[2].melt: \"k\" names an idVars column",
            ),
        ] {
            let err = lab.run(&job(step)).await.expect_err(step).to_string();
            assert!(err.contains(want), "{step}: {err}");
        }
    });
}
