//! The `DaskJob` resource: what to compute, where the data lives, where the result goes.
//!
//! Field docs become the CRD's descriptions (`kubectl explain daskjob.spec`).

use indexmap::IndexMap;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::array::ArrayJob;
use crate::bag::BagJob;
use crate::sql::SqlJob;
use crate::status::DaskJobStatus;

/// Default size of one task's input (128 MiB).
pub const DEFAULT_TARGET_TASK_BYTES: u64 = 128 * 1024 * 1024;
/// Default size under which a merge's right side is broadcast to every task (64 MiB).
pub const DEFAULT_BROADCAST_BYTES: u64 = 64 * 1024 * 1024;
/// Default number of worker pods (local mode: concurrent tasks).
pub const DEFAULT_WORKERS: u32 = 4;
/// Default attempts per task after the first.
pub const DEFAULT_RETRIES: u32 = 3;
/// Default of `startupDeadlineSeconds`: long enough for a cluster autoscaler to add a node
/// and for a large image to be pulled.
pub const DEFAULT_STARTUP_DEADLINE_SECONDS: i64 = 600;

/// A partitioned data job: a dataframe pipeline, an SQL query, an array expression or steps
/// over a bag of records, over files in one object store, with the result written back to it.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "kask.dev",
    version = "v1alpha1",
    kind = "DaskJob",
    namespaced,
    status = "DaskJobStatus",
    shortname = "dj",
    category = "kask",
    doc = "A partitioned data job run by Kask: a dataframe pipeline, an SQL query, an array expression or steps over a bag of records, over files in an object store, with the result written back to it exactly once.",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Progress","type":"string","jsonPath":".status.progress"}"#,
    printcolumn = r#"{"name":"Workers","type":"integer","jsonPath":".spec.workers"}"#,
    printcolumn = r#"{"name":"Rows","type":"integer","jsonPath":".status.outputRows"}"#,
    printcolumn = r#"{"name":"Started","type":"date","jsonPath":".status.startTime"}"#,
    printcolumn = r#"{"name":"Duration","type":"string","jsonPath":".status.duration"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Message","type":"string","jsonPath":".status.message","priority":1}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DaskJobSpec {
    /// The object store that holds inputs, scratch data and the output. Paths elsewhere in the
    /// spec are relative to `storage.url`. Optional for `kask run`, which then uses the
    /// directory of the job file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<Storage>,

    /// A dataframe job: named table inputs and a pipeline of steps over them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataframe: Option<DataframeJob>,

    /// An array job: a NumPy expression over Zarr arrays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array: Option<ArrayJob>,

    /// A bag job: steps over JSON-lines or text records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bag: Option<BagJob>,

    /// An SQL job: named tables and a query over them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<SqlJob>,

    /// Where and how the result is written. An SQL job with `sql.outputs` (a job graph) names
    /// its results there instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Output>,

    /// The most worker pods running at once (in `kask run`: the most tasks at once; default
    /// 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1), extend("default" = DEFAULT_WORKERS))]
    pub workers: Option<u32>,

    /// About how many input bytes one task reads (default 134217728, 128 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1), extend("default" = DEFAULT_TARGET_TASK_BYTES))]
    pub target_task_bytes: Option<u64>,

    /// A join side (a merge's right input, an SQL join's build side) estimated smaller than
    /// this many bytes is read whole by every task, a broadcast join; larger ones shuffle both
    /// sides (default 67108864, 64 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = DEFAULT_BROADCAST_BYTES))]
    pub broadcast_bytes: Option<u64>,

    /// Number of reduce partitions after a shuffle (default: the number of map tasks, at most
    /// 4 × workers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub shuffle_partitions: Option<u32>,

    /// Attempts per task after the first failure (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = DEFAULT_RETRIES))]
    pub retries: Option<u32>,

    /// CPU and memory requests and limits of each worker pod, as in a container spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<k8s_openapi::api::core::v1::ResourceRequirements>,

    /// The worker image (default: the one the operator is configured with).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,

    /// The worker pods' labels, annotations, variables, priority class, image pull Secrets,
    /// and where they may run (node selector, tolerations, affinity, spreading).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template: Option<crate::pods::PodTemplate>,

    /// The service account (in the job's namespace) the worker pods run as, with its token
    /// mounted: how they get cloud storage access without keys, through EKS IRSA, GKE Workload
    /// Identity or Azure Workload Identity (see the README). Default: the operator's
    /// `worker.serviceAccountName`; without either, the namespace's `default` account with no
    /// token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,

    /// Seconds the job may run, counted from its start; then it fails and its pods are stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub active_deadline_seconds: Option<i64>,

    /// Seconds a worker pod may take to start (to be scheduled, pull its image, create its
    /// container) before the job fails with the reason it could not; until then the
    /// `Stalled` condition names that reason (default: 600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1), extend("default" = DEFAULT_STARTUP_DEADLINE_SECONDS))]
    pub startup_deadline_seconds: Option<i64>,

    /// Seconds after the job succeeds or fails before the DaskJob and everything it created
    /// are deleted (default: kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub ttl_seconds_after_finished: Option<i64>,

    /// A suspended job creates no pods; suspending a running job stops its current stage's
    /// pods, and resuming continues from that stage (the tasks it had committed stay done).
    /// The only field that may change after creation. Queueing systems (Kueue) set it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
}

