//! What worker pods report to the operator in their termination messages (Kubernetes keeps at
//! most 4096 bytes of `/dev/termination-log`): small JSON summaries, the operator's only source
//! of what a task did, since it never reads the data itself.

use serde::{Deserialize, Serialize};

/// The most bytes of a termination message Kubernetes keeps.
pub const TERMINATION_MESSAGE_LIMIT: usize = 4096;

/// The plan pod's report: where the plan is and what it holds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PlanReport {
    /// The plan's URL, which every later pod is given.
    pub plan: String,
    /// Stages in execution order.
    pub stages: Vec<PlannedStage>,
}

/// One stage of a plan.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PlannedStage {
    /// The stage's name, e.g. `s0-scan-orders`.
    pub name: String,
    /// Tasks.
    pub tasks: u32,
    /// Task groups: one pod (one index of the stage's Indexed Job) runs each group.
    pub groups: u32,
}

/// A stage pod's report on its task group, or the commit pod's on the job.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TaskReport {
    /// Tasks the pod ran (or found committed by an earlier attempt).
    pub tasks: u32,
    /// Of those, tasks an earlier attempt had committed.
    #[serde(default)]
    pub skipped: u32,
    /// Rows read.
    pub rows_in: u64,
    /// Bytes read.
    pub bytes_in: u64,
    /// Rows written.
    pub rows_out: u64,
    /// Bytes written.
    pub bytes_out: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// CPU seconds (user and system) the pod's process used.
    pub cpu_seconds: f64,
    /// The process's peak resident memory, in bytes.
    pub peak_memory_bytes: u64,
    /// The committed output's manifest path (commit pod only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

/// Any pod's report when it fails.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FailureReport {
    /// The error, one line first (the file, the column, what is wrong).
    pub error: String,
    /// The task that failed, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<u32>,
    /// Whether running again could succeed (storage unavailable) or not (bad input).
    pub retryable: bool,
}

/// Serializes `value` for a termination message. A message over the limit (only an error's
/// free text can grow) becomes a failure carrying its first part, which names the problem.
pub fn termination_message<T: Serialize>(value: &T) -> String {
    let body = serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    if body.len() <= TERMINATION_MESSAGE_LIMIT {
        return body;
    }
    // Escaping can at most double the text, so half the limit, less room for the rest, fits.
    let mut end = TERMINATION_MESSAGE_LIMIT / 2 - 128;
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    serde_json::to_string(&FailureReport {
        error: format!("{}... (truncated)", &body[..end]),
        task: None,
        retryable: false,
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_errors_are_cut_to_the_limit_and_stay_json() {
        let report = FailureReport {
            error: "\"quoted\" ".repeat(2000),
            task: Some(3),
            retryable: false,
        };
        let msg = termination_message(&report);
        assert!(
            msg.len() <= TERMINATION_MESSAGE_LIMIT,
            "{} bytes",
            msg.len()
        );
        let back: FailureReport = serde_json::from_str(&msg).expect("valid JSON");
        assert!(back.error.ends_with("(truncated)"));
    }

    #[test]
    fn short_reports_are_unchanged() {
        let report = TaskReport {
            tasks: 2,
            rows_in: 10,
            ..TaskReport::default()
        };
        let msg = termination_message(&report);
        assert_eq!(
            serde_json::from_str::<TaskReport>(&msg).expect("json"),
            report
        );
    }
}
