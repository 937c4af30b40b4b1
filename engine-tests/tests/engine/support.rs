//! A test bench: a store (a temporary directory, or a prefix of the MinIO bucket), input files
//! written through it, jobs run in local mode, and results read back as plain values.

use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{Array, ArrayRef, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::file::properties::WriterProperties;

use kask_worker::Error;
use kask_worker::commit::{Manifest, read_manifest};
use kask_worker::runner::{self, Quiet, RunOptions, RunSummary};
use kask_worker::store::Store;

/// A cell of a result, compared with a tolerance for floats.
#[derive(Clone, Debug)]
pub enum V {
    Null,
    I(i64),
    F(f64),
    S(String),
}

/// Values compare with their types: an integer never equals a float, so a sum that comes out
/// as float64 where pandas gives int64 fails.
impl PartialEq for V {
    fn eq(&self, other: &V) -> bool {
        match (self, other) {
            (V::Null, V::Null) => true,
            (V::I(a), V::I(b)) => a == b,
            (V::S(a), V::S(b)) => a == b,
            (V::F(a), V::F(b)) => close(*a, *b),
            _ => false,
        }
    }
}

fn close(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

impl V {
    /// A sort key that orders rows the same way on both sides of a comparison.
    fn key(&self) -> String {
        match self {
            V::Null => "~null".into(),
            V::I(i) => format!("n{:+025.6}", *i as f64),
            V::F(f) => format!("n{:+025.6}", f),
            V::S(s) => format!("s{s}"),
        }
    }
}

/// Rows sorted into a canonical order, for comparing results whose order is not specified.
/// Runs a test body on a runtime like the one `kask run` starts (two worker threads).
pub fn run(f: impl std::future::Future<Output = ()>) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

pub fn sorted(mut rows: Vec<Vec<V>>) -> Vec<Vec<V>> {
    rows.sort_by_cached_key(|r| r.iter().map(V::key).collect::<Vec<_>>().join("|"));
    rows
}

/// Every row of a batch as values.
pub fn rows_of(batches: &[RecordBatch]) -> Vec<Vec<V>> {
    let mut out = Vec::new();
    for b in batches {
        let cols: Vec<ArrayRef> = b.columns().iter().map(normalize).collect();
        for r in 0..b.num_rows() {
            out.push(cols.iter().map(|c| value(c, r)).collect());
        }
    }
    out
}

fn normalize(a: &ArrayRef) -> ArrayRef {
    let dt = a.data_type();
    let target = if dt.is_integer() {
        DataType::Int64
    } else if dt.is_floating() || matches!(dt, DataType::Decimal128(..)) {
        DataType::Float64
    } else if matches!(dt, DataType::Boolean) {
        DataType::Int64
    } else {
        DataType::Utf8
    };
    cast(a, &target).expect("test values cast to plain types")
}

fn value(a: &ArrayRef, r: usize) -> V {
    use datafusion::arrow::array::{Float64Array, Int64Array, StringArray};
    if a.is_null(r) {
        return V::Null;
    }
    if let Some(x) = a.as_any().downcast_ref::<Int64Array>() {
        V::I(x.value(r))
    } else if let Some(x) = a.as_any().downcast_ref::<Float64Array>() {
        V::F(x.value(r))
    } else if let Some(x) = a.as_any().downcast_ref::<StringArray>() {
        V::S(x.value(r).to_string())
    } else {
        panic!("unexpected type {}", a.data_type())
    }
}

/// Parquet bytes of a batch, in row groups of `rows_per_group` rows.
pub fn parquet_bytes(batch: &RecordBatch, rows_per_group: usize) -> Vec<u8> {
    let mut buf = Vec::new();
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(rows_per_group.max(1)))
        .build();
    let mut w = ArrowWriter::try_new(&mut buf, batch.schema(), Some(props)).expect("writer");
    w.write(batch).expect("write");
    w.close().expect("close");
    buf
}

/// Where a test's files live.
pub struct Lab {
    pub store: Store,
    /// The `storage:` block of jobs run here, when not the default local directory.
    pub storage_yaml: Option<String>,
    /// The local directory jobs are run from.
    pub dir: tempfile::TempDir,
}

impl Lab {
    /// A fresh temporary directory used as `file://` storage.
    pub fn local() -> Lab {
        kask_worker::install_kinds();
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::local_dir(dir.path()).expect("local store");
        Lab {
            store,
            storage_yaml: None,
            dir,
        }
    }

    /// A local lab holding a copy of this one's files: the same state, to change apart.
    pub fn copy(&self) -> Lab {
        fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
            std::fs::create_dir_all(to).expect("mkdir");
            for entry in std::fs::read_dir(from).expect("read_dir") {
                let entry = entry.expect("entry");
                let target = to.join(entry.file_name());
                if entry.file_type().expect("type").is_dir() {
                    copy_dir(&entry.path(), &target);
                } else {
                    std::fs::copy(entry.path(), &target).expect("copy");
                }
            }
        }
        assert!(self.storage_yaml.is_none(), "only a local lab is copied");
        let lab = Lab::local();
        copy_dir(self.dir.path(), lab.dir.path());
        lab
    }

    /// A fresh prefix of the test bucket on the MinIO that `tests/minio/minio start` runs, or
    /// `None` when its environment is not set and nothing requires it (a developer's `cargo
    /// test`). Under `tests/run` (`KASK_REQUIRE_S3`) and in CI, a missing MinIO fails the test.
    pub fn s3() -> Option<Lab> {
        kask_worker::install_kinds();
        let endpoint = std::env::var("KASK_S3_ENDPOINT").ok();
        let bucket = std::env::var("KASK_S3_BUCKET").ok();
        let (Some(endpoint), Some(bucket)) = (endpoint, bucket) else {
            assert!(
                std::env::var_os("CI").is_none() && std::env::var_os("KASK_REQUIRE_S3").is_none(),
                "the S3 tests must run here: start MinIO with tests/minio/minio start and eval \
                 \"$(tests/minio/minio env)\""
            );
            eprintln!("KASK_S3_ENDPOINT is not set: skipping an S3 test (tests/run starts MinIO)");
            return None;
        };
        let prefix = format!("t{:016x}", rand::random::<u64>());
        let storage = kask_api::Storage {
            url: format!("s3://{bucket}/{prefix}"),
            endpoint: Some(endpoint.clone()),
            region: Some("us-east-1".into()),
            allow_http: Some(true),
            secret_ref: None,
        };
        let store = Store::from_storage(&storage).expect("s3 store");
        let yaml = format!(
            "  storage: {{url: \"{}\", endpoint: \"{endpoint}\", region: us-east-1, allowHttp: true}}\n",
            storage.url
        );
        Some(Lab {
            store,
            storage_yaml: Some(yaml),
            dir: tempfile::tempdir().expect("tempdir"),
        })
    }

    /// Writes a file.
    pub async fn put(&self, rel: &str, bytes: impl Into<Bytes>) {
        self.store.put(rel, bytes.into()).await.expect("put");
    }

    /// Writes a batch as Parquet.
    pub async fn put_parquet(&self, rel: &str, batch: &RecordBatch, rows_per_group: usize) {
        self.put(rel, parquet_bytes(batch, rows_per_group)).await;
    }

    /// Writes a batch cut into `parts` Parquet files `<dir>/part-N.parquet`.
    pub async fn put_partitioned(
        &self,
        dir: &str,
        batch: &RecordBatch,
        parts: usize,
        rows_per_group: usize,
    ) {
        let n = batch.num_rows();
        let parts = parts.max(1);
        for p in 0..parts {
            let (start, end) = (n * p / parts, n * (p + 1) / parts);
            self.put_parquet(
                &format!("{dir}/part-{p}.parquet"),
                &batch.slice(start, end - start),
                rows_per_group,
            )
            .await;
        }
    }

    /// A job file's text for this lab: `spec_body` is the YAML under `spec:` (indented by two).
    pub fn job_yaml(&self, spec_body: &str) -> String {
        format!(
            "apiVersion: kask.dev/v1alpha1\nkind: DaskJob\nmetadata: {{name: test}}\nspec:\n{}{spec_body}",
            self.storage_yaml.clone().unwrap_or_default()
        )
    }

    /// Runs a job given as the YAML under `spec:`.
    pub async fn run(&self, spec_body: &str) -> Result<RunSummary, Error> {
        self.run_wrapped(spec_body, None).await
    }

    /// Runs a job with every read and write going through `wrap`.
    pub async fn run_wrapped(
        &self,
        spec_body: &str,
        wrap: Option<runner::StoreWrapper>,
    ) -> Result<RunSummary, Error> {
        self.run_with(spec_body, wrap, None).await
    }

    /// Runs a job whose operators may use `memory` bytes (`kask run --memory`).
    pub async fn run_with_memory(&self, spec_body: &str, memory: u64) -> Result<RunSummary, Error> {
        self.run_with(spec_body, None, Some(memory)).await
    }

    async fn run_with(
        &self,
        spec_body: &str,
        wrap: Option<runner::StoreWrapper>,
        memory: Option<u64>,
    ) -> Result<RunSummary, Error> {
        let yaml = self.job_yaml(spec_body);
        let job = kask_api::load_job("job.yaml", &yaml)?;
        let opts = RunOptions {
            storage: None,
            base_dir: self.dir.path().to_path_buf(),
            parallelism: Some(2),
            wrap,
            memory,
        };
        let opts = if self.storage_yaml.is_none() {
            RunOptions {
                storage: Some(self.store.url.clone()),
                ..opts
            }
        } else {
            opts
        };
        runner::run(&job, &opts, &Quiet).await
    }

    /// Plans a job and runs its stages, but not its commit: the state a commit starts from.
    pub async fn staged(&self, spec_body: &str) -> (Store, kask_worker::plan::Plan) {
        self.staged_with_memory(spec_body, None).await
    }

    /// [`Lab::staged`] with operators held to `memory` bytes (`kask run --memory`).
    pub async fn staged_with_memory(
        &self,
        spec_body: &str,
        memory: Option<u64>,
    ) -> (Store, kask_worker::plan::Plan) {
        self.staged_edited(spec_body, memory, |_| {}).await
    }

    /// [`Lab::staged_with_memory`] with the plan changed by `edit` before its tasks run, as a
    /// plan pod of another version might have written it.
    pub async fn staged_edited(
        &self,
        spec_body: &str,
        memory: Option<u64>,
        edit: impl FnOnce(&mut kask_worker::plan::Plan),
    ) -> (Store, kask_worker::plan::Plan) {
        let (store, plan) = self.planned(spec_body, memory, edit).await;
        for stage in &plan.stages {
            run_stage(&store, &plan, stage.id).await;
        }
        (store, plan)
    }

    /// Plans a job (its plan changed by `edit`) and records the plan, without running a task.
    pub async fn planned(
        &self,
        spec_body: &str,
        memory: Option<u64>,
        edit: impl FnOnce(&mut kask_worker::plan::Plan),
    ) -> (Store, kask_worker::plan::Plan) {
        let yaml = self.job_yaml(spec_body);
        let job = kask_api::load_job("job.yaml", &yaml).expect("job");
        let opts = RunOptions {
            storage: self.storage_yaml.is_none().then(|| self.store.url.clone()),
            base_dir: self.dir.path().to_path_buf(),
            parallelism: Some(2),
            wrap: None,
            memory,
        };
        let (store, mut plan) = runner::prepare(&job, &opts, None).await.expect("plan");
        edit(&mut plan);
        kask_worker::commit::check_output(&store, &plan.spec, &plan.job_id)
            .await
            .expect("the output may be written");
        let body = serde_json::to_vec(&plan).expect("plan json");
        store
            .put(&plan.plan_path(), body.into())
            .await
            .expect("plan written");
        (store, plan)
    }

    /// The manifest at an output path.
    pub async fn manifest(&self, out: &str) -> Option<Manifest> {
        read_manifest(&self.store, out)
            .await
            .expect("manifest readable")
    }

    /// The result at an output path (Parquet), as column names and rows.
    pub async fn result(&self, out: &str) -> (Vec<String>, Vec<Vec<V>>) {
        let (names, _, rows) = self.typed_result(out).await;
        (names, rows)
    }

    /// The result at an output path (Parquet), as column names, Arrow types and rows.
    pub async fn typed_result(&self, out: &str) -> (Vec<String>, Vec<String>, Vec<Vec<V>>) {
        let m = self
            .manifest(out)
            .await
            .expect("the job committed a manifest");
        let mut names = Vec::new();
        let mut types = Vec::new();
        let mut rows = Vec::new();
        for f in &m.files {
            let bytes = self
                .store
                .get_opt(&format!("{out}/{}", f.path))
                .await
                .expect("read")
                .expect("file listed in the manifest exists");
            let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
                .expect("parquet")
                .build()
                .expect("reader");
            let batches: Vec<RecordBatch> = reader.map(|b| b.expect("batch")).collect();
            if names.is_empty()
                && let Some(b) = batches.first()
            {
                names = b
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect();
                types = b
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.data_type().to_string())
                    .collect();
            }
            let got = rows_of(&batches);
            assert_eq!(
                got.len() as u64,
                f.rows,
                "the manifest's row count for {} is exact",
                f.path
            );
            rows.extend(got);
        }
        if names.is_empty() {
            names = m.schema.iter().map(|c| c.name.clone()).collect();
            types = m.schema.iter().map(|c| c.type_.clone()).collect();
        }
        (names, types, rows)
    }
}

