//! The distributed sort: a result in order whose rows come from several tasks is sorted by key
//! range in several tasks, each writing one part, and the parts in order are the whole result
//! in order. Results are compared with a sort done here, by hand.

use std::cmp::Ordering;

use crate::support::{
    Lab, V, batch, commit_staged as commit, floats, ints, run_stage, sorted, spilled_bytes, strs,
};
use kask_worker::plan::{Plan, Sink, Stage};

const FILES: i64 = 6;
const ROWS_PER_FILE: i64 = 40_000;

/// A row of `t`: a key, a name, the row's own number.
type Row = (Option<i64>, String, f64);

/// Row `i`: a key with many repeats and some nulls, a name, and the row's own number.
fn row(i: i64) -> Row {
    let k = (i % 97 != 0).then(|| (i.wrapping_mul(2_654_435_761) % 5_003).abs());
    (k, format!("name-{:04}", (i * 7) % 1_000), i as f64)
}

/// Six Parquet files in `t/`, one map task each.
async fn lab() -> Lab {
    let lab = Lab::local();
    for f in 0..FILES {
        let rows: Vec<_> = (f * ROWS_PER_FILE..(f + 1) * ROWS_PER_FILE)
            .map(row)
            .collect();
        let k: Vec<Option<i64>> = rows.iter().map(|r| r.0).collect();
        let s: Vec<Option<&str>> = rows.iter().map(|r| Some(r.1.as_str())).collect();
        let v: Vec<Option<f64>> = rows.iter().map(|r| Some(r.2)).collect();
        lab.put_parquet(
            &format!("t/part-{f}.parquet"),
            &batch(vec![("k", ints(&k)), ("s", strs(&s)), ("v", floats(&v))]),
            10_000,
        )
        .await;
    }
    lab
}

fn spec(query: &str, out: &str) -> String {
    format!(
        "  sql:\n    tables: {{t: {{path: \"t/*.parquet\"}}}}\n    query: \"{query}\"\n  shufflePartitions: 4\n  targetTaskBytes: 100000\n  output: {{path: {out}}}\n"
    )
}

/// `ORDER BY k DESC NULLS FIRST, s`, worked out here.
fn by_k_desc_then_s(a: &Row, b: &Row) -> Ordering {
    let k = match (a.0, b.0) {
        (None, None) => Ordering::Equal,
        (None, _) => Ordering::Less,
        (_, None) => Ordering::Greater,
        (Some(x), Some(y)) => y.cmp(&x),
    };
    k.then_with(|| a.1.cmp(&b.1))
}

fn values((k, s, v): Row) -> Vec<V> {
    vec![k.map_or(V::Null, V::I), V::S(s), V::F(v)]
}

/// The stage that writes sorted runs, if the plan has one.
fn runs_stage(plan: &Plan) -> Option<&Stage> {
    plan.stages
        .iter()
        .find(|s| matches!(s.sink, Sink::Ranges { .. }))
}

/// Every row, sorted here by `order`, as values.
fn want(order: fn(&Row, &Row) -> Ordering) -> Vec<Vec<V>> {
    let mut rows: Vec<Row> = (0..FILES * ROWS_PER_FILE).map(row).collect();
    rows.sort_by(order);
    rows.into_iter().map(values).collect()
}

/// The result's rows part by part, checking that the manifest lists the parts in name order.
async fn parts(lab: &Lab, out: &str) -> Vec<Vec<Vec<V>>> {
    let m = lab.manifest(out).await.expect("a manifest");
    let names: Vec<&str> = m.files.iter().map(|f| f.path.as_str()).collect();
    let mut in_order = names.clone();
    in_order.sort_unstable();
    assert_eq!(names, in_order, "the manifest lists the parts in order");
    let (_, rows) = lab.result(out).await;
    let mut at = 0;
    m.files
        .iter()
        .map(|f| {
            let part = rows[at..at + f.rows as usize].to_vec();
            at += f.rows as usize;
            part
        })
        .collect()
}

