//! The state machine's transitions, one case per row: each phase and each child state, with
//! suspension, deadlines, TTL and deletion. Objects are written as the API server returns them.

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use super::*;
use crate::children::Children;
use kask_api::{DaskJob, DaskJobStatus, Phase, StageStatus};

const NOW: &str = "2026-12-02T10:00:00Z";
const IMAGE: &str = "localhost/kask:new";

fn at(offset_secs: i64) -> String {
    let t: Timestamp = NOW.parse().expect("a time");
    (t + SignedDuration::from_secs(offset_secs)).to_string()
}

/// A valid DaskJob `rev` in namespace `ns`, with Kask's finalizer, modified by `f` (JSON).
fn daskjob(f: impl FnOnce(&mut Value)) -> DaskJob {
    let mut v = json!({
        "apiVersion": "kask.dev/v1alpha1",
        "kind": "DaskJob",
        "metadata": {"name": "rev", "namespace": "ns", "uid": "u-1", "generation": 1,
                     "finalizers": ["kask.dev/cleanup"]},
        "spec": {
            "workers": 2,
            "storage": {"url": "s3://lake/x", "secretRef": {"name": "lake"}},
            "dataframe": {
                "inputs": {"orders": {"path": "orders/*.csv", "format": "csv"}},
                "pipeline": [{"source": "orders"}]
            },
            "output": {"path": "out"}
        }
    });
    f(&mut v);
    serde_json::from_value(v).expect("a DaskJob")
}

/// A DaskJob that has planned two stages and started at NOW - 60 s.
fn planned(f: impl FnOnce(&mut Value)) -> DaskJob {
    daskjob(|v| {
        v["status"] = json!({
            "phase": "Running",
            "startTime": at(-60),
            "workerImage": "localhost/kask:old",
            "plan": "s3://lake/x/_kask/jobs/u-1/plan.json",
            "stages": [
                {"name": "s0-scan-orders", "tasks": 4, "groups": 2},
                {"name": "s1-reduce", "tasks": 2, "groups": 2}
            ]
        });
        f(v);
    })
}

/// A Job in `state`: running, complete, failed or suspended.
fn job(name: &str, state: &str) -> Job {
    let cond = |t: &str, reason: &str| json!([{"type": t, "status": "True", "reason": reason, "message": "m"}]);
    let (status, suspend) = match state {
        "running" => (json!({"active": 1, "startTime": at(-30)}), false),
        "complete" => (
            json!({"succeeded": 2, "failed": 1, "startTime": at(-30), "completionTime": at(-5),
                   "conditions": cond("Complete", "")}),
            false,
        ),
        "failed" => (
            json!({"failed": 1, "conditions": cond("Failed", "BackoffLimitExceeded")}),
            false,
        ),
        "suspended" => (
            json!({"conditions": cond("Suspended", "JobSuspended")}),
            true,
        ),
        other => panic!("no Job state {other}"),
    };
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "ns", "creationTimestamp": at(-30),
                     "labels": {"kask.dev/job-uid": "u-1"}},
        "spec": {"suspend": suspend, "template": {}},
        "status": status
    }))
    .expect("a Job")
}

/// A pod of Job `job`, index `index`, in `phase`, with fields of its status merged in.
fn pod(name: &str, job: &str, index: u32, phase: &str, status: Value) -> Pod {
    let mut s = json!({"phase": phase});
    if let (Some(o), Some(extra)) = (s.as_object_mut(), status.as_object()) {
        o.extend(extra.clone());
    }
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "ns", "creationTimestamp": at(-20),
                     "labels": {"kask.dev/job-uid": "u-1", "batch.kubernetes.io/job-name": job},
                     "annotations": {"batch.kubernetes.io/job-completion-index": index.to_string()}},
        "spec": {"containers": [{"name": "kask", "resources": {"limits": {"memory": "64Mi"}}}]},
        "status": s
    }))
    .expect("a Pod")
}

/// A pod that ended with exit code `code` and termination message `message`.
fn ended(name: &str, job: &str, index: u32, code: i32, reason: &str, message: &str) -> Pod {
    let phase = if code == 0 { "Succeeded" } else { "Failed" };
    pod(
        name,
        job,
        index,
        phase,
        json!({"containerStatuses": [{"name": "kask", "image": "i", "imageID": "", "ready": false,
            "restartCount": 0,
            "state": {"terminated": {"exitCode": code, "reason": reason, "message": message}}}]}),
    )
}

fn plan_report() -> String {
    json!({"plan": "s3://lake/x/_kask/jobs/u-1/plan.json", "version": 1,
           "stages": [{"name": "s0-scan-orders", "tasks": 4, "groups": 2},
                      {"name": "s1-reduce", "tasks": 2, "groups": 2}]})
    .to_string()
}

fn task_report(tasks: u32, rows: u64) -> String {
    json!({"tasks": tasks, "rowsIn": rows, "bytesIn": 10, "rowsOut": rows, "bytesOut": 10,
           "seconds": 1.0, "cpuSeconds": 0.5, "peakMemoryBytes": 1000, "spilledBytes": rows * 10})
    .to_string()
}

fn failure(error: &str) -> String {
    json!({"error": error, "retryable": false}).to_string()
}

fn run(dj: &DaskJob, children: &Children) -> Decision {
    decide(&Observed {
        dj,
        children,
        now: NOW.parse().expect("a time"),
        default_image: IMAGE,
    })
}

fn run_with(dj: &DaskJob, jobs: Vec<Job>, pods: Vec<Pod>) -> Decision {
    run(dj, &Children::new(jobs, pods))
}

fn creates(d: &Decision) -> Vec<&Step> {
    d.actions
        .iter()
        .filter_map(|a| match a {
            Act::Create { step, .. } => Some(step),
            _ => None,
        })
        .collect()
}

fn deletes(d: &Decision) -> Vec<&str> {
    d.actions
        .iter()
        .filter_map(|a| match a {
            Act::Delete(n) => Some(n.as_str()),
            _ => None,
        })
        .collect()
}

fn events(d: &Decision) -> Vec<(bool, &str, &str)> {
    d.actions
        .iter()
        .filter_map(|a| match a {
            Act::Event(n) => Some((n.warning, n.reason.as_str(), n.text.as_str())),
            _ => None,
        })
        .collect()
}

