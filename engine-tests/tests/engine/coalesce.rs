//! Small shuffle partitions taken together: once the map tasks are done, a reduce stage whose
//! partitions are small gives them all to its first task, so a small result is one file;
//! partitions the spec names stay as they are. Answers equal plain implementations here.

use std::collections::BTreeMap;

use crate::faults::{FaultRates, FaultStore, Faults};
use crate::support::{Lab, V, batch, commit_staged, ints, rows_out, run_stage, sorted};
use kask_worker::relational::SqlStage;

/// Rows of `t`: `k` in 0..40 (null every 13th row), `v` = i.
fn rows() -> Vec<(Option<i64>, i64)> {
    (0..3_000)
        .map(|i| ((i % 13 != 0).then_some((i * 7) % 40), i))
        .collect()
}

/// Rows of `u`: `k` in 20..60, `w` = 10 i.
fn other_rows() -> Vec<(i64, i64)> {
    (0..200).map(|i| (20 + i % 40, 10 * i)).collect()
}

/// `t` in six files (six map tasks) and `u` in three.
async fn lab() -> Lab {
    let lab = Lab::local();
    let t = rows();
    for f in 0..6 {
        let part = &t[f * 500..(f + 1) * 500];
        let k: Vec<Option<i64>> = part.iter().map(|r| r.0).collect();
        let v: Vec<Option<i64>> = part.iter().map(|r| Some(r.1)).collect();
        lab.put_parquet(
            &format!("t/part-{f}.parquet"),
            &batch(vec![("k", ints(&k)), ("v", ints(&v))]),
            100,
        )
        .await;
    }
    let u = other_rows();
    for f in 0..3 {
        let part = &u[f * 67..((f + 1) * 67).min(u.len())];
        let k: Vec<Option<i64>> = part.iter().map(|r| Some(r.0)).collect();
        let w: Vec<Option<i64>> = part.iter().map(|r| Some(r.1)).collect();
        lab.put_parquet(
            &format!("u/part-{f}.parquet"),
            &batch(vec![("k", ints(&k)), ("w", ints(&w))]),
            100,
        )
        .await;
    }
    lab
}

/// A job over `t` and `u` with four workers, so four reduce partitions; `more` adds to the spec.
fn job(query: &str, more: &str) -> String {
    format!(
        "{more}  workers: 4\n  sql:\n    tables:\n      t: {{path: \"t/*.parquet\"}}\n      u: {{path: \"u/*.parquet\"}}\n    query: {}\n  targetTaskBytes: 1\n  broadcastBytes: 0\n  output: {{path: out, mode: overwrite}}\n",
        serde_json::to_string(query).expect("json")
    )
}

const GROUPED: &str = "SELECT k, sum(v) AS s, count(*) AS n FROM t GROUP BY k";

/// `GROUPED`, by a plain loop.
fn grouped() -> Vec<Vec<V>> {
    let mut by: BTreeMap<Option<i64>, (i64, i64)> = BTreeMap::new();
    for (k, v) in rows() {
        let e = by.entry(k).or_default();
        e.0 += v;
        e.1 += 1;
    }
    by.into_iter()
        .map(|(k, (s, n))| vec![k.map_or(V::Null, V::I), V::I(s), V::I(n)])
        .collect()
}

/// The stage that reads the shuffles with small partitions taken together, and its tasks.
fn coalescing_stage(plan: &kask_worker::plan::Plan) -> Option<(usize, usize)> {
    plan.stages.iter().enumerate().find_map(|(i, s)| {
        let sub = SqlStage::of(s).expect("an SQL stage");
        sub.plan
            .contains("small partitions taken together")
            .then_some((i, s.tasks))
    })
}

