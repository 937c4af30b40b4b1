//! The distributed plan: stages of tasks, what each stage reads, the operations its tasks run,
//! and where they write. A plan is a pure function of the spec and the input listing
//! ([`listing`] does the I/O, [`planner`] the rest), serialized as `plan.json` under the job's
//! scratch prefix so that every worker runs the same plan.

pub mod hive;
pub mod listing;
pub mod schema;
pub mod tasks;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use kask_api::{CsvOptions, DaskJobSpec, Format};
pub use schema::PlanSchema;

/// Bumped when the plan's JSON changes incompatibly (2: SQL stages; 3: pipelines planned as
/// SQL stages; 4: a job kind's part of the plan under `kind` and `detail`; 5: relational
/// stages carry their sub-plans as protobuf; 6: sorted runs for a sort by key range; 7: key
/// filters across stages; 8: the first rows of each group pruned before a window's sort).
pub const PLAN_VERSION: u32 = 8;

/// A job's plan.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// [`PLAN_VERSION`] of the kask that wrote it.
    pub version: u32,
    /// Names the job's scratch prefix: the Kubernetes UID, or in local mode a hash of the
    /// plan, so that rerunning a failed job resumes from the tasks it had committed.
    pub job_id: String,
    /// The job's name, for people: `namespace/name` on a cluster, the job file's
    /// `metadata.name` locally.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub job_name: String,
    /// The job's spec, with storage resolved.
    pub spec: DaskJobSpec,
    /// Every input with its files and schema.
    pub inputs: BTreeMap<String, InputPlan>,
    /// Stages in execution order; each reads only inputs and earlier stages.
    pub stages: Vec<Stage>,
    /// The name of the job kind that planned it and runs its tasks (`relational`, `array`,
    /// `bag`).
    pub kind: String,
    /// The job kind's own part of the plan (an SQL job's table fragments, an array job's
    /// arrays), which only that kind reads.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub detail: serde_json::Value,
    /// For a job graph, the stage that writes each output (a job with one output: the last
    /// stage).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output_stages: Vec<OutputStage>,
}

/// An output and the stage whose tasks write its files.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OutputStage {
    /// The output's name.
    pub name: String,
    /// Its last stage.
    pub stage: usize,
}

/// One input as listed at plan time.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct InputPlan {
    /// File format.
    pub format: Format,
    /// CSV options (CSV only).
    pub csv: CsvOptions,
    /// The columns, as every task reads them.
    pub schema: PlanSchema,
    /// The matching files, sorted by path.
    pub files: Vec<InputFile>,
    /// Total bytes.
    pub bytes: u64,
    /// The folder keys of a Hive-partitioned input: the last columns of `schema`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hive: Vec<String>,
}

/// One input file.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InputFile {
    /// Path relative to the storage root.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Its folder keys' values, in the order of [`InputPlan::hive`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<Option<String>>,
}

/// One stage: tasks that run the same operations on different partitions.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Stage {
    /// Index in [`Plan::stages`].
    pub id: usize,
    /// A DNS-safe name, e.g. `s0-scan-orders` or `s1-groupby`.
    pub name: String,
    /// What the stage's tasks read.
    pub source: StageSource,
    /// Operations applied, in order, to what was read.
    pub ops: Vec<Op>,
    /// Where the result goes.
    pub sink: Sink,
    /// Number of tasks.
    pub tasks: usize,
    /// For input stages, each task's byte ranges of files; empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fragments: Vec<Vec<Fragment>>,
    /// Estimated input bytes per task (input stages).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub task_bytes: Vec<u64>,
    /// The schema of what the sink writes.
    pub output_schema: PlanSchema,
    /// The job kind's own part of the stage (an SQL stage's sub-plan, an array stage's
    /// blocks), which only that kind reads.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub detail: serde_json::Value,
    /// The outputs whose results depend on it (a job graph's; empty for a job with one
    /// output, which every stage feeds).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub feeds: Vec<String>,
}

