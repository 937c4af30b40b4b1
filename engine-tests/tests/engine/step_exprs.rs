//! Window functions in `filter` and `assign`, named aggregate expressions and a global
//! aggregate in `groupby`: over several files and tasks, against plain implementations here.

use std::collections::BTreeMap;

use crate::support::{Lab, V, batch, floats, ints, run, sorted};

/// 600 rows: `i` in order, a key `k` in 0..7 with a null every 13th row, `v` distinct (a null
/// every 11th row), `w` a noisy function of `v`.
struct Table {
    i: Vec<i64>,
    k: Vec<Option<i64>>,
    v: Vec<Option<f64>>,
    w: Vec<Option<f64>>,
}

fn table() -> Table {
    let n = 600i64;
    let i: Vec<i64> = (0..n).collect();
    let k = i
        .iter()
        .map(|&i| if i % 13 == 0 { None } else { Some((i * 5) % 7) })
        .collect();
    // Distinct values in a scrambled order, so that the top of a group is not its last rows.
    let v = i
        .iter()
        .map(|&i| (i % 11 != 0).then(|| ((i * 337) % 601) as f64 / 4.0))
        .collect();
    let w = i
        .iter()
        .map(|&i| {
            let x = ((i * 337) % 601) as f64 / 4.0;
            (i % 17 != 0).then(|| 2.0 * x + ((i * 91) % 23) as f64)
        })
        .collect();
    Table { i, k, v, w }
}

async fn put(lab: &Lab, t: &Table) {
    let i: Vec<Option<i64>> = t.i.iter().copied().map(Some).collect();
    let b = batch(vec![
        ("i", ints(&i)),
        ("k", ints(&t.k)),
        ("v", floats(&t.v)),
        ("w", floats(&t.w)),
    ]);
    lab.put_partitioned("t", &b, 4, 40).await;
}

fn job(steps: &str) -> String {
    format!(
        "  dataframe:\n    inputs:\n      t: {{path: \"t/*.parquet\"}}\n    pipeline:\n      - source: t\n{steps}  targetTaskBytes: 1500\n  shufflePartitions: 3\n  output: {{path: out}}\n"
    )
}

fn key(k: Option<i64>) -> V {
    k.map_or(V::Null, V::I)
}

fn opt(x: Option<f64>) -> V {
    x.map_or(V::Null, V::F)
}

#[test]
fn a_window_filter_keeps_the_top_two_of_each_group() {
    run(async {
        let lab = Lab::local();
        let t = table();
        put(&lab, &t).await;
        let run = lab
            .run(&job(
                "      - filter: \"v IS NOT NULL\"\n      - filter: \"row_number() OVER (PARTITION BY k ORDER BY v DESC) <= 2\"\n      - select: [k, v]\n",
            ))
            .await
            .expect("top two per group");
        assert!(run.tasks > 2, "several tasks read the table");
        let (names, types, rows) = lab.typed_result("out").await;
        assert_eq!(
            names,
            ["k", "v"],
            "the window's column served the filter only"
        );
        assert_eq!(types, ["Int64", "Float64"]);
        // SQL's PARTITION BY puts the null keys in one partition of their own.
        let mut groups: BTreeMap<Option<i64>, Vec<f64>> = BTreeMap::new();
        for r in 0..t.i.len() {
            if let Some(v) = t.v[r] {
                groups.entry(t.k[r]).or_default().push(v);
            }
        }
        let mut want = Vec::new();
        for (k, mut vs) in groups {
            vs.sort_by(|a, b| b.total_cmp(a));
            want.extend(vs.into_iter().take(2).map(|v| vec![key(k), V::F(v)]));
        }
        assert_eq!(sorted(rows), sorted(want));
    });
}

