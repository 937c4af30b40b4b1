//! Operators held to a memory budget (`kask run --memory`): a sort and a groupby whose state is
//! several times the pool finish by spilling to disk, and their results equal a plain
//! implementation here.

use std::collections::HashMap;

use crate::support::{Lab, V, batch, commit_staged as commit, ints, sorted, spilled_bytes, strs};
use kask_worker::store::Store;

const ROWS: i64 = 1_200_000;
/// `--memory 48Mi`: a 24 MiB pool after the reserve.
const MEMORY: u64 = 48 << 20;

/// A pseudo-random key per row (a multiplicative hash), so that neither order nor groups
/// follow the file.
fn key(i: i64) -> i64 {
    (i.wrapping_mul(2_654_435_761) % 1_000_003).abs()
}

async fn lab() -> Lab {
    let lab = Lab::local();
    let k: Vec<Option<i64>> = (0..ROWS).map(|i| Some(key(i))).collect();
    let names: Vec<String> = (0..ROWS)
        .map(|i| format!("name-{:07}", i % 400_000))
        .collect();
    let s: Vec<Option<&str>> = names.iter().map(|n| Some(n.as_str())).collect();
    lab.put_parquet(
        "t/t.parquet",
        &batch(vec![("k", ints(&k)), ("s", strs(&s))]),
        100_000,
    )
    .await;
    lab
}

/// Runs `pipeline` over `t` in one task under [`MEMORY`], commits it, and returns what its
/// tasks spilled.
async fn run(lab: &Lab, pipeline: &str) -> (Store, u64) {
    run_over(lab, "{t: {path: \"t/*.parquet\"}}", pipeline, "res").await
}

