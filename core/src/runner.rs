//! Local mode (`kask run`): the same plan, stages and task code as the worker pods, run inside
//! one process with the tasks of a stage running concurrently.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use tracing::{info, warn};

use crate::commit::undo::step_back;
use crate::commit::{Manifest, check_output, commit_all};
use crate::error::{Error, Result};
use crate::history::Recorder;
use crate::job_id::GivenOrLocal;
use crate::plan::{Plan, Stage};
use crate::store::{Store, local_storage};
use crate::task::recover::Lineage;
use crate::task::recover::Recoveries;
use crate::task::{TaskOutcome, run_task};
use kask_api::history::JobOutcome;
use kask_api::{DaskJob, Storage};

/// What a run reports as it goes.
pub trait Progress: Send + Sync {
    /// The plan is ready.
    fn planned(&self, _plan: &Plan) {}
    /// A stage starts.
    fn stage_started(&self, _stage: &Stage) {}
    /// A task of a stage finished.
    fn task_finished(&self, _stage: &Stage, _outcome: &TaskOutcome) {}
    /// A stage finished.
    fn stage_finished(&self, _stage: &Stage) {}
}

/// Reports nothing.
pub struct Quiet;
impl Progress for Quiet {}

/// A function that wraps an object store in another.
pub type WrapStore =
    dyn Fn(Arc<dyn object_store::ObjectStore>) -> Arc<dyn object_store::ObjectStore> + Send + Sync;

/// A wrapper put around the job's object store (fault injection in tests).
#[derive(Clone)]
pub struct StoreWrapper(pub Arc<WrapStore>);

impl std::fmt::Debug for StoreWrapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreWrapper")
    }
}

/// Where a local run finds its storage.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// `--storage URL`: overrides `spec.storage.url`.
    pub storage: Option<String>,
    /// The directory used as `file://` storage when the spec has none (the job file's).
    pub base_dir: PathBuf,
    /// Most tasks at once (default: `spec.workers`, at most the number of cores and one per
    /// [`crate::memory::TASK_MEMORY`] of the memory limit).
    pub parallelism: Option<usize>,
    /// Every read and write of the job goes through this wrapper.
    pub wrap: Option<StoreWrapper>,
    /// `--memory`: the memory this run may use (default: the container's limit, else the
    /// machine's memory).
    pub memory: Option<u64>,
}

/// The result of a run.
#[derive(Clone, Debug)]
pub struct RunSummary {
    /// Where the result went (storage URL and output path).
    pub output_url: String,
    /// The committed manifest.
    pub manifest: Manifest,
    /// A job graph's other outputs: where each went, and its manifest.
    pub others: Vec<(String, Manifest)>,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Tasks run.
    pub tasks: usize,
    /// Tasks found already committed by an earlier run of the same plan.
    pub resumed: usize,
    /// Stages.
    pub stages: usize,
}

/// The storage a local run uses.
pub fn resolve_storage(job: &DaskJob, opts: &RunOptions) -> Result<Storage> {
    let mut storage = match &job.spec.storage {
        Some(s) => s.clone(),
        None => local_storage(&opts.base_dir)?,
    };
    if let Some(url) = &opts.storage {
        storage.url = url.clone();
    }
    Ok(storage)
}

/// Lists the inputs and plans the job, checking every column and expression. `job_id` names
/// the scratch prefix: the DaskJob's UID on a cluster; `None` in local mode, where a hash of
/// the spec and inputs lets a rerun resume.
pub async fn prepare(
    job: &DaskJob,
    opts: &RunOptions,
    job_id: Option<&str>,
) -> Result<(Store, Plan)> {
    let storage = resolve_storage(job, opts)?;
    let mut store = Store::from_storage(&storage)?;
    if let Some(w) = &opts.wrap {
        store = store.wrapped(|s| (w.0)(s))?;
    }
    let budget = crate::memory::Budget::detect(opts.memory)?;
    budget.log();
    let store = store.with_budget(&budget)?;
    // Without a job id this is `kask run`, which runs every task itself.
    let store = match job_id {
        None => store.running_every_task(),
        Some(_) => store,
    };
    let mut spec = job.spec.clone();
    spec.storage = Some(storage);
    let kind = crate::kind::of_spec(&spec)?;
    let ids = GivenOrLocal {
        job,
        spec: &spec,
        given: job_id,
    };
    let mut plan = kind.plan(&store, &spec, &ids).await?;
    plan.job_name = job_name(job);
    info!(job = %plan.job_id, kind = kind.name(), stages = plan.stages.len(), tasks = plan.total_tasks(), "planned");
    Ok((store, plan))
}

