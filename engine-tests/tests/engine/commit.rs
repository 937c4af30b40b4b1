//! The exactly-once protocol: concurrent attempts of one task, resuming a job, idempotent
//! commits, replacing a result, ownership of the output folder, two jobs racing to one output,
//! and a crash before and after every step of the commit.

use bytes::Bytes;

use crate::faults::{FaultStore, Faults};
use crate::support::{Lab, V, batch, floats, ints, sorted};
use kask_worker::commit::cleanup::abandon;
use kask_worker::commit::undo::step_back;
use kask_worker::commit::verify::verify;
use kask_worker::commit::{commit_job, lock, read_manifest};
use kask_worker::marker::read_marker;
use kask_worker::plan::Plan;
use kask_worker::runner::{self, RunOptions};
use kask_worker::store::Store;
use kask_worker::task::recover::Lineage;
use kask_worker::task::recover::Recoveries;
use kask_worker::task::run_task;

const SPEC: &str = "  dataframe:\n    inputs:\n      t: {path: \"t/*.parquet\"}\n    pipeline:\n      - source: t\n      - filter: \"v >= 0\"\n  targetTaskBytes: 1\n  output: {path: out}\n";

async fn put_table(lab: &Lab, n: i64) {
    let t = batch(vec![
        ("id", ints(&(0..n).map(Some).collect::<Vec<_>>())),
        (
            "v",
            floats(&(0..n).map(|i| Some(i as f64)).collect::<Vec<_>>()),
        ),
    ]);
    lab.put_parquet("t/a.parquet", &t, 250).await;
}

async fn prepared(lab: &Lab) -> (Store, Plan) {
    put_table(lab, 1000).await;
    let job = kask_api::load_job("job.yaml", &lab.job_yaml(SPEC)).expect("job");
    let opts = RunOptions {
        storage: Some(lab.store.url.clone()),
        base_dir: lab.dir.path().to_path_buf(),
        ..RunOptions::default()
    };
    runner::prepare(&job, &opts, None).await.expect("plan")
}

/// What an output folder holds, outside Kask's own `_kask/` folder.
async fn visible(store: &Store, out: &str) -> Vec<String> {
    store
        .list(out)
        .await
        .expect("list")
        .into_iter()
        .map(|(p, _)| p.strip_prefix(&format!("{out}/")).unwrap_or(&p).to_string())
        .filter(|p| !p.starts_with("_kask/"))
        .collect()
}