impl DaskJobSpec {
    /// `workers`, or its default.
    pub fn workers(&self) -> u32 {
        self.workers.unwrap_or(DEFAULT_WORKERS).max(1)
    }
    /// `targetTaskBytes`, or its default.
    pub fn target_task_bytes(&self) -> u64 {
        self.target_task_bytes
            .unwrap_or(DEFAULT_TARGET_TASK_BYTES)
            .max(1)
    }
    /// `broadcastBytes`, or its default.
    pub fn broadcast_bytes(&self) -> u64 {
        self.broadcast_bytes.unwrap_or(DEFAULT_BROADCAST_BYTES)
    }
    /// `startupDeadlineSeconds`, or its default.
    pub fn startup_deadline_seconds(&self) -> i64 {
        self.startup_deadline_seconds
            .unwrap_or(DEFAULT_STARTUP_DEADLINE_SECONDS)
            .max(1)
    }
    /// `retries`, or its default.
    pub fn retries(&self) -> u32 {
        self.retries.unwrap_or(DEFAULT_RETRIES)
    }
    /// The main output's format, explicit or the job kind's default.
    pub fn output_format(&self) -> Format {
        self.format_of(&self.main_output())
    }
    /// An output's format, explicit or the job kind's default.
    pub fn format_of(&self, output: &Output) -> Format {
        output.format.unwrap_or(if self.array.is_some() {
            Format::Zarr
        } else if self.bag.is_some() {
            Format::Json
        } else {
            Format::Parquet
        })
    }
    /// Every result the job writes, in order: `spec.output`, or a job graph's outputs.
    pub fn outputs(&self) -> Vec<NamedOutput> {
        if let Some(df) = &self.dataframe
            && !df.outputs.is_empty()
        {
            return df
                .outputs
                .iter()
                .map(|(name, o)| NamedOutput {
                    name: name.clone(),
                    field: format!("spec.dataframe.outputs.{name}"),
                    output: o.to_output(),
                })
                .collect();
        }
        if let Some(sql) = &self.sql
            && !sql.outputs.is_empty()
        {
            return sql
                .outputs
                .iter()
                .map(|(name, o)| NamedOutput {
                    name: name.clone(),
                    field: format!("spec.sql.outputs.{name}"),
                    output: o.to_output(),
                })
                .collect();
        }
        self.output
            .iter()
            .map(|o| NamedOutput {
                name: "output".into(),
                field: "spec.output".into(),
                output: o.clone(),
            })
            .collect()
    }
    /// The first output, which holds the job's scratch space (validation makes sure there is
    /// one; without it, an output at the empty path, which validation refuses).
    pub fn main_output(&self) -> Output {
        self.outputs()
            .into_iter()
            .next()
            .map(|o| o.output)
            .unwrap_or_default()
    }
    /// Every input's path or glob, with its field path, across the job kinds.
    pub fn input_paths(&self) -> Vec<(String, &str)> {
        let mut out = Vec::new();
        if let Some(df) = &self.dataframe {
            for (name, i) in &df.inputs {
                out.push((
                    format!("spec.dataframe.inputs.{name}.path"),
                    i.path.as_str(),
                ));
            }
        }
        if let Some(a) = &self.array {
            for (name, i) in &a.inputs {
                out.push((format!("spec.array.inputs.{name}.path"), i.path.as_str()));
            }
        }
        if let Some(b) = &self.bag {
            for (name, i) in &b.inputs {
                out.push((format!("spec.bag.inputs.{name}.path"), i.path.as_str()));
            }
        }
        if let Some(sql) = &self.sql {
            for (name, i) in &sql.tables {
                out.push((format!("spec.sql.tables.{name}.path"), i.path.as_str()));
            }
        }
        out
    }

