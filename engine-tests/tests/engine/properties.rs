//! Property tests: filter, assign, merge and groupby against plain reference implementations,
//! over random tables with nulls, duplicate and skewed keys, empty sides and partitions, and
//! several partitionings of the same data (files, row groups, tasks, shuffle partitions).

use proptest::prelude::*;

use crate::support::{Lab, V, batch, floats, ints, run, sorted, strs};

#[derive(Clone, Debug)]
struct Row {
    k: Option<i64>,
    s: Option<String>,
    v: Option<f64>,
}

#[derive(Clone, Debug)]
struct Layout {
    files: usize,
    rows_per_group: usize,
    target_task_bytes: u64,
    shuffle_partitions: u32,
}

fn row(key_domain: i64) -> impl Strategy<Value = Row> {
    (
        prop_oneof![1 => Just(None), 6 => (0..key_domain).prop_map(Some)],
        prop_oneof![1 => Just(None), 4 => prop::sample::select(vec!["a", "b", "c"]).prop_map(|s| Some(s.to_string()))],
        prop_oneof![1 => Just(None), 5 => (-50i32..50).prop_map(|x| Some(f64::from(x) / 4.0))],
    )
        .prop_map(|(k, s, v)| Row { k, s, v })
}

fn table(max_rows: usize) -> impl Strategy<Value = Vec<Row>> {
    // Key domains from one group (all keys equal) to all-distinct keys.
    prop_oneof![Just(1i64), Just(3), Just(1000)]
        .prop_flat_map(move |d| prop::collection::vec(row(d), 0..max_rows))
}

fn layout() -> impl Strategy<Value = Layout> {
    (
        1usize..4,
        1usize..12,
        prop::sample::select(vec![1u64, 700, 1 << 30]),
        1u32..4,
    )
        .prop_map(
            |(files, rows_per_group, target_task_bytes, shuffle_partitions)| Layout {
                files,
                rows_per_group,
                target_task_bytes,
                shuffle_partitions,
            },
        )
}

fn to_batch(rows: &[Row], names: [&str; 3]) -> datafusion::arrow::array::RecordBatch {
    let k: Vec<Option<i64>> = rows.iter().map(|r| r.k).collect();
    let s: Vec<Option<&str>> = rows.iter().map(|r| r.s.as_deref()).collect();
    let v: Vec<Option<f64>> = rows.iter().map(|r| r.v).collect();
    batch(vec![
        (names[0], ints(&k)),
        (names[1], strs(&s)),
        (names[2], floats(&v)),
    ])
}

fn opt_i(x: Option<i64>) -> V {
    x.map(V::I).unwrap_or(V::Null)
}
fn opt_f(x: Option<f64>) -> V {
    x.map(V::F).unwrap_or(V::Null)
}
fn opt_s(x: &Option<String>) -> V {
    x.clone().map(V::S).unwrap_or(V::Null)
}

async fn put(lab: &Lab, dir: &str, rows: &[Row], names: [&str; 3], l: &Layout) {
    lab.put_partitioned(dir, &to_batch(rows, names), l.files, l.rows_per_group)
        .await;
}

fn settings(l: &Layout) -> String {
    format!(
        "  targetTaskBytes: {}\n  shufflePartitions: {}\n",
        l.target_task_bytes, l.shuffle_partitions
    )
}

// ---- reference implementations ----

fn median(mut xs: Vec<f64>) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(|a, b| a.total_cmp(b));
    let n = xs.len();
    Some(if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    })
}

fn var(xs: &[f64]) -> Option<f64> {
    if xs.len() < 2 {
        return None;
    }
    let mean = xs.iter().sum::<f64>() / xs.len() as f64;
    Some(xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (xs.len() - 1) as f64)
}

/// pandas `df.groupby("k", dropna=...)["v"].agg([...])`.
fn groupby_reference(rows: &[Row], dropna: bool) -> Vec<Vec<V>> {
    let mut keys: Vec<Option<i64>> = Vec::new();
    for r in rows {
        if (r.k.is_some() || !dropna) && !keys.contains(&r.k) {
            keys.push(r.k);
        }
    }
    keys.iter()
        .map(|k| {
            let vs: Vec<f64> = rows
                .iter()
                .filter(|r| r.k == *k)
                .filter_map(|r| r.v)
                .collect();
            let mut distinct = vs.clone();
            distinct.sort_by(|a, b| a.total_cmp(b));
            distinct.dedup();
            let sum: f64 = vs.iter().sum();
            vec![
                opt_i(*k),
                V::I(vs.len() as i64),
                V::F(sum),
                if vs.is_empty() {
                    V::Null
                } else {
                    V::F(sum / vs.len() as f64)
                },
                opt_f(vs.iter().copied().reduce(f64::min)),
                opt_f(vs.iter().copied().reduce(f64::max)),
                opt_f(var(&vs)),
                opt_f(var(&vs).map(f64::sqrt)),
                opt_f(vs.first().copied()),
                opt_f(vs.last().copied()),
                V::I(distinct.len() as i64),
                opt_f(median(vs)),
            ]
        })
        .collect()
}