/// A job's name for messages and manifests: `namespace/name` when it has a namespace.
pub fn job_name(job: &DaskJob) -> String {
    match (&job.metadata.namespace, &job.metadata.name) {
        (Some(ns), Some(name)) => format!("{ns}/{name}"),
        (None, Some(name)) => name.clone(),
        _ => String::new(),
    }
}

/// How often stepping back from a failed commit is tried: more often than the commit, as it
/// is a handful of renames and what it protects is the previous result's wholeness.
const STEP_BACK_RETRIES: u32 = 10;

/// Runs a whole job locally, recording it in its history.
pub async fn run(job: &DaskJob, opts: &RunOptions, progress: &dyn Progress) -> Result<RunSummary> {
    let started = Instant::now();
    let started_ms = crate::history::now_ms();
    // Planning reads the inputs' listings and headers: retried like a task, so that a store's
    // passing failure does not end the run before it starts.
    let retries = job.spec.retries();
    let (store, plan) = retrying(retries, "planning", || prepare(job, opts, None)).await?;
    let (store, plan) = match retrying(retries, "reading the earlier run's plan", || {
        earlier_plan(&store, &plan)
    })
    .await?
    {
        Earlier::None => (store, plan),
        Earlier::Resume(earlier) => (store, *earlier),
        Earlier::Unusable => {
            crate::commit::job::remove_scratch(
                &store,
                plan.spec.main_output().path.trim_matches('/'),
                &plan.job_id,
            )
            .await?;
            retrying(retries, "planning", || prepare(job, opts, None)).await?
        }
    };
    let recorder = Recorder::of(&store, &plan);
    let job_id = plan.job_id.clone();
    let result = run_recorded(store, plan, opts, progress, &recorder, started).await;
    let (outcome, error, outputs) = match &result {
        Ok(s) => (
            JobOutcome::Succeeded,
            None,
            std::iter::once(&s.output_url)
                .chain(s.others.iter().map(|(url, _)| url))
                .map(|url| format!("{url}/{}", crate::commit::MANIFEST))
                .collect(),
        ),
        Err(e) => (
            JobOutcome::Failed,
            Some(e.to_string().trim_end().to_string()),
            Vec::new(),
        ),
    };
    recorder.ended(&job_id, outcome, error, outputs).await;
    recorder.process_done(started_ms).await;
    crate::history::release();
    result
}

/// What an unfinished earlier run of the same job left as its plan.
enum Earlier {
    /// No earlier run: this run's plan stands.
    None,
    /// An earlier run's plan, which this run resumes: its committed tasks' outputs were cut
    /// by it (the number of reduce partitions, say, follows the memory a run is given), so
    /// planning anew could read them wrongly.
    Resume(Box<Plan>),
    /// An earlier run's plan that this Kask cannot read (another version wrote it): its
    /// scratch space is removed and the job planned and run afresh.
    Unusable,
}

/// The plan of the unfinished earlier run whose scratch space `plan` (a new plan, under the
/// earlier run's id) would resume.
async fn earlier_plan(store: &Store, plan: &Plan) -> Result<Earlier> {
    let Some(body) = store.get_opt(&plan.plan_path()).await? else {
        return Ok(Earlier::None);
    };
    match serde_json::from_slice::<Plan>(&body) {
        Ok(earlier) if earlier.version == plan.version && earlier.job_id == plan.job_id => {
            info!(job = %plan.job_id, "resuming an unfinished earlier run with its plan");
            Ok(Earlier::Resume(Box::new(earlier)))
        }
        Ok(_) | Err(_) => {
            warn!(job = %plan.job_id, "the unfinished earlier run's plan is of another Kask version: running the job afresh");
            Ok(Earlier::Unusable)
        }
    }
}