    /// The job's scratch prefix, `<output>/_kask/<job id>`: the plan, shuffle files and task
    /// markers live there until the commit removes it.
    pub fn scratch_prefix(&self, job_id: &str) -> String {
        let main = self.main_output();
        let out = main.path.trim_matches('/');
        format!("{out}/_kask/{job_id}")
    }
}

/// One of a job's results.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedOutput {
    /// Its name: `output` for `spec.output`, else its key in `sql.outputs`.
    pub name: String,
    /// The field that declares it, for messages.
    pub field: String,
    /// Where and how it is written.
    pub output: Output,
}

/// One object store: S3 (and S3-compatible servers), GCS, Azure Blob Storage or a local
/// directory.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Storage {
    /// `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix` or `file:///abs/dir`.
    pub url: String,
    /// A custom endpoint, e.g. `http://minio.minio:9000` for an S3-compatible server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The region (S3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Allow plain-HTTP endpoints (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_http: Option<bool>,
    /// A Secret in the job's namespace whose standard credential keys (`AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, ...) reach the worker pods as environment variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretRef>,
}

/// The storage Secret's keys a worker pod may see, under the names object_store reads. Only
/// these: a Secret cannot inject other variables (say `LD_PRELOAD`) into the pods.
pub const SECRET_KEYS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT",
    "AWS_ENDPOINT_URL",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_ENDPOINT_URL_STS",
    "GOOGLE_SERVICE_ACCOUNT",
    "GOOGLE_SERVICE_ACCOUNT_KEY",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "AZURE_STORAGE_ACCOUNT_NAME",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_SAS_KEY",
    "AZURE_STORAGE_CLIENT_ID",
    "AZURE_STORAGE_CLIENT_SECRET",
    "AZURE_STORAGE_TENANT_ID",
    "AZURE_STORAGE_ENDPOINT",
    "AZURE_STORAGE_TOKEN",
];

/// A reference to a Secret in the job's own namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretRef {
    /// The Secret's name.
    pub name: String,
}

/// A dataframe job.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DataframeJob {
    /// Named tables. Each name can be a pipeline's `source` or a `merge`'s `right`.
    pub inputs: BTreeMap<String, Input>,
    /// Steps applied in order; the first one is `source`. Its result is written to
    /// `spec.output`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pipeline: Vec<Step>,
    /// Named pipelines, in order: each may start from (`source`) or merge with (`right`) an
    /// input or a view before it, and the outputs may use them all. A view that several
    /// outputs use is computed once.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub views: IndexMap<String, Vec<Step>>,
    /// Several named results instead of `pipeline` (a job graph), each a pipeline with its own
    /// output folder and manifest; they commit together or not at all. An output may also use
    /// the outputs before it, as it would a view.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub outputs: IndexMap<String, DataframeOutput>,
}

