//! The `window` step against a plain implementation of pandas' semantics here: rolling with
//! `min_periods`, expanding, cumsum/cummax, shift and diff both ways, and the five rank
//! methods, per group (null keys left out, as `groupby(dropna=True)`) and over all rows, over
//! several files, tasks and shuffle partitions; values and types.

use crate::support::{Lab, V, batch, floats, ints, run, sorted, strs};

/// A row: group key (nulls), a unique order, a float value (nulls, ties), an integer.
#[derive(Clone, Debug)]
struct Row {
    k: Option<&'static str>,
    t: i64,
    v: Option<f64>,
    n: i64,
}

fn rows() -> Vec<Row> {
    let keys = [Some("a"), Some("b"), None, Some("c")];
    (0..150)
        .map(|i: i64| Row {
            k: keys[((i * 13) % 7 % 4) as usize],
            t: (i * 37) % 150,
            v: (i % 11 != 3).then_some(((i * 7) % 5) as f64 * 1.5),
            n: (i * 5) % 17 - 8,
        })
        .collect()
}

/// The rows of one group in the window's order (`t`).
fn groups(rows: &[Row], by_key: bool) -> Vec<Vec<&Row>> {
    let mut keys: Vec<Option<&str>> = rows
        .iter()
        .map(|r| if by_key { r.k } else { None })
        .collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| !by_key || k.is_some())
        .map(|k| {
            let mut g: Vec<&Row> = rows.iter().filter(|r| !by_key || r.k == k).collect();
            g.sort_by_key(|r| r.t);
            g
        })
        .collect()
}

fn f(x: Option<f64>) -> V {
    x.map_or(V::Null, V::F)
}

/// pandas' `rolling(n, min_periods=m).mean()` of a group's values.
fn rolling_mean(vals: &[Option<f64>], n: usize, m: usize) -> Vec<V> {
    (0..vals.len())
        .map(|i| {
            let w: Vec<f64> = vals[i.saturating_sub(n - 1)..=i]
                .iter()
                .flatten()
                .copied()
                .collect();
            if w.len() >= m && !w.is_empty() {
                V::F(w.iter().sum::<f64>() / w.len() as f64)
            } else {
                V::Null
            }
        })
        .collect()
}

/// pandas' `expanding().std()` (ddof 1, min_periods 1: null until two values).
fn expanding_std(vals: &[Option<f64>]) -> Vec<V> {
    (0..vals.len())
        .map(|i| {
            let w: Vec<f64> = vals[..=i].iter().flatten().copied().collect();
            if w.len() < 2 {
                return V::Null;
            }
            let mean = w.iter().sum::<f64>() / w.len() as f64;
            let ss: f64 = w.iter().map(|x| (x - mean).powi(2)).sum();
            V::F((ss / (w.len() - 1) as f64).sqrt())
        })
        .collect()
}

/// pandas' `rank(method)` of a group's values (nulls keep null), `first` by the group's order.
fn rank(vals: &[Option<f64>], method: &str, ascending: bool) -> Vec<V> {
    let key = |x: f64| if ascending { x } else { -x };
    let present: Vec<(usize, f64)> = vals
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|x| (i, key(x))))
        .collect();
    let mut distinct: Vec<f64> = present.iter().map(|p| p.1).collect();
    distinct.sort_by(f64::total_cmp);
    distinct.dedup();
    (0..vals.len())
        .map(|i| {
            let Some(x) = vals[i].map(key) else {
                return V::Null;
            };
            let below = present.iter().filter(|p| p.1 < x).count() as f64;
            let ties = present.iter().filter(|p| p.1 == x).count() as f64;
            let earlier_ties = present.iter().filter(|p| p.1 == x && p.0 < i).count() as f64;
            V::F(match method {
                "min" => below + 1.0,
                "max" => below + ties,
                "average" => below + (ties + 1.0) / 2.0,
                "first" => below + earlier_ties + 1.0,
                _ => (distinct.iter().position(|d| *d == x).unwrap_or(0) + 1) as f64,
            })
        })
        .collect()
}

async fn write(lab: &Lab, rows: &[Row]) {
    let k: Vec<Option<&str>> = rows.iter().map(|r| r.k).collect();
    let t: Vec<Option<i64>> = rows.iter().map(|r| Some(r.t)).collect();
    let v: Vec<Option<f64>> = rows.iter().map(|r| r.v).collect();
    let n: Vec<Option<i64>> = rows.iter().map(|r| Some(r.n)).collect();
    lab.put_partitioned(
        "w",
        &batch(vec![
            ("k", strs(&k)),
            ("t", ints(&t)),
            ("v", floats(&v)),
            ("n", ints(&n)),
        ]),
        3,
        20,
    )
    .await;
}