/// Runs a planned job: its start, its stages, its commit.
async fn run_recorded(
    store: Store,
    plan: Plan,
    opts: &RunOptions,
    progress: &dyn Progress,
    recorder: &Recorder,
    started: Instant,
) -> Result<RunSummary> {
    let body =
        Bytes::from(serde_json::to_vec_pretty(&plan).map_err(|e| Error::internal(e.to_string()))?);
    retrying(plan.spec.retries(), "starting", || async {
        check_output(&store, &plan.spec, &plan.job_id).await?;
        store.check_conditional_puts(&plan.scratch()).await?;
        store.put(&plan.plan_path(), body.clone()).await
    })
    .await?;
    let kind = crate::kind::of_plan(&plan)?.name();
    recorder.planned(&plan, kind, "local", false).await;
    progress.planned(&plan);

    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    // An explicit --parallelism is the user's; by default, as many tasks as fit the memory.
    let parallelism = match opts.parallelism {
        Some(p) => p.max(1),
        None => crate::memory::tasks_at_once(
            crate::memory::Budget::detect(opts.memory)?.limit,
            (plan.spec.workers() as usize).min(cores),
        ),
    };
    let shared = Arc::new((store, plan, Recoveries::default()));
    let resumed = run_stages(&shared, parallelism, progress).await?;
    let (store, plan, recoveries) = shared.as_ref();
    let lineage = Lineage {
        store,
        plan,
        recoveries,
    };
    let committed = retrying(plan.spec.retries(), "commit", || {
        commit_all(store, plan, &lineage)
    })
    .await;
    let mut all = match committed {
        Ok(all) => all,
        Err(e) => {
            // Leave no output half-changed: the files already moved in go back to the scratch
            // space, where the run again finds them.
            if let Err(again) = retrying(STEP_BACK_RETRIES, "stepping back from the commit", || {
                step_back(store, plan)
            })
            .await
            {
                warn!(job = %plan.job_id, error = %again, "could not step back from the failed commit: the output may hold files its manifest does not name until the job runs again");
            }
            return Err(e);
        }
    }
    .into_iter()
    .map(|(t, m)| {
        let url = format!("{}/{}", store.url, t.output.path.trim_matches('/'));
        (url, m)
    });
    let (output_url, manifest) = all
        .next()
        .ok_or_else(|| Error::internal("a job without outputs"))?;
    Ok(RunSummary {
        output_url,
        manifest,
        others: all.collect(),
        seconds: started.elapsed().as_secs_f64(),
        tasks: plan.total_tasks(),
        resumed,
        stages: plan.stages.len(),
    })
}