fn cond<'a>(s: &'a DaskJobStatus, t: &str) -> Option<(&'a str, &'a str, &'a str)> {
    s.conditions.iter().find(|c| c.type_ == t).map(|c| {
        (
            c.status.as_str(),
            c.reason.as_deref().unwrap_or(""),
            c.message.as_deref().unwrap_or(""),
        )
    })
}

fn failed_with(d: &Decision) -> (&str, &str) {
    assert_eq!(d.status.phase, Some(Phase::Failed), "{d:#?}");
    let (status, reason, msg) = cond(&d.status, "Failed").expect("a Failed condition");
    assert_eq!(status, "True");
    assert_eq!(d.status.message.as_deref(), Some(msg));
    (reason, msg)
}

// --- admission ---------------------------------------------------------------------------

#[test]
fn a_new_job_gets_the_finalizer_first_and_nothing_else() {
    let dj = daskjob(|v| v["metadata"]["finalizers"] = json!(["other.io/keep"]));
    let d = run_with(&dj, vec![], vec![]);
    assert_eq!(d.actions, vec![Act::AddFinalizer]);
    assert_eq!(d.status, DaskJobStatus::default());
    assert_eq!(d.requeue, None);
}

#[test]
fn an_invalid_spec_fails_at_once_with_its_field_paths_and_no_job() {
    let dj = daskjob(|v| v["spec"]["output"]["path"] = json!("orders"));
    let d = run_with(&dj, vec![], vec![]);
    let (reason, msg) = failed_with(&d);
    assert_eq!(reason, "InvalidSpec");
    assert!(msg.contains("spec.output.path"), "{msg}");
    assert!(creates(&d).is_empty());
}

#[test]
fn a_new_job_creates_its_plan_job_and_fixes_its_worker_image() {
    let d = run_with(&daskjob(|_| {}), vec![], vec![]);
    assert_eq!(creates(&d), vec![&Step::Plan]);
    assert_eq!(d.status.phase, Some(Phase::Pending));
    assert_eq!(d.status.worker_image.as_deref(), Some(IMAGE));
    assert_eq!(d.status.start_time.as_deref(), Some(NOW));
    assert_eq!(d.requeue, Some(RESYNC));
    assert!(events(&d).iter().any(|e| e.1 == "Planning"));
}

#[test]
fn the_image_the_job_started_with_stays_its_image() {
    let dj = planned(|_| {});
    let d = run_with(&dj, vec![job("rev-plan", "complete")], vec![]);
    assert_eq!(d.status.worker_image.as_deref(), Some("localhost/kask:old"));
    let own = daskjob(|v| v["spec"]["image"] = json!("mine:2"));
    assert_eq!(worker_image(&own, IMAGE), "mine:2");
    assert_eq!(worker_image(&dj, IMAGE), "localhost/kask:old");
}

#[test]
fn a_suspended_new_job_creates_its_plan_job_suspended() {
    let dj = daskjob(|v| v["spec"]["suspend"] = json!(true));
    let d = run_with(&dj, vec![], vec![]);
    assert_eq!(
        d.actions[0],
        Act::Create {
            step: Step::Plan,
            suspend: true
        }
    );
    assert_eq!(d.status.phase, Some(Phase::Suspended));
    assert_eq!(cond(&d.status, "Suspended").map(|c| c.0), Some("True"));
    // Not started: deleting it needs no cleanup pod.
    assert_eq!(d.status.start_time, None);
    let mut gone = dj.clone();
    gone.status = Some(d.status);
    gone.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        NOW.parse().expect("a time"),
    ));
    assert_eq!(
        run_with(&gone, vec![job("rev-plan", "suspended")], vec![]).actions,
        vec![Act::RemoveFinalizer]
    );
}

// --- plan --------------------------------------------------------------------------------

#[test]
fn a_running_plan_keeps_the_job_pending() {
    let d = run_with(
        &daskjob(|_| {}),
        vec![job("rev-plan", "running")],
        vec![pod("p", "rev-plan", 0, "Running", json!({}))],
    );
    assert!(creates(&d).is_empty());
    assert_eq!(d.status.phase, Some(Phase::Pending));
    assert_eq!(cond(&d.status, "Stalled"), None);
}

#[test]
fn a_finished_plan_sets_the_stages_and_starts_the_first() {
    let d = run_with(
        &daskjob(|_| {}),
        vec![job("rev-plan", "complete")],
        vec![ended("p", "rev-plan", 0, 0, "Completed", &plan_report())],
    );
    assert_eq!(d.status.stages.len(), 2);
    assert_eq!(
        d.status.plan.as_deref(),
        Some("s3://lake/x/_kask/jobs/u-1/plan.json")
    );
    assert_eq!(
        creates(&d),
        vec![&Step::Stage {
            index: 0,
            name: "s0-scan-orders".into(),
            groups: 2,
            pods: 2,
            plan: "s3://lake/x/_kask/jobs/u-1/plan.json".into()
        }]
    );
    assert_eq!(d.status.phase, Some(Phase::Running));
    assert_eq!(d.status.progress.as_deref(), Some("0/6"));
}

#[test]
fn a_plan_without_a_readable_report_is_lost_never_a_success() {
    for (message, says) in [("", "no report"), ("{\"plan\": 3}", "unreadable report")] {
        let d = run_with(
            &daskjob(|_| {}),
            vec![job("rev-plan", "complete")],
            vec![ended("p", "rev-plan", 0, 0, "Completed", message)],
        );
        let (reason, msg) = failed_with(&d);
        assert_eq!(reason, "ReportLost");
        assert!(msg.contains("pod p") && msg.contains(says), "{msg}");
    }
    let gone = run_with(&daskjob(|_| {}), vec![job("rev-plan", "complete")], vec![]);
    assert!(failed_with(&gone).1.contains("its pod is gone"));
}

#[test]
fn a_failed_plan_fails_the_job_with_the_pods_error() {
    let d = run_with(
        &daskjob(|_| {}),
        vec![job("rev-plan", "failed")],
        vec![ended(
            "p",
            "rev-plan",
            0,
            2,
            "Error",
            &failure("input \"orders\": no files match"),
        )],
    );
    let (reason, msg) = failed_with(&d);
    assert_eq!(reason, "PlanFailed");
    assert_eq!(msg, "plan (pod p): input \"orders\": no files match");
}

