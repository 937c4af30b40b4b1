//! SQL job graphs in local mode: a view that two outputs use is computed once (counted from
//! the plan and from the task markers), every output equals a plain implementation here, in
//! its own format, and the outputs commit together: a refused output stops the others, and a
//! crash at any step of the commit is finished by the commit run again or, by the cleanup,
//! rolled forward or back so that no output is left with a result its siblings lack.

use std::collections::BTreeMap;

use crate::faults::{FaultStore, Faults};
use crate::support::{Lab, V, batch, ints, sorted, strs};
use kask_worker::commit::cleanup::abandon_job;
use kask_worker::commit::verify::verify;
use kask_worker::commit::{commit_all, lock, read_manifest};
use kask_worker::relational::SqlStage;
use kask_worker::store::Store;
use kask_worker::task::recover::Lineage;
use kask_worker::task::recover::Recoveries;

/// `a(k, x)`: 40 rows, keys 0..6 with nulls, x = 10·i, in 4 files.
pub(crate) fn table_a() -> Vec<(Option<i64>, i64)> {
    (0..40)
        .map(|i| ((i % 9 != 4).then_some(i % 7), i * 10))
        .collect()
}

/// `b(k, y)`: keys 3..10 with a null.
pub(crate) fn table_b() -> Vec<(Option<i64>, String)> {
    (0..15)
        .map(|i| ((i != 7).then_some(3 + i % 8), format!("y{i}")))
        .collect()
}

pub(crate) async fn lab() -> Lab {
    let lab = Lab::local();
    let a = table_a();
    let k: Vec<Option<i64>> = a.iter().map(|r| r.0).collect();
    let x: Vec<Option<i64>> = a.iter().map(|r| Some(r.1)).collect();
    let ab = batch(vec![("k", ints(&k)), ("x", ints(&x))]);
    lab.put_partitioned("a", &ab, 4, 5).await;
    let b = table_b();
    let k: Vec<Option<i64>> = b.iter().map(|r| r.0).collect();
    let y: Vec<Option<&str>> = b.iter().map(|r| Some(r.1.as_str())).collect();
    let bb = batch(vec![("k", ints(&k)), ("y", strs(&y))]);
    lab.put_partitioned("b", &bb, 3, 5).await;
    lab
}

/// Two outputs over the view `big`; `small` is used by one output only.
fn graph(mode: &str) -> String {
    format!(
        r#"  sql:
    tables:
      a: {{path: "a/*.parquet"}}
      b: {{path: "b/*.parquet"}}
    views:
      big: "SELECT k, x FROM a WHERE x >= 100"
      small: "SELECT k FROM b WHERE k > 5"
    outputs:
      by_k: {{query: "SELECT k, count(*) AS n, sum(x) AS s FROM big GROUP BY k", path: res/by_k, mode: {mode}}}
      top: {{query: "SELECT k, x FROM big WHERE k IN (SELECT k FROM small) ORDER BY x DESC LIMIT 4", path: res/top, format: csv, mode: {mode}}}
  targetTaskBytes: 1
  shufflePartitions: 3
"#
    )
}

pub(crate) fn big() -> Vec<(Option<i64>, i64)> {
    table_a().into_iter().filter(|r| r.1 >= 100).collect()
}

fn by_k_reference() -> Vec<Vec<V>> {
    let mut groups: BTreeMap<Option<i64>, (i64, i64)> = BTreeMap::new();
    for (k, x) in big() {
        let g = groups.entry(k).or_default();
        g.0 += 1;
        g.1 += x;
    }
    sorted(
        groups
            .into_iter()
            .map(|(k, (n, s))| vec![k.map_or(V::Null, V::I), V::I(n), V::I(s)])
            .collect(),
    )
}

/// The CSV lines of `top`, header first.
pub(crate) fn top_reference() -> Vec<String> {
    let small: Vec<i64> = table_b()
        .iter()
        .filter_map(|r| r.0)
        .filter(|k| *k > 5)
        .collect();
    let mut rows: Vec<(i64, i64)> = big()
        .into_iter()
        .filter_map(|(k, x)| k.filter(|k| small.contains(k)).map(|k| (k, x)))
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.1));
    let mut lines = vec!["k,x".to_string()];
    lines.extend(rows.iter().take(4).map(|(k, x)| format!("{k},{x}")));
    lines
}

/// The text of a CSV output's files, in manifest order.
pub(crate) async fn csv_lines(store: &Store, out: &str) -> Vec<String> {
    let m = read_manifest(store, out)
        .await
        .expect("manifest")
        .expect("a result");
    let mut lines = Vec::new();
    for f in &m.files {
        let body = store
            .get(&format!("{out}/{}", f.path))
            .await
            .expect("a part file");
        let text = String::from_utf8(body.to_vec()).expect("utf-8");
        lines.extend(text.lines().map(str::to_string));
    }
    lines
}