/// One result of a dataframe job graph.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DataframeOutput {
    /// The steps whose result this is; the first one is `source`.
    pub pipeline: Vec<Step>,
    /// Its folder, relative to `storage.url`, as `spec.output.path`.
    pub path: String,
    /// parquet (default), csv or json.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    /// `error` (default) refuses to replace an existing result; `overwrite` replaces it.
    #[serde(default)]
    pub mode: OutputMode,
    /// Columns whose values name folders (`region=eu/part-….parquet`, Hive partitioning, as
    /// Spark's `partitionBy` and pandas' `partition_cols`); they are left out of the files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partition_by: Vec<String>,
}

/// One named pipeline of a dataframe job: a view, an output's, or the job's one pipeline.
#[derive(Clone, Debug)]
pub struct NamedPipeline<'a> {
    /// The name by which later pipelines use it (`output` for the job's one pipeline).
    pub name: String,
    /// The field path of its steps, e.g. `spec.dataframe.views.paid`.
    pub field: String,
    /// Its steps.
    pub steps: &'a [Step],
    /// Whether its result is one of the job's outputs.
    pub is_output: bool,
}

impl DataframeJob {
    /// Every pipeline with its name and field path, in the order they may use each other:
    /// the views, then the one pipeline or the outputs.
    pub fn pipelines(&self) -> Vec<NamedPipeline<'_>> {
        let mut all: Vec<NamedPipeline<'_>> = self
            .views
            .iter()
            .map(|(n, s)| NamedPipeline {
                name: n.clone(),
                field: format!("spec.dataframe.views.{n}"),
                steps: s,
                is_output: false,
            })
            .collect();
        if !self.pipeline.is_empty() {
            all.push(NamedPipeline {
                name: "output".into(),
                field: "spec.dataframe.pipeline".into(),
                steps: &self.pipeline,
                is_output: true,
            });
        }
        all.extend(self.outputs.iter().map(|(n, o)| NamedPipeline {
            name: n.clone(),
            field: format!("spec.dataframe.outputs.{n}.pipeline"),
            steps: &o.pipeline,
            is_output: true,
        }));
        all
    }
}

impl DataframeOutput {
    /// Where and how it is written, as a `spec.output` would say.
    pub fn to_output(&self) -> Output {
        Output {
            path: self.path.clone(),
            format: self.format,
            mode: self.mode,
            partition_by: self.partition_by.clone(),
        }
    }
}

/// One table: the files that a glob matches, all with the same columns.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Input {
    /// A glob relative to `storage.url`, e.g. `orders/*.parquet` or `logs/**/*.csv`.
    pub path: String,
    /// The file format (default: from the glob's extension, else parquet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    /// CSV options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csv: Option<CsvOptions>,
    /// Whether folder names like `dt=2026-11-30/` are columns (Hive partitioning). Default:
    /// detected, when every file lies below the same `key=value` folder keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitioning: Option<Partitioning>,
}

/// How an input's folders are read.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Partitioning {
    /// `key=value` folders are columns, typed from their values (integers, dates, else
    /// strings; `__HIVE_DEFAULT_PARTITION__` is null), and filters on them skip whole folders.
    Hive,
    /// Folder names are only paths.
    None,
}

impl Input {
    /// The format, explicit or guessed from the glob's extension.
    pub fn format(&self) -> Format {
        self.format
            .unwrap_or_else(|| Format::from_path(&self.path).unwrap_or(Format::Parquet))
    }
}

/// A table file format.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Apache Parquet.
    Parquet,
    /// Comma-separated values (or another delimiter).
    Csv,
    /// Newline-delimited JSON, one object per line.
    Json,
    /// A Zarr v3 array (array jobs' output).
    Zarr,
}