// --- stages ------------------------------------------------------------------------------

#[test]
fn a_running_stage_counts_its_tasks_from_reports() {
    let d = run_with(
        &planned(|_| {}),
        vec![job("rev-s0", "running")],
        vec![
            ended("a", "rev-s0", 0, 0, "Completed", &task_report(2, 100)),
            pod("b", "rev-s0", 1, "Running", json!({})),
        ],
    );
    let s0 = &d.status.stages[0];
    assert_eq!((s0.succeeded, s0.running, s0.rows_read), (2, 2, 100));
    assert_eq!(d.status.progress.as_deref(), Some("2/6"));
    assert_eq!(d.status.phase, Some(Phase::Running));
    assert!(creates(&d).is_empty());
}

#[test]
fn a_finished_stage_starts_the_next() {
    let d = run_with(
        &planned(|_| {}),
        vec![job("rev-s0", "complete")],
        vec![
            ended("a", "rev-s0", 0, 0, "Completed", &task_report(2, 100)),
            ended("b", "rev-s0", 1, 0, "Completed", &task_report(2, 50)),
        ],
    );
    let s0 = &d.status.stages[0];
    assert_eq!(
        (s0.succeeded, s0.rows_read, s0.seconds),
        (4, 150, Some(25.0))
    );
    // Peak memory is the largest pod's; spilled bytes add up over the pods.
    assert_eq!((s0.peak_memory_bytes, s0.spilled_bytes), (1000, 1500));
    assert!(
        d.actions
            .iter()
            .any(|a| matches!(a, Act::StageFinished { tasks: 4, .. }))
    );
    assert!(matches!(creates(&d)[..], [Step::Stage { index: 1, .. }]));
}

/// A job graph planned as three stages: two independent scans, then a stage that reads both.
fn graph_planned(workers: u32) -> DaskJob {
    planned(|v| {
        v["spec"]["workers"] = json!(workers);
        v["status"]["stages"] = json!([
            {"name": "s0-scan-a", "tasks": 2, "groups": 2, "after": []},
            {"name": "s1-scan-b", "tasks": 2, "groups": 2, "after": []},
            {"name": "s2-join", "tasks": 2, "groups": 2, "after": [0, 1]}
        ]);
    })
}

fn parallel(mut j: Job, pods: i32) -> Job {
    if let Some(s) = j.spec.as_mut() {
        s.parallelism = Some(pods);
    }
    j
}

/// The stage Jobs a decision creates, as (stage index, pods at once).
fn stages_started(d: &Decision) -> Vec<(usize, u32)> {
    creates(d)
        .iter()
        .filter_map(|s| match s {
            Step::Stage { index, pods, .. } => Some((*index, *pods)),
            _ => None,
        })
        .collect()
}

#[test]
fn independent_stages_run_side_by_side_within_the_workers_and_a_stage_waits_for_its_inputs() {
    // Both scans start at once, their pods together within spec.workers (3 = 2 + 1).
    let d = run_with(&graph_planned(3), vec![], vec![]);
    assert_eq!(stages_started(&d), [(0, 2), (1, 1)]);
    assert_eq!(d.status.phase, Some(Phase::Running));
    // With one worker, busy with the first scan, the second waits for a free pod.
    let d = run_with(
        &graph_planned(1),
        vec![parallel(job("rev-s0", "running"), 1)],
        vec![],
    );
    assert_eq!(stages_started(&d), []);
    let d = run_with(
        &graph_planned(2),
        vec![parallel(job("rev-s0", "running"), 1)],
        vec![],
    );
    assert_eq!(stages_started(&d), [(1, 1)]);
    // The join waits for both scans, then takes the pods it can use.
    let d = run_with(
        &graph_planned(4),
        vec![
            job("rev-s0", "complete"),
            parallel(job("rev-s1", "running"), 2),
        ],
        vec![],
    );
    assert_eq!(stages_started(&d), []);
    assert!(d.status.stages[0].seconds.is_some());
    let d = run_with(
        &graph_planned(4),
        vec![job("rev-s0", "complete"), job("rev-s1", "complete")],
        vec![],
    );
    assert_eq!(stages_started(&d), [(2, 2)]);
    // A status without `after` (an older plan report) runs the stages one after another.
    let d = run_with(
        &planned(|v| v["spec"]["workers"] = json!(8)),
        vec![],
        vec![],
    );
    assert_eq!(stages_started(&d), [(0, 2)]);
}

#[test]
fn a_failed_stage_names_the_group_the_pod_and_the_error() {
    let d = run_with(
        &planned(|_| {}),
        vec![job("rev-s0", "failed")],
        vec![ended(
            "b",
            "rev-s0",
            1,
            2,
            "Error",
            &failure("input \"orders\": a.csv line 3: bad"),
        )],
    );
    let (reason, msg) = failed_with(&d);
    assert_eq!(reason, "StageFailed");
    assert_eq!(
        msg,
        "stage s0-scan-orders, task group 1 (pod b): input \"orders\": a.csv line 3: bad"
    );
}

#[test]
fn an_oom_killed_pod_is_named_with_its_limit_and_what_to_change() {
    let d = run_with(
        &planned(|_| {}),
        vec![job("rev-s0", "failed")],
        vec![ended("b", "rev-s0", 0, 137, "OOMKilled", "")],
    );
    let msg = failed_with(&d).1;
    assert!(msg.contains("OOMKilled") && msg.contains("64Mi"), "{msg}");
    assert!(
        msg.contains("spec.resources") && msg.contains("targetTaskBytes"),
        "{msg}"
    );
}

#[test]
fn an_evicted_pod_is_not_a_failure_while_its_job_goes_on() {
    let mut evicted = ended("e", "rev-s0", 0, 143, "Error", "");
    if let Some(s) = evicted.status.as_mut() {
        s.conditions = Some(vec![serde_json::from_value(
            json!({"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI"}),
        )
        .expect("a condition")]);
    }
    let d = run_with(
        &planned(|_| {}),
        vec![job("rev-s0", "running")],
        vec![
            evicted.clone(),
            pod("e2", "rev-s0", 0, "Running", json!({})),
        ],
    );
    assert_eq!(d.status.phase, Some(Phase::Running));
    // When the Job fails for another pod, that pod's error is the message, not the eviction.
    let d = run_with(
        &planned(|_| {}),
        vec![job("rev-s0", "failed")],
        vec![
            ended("x", "rev-s0", 1, 2, "Error", &failure("bad data")),
            evicted,
        ],
    );
    assert!(failed_with(&d).1.ends_with("(pod x): bad data"));
}