/// One result of a job, as the commit publishes it.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// `output`, or the name of a job graph's output.
    pub name: String,
    /// The field that declares it, for messages.
    pub field: String,
    /// Where and how.
    pub output: kask_api::Output,
    /// Its format, explicit or the job kind's default.
    pub format: Format,
    /// The stage whose tasks wrote its files.
    pub stage: usize,
}

/// What a stage reads.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum StageSource {
    /// Byte ranges of an input's files ([`Stage::fragments`]).
    Input {
        /// The input's name.
        input: String,
    },
    /// One reduce partition (the task's index) of an earlier stage's shuffle.
    Shuffle {
        /// The stage that wrote it.
        stage: usize,
    },
    /// Blocks of arrays, as the stage's [`Stage::detail`] says.
    Array,
    /// A sub-plan of an SQL job's physical plan (the stage's [`Stage::detail`]), over table files and the
    /// shuffles of the stages it names.
    Sql {
        /// The earlier stages whose shuffles it reads.
        reads: Vec<usize>,
    },
}

/// An operation within a task.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Op {
    /// A row-wise bag step (map, pluck, filter, split, flatten).
    BagRow {
        /// Index in `spec.bag.steps`.
        step: usize,
    },
    /// A whole wide bag step inside one task.
    BagWide {
        /// Index in `spec.bag.steps`.
        step: usize,
    },
    /// The final half of a wide bag step, over the states from the shuffle.
    BagFinal {
        /// Index in `spec.bag.steps`.
        step: usize,
    },
}

/// Where a stage writes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Sink {
    /// The job's output files.
    Output,
    /// Files under the scratch prefix that a later stage reads (an array reduction's partial
    /// states or intermediate result).
    Scratch,
    /// A shuffle into `partitions` reduce partitions by a hash of `keys` (no keys: everything
    /// to partition 0), after an optional partial operation.
    Shuffle {
        /// Number of reduce partitions.
        partitions: usize,
        /// Columns hashed to choose the partition.
        keys: Vec<String>,
        /// Work done before the shuffle to make it smaller.
        partial: Partial,
    },
    /// A sorted run cut into chunks of `chunk_rows` rows, each a reduce partition of the
    /// task's shuffle object with its first and last sort keys in the marker, for a later
    /// stage whose tasks each read one range of keys from every run.
    Ranges {
        /// The sort keys, as displayed.
        keys: Vec<String>,
        /// Rows in each chunk but the last.
        chunk_rows: u64,
    },
}

/// The map-side half of a wide operation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Partial {
    /// Rows as they are.
    None,
    /// A wide bag step's state within the task.
    Bag {
        /// Index in `spec.bag.steps`.
        step: usize,
    },
}

/// A byte range of one file, `[start, end)`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Fragment {
    /// Path relative to the storage root.
    pub path: String,
    /// File size.
    pub size: u64,
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl Stage {
    /// The job kind's part of the stage, as that kind's type (`None` when it has none).
    pub fn detail<T: serde::de::DeserializeOwned>(&self) -> crate::Result<Option<T>> {
        if self.detail.is_null() {
            return Ok(None);
        }
        serde_json::from_value(self.detail.clone())
            .map(Some)
            .map_err(|e| {
                crate::Error::internal(format!(
                    "stage {}'s plan part does not parse: {e}",
                    self.name
                ))
            })
    }
}

impl Fragment {
    /// Whether this fragment is the whole file.
    pub fn is_whole_file(&self) -> bool {
        self.start == 0 && self.end >= self.size
    }
}

/// A job kind's part of a plan or stage, as the plan stores it ([`Plan::detail`]).
pub fn to_detail<T: Serialize>(part: &T) -> crate::Result<serde_json::Value> {
    serde_json::to_value(part)
        .map_err(|e| crate::Error::internal(format!("a plan part does not serialize: {e}")))
}

