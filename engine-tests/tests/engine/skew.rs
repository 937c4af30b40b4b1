//! Skewed merges: one key holding half the rows. The partition holding it is shared out among
//! the join's tasks (split by map task, the other side's partition sent with each piece), so
//! no task reads much more than its share, and the result equals a plain join here.

use std::collections::HashMap;

use crate::support::{Lab, V, batch, commit_staged as commit, ints, sorted, strs};
use kask_worker::plan::{Plan, StageSource};
use kask_worker::store::Store;

/// The key half the rows hold.
const HOT: i64 = 7;
/// Left rows, in six files.
const LEFT: i64 = 300_000;
const FILES: i64 = 6;

/// Left row `i`: every other row the hot key, the others a key of their own.
fn left_key(i: i64) -> i64 {
    if i % 2 == 0 {
        HOT
    } else {
        1_000 + (i * 7_919) % 1_000_003
    }
}

/// A table of `LEFT` rows (`k`, `i`, `s`) in six files, so that its stage has many map tasks.
async fn left_table(lab: &Lab) {
    for f in 0..FILES {
        let rows = (f * LEFT / FILES)..((f + 1) * LEFT / FILES);
        let k: Vec<Option<i64>> = rows.clone().map(|i| Some(left_key(i))).collect();
        let i: Vec<Option<i64>> = rows.clone().map(Some).collect();
        let s: Vec<String> = rows.map(|i| format!("left-row-{i:09}")).collect();
        let s: Vec<Option<&str>> = s.iter().map(|s| Some(s.as_str())).collect();
        lab.put_parquet(
            &format!("t/part-{f}.parquet"),
            &batch(vec![("k", ints(&k)), ("i", ints(&i)), ("s", strs(&s))]),
            10_000,
        )
        .await;
    }
}

/// Plans and runs `pipeline` over `t` and `u` in 4 tasks per stage, always shuffling both
/// sides of a merge; commits it to `out`. Returns the rows each task of the join read.
async fn run(lab: &Lab, pipeline: &str, out: &str) -> Vec<u64> {
    let spec = format!(
        "  workers: 4\n  targetTaskBytes: 400000\n  broadcastBytes: 0\n  dataframe:\n    inputs: {{t: {{path: \"t/*.parquet\"}}, u: {{path: \"u/*.parquet\"}}}}\n    pipeline: {pipeline}\n  output: {{path: {out}}}\n"
    );
    let (store, plan) = lab.staged(&spec).await;
    let rows = join_rows_in(&store, &plan).await;
    commit(&store, &plan).await;
    rows
}

/// Rows each task of the stage that joins two shuffles read, from their markers (which the
/// commit removes with the rest of the scratch).
async fn join_rows_in(store: &Store, plan: &Plan) -> Vec<u64> {
    let join = plan
        .stages
        .iter()
        .find(|s| matches!(&s.source, StageSource::Sql { reads } if reads.len() == 2))
        .expect("a stage joining two shuffles");
    let mut rows = Vec::new();
    for (path, _) in store
        .list(&plan.markers_dir(join.id))
        .await
        .expect("markers")
    {
        let body = store.get(&path).await.expect("marker");
        let marker: serde_json::Value = serde_json::from_slice(&body).expect("json");
        rows.push(marker["rowsIn"].as_u64().expect("rowsIn"));
    }
    assert_eq!(rows.len(), join.tasks, "a marker per task");
    rows
}