#[test]
fn assign_computes_running_sums_ranks_and_shifts() {
    run(async {
        let lab = Lab::local();
        let t = table();
        put(&lab, &t).await;
        lab.run(&job(
            "      - assign:\n          cum: \"sum(v) OVER (PARTITION BY k ORDER BY i ROWS UNBOUNDED PRECEDING)\"\n          prev: \"lag(v) OVER (ORDER BY i)\"\n          rank: \"rank() OVER (PARTITION BY k ORDER BY v DESC NULLS LAST)\"\n      - select: [i, k, cum, prev, rank]\n",
        ))
        .await
        .expect("windows in assign");
        let (names, types, rows) = lab.typed_result("out").await;
        assert_eq!(names, ["i", "k", "cum", "prev", "rank"]);
        assert_eq!(types, ["Int64", "Int64", "Float64", "Float64", "UInt64"]);
        let n = t.i.len();
        let mut running: BTreeMap<Option<i64>, Option<f64>> = BTreeMap::new();
        let mut want = Vec::new();
        for r in 0..n {
            // SQL's sum over nulls only is null; later values add to it.
            let c = running.entry(t.k[r]).or_insert(None);
            if let Some(v) = t.v[r] {
                *c = Some(c.unwrap_or(0.0) + v);
            }
            let cum = *c;
            let prev = if r == 0 { None } else { t.v[r - 1] };
            let rank = match t.v[r] {
                // Nulls last: after every non-null value of the group.
                None => {
                    (0..n)
                        .filter(|&o| t.k[o] == t.k[r] && t.v[o].is_some())
                        .count()
                        + 1
                }
                Some(v) => {
                    (0..n)
                        .filter(|&o| t.k[o] == t.k[r] && t.v[o].is_some_and(|x| x > v))
                        .count()
                        + 1
                }
            };
            want.push(vec![
                V::I(t.i[r]),
                key(t.k[r]),
                opt(cum),
                opt(prev),
                V::I(rank as i64),
            ]);
        }
        assert_eq!(sorted(rows), sorted(want));
    });
}