/// Runs every stage, each as soon as the stages it reads are done, so that independent
/// branches of a job graph run side by side: at most `parallelism` tasks at once, earlier
/// stages' tasks first. Returns how many tasks an earlier run had committed.
async fn run_stages(shared: &Shared, parallelism: usize, progress: &dyn Progress) -> Result<usize> {
    let plan = &shared.1;
    let n = plan.stages.len();
    let retries = plan.spec.retries();
    let mut left: Vec<usize> = plan.stages.iter().map(|s| s.tasks).collect();
    let mut started = vec![false; n];
    let mut done = vec![false; n];
    let mut queue = std::collections::VecDeque::new();
    let mut running = futures::stream::FuturesUnordered::new();
    let mut resumed = 0;
    loop {
        let mut changed = true;
        while changed {
            changed = false;
            for s in 0..n {
                if started[s] || !plan.after(s).iter().all(|&d| done[d]) {
                    continue;
                }
                started[s] = true;
                progress.stage_started(&plan.stages[s]);
                if left[s] == 0 {
                    done[s] = true;
                    progress.stage_finished(&plan.stages[s]);
                    changed = true;
                }
                queue.extend((0..left[s]).map(|t| (s, t)));
            }
        }
        while running.len() < parallelism.max(1)
            && let Some((stage, task)) = queue.pop_front()
        {
            let shared = Arc::clone(shared);
            // Spawned, so that tasks run on the runtime's worker threads in parallel rather
            // than taking turns on the thread that drives the run.
            let handle = AbortOnDrop(tokio::spawn(async move {
                let (store, plan, recoveries) = shared.as_ref();
                run_with_retries(store, plan, recoveries, stage, task, retries).await
            }));
            running.push(async move { (stage, handle.await) });
        }
        let Some((s, joined)) = running.next().await else {
            break;
        };
        let outcome = joined.map_err(|e| Error::internal(format!("a task panicked: {e}")))??;
        let stage = &plan.stages[s];
        progress.task_finished(stage, &outcome);
        resumed += usize::from(outcome.skipped);
        left[s] -= 1;
        if left[s] == 0 {
            done[s] = true;
            progress.stage_finished(stage);
            info!(job = %plan.job_id, stage = %stage.name, "stage finished");
        }
    }
    match done.iter().position(|d| !d) {
        Some(s) => Err(Error::internal(format!(
            "stage {} never became ready to run",
            plan.stages[s].name
        ))),
        None => Ok(resumed),
    }
}

/// What every task of a process shares: the store, the plan, and the re-runs so far.
pub type Shared = Arc<(Store, Plan, Recoveries)>;

/// Runs `tasks` of stage `stage`, at most `parallelism` at once, each retried in place on
/// retryable errors up to `spec.retries` times; the first error cancels the rest.
pub async fn run_tasks(
    shared: &Shared,
    stage: usize,
    tasks: Vec<usize>,
    parallelism: usize,
    on_done: &(dyn Fn(&TaskOutcome) + Sync),
) -> Result<Vec<TaskOutcome>> {
    let retries = shared.1.spec.retries();
    // Spawned, so that tasks run on the runtime's worker threads in parallel rather than
    // taking turns on the thread that drives the run.
    let mut results = futures::stream::iter(tasks)
        .map(|t| {
            let shared = Arc::clone(shared);
            AbortOnDrop(tokio::spawn(async move {
                let (store, plan, recoveries) = shared.as_ref();
                run_with_retries(store, plan, recoveries, stage, t, retries).await
            }))
        })
        .buffer_unordered(parallelism.max(1));
    let mut outcomes = Vec::new();
    while let Some(joined) = results.next().await {
        let outcome = joined.map_err(|e| Error::internal(format!("a task panicked: {e}")))??;
        on_done(&outcome);
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// A spawned task that is cancelled when the run stops waiting for it (a sibling failed).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> std::future::Future for AbortOnDrop<T> {
    type Output = std::result::Result<T, tokio::task::JoinError>;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

/// Runs a step that is safe to repeat (the commit), again after a retryable error, up to
/// `retries` times.
pub async fn retrying<T, F, Fut>(retries: u32, what: &str, mut step: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut attempt = 0;
    loop {
        match step().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_retryable() && attempt < retries => {
                attempt += 1;
                warn!(step = what, attempt, error = %e, "failed; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(200 * u64::from(attempt)))
                    .await;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn run_with_retries(
    store: &Store,
    plan: &Plan,
    recoveries: &Recoveries,
    stage: usize,
    task: usize,
    retries: u32,
) -> Result<TaskOutcome> {
    let mut attempt = 0;
    loop {
        match run_task(store, plan, recoveries, stage, task).await {
            Ok(o) => return Ok(o),
            Err(e) if e.is_retryable() && attempt < retries => {
                attempt += 1;
                warn!(stage = %plan.stages[stage].name, task, attempt, error = %e, "task failed; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(200 * u64::from(attempt)))
                    .await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The directory holding a job file, for `file://` storage by default.
pub fn job_dir(job_file: &Path) -> PathBuf {
    match job_file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
