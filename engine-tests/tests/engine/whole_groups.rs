//! Grouped aggregations done in one step in their tasks when the Parquet statistics show that
//! no two tasks share a group (`kask_relational::whole_groups`), and in two steps otherwise;
//! results equal plain implementations here either way.

use std::collections::BTreeMap;

use crate::support::{Lab, V, batch, ints, sorted, strs};
use kask_worker::relational::SqlStage;

/// `events(id, v, k)`: 6,000 rows with ids from `ids`, in 3 files of 4 row groups of 500
/// rows. `dim(k, name)`: 5 rows.
async fn lab(ids: impl Fn(i64) -> Option<i64>) -> Lab {
    let lab = Lab::local();
    let id: Vec<Option<i64>> = (0..6000).map(&ids).collect();
    let v: Vec<Option<i64>> = (0..6000).map(|i| Some((i * 37) % 101)).collect();
    let k: Vec<Option<i64>> = (0..6000).map(|i| Some(i % 5)).collect();
    let events = batch(vec![("id", ints(&id)), ("v", ints(&v)), ("k", ints(&k))]);
    lab.put_partitioned("events", &events, 3, 500).await;
    let names = ["a", "b", "c", "d", "e"].map(Some);
    let dim = batch(vec![
        ("k", ints(&(0..5).map(Some).collect::<Vec<_>>())),
        ("name", strs(&names)),
    ]);
    lab.put_partitioned("dim", &dim, 1, 5).await;
    lab
}

fn job(query: &str) -> String {
    format!(
        "  sql:\n    tables:\n      events: {{path: \"events/*.parquet\"}}\n      dim: {{path: \"dim/*.parquet\"}}\n    query: {}\n  targetTaskBytes: 1\n  shufflePartitions: 2\n  output: {{path: out, mode: overwrite}}\n",
        serde_json::to_string(query).expect("json")
    )
}