impl Plan {
    /// The job kind's part of the plan, as that kind's type.
    pub fn detail<T: serde::de::DeserializeOwned>(&self) -> crate::Result<T> {
        serde_json::from_value(self.detail.clone()).map_err(|e| {
            crate::Error::internal(format!("the plan's {} part does not parse: {e}", self.kind))
        })
    }

    /// The job's scratch prefix: `<output>/_kask/<job id>`.
    pub fn scratch(&self) -> String {
        self.spec.scratch_prefix(&self.job_id)
    }

    /// Where the plan itself is stored.
    pub fn plan_path(&self) -> String {
        format!("{}/plan.json", self.scratch())
    }

    /// Where a stage's task markers live.
    pub fn markers_dir(&self, stage: usize) -> String {
        format!("{}/tasks/{stage}", self.scratch())
    }

    /// A task's commit marker (epoch 0).
    pub fn marker_path(&self, stage: usize, task: usize) -> String {
        self.marker_path_at(stage, task, 0)
    }

    /// A task's marker of epoch `epoch`: its commit (0), or a re-run after its files were
    /// lost or corrupt.
    pub fn marker_path_at(&self, stage: usize, task: usize, epoch: u32) -> String {
        match epoch {
            0 => format!("{}/{task}.json", self.markers_dir(stage)),
            e => format!("{}/{task}.{e}.json", self.markers_dir(stage)),
        }
    }

    /// The commit's journal: what it is about to publish and what it replaces, written before
    /// any file moves so that a commit run again (or the job's cleanup) can finish or undo it.
    pub fn journal_path(&self) -> String {
        format!("{}/commit.json", self.scratch())
    }

    /// A decision that every task of a stage must share (which rows of a skewed join each
    /// task takes), created once by the first task that makes it.
    pub fn decision_path(&self, name: &str) -> String {
        format!("{}/decisions/{name}.json", self.scratch())
    }

    /// The prefix a task attempt writes its files under.
    pub fn attempt_dir(&self, stage: usize, task: usize, attempt: &str) -> String {
        format!("{}/attempts/{stage}/{task}/{attempt}", self.scratch())
    }

    /// The schema of the job's result.
    pub fn output_schema(&self) -> datafusion::arrow::datatypes::SchemaRef {
        self.stages
            .last()
            .map(|s| s.output_schema.schema())
            .unwrap_or_else(|| std::sync::Arc::new(datafusion::arrow::datatypes::Schema::empty()))
    }

    /// Every result the commit publishes, in the spec's order, each with the stage whose
    /// tasks wrote its files.
    pub fn targets(&self) -> Vec<Target> {
        let last = self.stages.last().map_or(0, |s| s.id);
        self.spec
            .outputs()
            .into_iter()
            .map(|o| {
                let stage = self
                    .output_stages
                    .iter()
                    .find(|t| t.name == o.name)
                    .map_or(last, |t| t.stage);
                Target {
                    format: self.spec.format_of(&o.output),
                    stage,
                    name: o.name,
                    field: o.field,
                    output: o.output,
                }
            })
            .collect()
    }

    /// The result that stage `stage` writes, if it writes one.
    pub fn target_of(&self, stage: usize) -> Option<Target> {
        self.targets().into_iter().find(|t| t.stage == stage)
    }

    /// The stages that stage `stage` must wait for: the earlier stages an SQL stage reads;
    /// for the other job kinds, whose stages form a chain, the one before it.
    pub fn after(&self, stage: usize) -> Vec<usize> {
        match self.stages.get(stage).map(|s| &s.source) {
            Some(StageSource::Sql { reads }) => {
                reads.iter().copied().filter(|&r| r < stage).collect()
            }
            _ => stage.checked_sub(1).into_iter().collect(),
        }
    }

    /// Total number of tasks.
    pub fn total_tasks(&self) -> usize {
        self.stages.iter().map(|s| s.tasks).sum()
    }
}