/// Whether job `id` left scratch data (its own folder under `_kask/`).
async fn scratch_left(store: &Store, out: &str, id: &str) -> bool {
    !store
        .list(&format!("{out}/_kask/{id}"))
        .await
        .expect("list")
        .is_empty()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_attempts_of_a_task_commit_once_and_the_output_is_exact() {
    let lab = Lab::local();
    let (store, plan) = prepared(&lab).await;
    assert_eq!(plan.stages[0].tasks, 4, "one task per row group");
    let recoveries = Recoveries::default();
    for task in 0..plan.stages[0].tasks {
        let (a, b) = tokio::join!(
            run_task(&store, &plan, &recoveries, 0, task),
            run_task(&store, &plan, &recoveries, 0, task)
        );
        let (a, b) = (a.expect("attempt a"), b.expect("attempt b"));
        let winner = read_marker(&store, &plan, 0, task)
            .await
            .expect("read")
            .expect("committed");
        assert!(
            !a.skipped || !b.skipped,
            "task {task}: at least one attempt ran rather than finding a marker"
        );
        assert_eq!(a.marker, winner, "task {task}: both report the winner");
        assert_eq!(b.marker, winner, "task {task}: both report the winner");
        let attempts = store
            .list(&format!("{}/attempts/0/{task}", plan.scratch()))
            .await
            .expect("list");
        assert!(
            attempts.iter().all(|(p, _)| p.contains(&winner.attempt)),
            "task {task}: the losing attempt's files are gone: {attempts:?}"
        );
    }
    let lineage = Lineage {
        store: &store,
        plan: &plan,
        recoveries: &recoveries,
    };
    let manifest = commit_job(&store, &plan, &lineage).await.expect("commit");
    assert_eq!(manifest.rows, 1000);
    let (_, rows) = lab.result("out").await;
    let mut ids: Vec<String> = rows.iter().map(|r| format!("{:?}", r[0])).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids.len(),
        1000,
        "every row once: nothing lost, nothing duplicated"
    );
    assert!(
        !scratch_left(&store, "out", &plan.job_id).await,
        "the scratch space is gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_skips_tasks_that_already_committed() {
    let lab = Lab::local();
    let (store, plan) = prepared(&lab).await;
    store
        .put(
            &plan.plan_path(),
            serde_json::to_vec(&plan).expect("json").into(),
        )
        .await
        .expect("plan");
    let recoveries = Recoveries::default();
    let first = run_task(&store, &plan, &recoveries, 0, 1)
        .await
        .expect("task 1");
    assert!(!first.skipped);
    let again = run_task(&store, &plan, &recoveries, 0, 1)
        .await
        .expect("again");
    assert!(again.skipped);
    assert_eq!(again.marker, first.marker);
    // The whole job, rerun, resumes the unfinished run: its scratch space holds a plan.
    let summary = lab.run(SPEC).await.expect("rerun");
    assert_eq!(summary.resumed, 1);
    assert_eq!(summary.manifest.rows, 1000);
    assert_eq!(
        summary.manifest.job_id, plan.job_id,
        "the rerun is the same run"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_run_again_after_it_succeeded_reports_its_result_though_its_scratch_is_gone() {
    let lab = Lab::local();
    put_table(&lab, 500).await;
    let (store, plan) = lab.staged(SPEC).await;
    let recoveries = Recoveries::default();
    let lineage = Lineage {
        store: &store,
        plan: &plan,
        recoveries: &recoveries,
    };
    let first = commit_job(&store, &plan, &lineage).await.expect("commit");
    assert!(!scratch_left(&store, "out", &plan.job_id).await);
    // With mode: error, the rerun must not trip over its own manifest.
    let again = commit_job(&store, &plan, &lineage)
        .await
        .expect("commit again");
    assert_eq!(again, first);
    let files = visible(&store, "out").await;
    assert_eq!(
        files.len(),
        first.files.len() + 1,
        "no new files: {files:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn part_names_carry_the_job_id_and_the_manifest_checksums_every_file() {
    let lab = Lab::local();
    put_table(&lab, 300).await;
    let s = lab.run(SPEC).await.expect("job");
    for f in &s.manifest.files {
        assert!(
            f.path.starts_with("part-") && f.path.contains(&s.manifest.job_id),
            "{} is named for its job",
            f.path
        );
        let body = lab
            .store
            .get(&format!("out/{}", f.path))
            .await
            .expect("part");
        assert_eq!(body.len() as u64, f.bytes);
        assert_eq!(
            f.crc32c,
            Some(kask_worker::store::checksum::crc32c(&body)),
            "{} carries its checksum",
            f.path
        );
    }
    assert!(verify(&lab.store, "out").await.expect("verify").ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overwrite_with_fewer_parts_leaves_only_the_new_result() {
    let lab = Lab::local();
    put_table(&lab, 1000).await;
    let many = lab
        .run(&SPEC.replace("path: out}", "path: out, mode: overwrite}"))
        .await
        .expect("many parts");
    assert_eq!(many.manifest.files.len(), 4);
    let few = lab
        .run(
            &SPEC
                .replace("targetTaskBytes: 1", "targetTaskBytes: 1073741824")
                .replace("path: out}", "path: out, mode: overwrite}"),
        )
        .await
        .expect("one part");
    assert_eq!(few.manifest.files.len(), 1);
    let mut files = visible(&lab.store, "out").await;
    files.sort();
    let mut want: Vec<String> = few.manifest.files.iter().map(|f| f.path.clone()).collect();
    want.push("_SUCCESS".into());
    want.sort();
    assert_eq!(
        files, want,
        "no part of the earlier result is left for a glob reader"
    );
    let v = verify(&lab.store, "out").await.expect("verify");
    assert!(v.ok(), "{:?}", v.problems);
    // The earlier job's commit is remembered, so that its commit run again would know.
    assert!(
        kask_worker::commit::manifest::read_record(&lab.store, "out", &many.manifest.job_id)
            .await
            .expect("record")
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_holding_files_no_job_wrote_is_refused_and_left_alone() {
    let lab = Lab::local();
    put_table(&lab, 100).await;
    lab.put("out/keep.txt", Bytes::from_static(b"mine")).await;
    lab.put("out/sub/notes.md", Bytes::from_static(b"also mine"))
        .await;
    let err = lab
        .run(&SPEC.replace("path: out}", "path: out, mode: overwrite}"))
        .await
        .expect_err("refused")
        .to_string();
    assert!(
        err.contains("out/keep.txt") && err.contains("out/sub/notes.md"),
        "{err}"
    );
    assert!(err.contains("2 files that no Kask result names"), "{err}");
    assert_eq!(
        lab.store.get("out/keep.txt").await.expect("kept"),
        Bytes::from_static(b"mine")
    );
    assert!(lab.manifest("out").await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_array_job_never_deletes_what_it_did_not_write() {
    let lab = Lab::local();
    let array = |expr: &str, input: &str, out: &str| {
        format!(
            "  array:\n    inputs:\n      a: {{path: {input}}}\n    expr: \"{expr}\"\n  output: {{path: {out}, mode: overwrite}}\n"
        )
    };
    crate::chaos::put_array(&lab, "arrays/a.zarr", &[4, 4], &[2, 2], &[1.0; 16]).await;
    let input = lab.store.list("arrays").await.expect("list");
    // An output that holds the input is refused before anything runs.
    let err = lab
        .run(&array("a * 2", "arrays/a.zarr", "arrays"))
        .await
        .expect_err("overlap")
        .to_string();
    assert!(
        err.contains("spec.output.path") && err.contains("overlaps"),
        "{err}"
    );
    // A folder with someone else's file is refused, and the file stays.
    lab.put("arr/keep.txt", Bytes::from_static(b"mine")).await;
    let err = lab
        .run(&array("a * 2", "arrays/a.zarr", "arr"))
        .await
        .expect_err("foreign file")
        .to_string();
    assert!(err.contains("arr/keep.txt"), "{err}");
    assert!(
        lab.store
            .get_opt("arr/keep.txt")
            .await
            .expect("read")
            .is_some()
    );
    // Replacing a 1-d array with a 2-d one (c/0 and c/0/0) leaves only the new array.
    lab.run(&array("a.sum(axis=0)", "arrays/a.zarr", "res.zarr"))
        .await
        .expect("1-d");
    let two = lab
        .run(&array("a * 2", "arrays/a.zarr", "res.zarr"))
        .await
        .expect("2-d");
    let v = verify(&lab.store, "res.zarr").await.expect("verify");
    assert!(v.ok(), "{:?}", v.problems);
    assert_eq!(two.manifest.array.expect("array").shape, vec![4, 4]);
    assert_eq!(
        lab.store.list("arrays").await.expect("list"),
        input,
        "the input is untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_jobs_racing_to_one_output_leave_exactly_one_whole_result() {
    for round in 0..6 {
        let lab = Lab::local();
        put_table(&lab, 400).await;
        let a = SPEC.replace("path: out}", "path: out, mode: overwrite}");
        let b = a.replace("v >= 0", "v >= 100");
        let (ra, rb) = tokio::join!(lab.run(&a), lab.run(&b));
        let m = lab.manifest("out").await.expect("one result");
        let v = verify(&lab.store, "out").await.expect("verify");
        assert!(v.ok(), "round {round}: {:?}", v.problems);
        let mut files = visible(&lab.store, "out").await;
        files.sort();
        let mut want: Vec<String> = m.files.iter().map(|f| f.path.clone()).collect();
        want.push("_SUCCESS".into());
        want.sort();
        assert_eq!(files, want, "round {round}: only the winner's files");
        match (ra, rb) {
            (Ok(x), Ok(y)) => {
                // One after the other: the last one replaced the first.
                assert!(m.job_id == x.manifest.job_id || m.job_id == y.manifest.job_id);
            }
            (Ok(w), Err(e)) | (Err(e), Ok(w)) => {
                assert_eq!(m.job_id, w.manifest.job_id, "round {round}");
                let msg = e.to_string();
                assert!(
                    msg.contains(&w.manifest.job_id),
                    "round {round}: the loser names the winner: {msg}"
                );
            }
            (Err(x), Err(y)) => panic!("round {round}: both failed: {x} / {y}"),
        }
        assert!(
            lock::holder(&lab.store, "out")
                .await
                .expect("lock")
                .is_none()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_held_by_a_live_job_stops_another_commit_and_names_it() {
    let lab = Lab::local();
    put_table(&lab, 200).await;
    let (store, first) = lab.staged(SPEC).await;
    let (_, second) = lab.staged(&SPEC.replace("v >= 0", "v >= 1")).await;
    let me = lock::Holder::new(&first.job_id, "tests/first");
    assert!(matches!(
        lock::acquire(&store, "out", &me).await.expect("acquire"),
        lock::Acquired::Held { took_over: None }
    ));
    let recoveries = Recoveries::default();
    let lineage = Lineage {
        store: &store,
        plan: &second,
        recoveries: &recoveries,
    };
    let err = commit_job(&store, &second, &lineage)
        .await
        .expect_err("busy")
        .to_string();
    assert!(
        err.contains("tests/first") && err.contains(&first.job_id),
        "{err}"
    );
    // Once the holder's scratch space is gone (its job was cleaned up), the lock is taken over.
    store
        .delete_prefix(&first.scratch())
        .await
        .expect("scratch");
    commit_job(&store, &second, &lineage)
        .await
        .expect("takes over");
    assert!(lock::holder(&store, "out").await.expect("lock").is_none());
}

/// The groupby both crash tests run: the sum of v per k, with k = i % 5.
const GROUPBY: &str = "  dataframe:\n    inputs:\n      t: {path: \"t/*.parquet\"}\n    pipeline:\n      - source: t\n      - groupby: {by: [k], aggs: {v: [sum]}}\n  targetTaskBytes: 1\n  shufflePartitions: 3\n  output: {path: out, mode: overwrite}\n";

async fn put_groupby_input(lab: &Lab, n: i64) {
    let t = batch(vec![
        ("k", ints(&(0..n).map(|i| Some(i % 5)).collect::<Vec<_>>())),
        ("v", ints(&(0..n).map(Some).collect::<Vec<_>>())),
    ]);
    lab.put_partitioned("t", &t, 3, 40).await;
}

fn groupby_reference(n: i64) -> Vec<Vec<V>> {
    sorted(
        (0..5)
            .map(|k| vec![V::I(k), V::I((0..n).filter(|i| i % 5 == k).sum())])
            .collect(),
    )
}

/// After a crash, whoever reads the output through its manifest finds one whole result.
async fn whole_or_none(lab: &Lab, out: &str, allowed: &[&str]) -> Option<String> {
    let m = read_manifest(&lab.store, out).await.expect("manifest")?;
    assert!(
        allowed.contains(&m.job_id.as_str()),
        "the manifest names job {} after a crash",
        m.job_id
    );
    let v = verify(&lab.store, out).await.expect("verify");
    assert!(
        v.problems.iter().all(|p| p.contains("does not name")),
        "{:?}",
        v.problems
    );
    Some(m.job_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_before_or_after_any_step_of_a_table_commit_is_finished_stepped_back_or_undone() {
    // Each starting state (without and with an earlier result) is made once and copied for
    // every step.
    let mut bases = Vec::new();
    for earlier in [false, true] {
        let lab = Lab::local();
        put_groupby_input(&lab, 200).await;
        let old = if earlier {
            Some(
                lab.run(&GROUPBY.replace("targetTaskBytes: 1", "targetTaskBytes: 1073741824"))
                    .await
                    .expect("earlier")
                    .manifest
                    .job_id,
            )
        } else {
            None
        };
        let (_, plan) = lab.staged(GROUPBY).await;
        bases.push((lab, old, plan));
    }
    let mut steps = 0;
    let mut moved_back = 0;
    for n in 0.. {
        for (base, old, plan) in &bases {
            let (lab, old, plan) = (base.copy(), old.clone(), plan.clone());
            let store = lab.store.clone();
            let faults = Faults::crash_after(n);
            let crashing = FaultStore::around(&store, &faults);
            let recoveries = Recoveries::default();
            let lineage = Lineage {
                store: &crashing,
                plan: &plan,
                recoveries: &recoveries,
            };
            let r = commit_job(&crashing, &plan, &lineage).await;
            if !faults.crashed() {
                r.expect("no crash: the commit succeeds");
                steps = n;
                continue;
            }
            assert!(
                r.is_err(),
                "step {n}: a crashed commit does not report success"
            );
            let mut allowed = vec![plan.job_id.as_str()];
            allowed.extend(old.as_deref());
            let seen = whole_or_none(&lab, "out", &allowed).await;
            if seen.is_none() {
                assert!(old.is_none(), "step {n}: the earlier result vanished");
            }
            let lineage = Lineage {
                store: &store,
                plan: &plan,
                recoveries: &recoveries,
            };
            if n % 3 == 2 {
                // A local run steps back from its failed commit before it reports the error.
                let back = step_back(&store, &plan).await.expect("step back");
                moved_back += back.moved_back;
                let now = read_manifest(&store, "out")
                    .await
                    .expect("manifest")
                    .map(|m| m.job_id);
                if back.finished {
                    assert_eq!(now.as_deref(), Some(plan.job_id.as_str()), "step {n}");
                } else {
                    assert_eq!(
                        now, old,
                        "step {n}: stepping back leaves the earlier result"
                    );
                    let files = visible(&store, "out").await;
                    assert!(
                        files.iter().all(|f| !f.contains(&plan.job_id)),
                        "step {n}: {files:?}"
                    );
                }
                if now.is_some() {
                    let v = verify(&store, "out").await.expect("verify");
                    assert!(v.ok(), "step {n}: {:?}", v.problems);
                }
            }
            if n % 3 != 1 {
                commit_job(&store, &plan, &lineage)
                    .await
                    .expect("the commit run again finishes");
                let (_, rows) = lab.result("out").await;
                assert_eq!(sorted(rows), groupby_reference(200), "step {n}");
                assert!(
                    verify(&store, "out").await.expect("verify").ok(),
                    "step {n}"
                );
                assert!(!scratch_left(&store, "out", &plan.job_id).await, "step {n}");
            } else {
                abandon(&store, "out", &plan.job_id, Some((&plan, &lineage)))
                    .await
                    .expect("cleanup");
                let now = read_manifest(&store, "out")
                    .await
                    .expect("manifest")
                    .map(|m| m.job_id);
                if now.as_deref() != Some(plan.job_id.as_str()) {
                    assert_eq!(now, old, "step {n}: the cleanup leaves the earlier result");
                    let files = visible(&store, "out").await;
                    assert!(
                        files.iter().all(|f| !f.contains(&plan.job_id)),
                        "step {n}: {files:?}"
                    );
                }
                if now.is_some() {
                    assert!(
                        verify(&store, "out").await.expect("verify").ok(),
                        "step {n}"
                    );
                }
                assert!(!scratch_left(&store, "out", &plan.job_id).await, "step {n}");
            }
            assert!(
                lock::holder(&store, "out").await.expect("lock").is_none(),
                "step {n}"
            );
        }
        if steps > 0 {
            break;
        }
    }
    assert!(steps >= 8, "the commit has its steps: {steps}");
    assert!(
        moved_back > 0,
        "some crash left moved files to step back from"
    );
    println!("table commit: a crash at each of {steps} writes, with and without an earlier result");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_during_an_array_commit_is_rolled_forward() {
    let array = |expr: &str| {
        format!(
            "  array:\n    inputs:\n      a: {{path: a.zarr}}\n    expr: \"{expr}\"\n  targetTaskBytes: 1\n  output: {{path: res.zarr, mode: overwrite}}\n"
        )
    };
    let data: Vec<f64> = (0..24).map(f64::from).collect();
    let mut steps = 0;
    for n in 0.. {
        let lab = Lab::local();
        crate::chaos::put_array(&lab, "a.zarr", &[6, 4], &[2, 2], &data).await;
        // The earlier result is 1-d, the new one 2-d: chunk keys clash as file and folder.
        let old = lab
            .run(&array("a.sum(axis=0)"))
            .await
            .expect("earlier")
            .manifest
            .job_id;
        let (store, plan) = lab.staged(&array("a * 2")).await;
        let faults = Faults::crash_after(n);
        let crashing = FaultStore::around(&store, &faults);
        let recoveries = Recoveries::default();
        let lineage = Lineage {
            store: &crashing,
            plan: &plan,
            recoveries: &recoveries,
        };
        let r = commit_job(&crashing, &plan, &lineage).await;
        if !faults.crashed() {
            r.expect("no crash: the commit succeeds");
            steps = n;
            break;
        }
        let _ = whole_or_none(&lab, "res.zarr", &[&old, &plan.job_id]).await;
        let lineage = Lineage {
            store: &store,
            plan: &plan,
            recoveries: &recoveries,
        };
        if n % 2 == 0 {
            commit_job(&store, &plan, &lineage)
                .await
                .expect("the commit run again finishes");
        } else {
            abandon(&store, "res.zarr", &plan.job_id, Some((&plan, &lineage)))
                .await
                .expect("cleanup");
        }
        let m = read_manifest(&store, "res.zarr")
            .await
            .expect("read")
            .expect("a whole array");
        let v = verify(&store, "res.zarr").await.expect("verify");
        assert!(v.ok(), "step {n}: {:?}", v.problems);
        if m.job_id == plan.job_id {
            let body = crate::chaos::read_array(&lab, "res.zarr").await;
            assert_eq!(
                body,
                data.iter().map(|x| x * 2.0).collect::<Vec<_>>(),
                "step {n}"
            );
        }
        assert!(
            lock::holder(&store, "res.zarr")
                .await
                .expect("lock")
                .is_none(),
            "step {n}"
        );
    }
    assert!(steps >= 8, "the commit has its steps: {steps}");
    println!("array commit: a crash at each of {steps} writes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kask_verify_finds_a_missing_file_a_changed_byte_and_a_stray_part() {
    let lab = Lab::local();
    put_table(&lab, 1000).await;
    let s = lab.run(SPEC).await.expect("job");
    assert!(verify(&lab.store, "out").await.expect("verify").ok());
    let first = format!("out/{}", s.manifest.files[0].path);
    let body = lab.store.get(&first).await.expect("part");
    let mut flipped = body.to_vec();
    flipped[body.len() / 2] ^= 0x10;
    lab.put(&first, flipped).await;
    lab.store
        .delete(&format!("out/{}", s.manifest.files[1].path))
        .await
        .expect("delete");
    lab.put("out/part-99999-stray.parquet", body).await;
    let v = verify(&lab.store, "out").await.expect("verify");
    assert!(!v.ok());
    let text = v.problems.join("\n");
    assert!(text.contains("checksum"), "{text}");
    assert!(text.contains("is missing"), "{text}");
    assert!(text.contains("part-99999-stray.parquet"), "{text}");
    assert!(
        v.summary("out").starts_with("FAIL out: 3 problems"),
        "{}",
        v.summary("out")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_store_honours_create_only_and_conditional_puts() {
    let lab = Lab::local();
    assert!(
        lab.store
            .put_create("m.json", Bytes::from_static(b"1"))
            .await
            .expect("create")
    );
    assert!(
        !lab.store
            .put_create("m.json", Bytes::from_static(b"2"))
            .await
            .expect("again")
    );
    let read = lab
        .store
        .get_versioned("m.json")
        .await
        .expect("read")
        .expect("exists");
    assert!(
        lab.store
            .put_if("m.json", Bytes::from_static(b"3"), Some(&read))
            .await
            .expect("swap")
    );
    assert!(
        !lab.store
            .put_if("m.json", Bytes::from_static(b"4"), Some(&read))
            .await
            .expect("stale"),
        "a stale version does not replace a newer one"
    );
    lab.store
        .check_conditional_puts("scratch")
        .await
        .expect("local store honours them");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_keeps_only_its_newest_commit_records() {
    let lab = Lab::local();
    put_table(&lab, 50).await;
    let spec = SPEC.replace("path: out}", "path: out, mode: overwrite}");
    let mut ids = Vec::new();
    for _ in 0..22 {
        ids.push(lab.run(&spec).await.expect("job").manifest.job_id);
    }
    let records = lab.store.list("out/_kask/commits").await.expect("list");
    assert_eq!(records.len(), 20, "{records:?}");
    for id in &ids[2..] {
        assert!(
            records
                .iter()
                .any(|(p, _)| p.ends_with(&format!("{id}.json"))),
            "the record of {id} is kept"
        );
    }
    assert!(verify(&lab.store, "out").await.expect("verify").ok());
}

/// A groupby over 400,000 rows in 8 row groups (one map task each), keys 0..1000.
const KEYED_SUMS: &str = "  dataframe:\n    inputs:\n      t: {path: \"t/*.parquet\"}\n    pipeline:\n      - source: t\n      - groupby: {by: [k], aggs: {v: [sum, count]}}\n  targetTaskBytes: 1\n  output: {path: out}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_given_other_memory_resumes_with_the_earlier_runs_plan() {
    let lab = Lab::local();
    let n: i64 = 400_000;
    let t = batch(vec![
        (
            "k",
            ints(&(0..n).map(|i| Some(i * 7919 % 1000)).collect::<Vec<_>>()),
        ),
        (
            "v",
            ints(
                &(0..n)
                    .map(|i| Some(i * 2_654_435_761 % 1_000_000_007))
                    .collect::<Vec<_>>(),
            ),
        ),
    ]);
    lab.put_parquet("t/a.parquet", &t, 50_000).await;
    // The number of reduce partitions follows the memory a run is given: the two runs here
    // would cut the shuffle differently if each planned on its own.
    let job = kask_api::load_job("job.yaml", &lab.job_yaml(KEYED_SUMS)).expect("job");
    let plan_with = |memory: Option<u64>| {
        let opts = RunOptions {
            storage: Some(lab.store.url.clone()),
            base_dir: lab.dir.path().to_path_buf(),
            memory,
            ..RunOptions::default()
        };
        let job = job.clone();
        async move { runner::prepare(&job, &opts, None).await.expect("plan") }
    };
    let small = 2 << 20;
    let tasks = |p: &Plan| p.stages.iter().map(|s| s.tasks).collect::<Vec<_>>();
    let (_, cramped) = plan_with(Some(small)).await;
    let (_, roomy) = plan_with(None).await;
    assert_ne!(
        tasks(&cramped),
        tasks(&roomy),
        "the test needs plans that differ"
    );
    // An earlier run in little memory ran its stages and died before its commit.
    let (_, earlier) = lab.staged_with_memory(KEYED_SUMS, Some(small)).await;
    assert!(lab.manifest("out").await.is_none());
    // Run again with the machine's memory: it resumes, with the earlier run's cut.
    let summary = lab.run(KEYED_SUMS).await.expect("rerun");
    assert_eq!(
        summary.manifest.job_id, earlier.job_id,
        "the rerun is the same run"
    );
    assert_eq!(summary.resumed, earlier.total_tasks());
    // Every key once, with the sum and count of a plain computation.
    let mut want = std::collections::BTreeMap::<i64, (i64, i64)>::new();
    for i in 0..n {
        let e = want.entry(i * 7919 % 1000).or_default();
        e.0 += i * 2_654_435_761 % 1_000_000_007;
        e.1 += 1;
    }
    let (_, rows) = lab.result("out").await;
    let mut got: Vec<(i64, i64, i64)> = rows
        .iter()
        .map(|r| match (&r[0], &r[1], &r[2]) {
            (V::I(k), V::I(s), V::I(c)) => (*k, *s, *c),
            other => panic!("a row of three integers, not {other:?}"),
        })
        .collect();
    got.sort();
    let want: Vec<(i64, i64, i64)> = want.into_iter().map(|(k, (s, c))| (k, s, c)).collect();
    assert_eq!(got, want);
}