/// Pearson's correlation of the pairs where both values are present (as SQL's `corr`).
fn corr(pairs: &[(f64, f64)]) -> Option<f64> {
    if pairs.len() < 2 {
        return None;
    }
    let n = pairs.len() as f64;
    let (mx, my) = (
        pairs.iter().map(|p| p.0).sum::<f64>() / n,
        pairs.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let sxy: f64 = pairs.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = pairs.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let syy: f64 = pairs.iter().map(|p| (p.1 - my).powi(2)).sum();
    Some(sxy / (sxx * syy).sqrt())
}

#[test]
fn groupby_expressions_and_a_global_aggregate_agree_with_plain_sums() {
    run(async {
        let lab = Lab::local();
        let t = table();
        put(&lab, &t).await;
        lab.run(&job(
            "      - groupby:\n          by: [k]\n          aggs: {v: [sum]}\n          expressions:\n            r2: \"power(corr(v, w), 2)\"\n            spread: \"max(v) - min(w) + k\"\n            n: \"count(DISTINCT w > 100)\"\n",
        ))
        .await
        .expect("named aggregate expressions");
        let (names, types, rows) = lab.typed_result("out").await;
        assert_eq!(names, ["k", "v_sum", "r2", "spread", "n"]);
        assert_eq!(types, ["Int64", "Float64", "Float64", "Float64", "Int64"]);
        let mut want = Vec::new();
        for g in 0..7 {
            let rs: Vec<usize> = (0..t.i.len()).filter(|&r| t.k[r] == Some(g)).collect();
            let vs: Vec<f64> = rs.iter().filter_map(|&r| t.v[r]).collect();
            let ws: Vec<f64> = rs.iter().filter_map(|&r| t.w[r]).collect();
            let pairs: Vec<(f64, f64)> = rs
                .iter()
                .filter_map(|&r| Some((t.v[r]?, t.w[r]?)))
                .collect();
            let max_v = vs.iter().copied().fold(f64::MIN, f64::max);
            let min_w = ws.iter().copied().fold(f64::MAX, f64::min);
            let big: std::collections::BTreeSet<bool> = ws.iter().map(|w| *w > 100.0).collect();
            want.push(vec![
                V::I(g),
                V::F(vs.iter().sum()),
                opt(corr(&pairs).map(|c| c * c)),
                V::F(max_v - min_w + g as f64),
                V::I(big.len() as i64),
            ]);
        }
        assert_eq!(
            sorted(rows),
            sorted(want),
            "dropna drops the null key's group"
        );

        lab.run(
            &job("      - groupby: {by: [], aggs: {v: [sum, count]}, expressions: {r: \"corr(v, w)\"}}\n")
                .replace("path: out}", "path: all}"),
        )
        .await
        .expect("a global aggregate");
        let (names, rows) = lab.result("all").await;
        assert_eq!(names, ["v_sum", "v_count", "r"]);
        let pairs: Vec<(f64, f64)> = (0..t.i.len())
            .filter_map(|r| Some((t.v[r]?, t.w[r]?)))
            .collect();
        assert_eq!(
            rows,
            [vec![
                V::F(t.v.iter().flatten().sum()),
                V::I(t.v.iter().flatten().count() as i64),
                opt(corr(&pairs)),
            ]]
        );
    });
}

#[test]
fn aggregates_and_windows_in_the_wrong_step_are_refused_by_name() {
    run(async {
        let lab = Lab::local();
        put(&lab, &table()).await;
        let cases = [
            (
                "      - assign: {m: \"v - avg(v)\"}\n",
                "spec.dataframe.pipeline[1].assign.m: avg(…) in \"v - avg(v)\" is an aggregate",
            ),
            (
                "      - groupby: {by: [k], expressions: {x: \"sum(v) + w\"}}\n",
                "spec.dataframe.pipeline[1].groupby.expressions.x: column \"w\" is used outside an aggregate function in \"sum(v) + w\": aggregate it (e.g. sum(w)) or group by it (keys: k)",
            ),
            (
                "      - groupby: {by: [k], expressions: {x: \"rank() OVER (ORDER BY v)\"}}\n",
                "spec.dataframe.pipeline[1].groupby.expressions.x: rank(…) in \"rank() OVER (ORDER BY v)\" is a window function, a value per row: use it in an `assign` step",
            ),
            (
                "      - groupby: {by: [k], expressions: {x: \"corr(v, nope)\"}}\n",
                "spec.dataframe.pipeline[1].groupby.expressions.x: unknown column \"nope\" at column 9 of \"corr(v, nope)\" (columns: i, k, v, w)",
            ),
        ];
        for (steps, want) in cases {
            let err = lab.run(&job(steps)).await.expect_err("refused").to_string();
            assert!(err.contains(want), "{steps}: {err}");
        }
    });
}

/// 2000 rows in 10 groups whose values tie often (13 values each).
fn tied() -> (Vec<i64>, Vec<i64>) {
    let k = (0..2000).map(|i| i % 10).collect();
    let v = (0..2000).map(|i| (i * 7) % 13).collect();
    (k, v)
}

fn ranked_job(function: &str) -> String {
    format!(
        "  dataframe:\n    inputs:\n      t: {{path: \"t/*.parquet\"}}\n    pipeline:\n      - source: t\n      - filter: \"{function}() OVER (PARTITION BY k ORDER BY v DESC) <= 2\"\n  targetTaskBytes: 2000\n  shufflePartitions: 2\n  output: {{path: {function}}}\n"
    )
}

#[test]
fn the_first_rows_of_each_group_are_pruned_before_the_shuffle_ties_kept() {
    run(async {
        let lab = Lab::local();
        let (k, v) = tied();
        let some = |x: &[i64]| x.iter().copied().map(Some).collect::<Vec<_>>();
        let b = batch(vec![("k", ints(&some(&k))), ("v", ints(&some(&v)))]);
        lab.put_partitioned("t", &b, 4, 100).await;
        // rank: 1 + the rows of its group with a larger value; dense_rank: 1 + the larger
        // distinct values.
        let want = |dense: bool| {
            let rows = (0..k.len()).filter(|&r| {
                let larger = (0..k.len()).filter(|&o| k[o] == k[r] && v[o] > v[r]);
                let before = if dense {
                    larger
                        .map(|o| v[o])
                        .collect::<std::collections::BTreeSet<_>>()
                        .len()
                } else {
                    larger.count()
                };
                before < 2
            });
            sorted(rows.map(|r| vec![V::I(k[r]), V::I(v[r])]).collect())
        };
        for (function, pruned) in [("rank", true), ("row_number", true), ("dense_rank", false)] {
            let (store, plan) = lab.planned(&ranked_job(function), None, |_| {}).await;
            let map = kask_worker::relational::SqlStage::of(&plan.stages[0]).expect("SQL stage");
            assert_eq!(
                map.plan.contains("GroupTopKExec"),
                pruned,
                "{function}: the map stage prunes:\n{}",
                map.plan
            );
            for s in 0..plan.stages.len() {
                crate::support::run_stage(&store, &plan, s).await;
            }
            // Before the commit, which removes the markers.
            let shuffled = crate::support::rows_out(&store, &plan, 0).await;
            crate::support::commit_staged(&store, &plan).await;
            let (_, rows) = lab.result(function).await;
            if function == "row_number" {
                // Ties are broken either way: two rows per group, each among the tied top.
                assert_eq!(rows.len(), 20, "{function}");
                let top = want(false);
                assert!(rows.iter().all(|r| top.contains(r)), "{function}: {rows:?}");
            } else {
                assert_eq!(sorted(rows), want(function == "dense_rank"), "{function}");
            }
            if pruned {
                assert!(
                    (20..1000).contains(&shuffled),
                    "{function}: {shuffled} of 2000 rows shuffled"
                );
            } else {
                assert_eq!(shuffled, 2000, "{function}");
            }
        }
    });
}