#[tokio::test]
async fn a_small_grouped_result_is_reduced_by_one_task_into_one_file() {
    let lab = lab().await;
    let (store, plan) = lab.staged(&job(GROUPED, "")).await;
    let (stage, tasks) = coalescing_stage(&plan).expect("a stage taking partitions together");
    assert_eq!(tasks, 4, "the plan keeps a task per partition");
    // Every task ran; the first read every partition, the others none.
    let mut per_task = Vec::new();
    for (m, _) in store.list(&plan.markers_dir(stage)).await.expect("markers") {
        let marker: serde_json::Value =
            serde_json::from_slice(&store.get(&m).await.expect("marker")).expect("json");
        per_task.push((
            marker["task"].as_u64().expect("task"),
            marker["rowsOut"].as_u64().expect("rows"),
        ));
    }
    per_task.sort();
    let busy: Vec<u64> = per_task.iter().filter(|t| t.1 > 0).map(|t| t.0).collect();
    assert_eq!(busy, [0], "{per_task:?}");
    assert_eq!(rows_out(&store, &plan, stage).await, 41);
    commit_staged(&store, &plan).await;
    let manifest = lab.manifest("out").await.expect("committed");
    assert_eq!(manifest.files.len(), 1);
    let (names, types, got) = lab.typed_result("out").await;
    assert_eq!(names, ["k", "s", "n"]);
    assert_eq!(types, ["Int64", "Int64", "Int64"]);
    assert_eq!(sorted(got), sorted(grouped()));
}

#[tokio::test]
async fn a_task_taking_partitions_together_reads_each_map_output_in_one_request() {
    let lab = lab().await;
    let (store, plan) = lab.planned(&job(GROUPED, ""), None, |_| {}).await;
    let (stage, partitions) = coalescing_stage(&plan).expect("a stage taking partitions together");
    assert_eq!(stage, 1, "the grouping reads the scan's shuffle");
    assert_eq!(partitions, 4);
    let maps = plan.stages[0].tasks;
    assert_eq!(maps, 30, "a map task per row group");
    run_stage(&store, &plan, 0).await;
    // The reduce stage through a store that counts its requests (and injects nothing).
    let faults = Faults::new(0, FaultRates::default());
    run_stage(&FaultStore::around(&store, &faults), &plan, stage).await;
    // Four small partitions of each map output, adjacent in its file: one read each, not four.
    assert_eq!(faults.shuffle_reads(), maps);
    for s in stage + 1..plan.stages.len() {
        run_stage(&store, &plan, s).await;
    }
    commit_staged(&store, &plan).await;
    let (_, types, got) = lab.typed_result("out").await;
    assert_eq!(types, ["Int64", "Int64", "Int64"]);
    assert_eq!(sorted(got), sorted(grouped()));
}

#[tokio::test]
async fn partitions_the_spec_names_are_each_reduced_by_a_task_of_their_own() {
    let lab = lab().await;
    let (store, plan) = lab.staged(&job(GROUPED, "  shufflePartitions: 4\n")).await;
    assert_eq!(coalescing_stage(&plan), None);
    commit_staged(&store, &plan).await;
    let manifest = lab.manifest("out").await.expect("committed");
    assert_eq!(manifest.files.len(), 4);
    let (_, _, got) = lab.typed_result("out").await;
    assert_eq!(sorted(got), sorted(grouped()));
}

#[tokio::test]
async fn both_sides_of_a_full_join_take_the_same_partitions_together() {
    let lab = lab().await;
    let query = "SELECT t.k AS tk, u.k AS uk, v, w FROM t FULL JOIN u ON t.k = u.k";
    let (store, plan) = lab.staged(&job(query, "")).await;
    let (stage, _) = coalescing_stage(&plan).expect("a join taking partitions together");
    let sub = SqlStage::of(&plan.stages[stage])
        .expect("an SQL stage")
        .plan;
    assert_eq!(
        sub.matches("small partitions taken together").count(),
        2,
        "{sub}"
    );
    for s in 0..plan.stages.len() {
        run_stage(&store, &plan, s).await;
    }
    commit_staged(&store, &plan).await;
    let (_, types, got) = lab.typed_result("out").await;
    assert_eq!(types, ["Int64", "Int64", "Int64", "Int64"]);
    // The plain full join: null keys match nothing.
    let (t, u) = (rows(), other_rows());
    let mut want = Vec::new();
    for &(k, v) in &t {
        let matches: Vec<&(i64, i64)> = u.iter().filter(|r| Some(r.0) == k).collect();
        if matches.is_empty() {
            want.push(vec![k.map_or(V::Null, V::I), V::Null, V::I(v), V::Null]);
        }
        for &&(uk, w) in &matches {
            want.push(vec![V::I(uk), V::I(uk), V::I(v), V::I(w)]);
        }
    }
    for &(uk, w) in &u {
        if !t.iter().any(|r| r.0 == Some(uk)) {
            want.push(vec![V::Null, V::I(uk), V::Null, V::I(w)]);
        }
    }
    assert_eq!(sorted(got), sorted(want));
}
