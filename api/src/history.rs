//! A job's history: what every task attempt did, what the job was planned as and how it
//! ended, and what each process that ran it cost over time. It is written to the job's own
//! storage, beside its result (`<output>/_kask/history/<job id>/`), so that it outlives the
//! pods, the DaskJob's TTL and the operator; `kask report` reads it back.
//!
//! ```text
//! <output>/_kask/history/<job id>/
//!   job.json                          JobRecord: planned stages; outcome once ended
//!   attempts/<stage>-<task>-<id>.json AttemptRecord: written at start, again at the end
//!   runners/<runner>.json             RunnerRecord: a process's memory and CPU over time
//!   logs/<runner>.log                 a worker pod's own log
//! ```
//!
//! Times are Unix milliseconds, so that records from several machines line up on one axis.

use serde::{Deserialize, Serialize};

use crate::paths::SCRATCH_DIR;

/// The version of the records below; a reader takes what it knows and ignores the rest.
pub const HISTORY_VERSION: u32 = 1;

/// The folder of job `job_id`'s history under the output folder `output`.
pub fn history_dir(output: &str, job_id: &str) -> String {
    format!(
        "{}/{SCRATCH_DIR}/history/{job_id}",
        output.trim_matches('/')
    )
}

/// The folder holding every job's history under the output folder `output`.
pub fn histories_dir(output: &str) -> String {
    format!("{}/{SCRATCH_DIR}/history", output.trim_matches('/'))
}

/// The path of `target` relative to the folder `from` (both relative to one storage), with
/// `..` where `target` lies outside it: how a job graph's other outputs name the history kept
/// under its main output.
pub fn relative(from: &str, target: &str) -> String {
    let from = crate::paths::components(from);
    let to = crate::paths::components(target);
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<&str> = vec![".."; from.len() - common];
    parts.extend(&to[common..]);
    parts.join("/")
}

/// `base` joined with the relative path `rel`, its `..` taken off `base`.
pub fn resolve(base: &str, rel: &str) -> String {
    let mut parts = crate::paths::components(base);
    for c in crate::paths::components(rel) {
        if c == ".." {
            parts.pop();
        } else {
            parts.push(c);
        }
    }
    parts.join("/")
}

/// An attempt's file name: `<stage>-<task>-<attempt id>.json`.
pub fn attempt_file(stage: usize, task: usize, attempt: &str) -> String {
    format!("attempts/{stage}-{task}-{attempt}.json")
}

/// A runner's file name, with the runner's name made safe for a path.
pub fn runner_file(runner: &str, ext: &str) -> String {
    let safe: String = runner
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    match ext {
        "log" => format!("logs/{safe}.log"),
        _ => format!("runners/{safe}.{ext}"),
    }
}

/// How a job ended, or that it has not yet.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum JobOutcome {
    /// Planned, not ended (or ended without a chance to say so).
    #[default]
    Running,
    /// Its results were committed.
    Succeeded,
    /// It failed; the error says why.
    Failed,
}

/// The job as planned, and how it ended.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct JobRecord {
    /// [`HISTORY_VERSION`].
    pub version: u32,
    /// The job's id (the DaskJob's UID, or a local run's id).
    pub job_id: String,
    /// `namespace/name`, or a local job file's name.
    #[serde(default)]
    pub job: String,
    /// `dataframe`, `sql`, `array` or `bag`.
    #[serde(default)]
    pub kind: String,
    /// Where it ran: `local` or `kubernetes`.
    #[serde(default)]
    pub mode: String,
    /// When it was planned.
    pub started_ms: u64,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_ms: Option<u64>,
    /// How it ended.
    #[serde(default)]
    pub outcome: JobOutcome,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Its stages, in plan order.
    #[serde(default)]
    pub stages: Vec<StageRecord>,
    /// Its committed results' manifests (paths in its storage).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<String>,
    /// Its storage's URL.
    #[serde(default)]
    pub storage: String,
}

/// A stage as planned.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct StageRecord {
    /// Its index.
    pub id: usize,
    /// Its name, e.g. `s0-scan-orders`.
    pub name: String,
    /// Its tasks.
    pub tasks: usize,
    /// The stages it reads (by index).
    #[serde(default)]
    pub after: Vec<usize>,
    /// The outputs of a job graph it feeds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub feeds: Vec<String>,
}

/// How a task attempt ended.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum AttemptOutcome {
    /// Started and not ended: still running, or its process died (killed, out of memory).
    #[default]
    Running,
    /// Its files are the task's: it committed first.
    Committed,
    /// It finished, but another attempt had committed the task first; its files were dropped.
    Superseded,
    /// It failed with an error.
    Failed,
}