/// The rows stage `stage`'s tasks wrote, from their markers.
pub async fn rows_out(store: &Store, plan: &kask_worker::plan::Plan, stage: usize) -> u64 {
    let mut rows = 0;
    for (m, _) in store.list(&plan.markers_dir(stage)).await.expect("markers") {
        let body = store.get(&m).await.expect("marker");
        let marker: serde_json::Value = serde_json::from_slice(&body).expect("json");
        rows += marker["rowsOut"].as_u64().expect("rowsOut");
    }
    rows
}

/// Runs every task of stage `stage` of a staged job (a task whose marker is there already
/// finds its work committed).
pub async fn run_stage(store: &Store, plan: &kask_worker::plan::Plan, stage: usize) {
    let shared = Arc::new((
        store.clone(),
        plan.clone(),
        kask_worker::task::recover::Recoveries::default(),
    ));
    let tasks = (0..plan.stages[stage].tasks).collect();
    runner::run_tasks(&shared, stage, tasks, 2, &|_| {})
        .await
        .expect("stage");
}

/// Commits a staged job's outputs.
pub async fn commit_staged(store: &Store, plan: &kask_worker::plan::Plan) {
    let recoveries = kask_worker::task::recover::Recoveries::default();
    let lineage = kask_worker::task::recover::Lineage {
        store,
        plan,
        recoveries: &recoveries,
    };
    kask_worker::commit::commit_all(store, plan, &lineage)
        .await
        .expect("commit");
}