#[test]
fn a_pod_that_died_without_a_report_gives_its_last_log_line_or_exit_code() {
    let d = run_with(
        &planned(|_| {}),
        vec![job("rev-s0", "failed")],
        vec![ended(
            "b",
            "rev-s0",
            0,
            101,
            "Error",
            "thread panicked\nat the end\n",
        )],
    );
    assert!(failed_with(&d).1.ends_with("(pod b): at the end"));
    let d = run_with(
        &planned(|_| {}),
        vec![job("rev-s0", "failed")],
        vec![ended("b", "rev-s0", 0, 137, "Error", "")],
    );
    assert!(failed_with(&d).1.contains("exited with code 137"));
    let d = run_with(&planned(|_| {}), vec![job("rev-s0", "failed")], vec![]);
    assert_eq!(
        failed_with(&d).1,
        "stage s0-scan-orders (Job rev-s0): BackoffLimitExceeded: m"
    );
}

// --- commit ------------------------------------------------------------------------------

fn stages_done(v: &mut Value) {
    v["status"]["stages"][0]["seconds"] = json!(1.0);
    v["status"]["stages"][1]["seconds"] = json!(1.0);
}

#[test]
fn after_the_last_stage_the_commit_job_is_created() {
    let d = run_with(&planned(stages_done), vec![], vec![]);
    assert_eq!(
        creates(&d),
        vec![&Step::Commit {
            plan: "s3://lake/x/_kask/jobs/u-1/plan.json".into()
        }]
    );
}

#[test]
fn a_committed_job_succeeds_with_its_rows_and_manifest() {
    let report = json!({"tasks": 0, "rowsIn": 0, "bytesIn": 0, "rowsOut": 40, "bytesOut": 9,
        "seconds": 1.0, "cpuSeconds": 0.1, "peakMemoryBytes": 1,
        "output": "s3://lake/x/out/_SUCCESS"})
    .to_string();
    let d = run_with(
        &planned(stages_done),
        vec![job("rev-commit", "complete")],
        vec![ended("c", "rev-commit", 0, 0, "Completed", &report)],
    );
    assert_eq!(d.status.phase, Some(Phase::Succeeded));
    assert_eq!(d.status.output_rows, Some(40));
    // Started a minute before now (the fixture's startTime), ended now.
    assert_eq!(d.status.completion_time.as_deref(), Some(NOW));
    assert_eq!(d.status.duration.as_deref(), Some("1m0s"));
    assert_eq!(
        cond(&d.status, "Complete"),
        Some((
            "True",
            "Succeeded",
            "wrote 40 rows to s3://lake/x/out/_SUCCESS"
        ))
    );
    assert_eq!(d.requeue, None);
}

#[test]
fn a_committed_job_graph_lists_every_output_in_its_status() {
    let report = json!({"tasks": 0, "rowsIn": 0, "bytesIn": 0, "rowsOut": 46, "bytesOut": 9,
        "seconds": 1.0, "cpuSeconds": 0.1, "peakMemoryBytes": 1,
        "output": "s3://lake/x/r/a/_SUCCESS",
        "outputs": ["a: s3://lake/x/r/a/_SUCCESS", "b: s3://lake/x/r/b/_SUCCESS"]})
    .to_string();
    let d = run_with(
        &planned(stages_done),
        vec![job("rev-commit", "complete")],
        vec![ended("c", "rev-commit", 0, 0, "Completed", &report)],
    );
    assert_eq!(d.status.phase, Some(Phase::Succeeded));
    assert_eq!(d.status.output.as_deref(), Some("s3://lake/x/r/a/_SUCCESS"));
    assert_eq!(d.status.outputs.len(), 2);
    let (_, _, msg) = cond(&d.status, "Complete").expect("Complete");
    assert_eq!(
        msg,
        "wrote 46 rows to 2 outputs: a: s3://lake/x/r/a/_SUCCESS, b: s3://lake/x/r/b/_SUCCESS"
    );
}

#[test]
fn a_commit_whose_report_is_lost_succeeds_saying_so_never_with_zero_rows() {
    let d = run_with(
        &planned(stages_done),
        vec![job("rev-commit", "complete")],
        vec![],
    );
    assert_eq!(d.status.phase, Some(Phase::Succeeded));
    assert_eq!(d.status.output_rows, None);
    assert_eq!(d.status.output.as_deref(), Some("s3://lake/x/out/_SUCCESS"));
    let (status, _, msg) = cond(&d.status, "ReportLost").expect("a ReportLost condition");
    assert_eq!(status, "True");
    assert!(msg.contains("row count is unknown"), "{msg}");
    assert!(
        !cond(&d.status, "Complete")
            .expect("Complete")
            .2
            .contains("0 rows")
    );
}

#[test]
fn a_failed_commit_fails_the_job() {
    let d = run_with(
        &planned(stages_done),
        vec![job("rev-commit", "failed")],
        vec![ended(
            "c",
            "rev-commit",
            0,
            3,
            "Error",
            &failure("storage s3://lake: 503"),
        )],
    );
    assert_eq!(
        failed_with(&d),
        ("CommitFailed", "commit (pod c): storage s3://lake: 503")
    );
}

// --- suspend -----------------------------------------------------------------------------

#[test]
fn suspending_a_running_stage_suspends_its_job_and_resuming_resumes_it() {
    let dj = planned(|v| v["spec"]["suspend"] = json!(true));
    let d = run_with(&dj, vec![job("rev-s0", "running")], vec![]);
    assert!(d.actions.contains(&Act::Suspend {
        job: "rev-s0".into(),
        suspend: true
    }));
    assert_eq!(d.status.phase, Some(Phase::Suspended));
    assert_eq!(d.requeue, None);

    let d = run_with(&planned(|_| {}), vec![job("rev-s0", "suspended")], vec![]);
    assert!(d.actions.contains(&Act::Suspend {
        job: "rev-s0".into(),
        suspend: false
    }));
    assert_eq!(d.status.phase, Some(Phase::Running));
}

