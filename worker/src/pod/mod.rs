//! What worker pods run (`kask worker ...`): the operator's plan, stage and commit Jobs, and the
//! cleanup pod of a deleted job. Each step is the local runner's code cut at the points where
//! the operator takes over, and each returns the small report its pod leaves in its
//! termination message.

mod groups;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tracing::info;

use crate::commit::cleanup::abandon_job;
use crate::commit::job::commit_all;
use crate::commit::{check_output, committed, manifest_path};
use crate::error::{Error, Result};
use crate::history::Recorder;
use crate::plan::{PLAN_VERSION, Plan};
use crate::runner::{RunOptions, Shared, prepare, run_tasks};
use crate::store::Store;
use crate::task::recover::Lineage;
use crate::task::recover::Recoveries;
use kask_api::history::JobOutcome;
use kask_api::report::{PlanReport, PlannedStage, TaskReport};
use kask_api::{DaskJob, DaskJobSpec, SECRET_KEYS, Storage};

pub use crate::usage::Usage;
pub use groups::task_groups;

/// The environment variable carrying the job's spec (JSON) into every pod.
pub const SPEC_ENV: &str = "KASK_JOB_SPEC";

/// The environment variable carrying the job's `namespace/name`, for messages and manifests.
pub const NAME_ENV: &str = "KASK_JOB_NAME";

/// The environment variable carrying why a job failed into its cleanup pod, for its history.
pub const FAILURE_ENV: &str = "KASK_JOB_FAILURE";

/// The spec from [`SPEC_ENV`], validated as `kask validate` does: a pod never acts on a spec
/// that the operator or the command line would refuse.
pub fn spec_from_env() -> Result<DaskJobSpec> {
    let raw = std::env::var(SPEC_ENV)
        .map_err(|_| Error::spec(SPEC_ENV, "is not set: worker pods get the job's spec there"))?;
    let spec: DaskJobSpec = serde_json::from_str(&raw)
        .map_err(|e| Error::spec(SPEC_ENV, format!("is not a job spec: {e}")))?;
    kask_api::validate(&spec).map_err(|errors| {
        Error::Load(kask_api::LoadError::Invalid {
            source_name: SPEC_ENV.into(),
            errors,
        })
    })?;
    check_credentials(&spec, |k| std::env::var(k).is_ok_and(|v| !v.is_empty()))?;
    Ok(spec)
}

/// The job's name from [`NAME_ENV`] (empty when unset).
fn job_name() -> String {
    std::env::var(NAME_ENV).unwrap_or_default()
}

/// A job naming a storage Secret whose keys did not reach the pod fails with that, not with
/// object_store's fallback to cloud metadata endpoints. The kubelet resolves the name in the
/// pod's own namespace, with optional keys: a Secret that is missing there (perhaps it exists
/// in another namespace, which a job cannot use) simply sets nothing.
pub fn check_credentials(spec: &DaskJobSpec, is_set: impl Fn(&str) -> bool) -> Result<()> {
    let Some(secret) = spec.storage.as_ref().and_then(|s| s.secret_ref.as_ref()) else {
        return Ok(());
    };
    if SECRET_KEYS.iter().any(|k| is_set(k)) {
        return Ok(());
    }
    let namespace = std::env::var("POD_NAMESPACE").unwrap_or_else(|_| "the job's".into());
    Err(Error::spec(
        "spec.storage.secretRef",
        format!(
            "Secret {:?} gave the pod no credentials: it does not exist in namespace {namespace}, \
             or has none of the keys {}; a job can only use a Secret in its own namespace",
            secret.name,
            SECRET_KEYS.join(", ")
        ),
    ))
}

fn storage_of(spec: &DaskJobSpec) -> Result<&Storage> {
    spec.storage.as_ref().ok_or_else(|| {
        Error::spec(
            "spec.storage",
            "a job on Kubernetes needs a storage section",
        )
    })
}

/// The path inside the store that `url` (a URL under the store's own) names.
fn relative<'a>(store: &Store, url: &'a str) -> Result<&'a str> {
    url.strip_prefix(store.url.as_str())
        .and_then(|rest| rest.strip_prefix('/'))
        .ok_or_else(|| {
            Error::spec(
                "--plan",
                format!("{url} is not under the job's storage URL {}", store.url),
            )
        })
}