impl Format {
    /// The format a file name suggests.
    pub fn from_path(path: &str) -> Option<Format> {
        let p = path.trim_end_matches(".gz").to_ascii_lowercase();
        if p.ends_with(".parquet") || p.ends_with(".pq") {
            Some(Format::Parquet)
        } else if p.ends_with(".csv") || p.ends_with(".tsv") {
            Some(Format::Csv)
        } else if p.ends_with(".json") || p.ends_with(".jsonl") || p.ends_with(".ndjson") {
            Some(Format::Json)
        } else {
            None
        }
    }
    /// The extension of files written in this format.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Parquet => "parquet",
            Format::Csv => "csv",
            Format::Json => "jsonl",
            Format::Zarr => "zarr",
        }
    }
}

/// CSV reading options.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CsvOptions {
    /// Whether the first line holds the column names (default true).
    #[serde(default = "default_true")]
    pub header: bool,
    /// The field delimiter, one character (default `,`).
    #[serde(default = "default_delimiter")]
    pub delimiter: String,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            header: true,
            delimiter: ",".into(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_delimiter() -> String {
    ",".into()
}

/// One pipeline step. Exactly one field is set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Step {
    /// Start from this input (the first step, and only there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Keep the rows for which this SQL boolean expression is true. It may use window
    /// functions, e.g. `row_number() OVER (PARTITION BY k ORDER BY v DESC) <= 2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Keep only these columns, in this order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select: Option<Vec<String>>,
    /// Remove these columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop: Option<Vec<String>>,
    /// Rename columns: `{old: new}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rename: Option<BTreeMap<String, String>>,
    /// Add or replace columns: `{name: "<SQL expression>"}`, evaluated in order; window
    /// functions give each row a value over its window, e.g. `sum(v) OVER (PARTITION BY k
    /// ORDER BY t ROWS UNBOUNDED PRECEDING)` (a cumulative sum), `lag(v) OVER (ORDER BY t)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assign: Option<IndexMap<String, String>>,
    /// Join with another input, pandas-style.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge: Option<Merge>,
    /// Group rows and aggregate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groupby: Option<GroupBy>,
    /// Sort all rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort: Option<Sort>,
    /// Keep the first N rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<u64>,
    /// Drop duplicate rows (considering `subset` columns only, when given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distinct: Option<Distinct>,
    /// Append the rows of these inputs or earlier pipelines, as pandas' `concat`: columns
    /// matched by name, in order of first appearance; a column that a table lacks is null
    /// in its rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concat: Option<Vec<String>>,
    /// Unpivot columns into rows, as pandas' `melt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub melt: Option<Melt>,
    /// One row per element of this list column, the other columns repeated, as pandas'
    /// `explode`: a null or empty list gives one row with a null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explode: Option<String>,
    /// pandas' window operations (`rolling`, `expanding`, `cumsum`, `shift`, `diff`, `rank`)
    /// per group of `by`, in the order of `orderBy`, each giving a new column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
}

/// New columns computed over each row's neighbours, with pandas' semantics:
/// `df.sort_values(orderBy).groupby(by)[column].rolling(n, min_periods=m).mean()` and its kin.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Window {
    /// The groups: each row's window holds only rows of its own group (none: all rows).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by: Vec<String>,
    /// The order of the rows within a group (ascending, nulls last). Needed by every operation
    /// but `rank`: a distributed table's rows have no order of their own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub order_by: Vec<String>,
    /// As pandas' `groupby(dropna=True)` (the default): a row whose `by` key is null belongs
    /// to no group and gets null in every new column.
    #[serde(default = "default_true")]
    pub dropna: bool,
    /// The new columns, by name: `{avg3: {column: v, rolling: 3, agg: mean}}`.
    pub columns: IndexMap<String, WindowColumn>,
}

