//! The exactly-once protocol: concurrent attempts of one task, and resuming a job.

use bytes::Bytes;

use crate::support::{Lab, batch, floats, ints};
use kask_worker::commit::commit_job;
use kask_worker::commit::marker::read_marker;
use kask_worker::runner::{self, RunOptions};
use kask_worker::task::build::InputCache;
use kask_worker::task::run_task;

const SPEC: &str = "  dataframe:\n    inputs:\n      t: {path: \"t/*.parquet\"}\n    pipeline:\n      - source: t\n      - filter: \"v >= 0\"\n  targetTaskBytes: 1\n  output: {path: out}\n";

async fn prepared(lab: &Lab) -> (kask_worker::store::Store, kask_worker::plan::Plan) {
    let n = 1000;
    let t = batch(vec![
        ("id", ints(&(0..n).map(Some).collect::<Vec<_>>())),
        (
            "v",
            floats(&(0..n).map(|i| Some(i as f64)).collect::<Vec<_>>()),
        ),
    ]);
    lab.put_parquet("t/a.parquet", &t, 250).await;
    let job = kask_api::load_job("job.yaml", &lab.job_yaml(SPEC)).expect("job");
    let opts = RunOptions {
        storage: Some(lab.store.url.clone()),
        base_dir: lab.dir.path().to_path_buf(),
        parallelism: None,
    };
    runner::prepare(&job, &opts, None).await.expect("plan")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_attempts_of_a_task_commit_once_and_the_output_is_exact() {
    let lab = Lab::local();
    let (store, plan) = prepared(&lab).await;
    assert_eq!(plan.stages[0].tasks, 4, "one task per row group");
    let inputs = InputCache::default();
    for task in 0..plan.stages[0].tasks {
        let (a, b) = tokio::join!(
            run_task(&store, &plan, &inputs, 0, task),
            run_task(&store, &plan, &inputs, 0, task)
        );
        let (a, b) = (a.expect("attempt a"), b.expect("attempt b"));
        let winner = read_marker(&store, &plan, 0, task)
            .await
            .expect("read")
            .expect("committed");
        assert!(
            !(a.skipped && b.skipped) || a.marker.attempt == b.marker.attempt,
            "task {task}: some attempt ran"
        );
        assert_eq!(
            a.marker, winner,
            "task {task}: both report the winner's marker"
        );
        assert_eq!(
            b.marker, winner,
            "task {task}: both report the winner's marker"
        );
    }
    let manifest = commit_job(&store, &plan).await.expect("commit");
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
    let leftovers = store.list("out/_kask").await.expect("list");
    assert!(
        leftovers.is_empty(),
        "the losing attempt's files and the scratch are gone: {leftovers:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_skips_tasks_that_already_committed() {
    let lab = Lab::local();
    let (store, plan) = prepared(&lab).await;
    let inputs = InputCache::default();
    let first = run_task(&store, &plan, &inputs, 0, 1)
        .await
        .expect("task 1");
    assert!(!first.skipped);
    // A later attempt finds the marker and does not run again.
    let again = run_task(&store, &plan, &inputs, 0, 1)
        .await
        .expect("task 1 again");
    assert!(again.skipped);
    assert_eq!(again.marker, first.marker);
    // The whole job, rerun, resumes: the same plan has the same id.
    let summary = lab.run(SPEC).await.expect("rerun");
    assert_eq!(summary.resumed, 1);
    assert_eq!(summary.manifest.rows, 1000);
}

#[tokio::test]
async fn the_local_store_honours_create_only_puts() {
    // A marker created twice must fail the second time; the local store honours that.
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
            .expect("second create")
    );
    lab.store
        .check_create_only("scratch")
        .await
        .expect("local store honours create-only puts");
}