#[test]
fn a_suspended_job_creates_no_next_stage() {
    let dj = planned(|v| v["spec"]["suspend"] = json!(true));
    let d = run_with(&dj, vec![], vec![]);
    assert!(creates(&d).is_empty());
    assert_eq!(d.status.phase, Some(Phase::Suspended));
}

// --- deadlines ---------------------------------------------------------------------------

#[test]
fn past_its_active_deadline_a_job_stops_its_pods_and_fails() {
    let dj = planned(|v| v["spec"]["activeDeadlineSeconds"] = json!(30));
    let d = run_with(
        &dj,
        vec![job("rev-plan", "complete"), job("rev-s0", "running")],
        vec![],
    );
    assert_eq!(failed_with(&d).0, "DeadlineExceeded");
    assert_eq!(deletes(&d), vec!["rev-s0"]);
}

#[test]
fn before_its_deadline_a_job_wakes_up_at_it() {
    let dj = planned(|v| v["spec"]["activeDeadlineSeconds"] = json!(70));
    let d = run_with(&dj, vec![job("rev-s0", "running")], vec![]);
    assert_eq!(d.requeue, Some(Duration::from_millis(10_200)));
}

fn unschedulable(since: i64) -> Pod {
    pod(
        "p",
        "rev-s0",
        0,
        "Pending",
        json!({"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/1 nodes are available: 1 Insufficient cpu.",
            "lastTransitionTime": at(since)}]}),
    )
}

#[test]
fn an_unschedulable_pod_is_named_at_once_and_fails_the_job_at_the_startup_deadline() {
    let dj = planned(|v| v["spec"]["startupDeadlineSeconds"] = json!(60));
    let d = run_with(
        &dj,
        vec![job("rev-s0", "running")],
        vec![unschedulable(-10)],
    );
    assert_eq!(d.status.phase, Some(Phase::Running));
    let (status, reason, msg) = cond(&d.status, "Stalled").expect("a Stalled condition");
    assert_eq!((status, reason), ("True", "Unschedulable"));
    assert_eq!(
        msg,
        "stage s0-scan-orders: Unschedulable: 0/1 nodes are available: 1 Insufficient cpu."
    );
    assert!(events(&d).iter().any(|e| e.0 && e.1 == "Unschedulable"));
    assert_eq!(d.requeue, Some(RESYNC));
    let soon = planned(|v| v["spec"]["startupDeadlineSeconds"] = json!(15));
    let d_soon = run_with(
        &soon,
        vec![job("rev-s0", "running")],
        vec![unschedulable(-10)],
    );
    assert_eq!(d_soon.requeue, Some(Duration::from_millis(5_200)));

    // The same reason again: no second Event.
    let mut again = dj.clone();
    again.status = Some(d.status.clone());
    let d2 = run_with(
        &again,
        vec![job("rev-s0", "running")],
        vec![unschedulable(-10)],
    );
    assert!(!events(&d2).iter().any(|e| e.1 == "Unschedulable"));

    let d = run_with(
        &dj,
        vec![job("rev-s0", "running")],
        vec![unschedulable(-61)],
    );
    let (reason, msg) = failed_with(&d);
    assert_eq!(reason, "Unschedulable");
    assert!(
        msg.contains("Insufficient cpu") && msg.contains("startupDeadlineSeconds, 60s"),
        "{msg}"
    );
    assert_eq!(deletes(&d), vec!["rev-s0"]);
    assert_eq!(cond(&d.status, "Stalled").map(|c| c.0), None);
}

#[test]
fn a_pod_that_cannot_pull_its_image_is_named() {
    for reason in [
        "ImagePullBackOff",
        "ErrImagePull",
        "CreateContainerConfigError",
    ] {
        let p = pod(
            "p",
            "rev-plan",
            0,
            "Pending",
            json!({"containerStatuses": [{"name": "kask", "image": "i", "imageID": "", "ready": false,
                "restartCount": 0, "state": {"waiting": {"reason": reason,
                "message": "Back-off pulling image \"nope:1\""}}}]}),
        );
        let d = run_with(&daskjob(|_| {}), vec![job("rev-plan", "running")], vec![p]);
        let (status, r, msg) = cond(&d.status, "Stalled").expect("Stalled");
        assert_eq!((status, r), ("True", reason));
        assert!(
            msg.starts_with(&format!("plan: {reason}: Back-off")),
            "{msg}"
        );
    }
}

#[test]
fn a_job_whose_pods_are_refused_says_why() {
    let mut children = Children::new(vec![job("rev-s0", "running")], vec![]);
    let d = run(&planned(|_| {}), &children);
    let (_, reason, msg) = cond(&d.status, "Stalled").expect("Stalled after 30 s without pods");
    assert_eq!(reason, "NoPods");
    assert!(msg.contains("kubectl describe job rev-s0"), "{msg}");
    children.set_create_failure(
        "rev-s0",
        "pods \"rev-s0-0\" is forbidden: exceeded quota: q, requested: cpu=1".into(),
    );
    let d = run(&planned(|_| {}), &children);
    let (_, reason, msg) = cond(&d.status, "Stalled").expect("Stalled");
    assert_eq!(reason, "FailedCreate");
    assert!(msg.contains("exceeded quota"), "{msg}");
}

#[test]
fn a_stalled_job_whose_pods_start_is_no_longer_stalled() {
    let stalled = run_with(
        &planned(|_| {}),
        vec![job("rev-s0", "running")],
        vec![unschedulable(-5)],
    );
    let mut dj = planned(|_| {});
    dj.status = Some(stalled.status);
    let d = run_with(
        &dj,
        vec![job("rev-s0", "running")],
        vec![pod("p", "rev-s0", 0, "Running", json!({}))],
    );
    assert_eq!(
        cond(&d.status, "Stalled").map(|c| (c.0, c.1)),
        Some(("False", "PodsStarted"))
    );
}

// --- the end, TTL and deletion -----------------------------------------------------------

fn finished(phase: &str, ttl: Option<i64>, ended_ago: i64) -> DaskJob {
    planned(|v| {
        v["status"]["phase"] = json!(phase);
        v["status"]["completionTime"] = json!(at(-ended_ago));
        if let Some(t) = ttl {
            v["spec"]["ttlSecondsAfterFinished"] = json!(t);
        }
    })
}