/// One attempt of one task.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AttemptRecord {
    /// Its stage's index.
    pub stage: usize,
    /// Its stage's name.
    #[serde(default)]
    pub stage_name: String,
    /// The task's index in its stage.
    pub task: usize,
    /// The attempt's id.
    pub attempt: String,
    /// The process that ran it: a pod's name, or `local`.
    pub runner: String,
    /// When it started.
    pub started_ms: u64,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_ms: Option<u64>,
    /// How it ended.
    #[serde(default)]
    pub outcome: AttemptOutcome,
    /// Its error, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Whether its error was worth a retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
    /// Rows read.
    #[serde(default)]
    pub rows_in: u64,
    /// Bytes read.
    #[serde(default)]
    pub bytes_in: u64,
    /// Rows written.
    #[serde(default)]
    pub rows_out: u64,
    /// Bytes written.
    #[serde(default)]
    pub bytes_out: u64,
    /// Bytes its operators spilled to disk.
    #[serde(default)]
    pub spilled_bytes: u64,
    /// The peak resident memory of its process while it ran (shared with the attempts that
    /// ran beside it in the same process).
    #[serde(default)]
    pub peak_memory_bytes: u64,
}

impl AttemptRecord {
    /// Seconds from start to end (to `now_ms` while it has not ended).
    pub fn seconds(&self, now_ms: u64) -> f64 {
        let end = self.ended_ms.unwrap_or(now_ms).max(self.started_ms);
        (end - self.started_ms) as f64 / 1000.0
    }
}

/// One reading of a process's memory and CPU.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Sample {
    /// When.
    pub ms: u64,
    /// Resident memory, in bytes.
    pub rss: u64,
    /// CPU seconds (user and system) used so far.
    pub cpu_seconds: f64,
}

/// A process that ran tasks of the job (a pod, or a local run), and what it cost.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RunnerRecord {
    /// Its name: a pod's name, or `local`.
    pub runner: String,
    /// What it ran: a stage's name, `plan`, `commit`, or `local`.
    #[serde(default)]
    pub role: String,
    /// When it started.
    pub started_ms: u64,
    /// When it wrote this record.
    pub ended_ms: u64,
    /// CPU seconds it used.
    pub cpu_seconds: f64,
    /// Its peak resident memory.
    pub peak_memory_bytes: u64,
    /// The memory limit it ran under, when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit_bytes: Option<u64>,
    /// Its memory and CPU over time.
    #[serde(default)]
    pub samples: Vec<Sample>,
}

/// A job's whole history, as `kask report` reads it.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct JobHistory {
    /// Where it was read from.
    pub location: String,
    /// The job record, when there is one.
    pub job: Option<JobRecord>,
    /// Every attempt, by start time.
    pub attempts: Vec<AttemptRecord>,
    /// Every process.
    pub runners: Vec<RunnerRecord>,
    /// Log texts by runner.
    pub logs: Vec<(String, String)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_sit_beside_the_scratch_space_under_the_output() {
        assert_eq!(history_dir("/out/", "u1"), "out/_kask/history/u1");
        assert_eq!(histories_dir("a/b"), "a/b/_kask/history");
        assert_eq!(attempt_file(2, 7, "ab"), "attempts/2-7-ab.json");
        assert_eq!(
            runner_file("kask-j-s0-0-xyz", "json"),
            "runners/kask-j-s0-0-xyz.json"
        );
        assert_eq!(runner_file("a/b c", "log"), "logs/a_b_c.log");
    }

    #[test]
    fn another_output_names_the_history_under_the_main_one_relatively() {
        let h = history_dir("res/main", "u1");
        assert_eq!(relative("res/main", &h), "_kask/history/u1");
        assert_eq!(relative("res/other/", &h), "../main/_kask/history/u1");
        assert_eq!(relative("x", &h), "../res/main/_kask/history/u1");
        assert_eq!(resolve("res/other", "../main/_kask/history/u1"), h);
        assert_eq!(resolve("res/main", "_kask/history/u1"), h);
    }

    #[test]
    fn records_round_trip_and_old_readers_take_missing_fields_as_defaults() {
        let a = AttemptRecord {
            stage: 1,
            stage_name: "s1-merge".into(),
            task: 3,
            attempt: "f00".into(),
            runner: "local".into(),
            started_ms: 1_000,
            ended_ms: Some(3_500),
            outcome: AttemptOutcome::Failed,
            error: Some("boom".into()),
            retryable: Some(true),
            ..AttemptRecord::default()
        };
        let text = serde_json::to_string(&a).expect("serialises");
        assert!(text.contains("\"outcome\":\"failed\""), "{text}");
        let back: AttemptRecord = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, a);
        assert_eq!(a.seconds(0), 2.5);
        let minimal: AttemptRecord = serde_json::from_str(
            r#"{"stage":0,"task":0,"attempt":"x","runner":"p","startedMs":5}"#,
        )
        .expect("parses");
        assert_eq!(minimal.outcome, AttemptOutcome::Running);
        assert_eq!(minimal.seconds(2_005), 2.0);
    }
}