#[tokio::test]
async fn a_view_two_outputs_use_is_computed_once_and_both_outputs_are_exact() {
    let lab = lab().await;
    let (store, plan) = lab.staged(&graph("error")).await;
    // Only the shared view's stages scan `a`, once for both outputs.
    let scans_a: Vec<&str> = plan
        .stages
        .iter()
        .filter(|s| SqlStage::of(s).is_ok_and(|q| q.scanned_tables(&plan).contains(&"a")))
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(scans_a.len(), 1, "{scans_a:?}");
    let view: Vec<_> = plan
        .stages
        .iter()
        .filter(|s| s.name.contains("-view-"))
        .collect();
    assert_eq!(view.len(), 1, "only the shared view is kept");
    assert!(view[0].name.ends_with("-view-big"), "{}", view[0].name);
    assert_eq!(view[0].feeds, ["by_k", "top"]);
    let targets = plan.targets();
    assert_eq!(targets.len(), 2);
    assert!(targets[0].stage != targets[1].stage);
    // Each of the view's tasks committed once.
    let markers = store
        .list(&plan.markers_dir(view[0].id))
        .await
        .expect("markers");
    assert_eq!(markers.len(), view[0].tasks);

    let recoveries = Recoveries::default();
    let lineage = Lineage {
        store: &store,
        plan: &plan,
        recoveries: &recoveries,
    };
    let all = commit_all(&store, &plan, &lineage).await.expect("commit");
    assert_eq!(all.len(), 2);
    let (_, types, rows) = lab.typed_result("res/by_k").await;
    assert_eq!(sorted(rows), by_k_reference());
    assert_eq!(types, ["Int64", "Int64", "Int64"]);
    assert_eq!(csv_lines(&store, "res/top").await, top_reference());
    for out in ["res/by_k", "res/top"] {
        assert!(verify(&store, out).await.expect("verify").ok(), "{out}");
        let m = read_manifest(&store, out).await.expect("m").expect("m");
        assert_eq!(m.job_id, plan.job_id);
        let left = store
            .list(&format!("{out}/_kask/{}", plan.job_id))
            .await
            .expect("list");
        assert!(left.is_empty(), "{out}: scratch left: {left:?}");
    }
}

#[tokio::test]
async fn an_output_that_refuses_the_commit_stops_every_output() {
    let lab = lab().await;
    let first = lab.run(&graph("overwrite")).await.expect("first run");
    assert_eq!(first.others.len(), 1);
    // `top` now refuses to replace its result; `by_k` would.
    let body = graph("overwrite").replacen(
        "format: csv, mode: overwrite",
        "format: csv, mode: error",
        1,
    );
    let err = lab.run(&body).await.expect_err("top refuses");
    assert!(err.to_string().contains("res/top"), "{err}");
    for out in ["res/by_k", "res/top"] {
        let m = lab.manifest(out).await.expect("the first result stays");
        assert_eq!(m.job_id, first.manifest.job_id, "{out}");
        assert!(verify(&lab.store, out).await.expect("verify").ok(), "{out}");
    }
    for out in ["res/by_k", "res/top"] {
        let held = lock::holder(&lab.store, out).await.expect("lock");
        assert!(held.is_none(), "{out}: the lock is left held: {held:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_any_step_of_a_graph_commit_leaves_every_output_from_one_job() {
    // One earlier result and one staged job, copied for every step.
    let base = lab().await;
    let old = base
        .run(&graph("overwrite"))
        .await
        .expect("earlier")
        .manifest
        .job_id;
    let (_, plan) = base.staged(&graph("overwrite")).await;
    let mut steps = 0;
    for n in 0.. {
        let lab = base.copy();
        let store = lab.store.clone();
        let faults = Faults::crash_after(n);
        let crashing = FaultStore::around(&store, &faults);
        let recoveries = Recoveries::default();
        let lineage = Lineage {
            store: &crashing,
            plan: &plan,
            recoveries: &recoveries,
        };
        let r = commit_all(&crashing, &plan, &lineage).await;
        if !faults.crashed() {
            r.expect("no crash: the commit succeeds");
            steps = n;
            break;
        }
        assert!(
            r.is_err(),
            "step {n}: a crashed commit does not report success"
        );
        let lineage = Lineage {
            store: &store,
            plan: &plan,
            recoveries: &recoveries,
        };
        let want = if n % 2 == 0 {
            commit_all(&store, &plan, &lineage)
                .await
                .expect("the commit run again finishes");
            plan.job_id.clone()
        } else {
            abandon_job(&store, &plan.spec, &plan.job_id, Some((&plan, &lineage)))
                .await
                .expect("cleanup");
            // The cleanup rolls a half-published graph forward, and anything less back.
            read_manifest(&store, "res/by_k")
                .await
                .expect("m")
                .map(|m| m.job_id)
                .expect("a result")
        };
        for out in ["res/by_k", "res/top"] {
            let m = read_manifest(&store, out)
                .await
                .expect("m")
                .expect("a result");
            assert_eq!(m.job_id, want, "step {n}: {out} holds another job's result");
            assert!(
                m.job_id == old || m.job_id == plan.job_id,
                "step {n}: {out}"
            );
            assert!(
                verify(&store, out).await.expect("verify").ok(),
                "step {n}: {out}"
            );
            let left = store
                .list(&format!("{out}/_kask/{}", plan.job_id))
                .await
                .expect("list");
            assert!(left.is_empty(), "step {n}: {out}: scratch left: {left:?}");
        }
        let (_, rows) = lab.result("res/by_k").await;
        assert_eq!(sorted(rows), by_k_reference(), "step {n}");
        assert_eq!(
            csv_lines(&store, "res/top").await,
            top_reference(),
            "step {n}"
        );
    }
    assert!(steps > 10, "the commit has more steps than that: {steps}");
}
