//! What a worker pod says about itself: its report, why it failed, why it cannot start. Pure
//! functions of the Pod object, so that every case is tested without a cluster.

use k8s_openapi::api::core::v1::{ContainerStateTerminated, Pod};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;

use kask_api::report::{FailureReport, exit};

/// Container waiting reasons that mean the pod will not start by itself soon.
const STUCK_WAITING: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// Why a pod is not running yet, when it is not just starting.
#[derive(Clone, Debug, PartialEq)]
pub struct Stuck {
    /// A CamelCase reason: `Unschedulable`, `ImagePullBackOff`, `FailedCreate`, ...
    pub reason: String,
    /// What Kubernetes says about it.
    pub message: String,
    /// Since when (the pod's creation, or the condition's transition).
    pub since: Timestamp,
}

/// The pod's phase.
pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

/// The index of an Indexed Job's pod (`0` for other Jobs).
pub fn completion_index(pod: &Pod) -> String {
    pod.annotations()
        .get("batch.kubernetes.io/job-completion-index")
        .cloned()
        .unwrap_or_else(|| "0".into())
}

/// The Job a pod belongs to.
pub fn job_name(pod: &Pod) -> Option<&str> {
    pod.labels()
        .get("batch.kubernetes.io/job-name")
        .map(String::as_str)
}

fn terminated(pod: &Pod) -> Option<&ContainerStateTerminated> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find_map(|c| c.state.as_ref()?.terminated.as_ref())
}

/// The main container's termination message.
pub fn message(pod: &Pod) -> Option<&str> {
    terminated(pod)?
        .message
        .as_deref()
        .filter(|m| !m.trim().is_empty())
}

fn created(pod: &Pod) -> Option<Timestamp> {
    pod.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// How far past its deletion deadline an unfinished pod is: the kubelet ends a deleted pod
/// within its grace period (the deadline includes it), so a pod long past it has no kubelet to
/// end it, its node being lost, and stays `Terminating` while its Job waits for it to fail.
pub fn overdue(pod: &Pod, now: Timestamp) -> Option<SignedDuration> {
    let deadline = pod.metadata.deletion_timestamp.as_ref()?.0;
    if matches!(phase(pod), "Succeeded" | "Failed") {
        return None;
    }
    Some(now.duration_since(deadline))
}

/// The node a pod was scheduled to, if any.
pub fn node(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref()?.node_name.as_deref()
}

/// Why a pending pod cannot start: it cannot be scheduled, or its container cannot be created.
pub fn stuck(pod: &Pod) -> Option<Stuck> {
    if phase(pod) != "Pending" || pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let status = pod.status.as_ref()?;
    let unschedulable = status.conditions.iter().flatten().find(|c| {
        c.type_ == "PodScheduled"
            && c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable")
    });
    if let Some(c) = unschedulable {
        return Some(Stuck {
            reason: "Unschedulable".into(),
            message: c.message.clone().unwrap_or_default(),
            since: c
                .last_transition_time
                .as_ref()
                .map(|t| t.0)
                .or(created(pod))?,
        });
    }
    let waiting = status
        .container_statuses
        .iter()
        .flatten()
        .find_map(|c| c.state.as_ref()?.waiting.as_ref())?;
    let reason = waiting.reason.as_deref()?;
    STUCK_WAITING.contains(&reason).then(|| Stuck {
        reason: reason.to_string(),
        message: waiting.message.clone().unwrap_or_default(),
        since: created(pod).unwrap_or_default(),
    })
}

/// Why a failed pod failed, in one line a user can act on. `memory_limit` is the container's
/// limit, if it has one, for the OOMKilled message.
pub fn failure(pod: &Pod, memory_limit: Option<&str>) -> String {
    let term = terminated(pod);
    if term.and_then(|t| t.reason.as_deref()) == Some("OOMKilled") {
        let limit = memory_limit
            .map(|l| format!("its memory limit of {l}"))
            .unwrap_or_else(|| "the memory it could get".into());
        return format!(
            "OOMKilled: the worker used {limit}; raise spec.resources.limits.memory, or lower \
             spec.targetTaskBytes so that each task holds less"
        );
    }
    if let Some(raw) = message(pod) {
        if let Ok(report) = serde_json::from_str::<FailureReport>(raw) {
            return report.error;
        }
        // No report (FallbackToLogsOnError): the log's last line says most.
        if let Some(line) = raw.lines().rev().find(|l| !l.trim().is_empty()) {
            return line.trim().to_string();
        }
    }
    if let Some(t) = term {
        let killed = if t.exit_code == exit::KILLED {
            " (killed: out of memory, or stopped from outside)"
        } else {
            ""
        };
        return format!(
            "the container exited with code {}{}{killed}",
            t.exit_code,
            t.reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        );
    }
    let status = pod.status.as_ref();
    status
        .and_then(|s| {
            let reason = s.reason.as_deref();
            let msg = s.message.as_deref();
            match (reason, msg) {
                (Some(r), Some(m)) => Some(format!("{r}: {m}")),
                (r, m) => r.or(m).map(str::to_string),
            }
        })
        .unwrap_or_else(|| "the pod failed without a message".into())
}

/// Whether the pod was stopped from outside (preemption, eviction, a drained node): such a
/// failure does not count against the job's retries (the Job's podFailurePolicy ignores it).
pub fn disrupted(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "DisruptionTarget" && c.status == "True")
        })
}

#[cfg(test)]
mod tests;