/// Asserts no task read more than 40% of the join's rows (the hot partition alone is more
/// than half of them).
fn assert_shared_out(rows: &[u64], what: &str) {
    let total: u64 = rows.iter().sum();
    let max = rows.iter().copied().max().unwrap_or(0);
    eprintln!("{what}: rows read per task of the join: {rows:?}");
    assert!(
        max * 10 < total * 4,
        "{what}: one task read {max} of {total} rows: {rows:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merges_with_one_key_in_half_the_left_rows_are_shared_out_and_exact() {
    const RIGHT: i64 = 50_000;
    let lab = Lab::local();
    left_table(&lab).await;
    // The hot key twice; other keys that match about a fifth of the left's other rows.
    let right_key = |j: i64| {
        if j < 2 {
            HOT
        } else {
            1_000 + (j * 20) % 1_000_003
        }
    };
    let k: Vec<Option<i64>> = (0..RIGHT).map(|j| Some(right_key(j))).collect();
    let v: Vec<Option<i64>> = (0..RIGHT).map(Some).collect();
    lab.put_parquet(
        "u/u.parquet",
        &batch(vec![("k", ints(&k)), ("v", ints(&v))]),
        10_000,
    )
    .await;
    let mut right: HashMap<i64, Vec<i64>> = HashMap::new();
    for j in 0..RIGHT {
        right.entry(right_key(j)).or_default().push(j);
    }
    let row = |k: i64, i: Option<i64>, j: Option<i64>| {
        vec![
            V::I(k),
            i.map_or(V::Null, V::I),
            i.map_or(V::Null, |i| V::S(format!("left-row-{i:09}"))),
            j.map_or(V::Null, V::I),
        ]
    };
    for how in ["inner", "left", "right", "outer"] {
        let join_rows = run(
            &lab,
            &format!("[{{source: t}}, {{merge: {{right: u, on: [k], how: {how}}}}}]"),
            how,
        )
        .await;
        let (names, rows) = lab.result(how).await;
        assert_eq!(names, ["k", "i", "s", "v"], "{how}");
        let mut want = Vec::new();
        let mut matched = std::collections::HashSet::new();
        for i in 0..LEFT {
            let k = left_key(i);
            match right.get(&k) {
                Some(js) => {
                    matched.insert(k);
                    want.extend(js.iter().map(|&j| row(k, Some(i), Some(j))));
                }
                None if how == "left" || how == "outer" => want.push(row(k, Some(i), None)),
                None => {}
            }
        }
        if how == "right" || how == "outer" {
            for j in 0..RIGHT {
                if !matched.contains(&right_key(j)) {
                    want.push(vec![V::I(right_key(j)), V::Null, V::Null, V::I(j)]);
                }
            }
        }
        assert_eq!(rows.len(), want.len(), "{how}");
        assert!(
            sorted(rows) == sorted(want),
            "{how}: rows differ from the reference"
        );
        // An inner or left merge may split the left side's hot partition; a right or outer
        // merge keeps every right row, so the left must stay whole (and is still exact).
        if how == "inner" || how == "left" {
            assert_shared_out(&join_rows, how);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_with_one_key_in_half_the_rows_of_both_sides_is_shared_out_and_exact() {
    // Half of 300,000 left rows and half of 200 right rows: 15 million joined rows of one
    // key, counted by a groupby after the merge (by a right column: grouped by the key, the
    // aggregation would follow the join in its stage, which needs each key in one task).
    const RIGHT: i64 = 200;
    let lab = Lab::local();
    left_table(&lab).await;
    let right_key = |j: i64| if j % 2 == 0 { HOT } else { 1_000 + j };
    let k: Vec<Option<i64>> = (0..RIGHT).map(|j| Some(right_key(j))).collect();
    let v: Vec<Option<i64>> = (0..RIGHT).map(Some).collect();
    lab.put_parquet(
        "u/u.parquet",
        &batch(vec![("k", ints(&k)), ("v", ints(&v))]),
        100,
    )
    .await;
    let join_rows = run(
        &lab,
        "[{source: t}, {merge: {right: u, on: [k]}}, {groupby: {by: [v], aggs: {i: [count, sum], k: [max]}}}]",
        "res",
    )
    .await;
    let (names, rows) = lab.result("res").await;
    assert_eq!(names, ["v", "i_count", "i_sum", "k_max"]);
    // The reference: a plain join, grouped.
    let mut right: HashMap<i64, Vec<i64>> = HashMap::new();
    for j in 0..RIGHT {
        right.entry(right_key(j)).or_default().push(j);
    }
    let mut groups: HashMap<i64, (i64, i64, i64)> = HashMap::new();
    for i in 0..LEFT {
        let k = left_key(i);
        for &j in right.get(&k).into_iter().flatten() {
            let g = groups.entry(j).or_default();
            g.0 += 1;
            g.1 += i;
            g.2 = g.2.max(k);
        }
    }
    let want: Vec<Vec<V>> = groups
        .into_iter()
        .map(|(v, (n, i, k))| vec![V::I(v), V::I(n), V::I(i), V::I(k)])
        .collect();
    assert!(want.len() > 1, "the reference has the hot key and others");
    assert_eq!(sorted(rows), sorted(want));
    assert_shared_out(&join_rows, "both sides hot");

    // Grouped by the key itself, the aggregation runs in the join's stage and must see each
    // key in one task: the hot partition stays whole there, and the groups are exact.
    run(
        &lab,
        "[{source: t}, {merge: {right: u, on: [k]}}, {groupby: {by: [k], aggs: {i: [count, sum]}}}]",
        "by-key",
    )
    .await;
    let (names, rows) = lab.result("by-key").await;
    assert_eq!(names, ["k", "i_count", "i_sum"]);
    let mut groups: HashMap<i64, (i64, i64)> = HashMap::new();
    for i in 0..LEFT {
        let k = left_key(i);
        let n = right.get(&k).map_or(0, Vec::len) as i64;
        if n > 0 {
            let g = groups.entry(k).or_default();
            g.0 += n;
            g.1 += n * i;
        }
    }
    let want: Vec<Vec<V>> = groups
        .into_iter()
        .map(|(k, (n, i))| vec![V::I(k), V::I(n), V::I(i)])
        .collect();
    assert_eq!(sorted(rows), sorted(want), "grouped by the key");
}
