//! The `DaskJob` status: where a job stands, written by the operator (and by `kask run` in its
//! summary).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where a job stands.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DaskJobStatus {
    /// Pending, Running, Succeeded, Failed or Suspended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Conditions, with Kubernetes conventions (`Complete`, `Failed`, ...), one of each type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// One entry per stage, in plan order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageStatus>,
    /// Tasks done out of all tasks, for the printer column, e.g. `12/40`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// When the first pod started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub start_time: Option<String>,
    /// When the job ended (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub completion_time: Option<String>,
    /// How long the job ran, from its start to its end, in the two largest whole units
    /// (`45s`, `3m12s`, `2h5m`, `3d4h`); set when it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// The path of the output's `_SUCCESS` manifest (a job graph's main output's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// A job graph's outputs, each as `name: manifest URL`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<String>,
    /// On failure: the stage, task and error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The plan's URL, from the plan pod; every stage pod is given it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    /// Rows in the committed output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_rows: Option<u64>,
    /// The worker image, fixed when the job starts: every pod of the job runs this one Kask
    /// version, even if the operator is upgraded meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_image: Option<String>,
}

/// The phase of a job.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    /// Accepted, no pod has run yet.
    Pending,
    /// Tasks are running.
    Running,
    /// The output is committed.
    Succeeded,
    /// The job ended without an output.
    Failed,
    /// Suspended; resuming continues from the current stage.
    Suspended,
}

/// A condition, as Kubernetes objects carry them.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// The condition's type, e.g. `Complete`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// A CamelCase reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A human-readable message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the status last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub last_transition_time: Option<String>,
    /// The generation the condition was set for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Progress and cost of one stage.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StageStatus {
    /// The stage's name, e.g. `scan-orders`.
    pub name: String,
    /// Number of tasks.
    pub tasks: u32,
    /// The outputs of a job graph whose results depend on it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub feeds: Vec<String>,
    /// The stages (by index) it waits for; absent: the one before it. Stages whose earlier
    /// stages are done run side by side, within `spec.workers` pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Vec<u32>>,
    /// Tasks done.
    #[serde(default)]
    pub succeeded: u32,
    /// Task attempts that failed.
    #[serde(default)]
    pub failed: u32,
    /// Tasks running now.
    #[serde(default)]
    pub running: u32,
    /// Rows read.
    #[serde(default)]
    pub rows_read: u64,
    /// Rows written (to the shuffle or the output).
    #[serde(default)]
    pub rows_written: u64,
    /// Bytes read.
    #[serde(default)]
    pub bytes_read: u64,
    /// Bytes written.
    #[serde(default)]
    pub bytes_written: u64,
    /// Task groups, one pod each (the stage Job's completions).
    #[serde(default)]
    pub groups: u32,
    /// CPU seconds its pods used, summed.
    #[serde(default)]
    pub cpu_seconds: f64,
    /// The largest peak resident memory of any of its pods, in bytes.
    #[serde(default)]
    pub peak_memory_bytes: u64,
    /// Bytes its tasks spilled to disk to stay within their memory budget, summed.
    #[serde(default)]
    pub spilled_bytes: u64,
    /// Seconds from the stage's first pod start to its last pod's end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
}
