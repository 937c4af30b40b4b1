//! Pod diagnostics on pods written as the API server returns them.

use serde_json::{Value, json};

use super::*;

fn pod(status: Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "p", "creationTimestamp": "2026-12-02T10:00:00Z"},
        "status": status
    }))
    .expect("a Pod")
}

fn waiting(reason: &str) -> Pod {
    pod(
        json!({"phase": "Pending", "containerStatuses": [{"name": "kask", "image": "i",
        "imageID": "", "ready": false, "restartCount": 0,
        "state": {"waiting": {"reason": reason, "message": "why"}}}]}),
    )
}

#[test]
fn pods_that_will_not_start_by_themselves_are_stuck_and_starting_ones_are_not() {
    for reason in STUCK_WAITING {
        let s = stuck(&waiting(reason)).expect("stuck");
        assert_eq!((s.reason.as_str(), s.message.as_str()), (*reason, "why"));
    }
    assert_eq!(stuck(&waiting("ContainerCreating")), None);
    assert_eq!(stuck(&pod(json!({"phase": "Pending"}))), None);
    assert_eq!(stuck(&pod(json!({"phase": "Running"}))), None);
    let unsched = pod(
        json!({"phase": "Pending", "conditions": [{"type": "PodScheduled",
        "status": "False", "reason": "Unschedulable", "message": "0/1 nodes",
        "lastTransitionTime": "2026-12-02T10:00:05Z"}]}),
    );
    let s = stuck(&unsched).expect("stuck");
    assert_eq!(s.reason, "Unschedulable");
    assert_eq!(s.since.to_string(), "2026-12-02T10:00:05Z");
}

#[test]
fn a_failure_report_gives_its_error_and_an_oom_kill_its_own_message() {
    let term = |code: i32, reason: &str, message: &str| {
        pod(
            json!({"phase": "Failed", "containerStatuses": [{"name": "kask", "image": "i",
            "imageID": "", "ready": false, "restartCount": 0, "state": {"terminated":
            {"exitCode": code, "reason": reason, "message": message}}}]}),
        )
    };
    let report = json!({"error": "input \"a\": bad", "retryable": false}).to_string();
    assert_eq!(
        failure(&term(2, "Error", &report), None),
        "input \"a\": bad"
    );
    let oom = failure(&term(137, "OOMKilled", ""), Some("256Mi"));
    assert!(
        oom.starts_with("OOMKilled: the worker used its memory limit of 256Mi"),
        "{oom}"
    );
    let oom = failure(&term(137, "OOMKilled", "partial log"), None);
    assert!(oom.contains("the memory it could get"), "{oom}");
    assert_eq!(
        failure(&term(1, "Error", "a\nlast line\n\n"), None),
        "last line"
    );
    let killed = failure(&term(137, "Error", ""), None);
    assert!(killed.contains("code 137 (Error) (killed"), "{killed}");
    let evicted = pod(json!({"phase": "Failed", "reason": "Evicted", "message": "low on disk"}));
    assert_eq!(failure(&evicted, None), "Evicted: low on disk");
    assert_eq!(
        failure(&pod(json!({"phase": "Failed"})), None),
        "the pod failed without a message"
    );
}

#[test]
fn a_disruption_target_marks_a_pod_stopped_from_outside() {
    let p = pod(
        json!({"phase": "Failed", "conditions": [{"type": "DisruptionTarget",
        "status": "True", "reason": "EvictionByEvictionAPI"}]}),
    );
    assert!(disrupted(&p));
    assert!(!disrupted(&pod(json!({"phase": "Failed"}))));
}