/// The plan pod: lists the inputs, plans the job and writes the plan under the scratch prefix.
/// A retried plan pod finds the plan its predecessor wrote and reports that one, so every
/// stage pod runs the same plan even if the inputs changed in between.
pub async fn plan(spec: &DaskJobSpec, job_id: &str) -> Result<PlanReport> {
    let storage = storage_of(spec)?;
    // Known before planning, so that a job that cannot be planned (a missing input, a column
    // that is not there) still leaves its error and the pod's log in its history.
    Recorder::new(&Store::from_storage(storage)?, spec, job_id);
    let job = DaskJob::new("job", spec.clone());
    let opts = RunOptions {
        storage: Some(storage.url.clone()),
        ..RunOptions::default()
    };
    let (store, mut plan) = prepare(&job, &opts, Some(job_id)).await?;
    plan.job_name = job_name();
    let path = plan.plan_path();
    match store.get_opt(&path).await? {
        Some(existing) => {
            plan = parse_plan(&existing, &path)?;
            info!(job = %job_id, "found the plan of an earlier attempt");
        }
        None => {
            check_output(&store, &plan.spec, job_id).await?;
            store.check_conditional_puts(&plan.scratch()).await?;
            let body =
                serde_json::to_vec_pretty(&plan).map_err(|e| Error::internal(e.to_string()))?;
            if !store.put_create(&path, Bytes::from(body)).await? {
                // Another attempt won the race: its plan is the job's.
                let existing = store.get(&path).await?;
                plan = parse_plan(&existing, &path)?;
            }
        }
    }
    let kind = crate::kind::of_plan(&plan)?.name();
    Recorder::new(&store, &plan.spec, job_id)
        .planned(&plan, kind, "kubernetes", true)
        .await;
    let workers = plan.spec.workers() as usize;
    Ok(PlanReport {
        version: Some(plan.version),
        plan: format!("{}/{}", store.url, path),
        stages: plan
            .stages
            .iter()
            .map(|s| PlannedStage {
                name: s.name.clone(),
                tasks: s.tasks as u32,
                groups: task_groups(s, workers).len() as u32,
                feeds: s.feeds.clone(),
                after: Some(plan.after(s.id).iter().map(|&a| a as u32).collect()),
            })
            .collect(),
    })
}

/// A plan this Kask can run: one written by another plan version (another Kask release,
/// through a changed `spec.image`) is refused rather than misread.
pub fn parse_plan(body: &[u8], path: &str) -> Result<Plan> {
    #[derive(serde::Deserialize)]
    struct Versioned {
        version: u32,
    }
    let written = serde_json::from_slice::<Versioned>(body)
        .map_err(|e| Error::internal(format!("{path}: not a plan: {e}")))?
        .version;
    if written != PLAN_VERSION {
        return Err(Error::Incompatible(format!(
            "{path} was written by a Kask with plan version {written}, and this one ({}) reads \
             version {PLAN_VERSION}: every pod of a job must run the image it started with",
            env!("CARGO_PKG_VERSION")
        )));
    }
    serde_json::from_slice(body).map_err(|e| Error::internal(format!("{path}: not a plan: {e}")))
}

/// Reads the plan at `plan_url`, with the store of the job's spec.
pub async fn load_plan(spec: &DaskJobSpec, plan_url: &str) -> Result<(Store, Plan)> {
    let budget = crate::memory::Budget::detect(None)?;
    budget.log();
    let store = Store::from_storage(storage_of(spec)?)?.with_budget(&budget)?;
    let path = relative(&store, plan_url)?.to_string();
    let body = store.get(&path).await?;
    let plan = parse_plan(&body, &path)?;
    Ok((store, plan))
}

/// A stage pod: runs task group `group` of stage `stage` (by index or name), its tasks
/// concurrently on the pod's cores.
pub async fn run_stage(
    spec: &DaskJobSpec,
    plan_url: &str,
    stage: &str,
    group: usize,
) -> Result<TaskReport> {
    let started = Instant::now();
    let (store, plan) = load_plan(spec, plan_url).await?;
    let st = plan
        .stages
        .iter()
        .find(|s| s.name == stage || s.id.to_string() == stage)
        .ok_or_else(|| Error::spec("--stage", format!("the plan has no stage {stage:?}")))?;
    let stage_id = st.id;
    let groups = task_groups(st, plan.spec.workers() as usize);
    let tasks = groups.get(group).cloned().ok_or_else(|| {
        Error::spec(
            "JOB_COMPLETION_INDEX",
            format!(
                "stage {} has {} task groups, not {}",
                st.name,
                groups.len(),
                group + 1
            ),
        )
    })?;
    info!(job = %plan.job_id, stage = %st.name, group, tasks = tasks.len(), "running a task group");
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let limit = crate::memory::Budget::detect(None)?.limit;
    let at_once = crate::memory::tasks_at_once(limit, cores);
    // One retry layer: the stage Job's backoff runs a failed group again in a new pod, so a
    // pod does not retry its tasks itself (object_store still retries single requests).
    let mut plan = plan;
    plan.spec.retries = Some(0);
    let shared: Shared = Arc::new((store, plan, Recoveries::default()));
    let outcomes = run_tasks(&shared, stage_id, tasks, at_once, &|_| {}).await?;
    let mut report = TaskReport {
        tasks: outcomes.len() as u32,
        seconds: started.elapsed().as_secs_f64(),
        ..TaskReport::default()
    };
    for o in &outcomes {
        if o.skipped {
            report.skipped += 1;
        }
        report.rows_in += o.marker.rows_in;
        report.bytes_in += o.marker.bytes_in;
        report.rows_out += o.marker.rows_out;
        report.bytes_out += o.marker.bytes_out;
        report.spilled_bytes += o.marker.spilled_bytes;
    }
    Usage::now().fill(&mut report);
    Ok(report)
}