/// [`run`] over the tables `inputs`.
async fn run_over(lab: &Lab, inputs: &str, pipeline: &str, out: &str) -> (Store, u64) {
    let spec = format!(
        "  dataframe:\n    inputs: {inputs}\n    pipeline: {pipeline}\n  output: {{path: {out}}}\n"
    );
    let (store, plan) = lab.staged_with_memory(&spec, Some(MEMORY)).await;
    let spilled = spilled_bytes(&store, &plan, plan.stages.iter().map(|s| s.id)).await;
    commit(&store, &plan).await;
    (store, spilled)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sort_larger_than_its_budget_spills_and_is_exact() {
    let lab = lab().await;
    let (_, spilled) = run(&lab, "[{source: t}, {sort: {by: [k, s]}}]").await;
    assert!(spilled > 0, "the sort spilled nothing");
    let (names, rows) = lab.result("res").await;
    assert_eq!(names, ["k", "s"]);
    let mut want: Vec<(i64, String)> = (0..ROWS)
        .map(|i| (key(i), format!("name-{:07}", i % 400_000)))
        .collect();
    want.sort();
    let want: Vec<Vec<V>> = want
        .into_iter()
        .map(|(k, s)| vec![V::I(k), V::S(s)])
        .collect();
    assert_eq!(rows.len(), want.len());
    assert!(rows == want, "the rows are not in sort order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_groupby_with_more_groups_than_its_budget_holds_spills_and_is_exact() {
    let lab = lab().await;
    let (_, spilled) = run(
        &lab,
        "[{source: t}, {groupby: {by: [s], aggs: {k: [sum, count, max]}}}]",
    )
    .await;
    assert!(spilled > 0, "the groupby spilled nothing");
    let (names, rows) = lab.result("res").await;
    assert_eq!(names, ["s", "k_sum", "k_count", "k_max"]);
    let mut groups: HashMap<String, (i64, i64, i64)> = HashMap::new();
    for i in 0..ROWS {
        let g = groups
            .entry(format!("name-{:07}", i % 400_000))
            .or_insert((0, 0, i64::MIN));
        g.0 += key(i);
        g.1 += 1;
        g.2 = g.2.max(key(i));
    }
    let want: Vec<Vec<V>> = groups
        .into_iter()
        .map(|(s, (sum, n, max))| vec![V::S(s), V::I(sum), V::I(n), V::I(max)])
        .collect();
    assert_eq!(sorted(rows), sorted(want));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_too_small_to_spill_fails_saying_what_to_change() {
    let lab = lab().await;
    let spec = "  dataframe:\n    inputs: {t: {path: \"t/*.parquet\"}}\n    pipeline: [{source: t}, {sort: {by: [k]}}]\n  output: {path: res}\n";
    let e = lab
        .run_with_memory(spec, 1 << 20)
        .await
        .expect_err("a 512 KiB pool cannot hold a sort's merge buffers");
    let text = e.to_string();
    assert!(
        text.contains("more memory than its budget allows")
            && text.contains("spec.resources.limits.memory"),
        "{text}"
    );
    assert!(lab.manifest("res").await.is_none(), "nothing committed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_result_larger_than_an_upload_part_streams_out_with_one_header() {
    let lab = lab().await;
    let spec = "  dataframe:\n    inputs: {t: {path: \"t/*.parquet\"}}\n    pipeline: [{source: t}, {sort: {by: [k, s]}}]\n  output: {path: res, format: csv}\n";
    lab.run_with_memory(spec, MEMORY).await.expect("run");
    let m = lab.manifest("res").await.expect("a manifest");
    let mut got: Vec<(i64, String)> = Vec::new();
    let mut largest = 0;
    for f in &m.files {
        let body = lab
            .store
            .get(&format!("res/{}", f.path))
            .await
            .expect("a listed file");
        largest = largest.max(body.len());
        let text = std::str::from_utf8(&body).expect("utf8");
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("k,s"),
            "{} starts with its header",
            f.path
        );
        for line in lines {
            let (k, s) = line.split_once(',').expect("two fields");
            got.push((k.parse().expect("an integer key"), s.to_string()));
        }
    }
    assert!(
        largest > 10 << 20,
        "no file spans two upload parts ({largest} bytes)"
    );
    let mut want: Vec<(i64, String)> = (0..ROWS)
        .map(|i| (key(i), format!("name-{:07}", i % 400_000)))
        .collect();
    want.sort();
    assert_eq!(got.len(), want.len());
    assert!(
        got == want,
        "the rows differ from the reference or its order"
    );
}

/// Row `j` of the right side of the merge test: a key no other row has, and 30 bytes more.
fn right_key(j: i64) -> i64 {
    (j * 48_271) % 1_000_003
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merges_of_every_how_with_both_sides_larger_than_the_budget_spill_and_are_exact() {
    const RIGHT: i64 = 700_000;
    let lab = lab().await;
    let k: Vec<Option<i64>> = (0..RIGHT).map(|j| Some(right_key(j))).collect();
    let v: Vec<Option<i64>> = (0..RIGHT).map(Some).collect();
    let w: Vec<String> = (0..RIGHT).map(|j| format!("right-row-{j:020}")).collect();
    let w_refs: Vec<Option<&str>> = w.iter().map(|s| Some(s.as_str())).collect();
    lab.put_parquet(
        "u/u.parquet",
        &batch(vec![("k", ints(&k)), ("v", ints(&v)), ("w", strs(&w_refs))]),
        100_000,
    )
    .await;
    let right: HashMap<i64, i64> = (0..RIGHT).map(|j| (right_key(j), j)).collect();
    let left_row = |i: i64| (key(i), format!("name-{:07}", i % 400_000));
    let row = |k: i64, s: Option<String>, j: Option<i64>| {
        vec![
            V::I(k),
            s.map_or(V::Null, V::S),
            j.map_or(V::Null, V::I),
            j.map_or(V::Null, |j| V::S(format!("right-row-{j:020}"))),
        ]
    };
    for how in ["inner", "left", "right", "outer"] {
        let (_, spilled) = run_over(
            &lab,
            "{t: {path: \"t/*.parquet\"}, u: {path: \"u/*.parquet\"}}",
            &format!("[{{source: t}}, {{merge: {{right: u, on: [k], how: {how}}}}}]"),
            how,
        )
        .await;
        assert!(spilled > 0, "{how}: the merge spilled nothing");
        let (names, rows) = lab.result(how).await;
        assert_eq!(names, ["k", "s", "v", "w"], "{how}");
        let mut want = Vec::new();
        let mut matched = std::collections::HashSet::new();
        for i in 0..ROWS {
            let (k, s) = left_row(i);
            match right.get(&k) {
                Some(&j) => {
                    matched.insert(k);
                    want.push(row(k, Some(s), Some(j)));
                }
                None if how == "left" || how == "outer" => want.push(row(k, Some(s), None)),
                None => {}
            }
        }
        if how == "right" || how == "outer" {
            for j in 0..RIGHT {
                if !matched.contains(&right_key(j)) {
                    want.push(row(right_key(j), None, Some(j)));
                }
            }
        }
        assert_eq!(rows.len(), want.len(), "{how}");
        assert!(
            sorted(rows) == sorted(want),
            "{how}: rows differ from the reference"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_budget_plans_more_reduce_partitions_than_workers_and_stays_exact() {
    let lab = lab().await;
    // 1 MiB map tasks over the table; 2 workers; a 24 MiB pool (48 MiB given) takes 6 MiB of
    // input per reduce partition.
    let spec = "  workers: 2\n  targetTaskBytes: 1048576\n  dataframe:\n    inputs: {t: {path: \"t/*.parquet\"}}\n    pipeline: [{source: t}, {groupby: {by: [s], aggs: {k: [count]}}}]\n  output: {path: res}\n";
    let input = lab
        .store
        .size_opt("t/t.parquet")
        .await
        .expect("size")
        .expect("the table");
    let (store, plan) = lab.staged_with_memory(spec, Some(MEMORY)).await;
    let maps = plan.stages[0].tasks;
    let reducers = plan.stages.last().expect("stages").tasks;
    let want = usize::try_from(input.div_ceil(6 << 20)).expect("small");
    assert!(maps > 2 && want > 2, "{maps} map tasks over {input} bytes");
    assert_eq!(reducers, want, "reduce tasks for {input} bytes of input");
    commit(&store, &plan).await;
    let (_, rows) = lab.result("res").await;
    let mut counts: HashMap<String, i64> = HashMap::new();
    for i in 0..ROWS {
        *counts
            .entry(format!("name-{:07}", i % 400_000))
            .or_default() += 1;
    }
    let want: Vec<Vec<V>> = counts
        .into_iter()
        .map(|(s, n)| vec![V::S(s), V::I(n)])
        .collect();
    assert_eq!(sorted(rows), sorted(want));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bag_frequencies_past_the_budget_flush_their_state_and_stay_exact() {
    const WORDS: usize = 1_000_000;
    let lab = Lab::local();
    // Two files (two map tasks), each naming every word twice, a million lines apart.
    let text: String = (0..2 * WORDS)
        .map(|i| format!("w{}\n", i % WORDS))
        .collect();
    lab.put("in/a.txt", text.clone().into_bytes()).await;
    lab.put("in/b.txt", text.into_bytes()).await;
    let spec = "  bag:\n    inputs:\n      r: {path: \"in/*.txt\", format: text}\n    steps:\n      - source: r\n      - frequencies: {}\n  targetTaskBytes: 20000000\n  output: {path: out}\n";
    let (store, plan) = lab.staged_with_memory(spec, Some(MEMORY)).await;
    assert_eq!(plan.stages[0].tasks, 2, "one map task per file");
    for (m, _) in store.list(&plan.markers_dir(0)).await.expect("markers") {
        let body = store.get(&m).await.expect("marker");
        let marker: serde_json::Value = serde_json::from_slice(&body).expect("json");
        // Held whole, a map task's state would send each word once; flushed at a quarter of
        // the 24 MiB pool, the two sightings of a word fall in different flushes.
        assert!(
            marker["rowsOut"].as_u64().expect("rowsOut") > WORDS as u64,
            "a map task did not flush: {marker}"
        );
    }
    commit(&store, &plan).await;
    let m = lab.manifest("out").await.expect("committed");
    let mut seen = std::collections::HashSet::new();
    for f in &m.files {
        let body = lab
            .store
            .get(&format!("out/{}", f.path))
            .await
            .expect("part");
        for line in std::str::from_utf8(&body).expect("utf8").lines() {
            let r: serde_json::Value = serde_json::from_str(line).expect("json");
            assert_eq!(r["count"], 4, "{r}");
            let w = r["value"].as_str().expect("a word").to_string();
            assert!(seen.insert(w), "{r} twice");
        }
    }
    assert_eq!(seen.len(), WORDS);
    assert!((0..WORDS).all(|i| seen.contains(&format!("w{i}"))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_side_too_large_for_the_budget_is_shuffled_not_read_whole_by_every_task() {
    const RIGHT: i64 = 200_000;
    let lab = lab().await;
    let k: Vec<Option<i64>> = (0..RIGHT).map(|j| Some(right_key(j))).collect();
    let w: Vec<String> = (0..RIGHT).map(|j| format!("right-row-{j:020}")).collect();
    let w_refs: Vec<Option<&str>> = w.iter().map(|s| Some(s.as_str())).collect();
    lab.put_parquet(
        "u/u.parquet",
        &batch(vec![("k", ints(&k)), ("w", strs(&w_refs))]),
        50_000,
    )
    .await;
    let bytes = lab
        .store
        .size_opt("u/u.parquet")
        .await
        .expect("size")
        .expect("u");
    // Below the 64 MiB of `broadcastBytes`, above a sixteenth of the 24 MiB pool.
    assert!(bytes > (24 << 20) / 16 && bytes < 64 << 20, "{bytes} bytes");
    let spec = "  dataframe:\n    inputs: {t: {path: \"t/*.parquet\"}, u: {path: \"u/*.parquet\"}}\n    pipeline: [{source: t}, {merge: {right: u, on: [k]}}]\n  targetTaskBytes: 4000000\n  output: {path: res}\n";
    let (store, plan) = lab.staged_with_memory(spec, Some(MEMORY)).await;
    assert!(
        plan.stages.iter().any(|s| matches!(
            &s.source,
            kask_worker::plan::StageSource::Sql { reads } if reads.len() == 2
        )),
        "u was not shuffled: {:?}",
        plan.stages.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    commit(&store, &plan).await;
    let (names, rows) = lab.result("res").await;
    assert_eq!(names, ["k", "s", "w"]);
    let right: HashMap<i64, i64> = (0..RIGHT).map(|j| (right_key(j), j)).collect();
    let want: Vec<Vec<V>> = (0..ROWS)
        .filter_map(|i| {
            let j = *right.get(&key(i))?;
            Some(vec![
                V::I(key(i)),
                V::S(format!("name-{:07}", i % 400_000)),
                V::S(format!("right-row-{j:020}")),
            ])
        })
        .collect();
    assert!(!want.is_empty());
    assert_eq!(sorted(rows), sorted(want));
}