async fn stage_plans(lab: &Lab, query: &str) -> String {
    let (_, plan) = lab.staged(&job(query)).await;
    plan.stages
        .iter()
        .map(|s| SqlStage::of(s).expect("an SQL stage").plan)
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// Row `i`'s (id, v, k), as the lab wrote them.
fn rows(ids: impl Fn(i64) -> Option<i64>) -> Vec<(Option<i64>, i64, i64)> {
    (0..6000).map(|i| (ids(i), (i * 37) % 101, i % 5)).collect()
}

/// Each id on four rows, which no row group boundary splits.
fn in_order(i: i64) -> Option<i64> {
    Some(i / 4)
}

const SUMS: &str = "SELECT id, sum(v) AS s, avg(v) AS a, count(*) AS n FROM events \
                    GROUP BY id HAVING sum(v) > 150";

/// The answer of [`SUMS`] over `rows`, computed here.
fn sums(rows: &[(Option<i64>, i64, i64)]) -> Vec<Vec<V>> {
    let mut by: BTreeMap<Option<i64>, (i64, i64)> = BTreeMap::new();
    for (id, v, _) in rows {
        let e = by.entry(*id).or_default();
        e.0 += v;
        e.1 += 1;
    }
    by.into_iter()
        .filter(|(_, (s, _))| *s > 150)
        .map(|(id, (s, n))| {
            vec![
                id.map_or(V::Null, V::I),
                V::I(s),
                V::F(s as f64 / n as f64),
                V::I(n),
            ]
        })
        .collect()
}

/// Each file holds its own ids, in row groups of ascending ids: the tasks' ranges do not
/// overlap, so the scan's tasks aggregate to the end and filter before the shuffle, and no
/// stage combines partial aggregates.
#[tokio::test]
async fn groups_whole_in_their_tasks_are_aggregated_there() {
    let lab = lab(in_order).await;
    let plans = stage_plans(&lab, SUMS).await;
    assert!(
        plans.contains("mode=SinglePartitioned") && !plans.contains("mode=Partial"),
        "one step in the scan's tasks:\n{plans}"
    );
    let scan = plans
        .split("\n\n")
        .find(|p| p.contains("events/part-0.parquet"))
        .expect("a scan of events");
    assert!(
        scan.contains("FilterExec") && scan.find("FilterExec") < scan.find("AggregateExec"),
        "the HAVING filter runs in the scan's stage, above its aggregation:\n{plans}"
    );

    lab.run(&job(SUMS)).await.expect("runs");
    let (names, types, got) = lab.typed_result("out").await;
    assert_eq!(names, ["id", "s", "a", "n"]);
    assert_eq!(types, ["Int64", "Int64", "Float64", "Int64"]);
    let want = sums(&rows(in_order));
    assert!(
        want.len() > 100,
        "the filter keeps many groups: {}",
        want.len()
    );
    assert_eq!(sorted(got), sorted(want));
}

/// A `HAVING` that keeps only the key: the filter drops the sums as it runs, before the
/// shuffle, which is keyed by the key's new place.
#[tokio::test]
async fn a_having_that_keeps_only_the_key_runs_before_the_shuffle() {
    let lab = lab(in_order).await;
    let query = "SELECT id FROM events GROUP BY id HAVING sum(v) > 150";
    let plans = stage_plans(&lab, query).await;
    let scan = plans
        .split("\n\n")
        .find(|p| p.contains("events/part-0.parquet"))
        .expect("a scan of events");
    assert!(
        scan.contains("projection=[id@0]") && scan.contains("mode=SinglePartitioned"),
        "the filter and its projection in the scan's stage:\n{plans}"
    );
    lab.run(&job(query)).await.expect("runs");
    let (names, types, got) = lab.typed_result("out").await;
    assert_eq!(
        (names, types),
        (vec!["id".to_string()], vec!["Int64".to_string()])
    );
    let want: Vec<Vec<V>> = sums(&rows(in_order))
        .into_iter()
        .map(|r| vec![r[0].clone()])
        .collect();
    assert_eq!(sorted(got), sorted(want));
}

/// Every file holds every id: partial aggregates in the scan's tasks, combined after the
/// shuffle.
#[tokio::test]
async fn groups_spread_over_tasks_are_combined_after_the_shuffle() {
    let spread = |i: i64| Some(i % 2000);
    let lab = lab(spread).await;
    let plans = stage_plans(&lab, SUMS).await;
    assert!(
        plans.contains("mode=Partial") && plans.contains("mode=FinalPartitioned"),
        "two steps:\n{plans}"
    );
    lab.run(&job(SUMS)).await.expect("runs");
    let (_, _, got) = lab.typed_result("out").await;
    assert_eq!(sorted(got), sorted(sums(&rows(spread))));
}

/// Ids in order but null on rows in every file: the null group would have rows in several
/// tasks, so the statistics' null counts keep the two steps, and the null group is one row.
#[tokio::test]
async fn a_key_with_nulls_keeps_the_two_steps() {
    let holes = |i: i64| (i % 1000 != 7).then_some(i / 4);
    let lab = lab(holes).await;
    let query = "SELECT id, sum(v) AS s, avg(v) AS a, count(*) AS n FROM events \
                 GROUP BY id HAVING sum(v) > 0";
    let plans = stage_plans(&lab, query).await;
    assert!(
        plans.contains("mode=FinalPartitioned"),
        "two steps:\n{plans}"
    );
    lab.run(&job(query)).await.expect("runs");
    let (_, _, got) = lab.typed_result("out").await;
    let nulls = got.iter().filter(|r| r[0] == V::Null).count();
    assert_eq!(nulls, 1, "one null group");
    let mut by: BTreeMap<Option<i64>, (i64, i64)> = BTreeMap::new();
    for (id, v, _) in rows(holes) {
        let e = by.entry(id).or_default();
        e.0 += v;
        e.1 += 1;
    }
    let want: Vec<Vec<V>> = by
        .into_iter()
        .filter(|(_, (s, _))| *s > 0)
        .map(|(id, (s, n))| {
            vec![
                id.map_or(V::Null, V::I),
                V::I(s),
                V::F(s as f64 / n as f64),
                V::I(n),
            ]
        })
        .collect();
    assert_eq!(sorted(got), sorted(want));
}

/// The key reaches the aggregation through a join with a small table collected whole in
/// every task (the scan's rows stay in their task): still one step.
#[tokio::test]
async fn a_key_through_a_collected_join_is_still_whole() {
    let lab = lab(in_order).await;
    let query = "SELECT e.id, d.name, sum(e.v) AS s FROM events e JOIN dim d ON e.k = d.k \
                 WHERE d.name <> 'c' GROUP BY e.id, d.name";
    let plans = stage_plans(&lab, query).await;
    assert!(
        plans.contains("mode=CollectLeft") && plans.contains("mode=SinglePartitioned"),
        "one step after the collected join:\n{plans}"
    );
    lab.run(&job(query)).await.expect("runs");
    let (names, types, got) = lab.typed_result("out").await;
    assert_eq!(names, ["id", "name", "s"]);
    assert_eq!(types, ["Int64", "Utf8", "Int64"]);
    let names = ["a", "b", "c", "d", "e"];
    let mut by: BTreeMap<(i64, &str), i64> = BTreeMap::new();
    for (id, v, k) in rows(in_order) {
        let name = names[k as usize];
        if name != "c" {
            *by.entry((id.expect("no nulls"), name)).or_default() += v;
        }
    }
    let want: Vec<Vec<V>> = by
        .into_iter()
        .map(|((id, name), s)| vec![V::I(id), V::S(name.into()), V::I(s)])
        .collect();
    assert_eq!(sorted(got), sorted(want));
}
