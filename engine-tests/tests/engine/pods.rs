//! The worker pods' steps (`kask worker plan|run|commit|cleanup`) run one by one, as the
//! operator's Jobs run them, give the same result as local mode; retried pods change nothing.

use crate::support::{Lab, batch, floats, ints, sorted, strs};
use kask_api::DaskJobSpec;
use kask_worker::pod;
use kask_worker::store::local_storage;

const SPEC: &str = "  workers: 2\n  targetTaskBytes: 1\n  dataframe:\n    inputs:\n      t: {path: \"t/*.parquet\"}\n    pipeline:\n      - source: t\n      - filter: \"v >= 10\"\n      - groupby: {by: [k], aggs: {v: [sum, count]}}\n  output: {path: OUT}\n";

async fn lab_with_input(lab: &Lab) {
    let n = 2000;
    let keys = ["a", "b", "c", "d", "e"];
    let t = batch(vec![
        ("id", ints(&(0..n).map(Some).collect::<Vec<_>>())),
        (
            "k",
            strs(
                &(0..n)
                    .map(|i| Some(keys[i as usize % 5]))
                    .collect::<Vec<_>>(),
            ),
        ),
        (
            "v",
            floats(&(0..n).map(|i| Some(i as f64)).collect::<Vec<_>>()),
        ),
    ]);
    lab.put_partitioned("t", &t, 3, 250).await;
}

fn spec_for(lab: &Lab, out: &str) -> DaskJobSpec {
    let yaml = lab.job_yaml(&SPEC.replace("OUT", out));
    let mut spec = kask_api::load_job("job.yaml", &yaml).expect("job").spec;
    if spec.storage.is_none() {
        spec.storage = Some(local_storage(lab.dir.path()).expect("storage"));
    }
    spec
}

async fn steps_match_local_mode(lab: Lab) {
    lab_with_input(&lab).await;
    let spec = spec_for(&lab, "by-pods");

    let report = pod::plan(&spec, "uid-1").await.expect("plan");
    assert_eq!(report.stages.len(), 2, "{report:?}");
    assert_eq!(
        report.stages[0].tasks, 9,
        "one task per row group: 3 files of 3 groups"
    );
    assert_eq!(report.stages[0].groups, 2, "at most `workers` groups");
    let again = pod::plan(&spec, "uid-1").await.expect("plan again");
    assert_eq!(again, report, "a retried plan pod reports the same plan");

    for stage in &report.stages {
        let mut tasks = 0;
        for g in 0..stage.groups as usize {
            let r = pod::run_stage(&spec, &report.plan, &stage.name, g)
                .await
                .expect("stage pod");
            assert_eq!(r.skipped, 0);
            assert!(
                r.cpu_seconds > 0.0 && r.peak_memory_bytes > 0,
                "the pod reports the CPU and memory it used: {r:?}"
            );
            tasks += r.tasks;
        }
        assert_eq!(
            tasks, stage.tasks,
            "the groups cover every task of {}",
            stage.name
        );
        // A replacement pod of a finished group finds every task committed.
        let r = pod::run_stage(&spec, &report.plan, &stage.name, 0)
            .await
            .expect("retried pod");
        assert_eq!(r.skipped, r.tasks, "{r:?}");
    }
    let err = pod::run_stage(&spec, &report.plan, "0", 7)
        .await
        .expect_err("no such group");
    assert!(err.to_string().contains("has 2 task groups"), "{err}");

    let committed = pod::commit(&spec, "uid-1", &report.plan)
        .await
        .expect("commit");
    assert_eq!(committed.rows_out, 5);
    // A commit pod run again after it succeeded (killed before it reported, or its Job
    // deleted) finds the job's result, though the plan is gone by then.
    assert!(
        lab.store
            .list(&spec.scratch_prefix("uid-1"))
            .await
            .expect("list")
            .is_empty(),
        "the commit removed the scratch space, plan included"
    );
    let again = pod::commit(&spec, "uid-1", &report.plan)
        .await
        .expect("commit again");
    assert_eq!(again.rows_out, 5);
    assert_eq!(again.output, committed.output);
    assert!(
        committed
            .output
            .as_deref()
            .is_some_and(|o| o.ends_with("by-pods/_SUCCESS"))
    );

    lab.run(&SPEC.replace("OUT", "local"))
        .await
        .expect("local run");
    let (cols_pods, rows_pods) = lab.result("by-pods").await;
    let (cols_local, rows_local) = lab.result("local").await;
    assert_eq!(cols_pods, cols_local);
    assert_eq!(sorted(rows_pods), sorted(rows_local));

    // A job deleted after planning: the cleanup pod removes its scratch, and only that.
    let other = spec_for(&lab, "other");
    pod::plan(&other, "uid-2").await.expect("plan uid-2");
    let scratch = other.scratch_prefix("uid-2");
    assert!(!lab.store.list(&scratch).await.expect("list").is_empty());
    pod::cleanup(&other, "uid-2").await.expect("cleanup");
    assert!(lab.store.list(&scratch).await.expect("list").is_empty());
    assert!(
        lab.manifest("by-pods").await.is_some(),
        "the committed output stays"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_steps_match_local_mode_on_a_local_directory() {
    steps_match_local_mode(Lab::local()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_steps_match_local_mode_on_s3() {
    if let Some(lab) = Lab::s3() {
        steps_match_local_mode(lab).await;
    }
}

fn spec_with_storage(secret: &str) -> DaskJobSpec {
    let text = format!(
        "apiVersion: kask.dev/v1alpha1\nkind: DaskJob\nmetadata: {{name: j}}\nspec:\n  \
         storage: {{url: \"s3://lake/x\"{secret}}}\n  dataframe:\n    \
         inputs: {{o: {{path: \"o/*.csv\", format: csv}}}}\n    pipeline: [{{source: o}}]\n  \
         output: {{path: out}}\n"
    );
    kask_api::parse_job("job.yaml", &text)
        .expect("the test job parses")
        .spec
}

#[test]
fn a_storage_secret_that_set_no_key_is_an_error_naming_it() {
    let named = spec_with_storage(", secretRef: {name: lake}");
    let err = pod::check_credentials(&named, |_| false)
        .expect_err("no key set")
        .to_string();
    assert!(err.contains("spec.storage.secretRef"), "{err}");
    assert!(err.contains("\"lake\""), "{err}");
    assert!(err.contains("AWS_ACCESS_KEY_ID"), "{err}");
    assert!(pod::check_credentials(&named, |k| k == "AWS_ACCESS_KEY_ID").is_ok());
    // Without a secretRef, credentials come from wherever object_store finds them.
    assert!(pod::check_credentials(&spec_with_storage(""), |_| false).is_ok());
}

#[test]
fn a_plan_of_another_plan_version_is_refused_as_a_lasting_error() {
    use kask_worker::Error;
    let other = format!(
        "{{\"version\": {}, \"anything\": true}}",
        kask_worker::plan::PLAN_VERSION + 1
    );
    let err = pod::parse_plan(other.as_bytes(), "x/_kask/u/plan.json").expect_err("refused");
    assert!(matches!(err, Error::Incompatible(_)), "{err}");
    assert_eq!(err.exit_code(), 4);
    let msg = err.to_string();
    assert!(
        msg.contains("x/_kask/u/plan.json") && msg.contains("plan version"),
        "{msg}"
    );
    let garbage = pod::parse_plan(b"[1, 2]", "p.json").expect_err("not a plan");
    assert!(matches!(garbage, Error::Internal(_)), "{garbage}");
}