/// The rows in order with each one's sort key alone (rows with equal keys may come in any
/// order), and all the rows in a canonical order.
fn keys_and_rows(rows: &[Vec<V>]) -> (Vec<Vec<V>>, Vec<Vec<V>>) {
    let keys = rows.iter().map(|r| r[..2].to_vec()).collect();
    (keys, sorted(rows.to_vec()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_by_over_several_tasks_is_sorted_by_key_range_into_parts_in_order() {
    let lab = lab().await;
    let (store, plan) = lab
        .staged(&spec(
            "SELECT k, s, v FROM t ORDER BY k DESC NULLS FIRST, s",
            "res",
        ))
        .await;
    let runs = runs_stage(&plan).expect("a stage writes sorted runs");
    assert!(runs.tasks >= 2, "{} map tasks", runs.tasks);
    let last = plan.stages.last().expect("stages");
    assert_eq!(last.tasks, 4, "one task per key range");
    commit(&store, &plan).await;

    let parts = parts(&lab, "res").await;
    assert!(parts.len() >= 2, "{} parts", parts.len());
    let total = (FILES * ROWS_PER_FILE) as usize;
    for p in &parts {
        assert!(
            p.len() <= total / 2,
            "a part of {} rows of {total}",
            p.len()
        );
    }
    let got: Vec<Vec<V>> = parts.concat();
    let want = want(by_k_desc_then_s);
    assert_eq!(got.len(), want.len());
    let (got_keys, got_rows) = keys_and_rows(&got);
    let (want_keys, want_rows) = keys_and_rows(&want);
    assert!(got_keys == want_keys, "the rows are not in order");
    assert!(got_rows == want_rows, "not the same rows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sort_with_a_limit_keeps_one_merging_task() {
    let lab = lab().await;
    let (store, plan) = lab
        .staged(&spec(
            "SELECT k, s, v FROM t ORDER BY v DESC LIMIT 5",
            "top",
        ))
        .await;
    assert!(runs_stage(&plan).is_none(), "a top-5 needs no key ranges");
    assert_eq!(plan.stages.last().expect("stages").tasks, 1);
    commit(&store, &plan).await;
    let (_, rows) = lab.result("top").await;
    let want: Vec<Vec<V>> = (0..5)
        .map(|j| values(row(FILES * ROWS_PER_FILE - 1 - j)))
        .collect();
    assert_eq!(rows, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_holding_most_rows_and_an_empty_result_both_come_out_exact() {
    let lab = lab().await;
    // Nine rows in ten have the same key: ranges cut inside it come out empty, and its rows
    // are all in one part.
    lab.run(&spec(
        "SELECT CASE WHEN v % 10 = 0 THEN v ELSE -1 END AS c, v FROM t ORDER BY c, v DESC",
        "skew",
    ))
    .await
    .expect("the skewed sort runs");
    let got: Vec<Vec<V>> = parts(&lab, "skew").await.concat();
    let mut want: Vec<(f64, f64)> = (0..FILES * ROWS_PER_FILE)
        .map(|i| {
            let v = i as f64;
            (if i % 10 == 0 { v } else { -1.0 }, v)
        })
        .collect();
    want.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)));
    let want: Vec<Vec<V>> = want
        .into_iter()
        .map(|(c, v)| vec![V::F(c), V::F(v)])
        .collect();
    assert!(got == want, "the skewed sort is not exact");

    lab.run(&spec("SELECT k, s FROM t WHERE v < 0 ORDER BY k", "none"))
        .await
        .expect("an empty sorted result");
    let (_, rows) = lab.result("none").await;
    assert!(rows.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_sort_of_more_runs_than_a_small_budget_merges_sorts_each_range_again_spilling() {
    let lab = lab().await;
    let body = "  dataframe:\n    inputs: {t: {path: \"t/*.parquet\"}}\n    pipeline: [{source: t}, {sort: {by: [s, v], descending: true}}]\n  shufflePartitions: 3\n  targetTaskBytes: 100000\n  output: {path: res}\n";
    let (store, plan) = lab.staged_with_memory(body, Some(16 << 20)).await;
    assert!(runs_stage(&plan).is_some());
    // Twenty-four runs are more than a merge may hold in this pool: each range is sorted
    // again, spilling.
    let last = plan.stages.last().expect("stages").id;
    let spilled = spilled_bytes(&store, &plan, [last]).await;
    assert!(spilled > 0, "the ranges were not sorted again, spilling");
    commit(&store, &plan).await;
    let got: Vec<Vec<V>> = parts(&lab, "res").await.concat();
    let want = want(|a, b| b.1.cmp(&a.1).then(b.2.total_cmp(&a.2)));
    assert!(got == want, "the sorted rows differ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_sorted_run_is_made_again_and_every_range_stays_exact() {
    let lab = lab().await;
    let (store, plan) = lab
        .staged(&spec("SELECT k, s, v FROM t ORDER BY s, v", "res"))
        .await;
    let runs = runs_stage(&plan).expect("sorted runs").id;
    let last = plan.stages.last().expect("stages").id;
    // Undo the last stage and lose one map task's run: the reducers must make it again (a
    // new epoch of the map task) and cut the same ranges from it.
    for (path, _) in store.list(&plan.markers_dir(last)).await.expect("markers") {
        store.delete(&path).await.expect("delete marker");
    }
    let lost: Vec<String> = store
        .list(&plan.scratch())
        .await
        .expect("scratch")
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| p.contains(&format!("/attempts/{runs}/")) && p.ends_with("shuffle.arrow"))
        .collect();
    assert!(
        !lost.is_empty(),
        "the map tasks' runs are in the scratch space"
    );
    store.delete(&lost[0]).await.expect("lose a run");
    run_stage(&store, &plan, last).await;
    commit(&store, &plan).await;

    let got: Vec<Vec<V>> = parts(&lab, "res").await.concat();
    let want = want(|a, b| a.1.cmp(&b.1).then(a.2.total_cmp(&b.2)));
    assert!(got == want, "the sort is not exact after a lost run");
}