#[test]
fn a_finished_job_is_left_alone_until_its_ttl_then_deleted() {
    let d = run_with(&finished("Succeeded", None, 100), vec![], vec![]);
    assert_eq!((d.actions.len(), d.requeue), (0, None));
    let d = run_with(&finished("Failed", Some(60), 10), vec![], vec![]);
    assert_eq!(d.requeue, Some(Duration::from_millis(50_200)));
    assert!(d.actions.is_empty());
    let d = run_with(&finished("Succeeded", Some(60), 61), vec![], vec![]);
    assert_eq!(d.actions, vec![Act::DeleteSelf]);
    // A Job still running under a finished job (created from a stale view) is stopped.
    let d = run_with(
        &finished("Failed", None, 1),
        vec![job("rev-s0", "failed"), job("rev-s1", "running")],
        vec![],
    );
    assert_eq!(deletes(&d), vec!["rev-s1"]);
}

fn deleted(f: impl FnOnce(&mut Value), ago: i64) -> DaskJob {
    planned(|v| {
        v["metadata"]["deletionTimestamp"] = json!(at(-ago));
        f(v);
    })
}

#[test]
fn a_deleted_succeeded_job_just_lets_go() {
    let dj = deleted(|v| v["status"]["phase"] = json!("Succeeded"), 1);
    assert_eq!(
        run_with(&dj, vec![], vec![]).actions,
        vec![Act::RemoveFinalizer]
    );
    let gone = deleted(
        |v| v["metadata"]["finalizers"] = json!(["other.io/keep"]),
        1,
    );
    assert!(run_with(&gone, vec![], vec![]).actions.is_empty());
}

#[test]
fn a_deleted_running_job_stops_its_pods_and_runs_its_cleanup() {
    let d = run_with(&deleted(|_| {}, 1), vec![job("rev-s0", "running")], vec![]);
    assert_eq!(deletes(&d), vec!["rev-s0"]);
    assert_eq!(creates(&d), vec![&Step::Cleanup]);
    assert!(!d.actions.contains(&Act::RemoveFinalizer));
}

#[test]
fn the_cleanup_pod_waits_until_no_worker_can_still_write() {
    let worker = || pod("w", "rev-s0", 0, "Running", json!({}));
    let waiting = run_with(
        &deleted(|_| {}, 3),
        vec![job("rev-s0", "running")],
        vec![worker()],
    );
    assert_eq!(deletes(&waiting), vec!["rev-s0"]);
    assert!(creates(&waiting).is_empty());
    assert_eq!(waiting.requeue, Some(Duration::from_secs(2)));

    let ended = pod("w", "rev-s0", 0, "Failed", json!({}));
    let gone = run_with(&deleted(|_| {}, 5), vec![], vec![ended]);
    assert_eq!(creates(&gone), vec![&Step::Cleanup]);

    // A pod on a lost node never ends: the cleanup goes ahead after a while.
    let lost = run_with(&deleted(|_| {}, 121), vec![], vec![worker()]);
    assert_eq!(creates(&lost), vec![&Step::Cleanup]);
}

#[test]
fn deletion_always_ends_with_the_cleanup_done_failed_or_given_up() {
    let done = run_with(
        &deleted(|_| {}, 5),
        vec![job("rev-cleanup", "complete")],
        vec![],
    );
    assert_eq!(done.actions, vec![Act::RemoveFinalizer]);

    let failed = run_with(
        &deleted(|_| {}, 5),
        vec![job("rev-cleanup", "failed")],
        vec![],
    );
    assert!(failed.actions.contains(&Act::RemoveFinalizer));
    assert!(
        events(&failed)
            .iter()
            .any(|e| e.0 && e.1 == "CleanupFailed")
    );

    let running = run_with(
        &deleted(|_| {}, 5),
        vec![job("rev-cleanup", "running")],
        vec![],
    );
    assert!(!running.actions.contains(&Act::RemoveFinalizer));
    assert_eq!(running.requeue, Some(Duration::from_secs(10)));

    let stuck = pod(
        "c",
        "rev-cleanup",
        0,
        "Pending",
        json!({"conditions": [{"type": "PodScheduled", "status": "False",
            "reason": "Unschedulable", "message": "no nodes", "lastTransitionTime": at(-61)}]}),
    );
    let given_up = run_with(
        &deleted(|_| {}, 70),
        vec![job("rev-cleanup", "running")],
        vec![stuck],
    );
    assert!(given_up.actions.contains(&Act::RemoveFinalizer));
    assert_eq!(deletes(&given_up), vec!["rev-cleanup"]);
    assert!(
        events(&given_up)
            .iter()
            .any(|e| e.1 == "CleanupSkipped" && e.2.contains("no nodes"))
    );

    let too_long = run_with(
        &deleted(|_| {}, 301),
        vec![job("rev-cleanup", "running")],
        vec![],
    );
    assert!(too_long.actions.contains(&Act::RemoveFinalizer));
    let never_created = run_with(&deleted(|_| {}, 301), vec![], vec![]);
    assert!(never_created.actions.contains(&Act::RemoveFinalizer));
}

#[test]
fn a_deleted_job_that_never_started_needs_no_cleanup() {
    let dj = daskjob(|v| v["metadata"]["deletionTimestamp"] = json!(at(-1)));
    assert_eq!(
        run_with(&dj, vec![], vec![]).actions,
        vec![Act::RemoveFinalizer]
    );
}

// --- API errors --------------------------------------------------------------------------

#[test]
fn an_earlier_api_error_is_cleared_when_the_job_is_decided_again() {
    let dj = planned(|v| {
        v["status"]["conditions"] = json!([{"type": "ApiError", "status": "True",
            "reason": "ApiError", "message": "creating Job rev-s0: 422"}]);
    });
    let d = run_with(&dj, vec![job("rev-s0", "running")], vec![]);
    assert_eq!(cond(&d.status, "ApiError").map(|c| c.0), Some("False"));
}