/// One windowed column. Exactly one of `rolling`, `expanding`, `cum`, `shift`, `diff` and
/// `rank` is set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WindowColumn {
    /// The column it is computed from.
    pub column: String,
    /// A window of this many rows, ending at the row (`rolling(n)`); needs `agg`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling: Option<u32>,
    /// A window from the group's first row to the row (`expanding()`) when true; needs `agg`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expanding: Option<bool>,
    /// The aggregation of a rolling or expanding window (a float, as in pandas).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agg: Option<WindowAgg>,
    /// Fewest non-null values a rolling or expanding window needs, else null (default: the
    /// window's size for `rolling`, 1 for `expanding`, as pandas).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_periods: Option<u32>,
    /// A running total, maximum or minimum (`cumsum`, `cummax`, `cummin`): null where the
    /// value is null, the column's type otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cum: Option<CumOp>,
    /// The value this many rows before (`shift(n)`; negative: after), null where there is
    /// none; the column's type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift: Option<i32>,
    /// The value minus the one this many rows before (`diff(n)`), as a float.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<i32>,
    /// The value's rank within its group (`rank(method=…)`), as a float; null for a null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank: Option<RankMethod>,
    /// For `rank`: smallest first (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ascending: Option<bool>,
}

/// A rolling or expanding window's aggregation.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WindowAgg {
    /// Sum of the non-null values.
    Sum,
    /// Mean of the non-null values.
    Mean,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// Count of non-null values.
    Count,
    /// Sample standard deviation (ddof = 1).
    Std,
    /// Sample variance (ddof = 1).
    Var,
}

/// A running aggregation.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CumOp {
    /// `cumsum`.
    Sum,
    /// `cummax`.
    Max,
    /// `cummin`.
    Min,
}

/// How `rank` orders ties, as pandas' `method`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RankMethod {
    /// The mean of the ranks the ties span.
    Average,
    /// The lowest of them.
    Min,
    /// The highest of them.
    Max,
    /// In the order of `orderBy`.
    First,
    /// Like `min`, but ranks rise by one between groups of ties.
    Dense,
}

/// pandas' `melt`: each row becomes one row per value column, holding the identifier columns,
/// the value column's name and its value.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Melt {
    /// Columns kept on every row.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub id_vars: Vec<String>,
    /// The columns whose values become rows (default: every column not in `idVars`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_vars: Option<Vec<String>>,
    /// The name of the column that holds the value column's name (default `variable`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub var_name: Option<String>,
    /// The name of the column that holds the value (default `value`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_name: Option<String>,
}

impl Melt {
    /// The names of the variable and value columns.
    pub fn names(&self) -> (&str, &str) {
        (
            self.var_name.as_deref().unwrap_or("variable"),
            self.value_name.as_deref().unwrap_or("value"),
        )
    }
}

/// A pandas-style merge with another input.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Merge {
    /// The input to join with.
    pub right: String,
    /// inner (default), left, right, outer; or semi (the left rows that have a match, each
    /// once, with the left columns only: pandas' `isin`) and anti (those that have none).
    #[serde(default)]
    pub how: How,
    /// Key columns present on both sides under the same names.
    // YAML 1.1 readers (kubectl's among them) turn an unquoted `on:` key into `true:`, and the
    // API server stores it so; accepting that spelling keeps `kubectl apply` of a pandas-style
    // `on: [...]` working. Quoting the key ("on") avoids it in the first place.
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "true")]
    pub on: Option<Vec<String>>,
    /// Key columns of the left side (with `rightOn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_on: Option<Vec<String>>,
    /// Key columns of the right side (with `leftOn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub right_on: Option<Vec<String>>,
    /// Suffixes for clashing column names (default `["_x", "_y"]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffixes: Option<Vec<String>>,
}

impl Merge {
    /// The key columns of the left and right sides (`on` for both, or `leftOn`/`rightOn`).
    pub fn key_columns(&self) -> (Vec<String>, Vec<String>) {
        match (&self.on, &self.left_on, &self.right_on) {
            (Some(on), _, _) => (on.clone(), on.clone()),
            (None, Some(l), Some(r)) => (l.clone(), r.clone()),
            _ => (vec![], vec![]),
        }
    }
}

/// How a merge keeps unmatched rows.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum How {
    /// Only matching rows.
    #[default]
    Inner,
    /// All left rows.
    Left,
    /// All right rows.
    Right,
    /// All rows of both sides.
    Outer,
    /// The left rows with a match, each once; only the left columns.
    Semi,
    /// The left rows without a match; only the left columns.
    Anti,
}