/// The bytes the tasks of `stages` of a staged job spilled, as their markers record them.
pub async fn spilled_bytes(
    store: &Store,
    plan: &kask_worker::plan::Plan,
    stages: impl IntoIterator<Item = usize>,
) -> u64 {
    let mut spilled = 0;
    for stage in stages {
        for (m, _) in store.list(&plan.markers_dir(stage)).await.expect("markers") {
            let body = store.get(&m).await.expect("marker");
            let marker: serde_json::Value = serde_json::from_slice(&body).expect("json");
            spilled += marker["spilledBytes"].as_u64().unwrap_or(0);
        }
    }
    spilled
}

/// Shorthand for building test tables.
pub fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    RecordBatch::try_from_iter(columns.into_iter().map(|(n, a)| (n.to_string(), a))).expect("batch")
}

/// An int64 column with nulls.
pub fn ints(v: &[Option<i64>]) -> ArrayRef {
    Arc::new(datafusion::arrow::array::Int64Array::from(v.to_vec()))
}

/// A float64 column with nulls.
pub fn floats(v: &[Option<f64>]) -> ArrayRef {
    Arc::new(datafusion::arrow::array::Float64Array::from(v.to_vec()))
}

/// A string column with nulls.
pub fn strs(v: &[Option<&str>]) -> ArrayRef {
    Arc::new(datafusion::arrow::array::StringArray::from(v.to_vec()))
}