#[test]
fn every_step_of_a_happy_job_in_order() {
    // Plan, two stages, commit: one Job created per step, never two at once.
    let mut dj = daskjob(|_| {});
    let mut jobs: Vec<Job> = Vec::new();
    let mut pods: Vec<Pod> = Vec::new();
    let mut created = Vec::new();
    for _ in 0..10 {
        let d = run_with(&dj, jobs.clone(), pods.clone());
        dj.status = Some(d.status.clone());
        if d.status.phase == Some(Phase::Succeeded) {
            break;
        }
        for step in creates(&d) {
            let (name, report) = match step {
                Step::Plan => ("rev-plan".to_string(), plan_report()),
                Step::Stage { index, .. } => (format!("rev-s{index}"), task_report(2, 5)),
                Step::Commit { .. } => ("rev-commit".to_string(), task_report(0, 10)),
                Step::Cleanup => unreachable!("no cleanup in a happy job"),
            };
            created.push(name.clone());
            pods.push(ended(
                &format!("{name}-0"),
                &name,
                0,
                0,
                "Completed",
                &report,
            ));
            pods.push(ended(
                &format!("{name}-1"),
                &name,
                1,
                0,
                "Completed",
                &report,
            ));
            jobs.push(job(&name, "complete"));
        }
    }
    assert_eq!(created, ["rev-plan", "rev-s0", "rev-s1", "rev-commit"]);
    let status = dj.status.expect("a status");
    assert_eq!(status.phase, Some(Phase::Succeeded));
    assert_eq!(status.output_rows, Some(10));
    assert!(
        status
            .stages
            .iter()
            .all(|s: &StageStatus| s.seconds.is_some())
    );
}

// --- every phase × every child state × suspend × deletion ----------------------------------

#[test]
fn invariants_hold_for_every_phase_child_state_suspension_and_deletion() {
    // Where the job stands, and the name of the Job it waits on there.
    let situations: Vec<(&str, DaskJob, &str)> = vec![
        ("new", daskjob(|_| {}), "rev-plan"),
        ("stage 0", planned(|_| {}), "rev-s0"),
        ("commit", planned(stages_done), "rev-commit"),
        ("succeeded", finished("Succeeded", None, 10), "rev-commit"),
        ("failed", finished("Failed", Some(3600), 10), "rev-s0"),
    ];
    let states = ["none", "running", "suspended", "complete", "failed"];
    let mut cases = 0;
    for (what, base, child) in &situations {
        for state in states {
            for suspend in [false, true] {
                for deleting in [false, true] {
                    let mut dj = base.clone();
                    dj.spec.suspend = Some(suspend);
                    if deleting {
                        dj.metadata.deletion_timestamp =
                            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                                NOW.parse().expect("a time"),
                            ));
                    }
                    let (jobs, pods) = if state == "none" {
                        (vec![], vec![])
                    } else {
                        let report = if *child == "rev-plan" {
                            plan_report()
                        } else {
                            task_report(2, 5)
                        };
                        let code = if state == "failed" { 2 } else { 0 };
                        let msg = if state == "failed" {
                            failure("bad data")
                        } else {
                            report
                        };
                        let pods = if matches!(state, "complete" | "failed") {
                            vec![ended("p", child, 0, code, "Completed", &msg)]
                        } else {
                            vec![pod("p", child, 0, "Running", json!({}))]
                        };
                        (vec![job(child, state)], pods)
                    };
                    let d = run_with(&dj, jobs, pods);
                    let at =
                        format!("{what}, child {state}, suspend {suspend}, deleting {deleting}");
                    cases += 1;
                    let created = creates(&d);
                    assert!(created.len() <= 1, "{at}: creates {created:?}");
                    let was_done = matches!(
                        base.status.as_ref().and_then(|s| s.phase),
                        Some(Phase::Succeeded | Phase::Failed)
                    );
                    if deleting {
                        assert!(
                            created.iter().all(|s| **s == Step::Cleanup),
                            "{at}: a deleted job creates {created:?}"
                        );
                        assert!(
                            d.actions.contains(&Act::RemoveFinalizer) || d.requeue.is_some(),
                            "{at}: a deletion that neither ends nor looks again"
                        );
                        continue;
                    }
                    if was_done {
                        assert!(
                            created.is_empty(),
                            "{at}: a finished job creates {created:?}"
                        );
                        assert_eq!(
                            d.status.phase,
                            base.status.as_ref().and_then(|s| s.phase),
                            "{at}"
                        );
                    }
                    if suspend {
                        for a in &d.actions {
                            if let Act::Create {
                                step,
                                suspend: false,
                            } = a
                            {
                                panic!("{at}: a suspended job creates {step:?} unsuspended");
                            }
                        }
                    }
                    match d.status.phase {
                        _ if was_done => {}
                        Some(Phase::Failed) => {
                            let msg = d.status.message.clone().unwrap_or_default();
                            assert!(!msg.is_empty(), "{at}: Failed without a message");
                            assert_eq!(
                                cond(&d.status, "Failed").map(|c| c.0),
                                Some("True"),
                                "{at}"
                            );
                        }
                        Some(Phase::Pending | Phase::Running) => {
                            // Never stuck: a running job is always looked at again.
                            assert!(d.requeue.is_some(), "{at}: running with no requeue");
                        }
                        Some(Phase::Succeeded) => {
                            assert_eq!(
                                cond(&d.status, "Complete").map(|c| c.0),
                                Some("True"),
                                "{at}"
                            );
                        }
                        Some(Phase::Suspended) => assert!(suspend, "{at}: suspended unasked"),
                        None => panic!("{at}: no phase"),
                    }
                }
            }
        }
    }
    assert_eq!(cases, 5 * 5 * 2 * 2);
}

#[test]
fn a_job_without_pods_yet_is_looked_at_again_soon_for_a_reason() {
    let mut fresh = job("rev-s0", "running");
    fresh.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        at(-2).parse().expect("a time"),
    ));
    let d = run_with(&planned(|_| {}), vec![fresh], vec![]);
    assert_eq!(d.requeue, Some(PODLESS_RECHECK));
    assert_eq!(cond(&d.status, "Stalled"), None);
}

// --- lost nodes --------------------------------------------------------------------------

/// A running pod of the first stage that was deleted with its deadline `deadline` seconds
/// from NOW (negative: past), on node `node`.
fn terminating(name: &str, deadline: i64, phase: &str) -> Pod {
    let mut p = pod(name, "rev-s0", 0, phase, json!({}));
    p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        at(deadline).parse().expect("a time"),
    ));
    if let Some(spec) = p.spec.as_mut() {
        spec.node_name = Some("kask-node-2".into());
    }
    p
}

