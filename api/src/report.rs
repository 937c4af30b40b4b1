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
    /// The plan format's version, which every later pod of the job must understand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
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
    /// The outputs of a job graph whose results depend on it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub feeds: Vec<String>,
    /// The stages (by index) it waits for; absent: the one before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Vec<u32>>,
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
    /// The process's peak memory in use, in bytes: its resident memory less the pages its
    /// allocator freed lazily, sampled five times a second.
    pub peak_memory_bytes: u64,
    /// Bytes its tasks' operators spilled to disk to stay within the memory budget.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub spilled_bytes: u64,
    /// The committed output's manifest path (commit pod only); a job graph's main output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// A job graph's outputs, each as `name: manifest URL` (commit pod only; left out when
    /// they would not fit the termination message).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<String>,
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

/// Worker exit codes, so that a Job's `podFailurePolicy` can tell failures apart without
/// reading a report: what running again cannot fix fails the Job at once.
pub mod exit {
    /// The user's: a spec, an input or an output that cannot work (bad data, a missing file).
    pub const USER: i32 = 2;
    /// The environment's, and passing: storage unavailable, the pod stopped. Worth a retry.
    pub const TRANSIENT: i32 = 3;
    /// The environment's, and lasting: committed data lost again and again, a plan from
    /// another Kask version. A retry would fail the same way.
    pub const LASTING: i32 = 4;
    /// Ours: a bug in Kask. Retried, in case it depends on timing.
    pub const INTERNAL: i32 = 70;
    /// A process killed by SIGKILL (the kernel's OOM killer, or a failpoint acting as one).
    pub const KILLED: i32 = 137;
}

/// `value` as a termination message if it fits; a success report must never be cut.
pub fn fitted<T: Serialize>(value: &T) -> Option<String> {
    serde_json::to_string(value)
        .ok()
        .filter(|body| body.len() <= TERMINATION_MESSAGE_LIMIT)
}

impl PlanReport {
    /// The same plan with stages named by their index (which every worker accepts in place of
    /// a name), for plans whose names would not fit a termination message; without the
    /// outputs each stage feeds (shown only) and the stages each waits for (the stages then
    /// run one after another, which is always safe).
    pub fn summarised(&self) -> PlanReport {
        PlanReport {
            stages: self
                .stages
                .iter()
                .enumerate()
                .map(|(i, s)| PlannedStage {
                    name: i.to_string(),
                    feeds: vec![],
                    after: None,
                    ..s.clone()
                })
                .collect(),
            ..self.clone()
        }
    }
}

/// Serializes a failure report for a termination message. A message over the limit (only an
/// error's free text can grow) becomes a failure carrying its first part, which names the
/// problem. Success reports go through [`fitted`] instead.
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

fn is_zero(n: &u64) -> bool {
    *n == 0
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

    #[test]
    fn a_plan_too_long_to_fit_is_summarised_never_turned_into_a_failure() {
        let stages: Vec<PlannedStage> = (0..60)
            .map(|i| PlannedStage {
                name: format!("s{i}-scan-{}", "long-input-name-".repeat(2)),
                tasks: 1000,
                groups: 4,
                feeds: vec![],
                after: None,
            })
            .collect();
        let report = PlanReport {
            plan: "s3://lake/x/_kask/jobs/abc/plan.json".into(),
            stages,
            version: Some(1),
        };
        assert!(
            fitted(&report).is_none(),
            "the test needs a plan that does not fit"
        );
        let short = report.summarised();
        let msg = fitted(&short).expect("the summary fits");
        let back: PlanReport = serde_json::from_str(&msg).expect("json");
        assert_eq!(back.stages.len(), 60);
        assert_eq!(back.stages[7].name, "7");
        assert_eq!((back.stages[7].tasks, back.stages[7].groups), (1000, 4));
        assert_eq!(back.plan, report.plan);
    }
}