/// A groupby with aggregations.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupBy {
    /// The key columns; none (`[]`) aggregates all rows into one.
    pub by: Vec<String>,
    /// For each column, the aggregations; output columns are named `<col>_<agg>`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub aggs: IndexMap<String, Vec<Agg>>,
    /// Named SQL aggregate expressions, after the `aggs` columns: `{name: "<expression>"}`,
    /// e.g. `{r2: "power(corr(v1, v2), 2)"}`. Any of DataFusion's aggregate functions, with
    /// SQL's semantics (a `sum` of only nulls is null); columns outside an aggregate must be keys.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub expressions: IndexMap<String, String>,
    /// Drop groups whose key has a null (default true, as pandas).
    #[serde(default = "default_true")]
    pub dropna: bool,
}

/// An aggregation. Nulls are skipped, as in pandas.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Agg {
    /// Number of non-null values.
    Count,
    /// Sum (0 for a group of nulls only, as pandas).
    Sum,
    /// Arithmetic mean.
    Mean,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// Sample variance (ddof = 1).
    Var,
    /// Sample standard deviation (ddof = 1).
    Std,
    /// First non-null value.
    First,
    /// Last non-null value.
    Last,
    /// Number of distinct non-null values.
    Nunique,
    /// Median.
    Median,
}

impl Agg {
    /// The name used in output columns and YAML.
    pub fn name(self) -> &'static str {
        match self {
            Agg::Count => "count",
            Agg::Sum => "sum",
            Agg::Mean => "mean",
            Agg::Min => "min",
            Agg::Max => "max",
            Agg::Var => "var",
            Agg::Std => "std",
            Agg::First => "first",
            Agg::Last => "last",
            Agg::Nunique => "nunique",
            Agg::Median => "median",
        }
    }
}

/// A global sort.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Sort {
    /// The sort keys, most significant first.
    pub by: Vec<String>,
    /// `true`/`false` for all keys, or one boolean per key (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "descending_schema")]
    pub descending: Option<Descending>,
}

/// `descending: true` or `descending: [true, false]`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(untagged)]
pub enum Descending {
    /// The same direction for every key.
    All(bool),
    /// One direction per key.
    PerKey(Vec<bool>),
}

fn descending_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    // A structural CRD schema cannot say "boolean or list of booleans"; validation checks it.
    schemars::json_schema!({
        "x-kubernetes-preserve-unknown-fields": true,
        "description": "true/false for all keys, or a list with one boolean per key (default false)."
    })
}

impl Sort {
    /// One direction per key (true = descending).
    pub fn descending_per_key(&self) -> Vec<bool> {
        match &self.descending {
            None => vec![false; self.by.len()],
            Some(Descending::All(d)) => vec![*d; self.by.len()],
            Some(Descending::PerKey(v)) => v.clone(),
        }
    }
}

/// Drop duplicate rows, keeping the first.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Distinct {
    /// Compare only these columns (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<Vec<String>>,
}

/// Where the result goes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Output {
    /// A prefix relative to `storage.url`; the result is `part-NNNNN.<ext>` files (for zarr,
    /// a Zarr v3 array) and a `_SUCCESS` manifest under it.
    pub path: String,
    /// parquet, csv or json (JSON lines); zarr for array jobs, which write nothing else.
    /// Default: parquet for dataframe jobs, zarr for array jobs, json for bag jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    /// `error` (default) refuses to replace an existing result; `overwrite` replaces it when
    /// the new one commits.
    #[serde(default)]
    pub mode: OutputMode,
    /// Columns whose values name folders (`region=eu/part-….parquet`, Hive partitioning, as
    /// Spark's `partitionBy` and pandas' `partition_cols`); they are left out of the files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partition_by: Vec<String>,
}

/// What to do when the output already holds a result.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutputMode {
    /// Fail.
    #[default]
    Error,
    /// Replace it at commit.
    Overwrite,
}