fn releases(d: &Decision) -> Vec<&str> {
    d.actions
        .iter()
        .filter_map(|a| match a {
            Act::ReleasePod(n) => Some(n.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_pod_long_past_its_deletion_deadline_is_released_with_a_warning_naming_its_node() {
    let dj = planned(|_| {});
    let stranded = terminating("rev-s0-a", -31, "Running");
    let d = run_with(
        &dj,
        vec![job("rev-plan", "complete"), job("rev-s0", "running")],
        vec![stranded],
    );
    assert_eq!(releases(&d), vec!["rev-s0-a"]);
    let warned = events(&d);
    let (warning, _, text) = warned
        .iter()
        .find(|e| e.1 == "PodStranded")
        .expect("a PodStranded event");
    assert!(*warning);
    assert!(
        text.contains("rev-s0-a") && text.contains("kask-node-2") && text.contains("31s"),
        "{text}"
    );
    // The job goes on: released, not failed.
    assert_eq!(d.status.phase, Some(Phase::Running));
}

#[test]
fn a_pod_within_its_grace_or_already_ended_is_left_to_its_kubelet() {
    let dj = planned(|_| {});
    let children = vec![job("rev-plan", "complete"), job("rev-s0", "running")];
    // Deleted, its deadline 10 s ago: a live kubelet may still be ending it. Looked at again
    // when it would be stranded (20 s on), though no event will come.
    let d = run_with(
        &dj,
        children.clone(),
        vec![terminating("rev-s0-a", -10, "Running")],
    );
    assert!(releases(&d).is_empty());
    assert!(
        d.requeue.is_some_and(|r| r <= Duration::from_secs(20)),
        "{:?}",
        d.requeue
    );
    // Within its grace period.
    let d = run_with(
        &dj,
        children.clone(),
        vec![terminating("rev-s0-a", 25, "Running")],
    );
    assert!(releases(&d).is_empty());
    // Ended (its kubelet confirmed), only its finalizer keeps it: nothing to release.
    let d = run_with(&dj, children, vec![terminating("rev-s0-a", -300, "Failed")]);
    assert!(releases(&d).is_empty());
}

// --- Kueue -------------------------------------------------------------------------------

fn in_queue(v: &mut Value) {
    v["metadata"]["labels"] = json!({"kueue.x-k8s.io/queue-name": "batch"});
}

fn suspend_patches(d: &Decision) -> Vec<(&str, bool)> {
    d.actions
        .iter()
        .filter_map(|a| match a {
            Act::Suspend { job, suspend } => Some((job.as_str(), *suspend)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_queued_jobs_plan_stages_and_commit_are_created_suspended_for_kueue_to_admit() {
    let d = run_with(&daskjob(in_queue), vec![], vec![]);
    assert!(
        matches!(
            d.actions.as_slice(),
            [
                Act::Create {
                    step: Step::Plan,
                    suspend: true
                },
                ..
            ]
        ),
        "{:?}",
        d.actions
    );
    // Not suspended by the user: pending, not Suspended.
    assert_eq!(d.status.phase, Some(Phase::Pending));

    let queued = planned(in_queue);
    let d = run_with(&queued, vec![job("rev-plan", "complete")], vec![]);
    let stages: Vec<bool> = d
        .actions
        .iter()
        .filter_map(|a| match a {
            Act::Create {
                step: Step::Stage { .. },
                suspend,
            } => Some(*suspend),
            _ => None,
        })
        .collect();
    assert_eq!(stages, vec![true], "{:?}", d.actions);

    let done = planned(|v| {
        in_queue(v);
        v["status"]["stages"][0]["seconds"] = json!(3.0);
        v["status"]["stages"][1]["seconds"] = json!(2.0);
    });
    let d = run_with(&done, vec![job("rev-plan", "complete")], vec![]);
    assert!(
        d.actions.iter().any(|a| matches!(
            a,
            Act::Create {
                step: Step::Commit { .. },
                suspend: true
            }
        )),
        "{:?}",
        d.actions
    );
}

#[test]
fn kask_never_resumes_a_queued_jobs_child_and_says_which_waits_for_admission() {
    let queued = planned(in_queue);
    let d = run_with(
        &queued,
        vec![job("rev-plan", "complete"), job("rev-s0", "suspended")],
        vec![],
    );
    assert!(suspend_patches(&d).is_empty(), "{:?}", d.actions);
    let (status, reason, msg) = cond(&d.status, "Queued").expect("a Queued condition");
    assert_eq!((status, reason), ("True", "WaitingForAdmission"));
    assert!(msg.contains("rev-s0") && msg.contains("batch"), "{msg}");
    assert!(events(&d).iter().any(|e| e.1 == "Queued"));
    assert_ne!(d.status.phase, Some(Phase::Suspended));
    assert!(cond(&d.status, "Stalled").is_none_or(|c| c.0 != "True"));

    // Admitted (Kueue resumed it): the condition turns False.
    let mut admitted = queued.clone();
    admitted.status = Some(d.status.clone());
    let d = run_with(
        &admitted,
        vec![job("rev-plan", "complete"), job("rev-s0", "running")],
        vec![],
    );
    assert_eq!(
        cond(&d.status, "Queued").map(|c| (c.0, c.1)),
        Some(("False", "Admitted"))
    );

    // Without a queue, a suspended child of a running job is resumed as before.
    let d = run_with(
        &planned(|_| {}),
        vec![job("rev-plan", "complete"), job("rev-s0", "suspended")],
        vec![],
    );
    assert_eq!(suspend_patches(&d), vec![("rev-s0", false)]);
}

#[test]
fn durations_read_as_the_two_largest_whole_units() {
    use super::human_duration;
    use k8s_openapi::jiff::SignedDuration;
    let d = |s: i64| human_duration(SignedDuration::from_secs(s));
    assert_eq!(d(0), "0s");
    assert_eq!(d(45), "45s");
    assert_eq!(d(192), "3m12s");
    assert_eq!(d(7_500), "2h5m");
    assert_eq!(d(273_600), "3d4h");
    assert_eq!(d(-5), "0s");
}