/// pandas `left.merge(right, on=on, how=how)` with left (k, s, v) and right (k, s, w).
fn merge_reference(left: &[Row], right: &[Row], on_s: bool, how: &str) -> Vec<Vec<V>> {
    let matches = |l: &Row, r: &Row| l.k == r.k && (!on_s || l.s == r.s);
    let row = |l: Option<&Row>, r: Option<&Row>| -> Vec<V> {
        let k = l.map(|l| l.k).or(r.map(|r| r.k)).flatten();
        let mut out = vec![opt_i(k)];
        if on_s {
            out.push(opt_s(
                &l.map(|l| l.s.clone()).or(r.map(|r| r.s.clone())).flatten(),
            ));
            out.push(opt_f(l.and_then(|l| l.v)));
            out.push(opt_f(r.and_then(|r| r.v)));
        } else {
            out.push(opt_s(&l.and_then(|l| l.s.clone())));
            out.push(opt_f(l.and_then(|l| l.v)));
            out.push(opt_s(&r.and_then(|r| r.s.clone())));
            out.push(opt_f(r.and_then(|r| r.v)));
        }
        out
    };
    let mut out = Vec::new();
    for l in left {
        let ms: Vec<&Row> = right.iter().filter(|r| matches(l, r)).collect();
        for r in &ms {
            out.push(row(Some(l), Some(r)));
        }
        if ms.is_empty() && matches!(how, "left" | "outer") {
            out.push(row(Some(l), None));
        }
    }
    if matches!(how, "right" | "outer") {
        for r in right {
            if !left.iter().any(|l| matches(l, r)) {
                out.push(row(None, Some(r)));
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn filter_and_assign_match_the_reference(rows in table(60), l in layout()) {
        run(async {
            let lab = Lab::local();
            put(&lab, "t", &rows, ["k", "s", "v"], &l).await;
            let spec = format!(
                "  dataframe:\n    inputs:\n      t: {{path: \"t/*.parquet\"}}\n    pipeline:\n      - source: t\n      - filter: \"v > 0 OR s = 'a'\"\n      - assign: {{x: \"v * 2 + k\", s: \"upper(s)\"}}\n{}  output: {{path: out}}\n",
                settings(&l)
            );
            lab.run(&spec).await.expect("job");
            let (names, got) = lab.result("out").await;
            assert_eq!(names, ["k", "s", "v", "x"]);
            let expected: Vec<Vec<V>> = rows
                .iter()
                .filter(|r| r.v.is_some_and(|v| v > 0.0) || r.s.as_deref() == Some("a"))
                .map(|r| {
                    let x = match (r.v, r.k) { (Some(v), Some(k)) => V::F(v * 2.0 + k as f64), _ => V::Null };
                    vec![opt_i(r.k), opt_s(&r.s.as_ref().map(|s| s.to_uppercase())), opt_f(r.v), x]
                })
                .collect();
            assert_eq!(got, expected, "a row-wise pipeline keeps the input's order");
        });
    }

    #[test]
    fn groupby_matches_the_reference(rows in table(80), l in layout(), dropna in any::<bool>()) {
        run(async {
            let lab = Lab::local();
            put(&lab, "t", &rows, ["k", "s", "v"], &l).await;
            let spec = format!(
                "  dataframe:\n    inputs:\n      t: {{path: \"t/*.parquet\"}}\n    pipeline:\n      - source: t\n      - groupby: {{by: [k], dropna: {dropna}, aggs: {{v: [count, sum, mean, min, max, var, std, first, last, nunique, median]}}}}\n{}  output: {{path: out}}\n",
                settings(&l)
            );
            lab.run(&spec).await.expect("job");
            let (names, got) = lab.result("out").await;
            assert_eq!(names, ["k", "v_count", "v_sum", "v_mean", "v_min", "v_max", "v_var", "v_std", "v_first", "v_last", "v_nunique", "v_median"]);
            assert_eq!(sorted(got), sorted(groupby_reference(&rows, dropna)));
        });
    }

    #[test]
    fn merge_matches_the_reference(
        left in table(40),
        right in table(25),
        l in layout(),
        how in prop::sample::select(vec!["inner", "left", "right", "outer"]),
        on_s in any::<bool>(),
        broadcast in any::<bool>(),
    ) {
        run(async {
            let lab = Lab::local();
            put(&lab, "l", &left, ["k", "s", "v"], &l).await;
            put(&lab, "r", &right, ["k", "s", "v"], &l).await;
            let on = if on_s { "[k, s]" } else { "[k]" };
            let spec = format!(
                "  dataframe:\n    inputs:\n      l: {{path: \"l/*.parquet\"}}\n      r: {{path: \"r/*.parquet\"}}\n    pipeline:\n      - source: l\n      - merge: {{right: r, on: {on}, how: {how}}}\n{}  broadcastBytes: {}\n  output: {{path: out}}\n",
                settings(&l),
                if broadcast { 1u64 << 30 } else { 0 }
            );
            lab.run(&spec).await.expect("job");
            let (names, got) = lab.result("out").await;
            let expected_names: &[&str] = if on_s { &["k", "s", "v_x", "v_y"] } else { &["k", "s_x", "v_x", "s_y", "v_y"] };
            assert_eq!(names, expected_names);
            assert_eq!(sorted(got), sorted(merge_reference(&left, &right, on_s, how)));
        });
    }
}