#[test]
fn per_group_windows_follow_pandas() {
    run(async {
        let lab = Lab::local();
        let rows = rows();
        write(&lab, &rows).await;
        lab.run(
            "  dataframe:\n    inputs:\n      w: {path: \"w/*.parquet\"}\n    pipeline:\n      - source: w\n      - window:\n          by: [k]\n          orderBy: [t]\n          columns:\n            roll: {column: v, rolling: 3, agg: mean, minPeriods: 2}\n            sd: {column: v, expanding: true, agg: std}\n            cs: {column: n, cum: sum}\n            prev: {column: n, shift: 1}\n            next: {column: v, shift: -2}\n            d: {column: n, diff: 1}\n            ravg: {column: v, rank: average}\n            rmax: {column: v, rank: max, ascending: false}\n            rfirst: {column: v, rank: first}\n            rdense: {column: v, rank: dense}\n  targetTaskBytes: 700\n  shufflePartitions: 3\n  output: {path: out}\n",
        )
        .await
        .expect("a window step by k");
        let (names, types, got) = lab.typed_result("out").await;
        assert_eq!(
            names,
            [
                "k", "t", "v", "n", "roll", "sd", "cs", "prev", "next", "d", "ravg", "rmax",
                "rfirst", "rdense"
            ]
        );
        assert_eq!(
            types,
            [
                "Utf8", "Int64", "Float64", "Int64", "Float64", "Float64", "Int64", "Int64",
                "Float64", "Float64", "Float64", "Float64", "Float64", "Float64"
            ]
        );
        let mut want: Vec<Vec<V>> = Vec::new();
        for g in groups(&rows, true) {
            let vals: Vec<Option<f64>> = g.iter().map(|r| r.v).collect();
            let roll = rolling_mean(&vals, 3, 2);
            let sd = expanding_std(&vals);
            let (ravg, rmax) = (rank(&vals, "average", true), rank(&vals, "max", false));
            let (rfirst, rdense) = (rank(&vals, "first", true), rank(&vals, "dense", true));
            let mut cs = 0;
            for (i, r) in g.iter().enumerate() {
                cs += r.n;
                want.push(vec![
                    V::S(r.k.unwrap_or_default().into()),
                    V::I(r.t),
                    f(r.v),
                    V::I(r.n),
                    roll[i].clone(),
                    sd[i].clone(),
                    V::I(cs),
                    i.checked_sub(1).map_or(V::Null, |j| V::I(g[j].n)),
                    g.get(i + 2).map_or(V::Null, |x| f(x.v)),
                    i.checked_sub(1)
                        .map_or(V::Null, |j| V::F((r.n - g[j].n) as f64)),
                    ravg[i].clone(),
                    rmax[i].clone(),
                    rfirst[i].clone(),
                    rdense[i].clone(),
                ]);
            }
        }
        // A row with a null key is in no group: every new column is null, as pandas.
        for r in rows.iter().filter(|r| r.k.is_none()) {
            let mut row = vec![V::Null, V::I(r.t), f(r.v), V::I(r.n)];
            row.extend(std::iter::repeat_n(V::Null, 10));
            want.push(row);
        }
        assert_eq!(sorted(got), sorted(want));
    });
}

#[test]
fn windows_over_all_rows_and_bad_windows_named() {
    run(async {
        let lab = Lab::local();
        let rows = rows();
        write(&lab, &rows).await;
        lab.run(
            "  dataframe:\n    inputs:\n      w: {path: \"w/*.parquet\"}\n    pipeline:\n      - source: w\n      - window: {orderBy: [t], columns: {s: {column: v, rolling: 4, agg: sum, minPeriods: 0}, m: {column: v, cum: max}}}\n  targetTaskBytes: 700\n  output: {path: all}\n",
        )
        .await
        .expect("a window over all rows");
        let (_, got) = lab.result("all").await;
        let all = &groups(&rows, false)[0];
        let mut best: Option<f64> = None;
        let want: Vec<Vec<V>> = all
            .iter()
            .enumerate()
            .map(|(i, r)| {
                // pandas sums an empty window to 0 with min_periods=0.
                let s: f64 = all[i.saturating_sub(3)..=i]
                    .iter()
                    .filter_map(|x| x.v)
                    .sum();
                best = match (best, r.v) {
                    (Some(b), Some(x)) => Some(b.max(x)),
                    (b, x) => b.or(x),
                };
                let m = r.v.and(best);
                vec![
                    r.k.map_or(V::Null, |k| V::S(k.into())),
                    V::I(r.t),
                    f(r.v),
                    V::I(r.n),
                    V::F(s),
                    f(m),
                ]
            })
            .collect();
        assert_eq!(sorted(got), sorted(want));

        let err = lab
            .run(
                "  dataframe:\n    inputs:\n      w: {path: \"w/*.parquet\"}\n    pipeline:\n      - source: w\n      - window: {columns: {s: {column: v, shift: 1, rank: min}, r: {column: v, rolling: 2}, c: {column: v, cum: sum}}}\n  output: {path: bad}\n",
            )
            .await
            .expect_err("bad window columns");
        let text = err.to_string();
        for says in [
            "spec.dataframe.pipeline[1].window.columns.s: sets shift, rank; one column takes one operation",
            "spec.dataframe.pipeline[1].window.columns.r.agg: a rolling or expanding window needs agg",
            "spec.dataframe.pipeline[1].window.columns.c: cum needs the window's orderBy",
        ] {
            assert!(text.contains(says), "{says:?} in {text}");
        }
    });
}