/// The commit pod: names the output files, writes the `_SUCCESS` manifest and removes the
/// scratch prefix. Run again after it succeeded (its pod killed before it could report, its
/// Job deleted), it finds the job's result and reports it, though the plan is gone by then.
pub async fn commit(spec: &DaskJobSpec, job_id: &str, plan_url: &str) -> Result<TaskReport> {
    let started = Instant::now();
    let store = Store::from_storage(storage_of(spec)?)?;
    let main = spec.main_output();
    let manifests = match committed(&store, &main.path, job_id).await? {
        Some(m) => {
            info!(job = %job_id, "the job's result is already committed");
            crate::commit::job::finish_job(&store, spec, job_id).await?;
            vec![m]
        }
        None => {
            let (store, plan) = load_plan(spec, plan_url).await?;
            let recoveries = Recoveries::default();
            let lineage = Lineage {
                store: &store,
                plan: &plan,
                recoveries: &recoveries,
            };
            commit_all(&store, &plan, &lineage)
                .await?
                .into_iter()
                .map(|(_, m)| m)
                .collect()
        }
    };
    let outputs: Vec<String> = spec
        .outputs()
        .iter()
        .map(|o| format!("{}/{}", store.url, manifest_path(&o.output.path)))
        .collect();
    Recorder::new(&store, spec, job_id)
        .ended(job_id, JobOutcome::Succeeded, None, outputs)
        .await;
    let mut report = TaskReport {
        rows_out: manifests.iter().map(|m| m.rows).sum(),
        bytes_out: manifests
            .iter()
            .flat_map(|m| &m.files)
            .map(|f| f.bytes)
            .sum(),
        seconds: started.elapsed().as_secs_f64(),
        output: Some(format!("{}/{}", store.url, manifest_path(&main.path))),
        ..TaskReport::default()
    };
    let outputs = spec.outputs();
    if outputs.len() > 1 {
        report.outputs = outputs
            .iter()
            .map(|o| {
                let url = format!("{}/{}", store.url, manifest_path(&o.output.path));
                format!("{}: {url}", o.name)
            })
            .collect();
    }
    Usage::now().fill(&mut report);
    Ok(report)
}

/// The cleanup pod of a failed or deleted job: finishes or undoes its commit if one was
/// interrupted ([`abandon_job`]), aborts its unfinished uploads and removes its scratch prefix
/// (plan, shuffle files, markers, uncommitted attempts). A committed output stays.
pub async fn cleanup(spec: &DaskJobSpec, job_id: &str) -> Result<TaskReport> {
    let started = Instant::now();
    let store = Store::from_storage(storage_of(spec)?)?;
    let scratch = spec.scratch_prefix(job_id);
    let plan_path = format!("{scratch}/plan.json");
    let plan = match store.get_opt(&plan_path).await? {
        Some(body) => Some(parse_plan(&body, &plan_path)?),
        None => None,
    };
    let recoveries = Recoveries::default();
    let lineage = plan.as_ref().map(|plan| Lineage {
        store: &store,
        plan,
        recoveries: &recoveries,
    });
    let with_plan = plan
        .as_ref()
        .zip(lineage.as_ref())
        .map(|(p, l)| (p, l as &dyn crate::lineage::Recover));
    let done = abandon_job(&store, spec, job_id, with_plan).await?;
    info!(job = %job_id, scratch = %scratch, ?done, "cleaned up");
    let recorder = Recorder::new(&store, spec, job_id);
    if done.was_committed {
        recorder
            .ended(job_id, JobOutcome::Succeeded, None, Vec::new())
            .await;
    } else {
        let why = std::env::var(FAILURE_ENV)
            .ok()
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "the job was deleted before it succeeded".into());
        recorder
            .ended(job_id, JobOutcome::Failed, Some(why), Vec::new())
            .await;
    }
    let mut report = TaskReport {
        seconds: started.elapsed().as_secs_f64(),
        ..TaskReport::default()
    };
    Usage::now().fill(&mut report);
    Ok(report)
}
