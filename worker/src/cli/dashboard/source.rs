//! Where the dashboard finds jobs: the DaskJobs of the cluster of the user's kubeconfig (their
//! history read from each job's storage with the user's own credentials), or the one job that
//! `kask run --dashboard` is running here.

use std::sync::{Arc, Mutex};

use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};

use super::super::StorageFlags;
use super::super::cluster::{client, kube_err, phase_name, stalled};
use super::pages::JobRow;
use kask_api::history::history_dir;
use kask_api::{DaskJob, StageStatus, Storage};
use kask_worker::Error;
use kask_worker::plan::Plan;
use kask_worker::runner::Progress;

/// What the dashboard shows a job with: its row, its stages' status, and where its history is.
pub struct Found {
    /// The job's row.
    pub row: JobRow,
    /// Its stages as the cluster reports them (none for a local run).
    pub stages: Vec<StageStatus>,
    /// Its history's storage and folder, once known.
    pub history: Option<(Storage, String)>,
}

/// The DaskJobs of a cluster.
pub struct Cluster {
    client: Client,
    /// One namespace, or all.
    namespace: Option<String>,
    storage: StorageFlags,
}

impl Cluster {
    /// The cluster of the current kubeconfig.
    pub async fn connect(
        namespace: Option<String>,
        storage: StorageFlags,
    ) -> Result<Cluster, Error> {
        Ok(Cluster {
            client: client().await?,
            namespace,
            storage,
        })
    }

    /// What the list says it shows.
    pub fn scope(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("DaskJobs in namespace {ns}"),
            None => "DaskJobs in all namespaces".into(),
        }
    }

    fn api(&self, namespace: Option<&str>) -> Api<DaskJob> {
        match namespace.or(self.namespace.as_deref()) {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        }
    }

    /// Every DaskJob in scope, by namespace and name.
    pub async fn list(&self) -> Result<Vec<JobRow>, Error> {
        let list = self
            .api(None)
            .list(&ListParams::default())
            .await
            .map_err(|e| kube_err("listing daskjobs", e))?;
        let mut rows: Vec<JobRow> = list.items.iter().map(row_of).collect();
        rows.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        Ok(rows)
    }

    /// DaskJob `namespace/name`, and where its history is; `None` when there is no such job.
    pub async fn find(&self, namespace: &str, name: &str) -> Result<Option<Found>, Error> {
        if self.namespace.as_deref().is_some_and(|ns| ns != namespace) {
            return Err(Error::spec(
                "namespace",
                format!("this dashboard shows {} only", self.scope()),
            ));
        }
        let Some(dj) = self
            .api(Some(namespace))
            .get_opt(name)
            .await
            .map_err(|e| kube_err(&format!("reading daskjob {namespace}/{name}"), e))?
        else {
            return Ok(None);
        };
        let history = match (&dj.spec.storage, dj.uid()) {
            (Some(storage), Some(uid)) => Some((
                self.storage.apply(storage.clone()),
                history_dir(&dj.spec.main_output().path, &uid),
            )),
            _ => None,
        };
        Ok(Some(Found {
            row: row_of(&dj),
            stages: dj.status.clone().unwrap_or_default().stages,
            history,
        }))
    }
}

/// A DaskJob's row in the list.
fn row_of(dj: &DaskJob) -> JobRow {
    let status = dj.status.clone().unwrap_or_default();
    // A spec the operator refused has no kind; its row still shows, with its message.
    let kind = kask_worker::kind::of_spec(&dj.spec).map_or("", |k| k.name());
    let stalled = stalled(&status);
    JobRow {
        namespace: dj.namespace().unwrap_or_default(),
        name: dj.name_any(),
        kind: kind.into(),
        phase: phase_name(&status),
        progress: status.progress.clone().unwrap_or_default(),
        started: status.start_time.clone().unwrap_or_default(),
        message: status.message.clone().or(stalled).unwrap_or_default(),
    }
}

/// The job a local run (`kask run --dashboard`) is running, as its planner reports it.
#[derive(Clone, Default)]
pub struct Local {
    state: Arc<Mutex<LocalState>>,
}

#[derive(Default)]
struct LocalState {
    /// The job's name (from the job file until planned).
    name: String,
    kind: String,
    history: Option<(Storage, String)>,
    /// Tasks planned, and done.
    tasks: usize,
    done: usize,
    /// How the run ended, once it has.
    ended: Option<&'static str>,
}

impl Local {
    /// A run of the job named `name`, not planned yet.
    pub fn new(name: &str) -> Local {
        let local = Local::default();
        local.with(|s| s.name = name.to_string());
        local
    }

    fn with<T>(&self, f: impl FnOnce(&mut LocalState) -> T) -> T {
        // A poisoned lock only means a panic elsewhere; the state is still usable.
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// The run has ended, succeeded or not.
    pub fn finish(&self, succeeded: bool) {
        self.with(|s| s.ended = Some(if succeeded { "Succeeded" } else { "Failed" }));
    }

    /// The run's one row.
    pub fn list(&self) -> Vec<JobRow> {
        vec![self.find().row]
    }

    /// The run, and where its history is once planned.
    pub fn find(&self) -> Found {
        self.with(|s| Found {
            row: JobRow {
                namespace: "local".into(),
                name: s.name.clone(),
                kind: s.kind.clone(),
                phase: match (s.ended, &s.history) {
                    (Some(how), _) => how.into(),
                    (None, Some(_)) => "Running".into(),
                    (None, None) => "Planning".into(),
                },
                progress: if s.tasks > 0 {
                    format!("{}/{}", s.done, s.tasks)
                } else {
                    String::new()
                },
                ..JobRow::default()
            },
            stages: Vec::new(),
            history: s.history.clone(),
        })
    }
}

impl Progress for Local {
    fn planned(&self, plan: &Plan) {
        let history = plan
            .spec
            .storage
            .clone()
            .map(|st| (st, history_dir(&plan.spec.main_output().path, &plan.job_id)));
        self.with(|s| {
            if !plan.job_name.is_empty() {
                s.name = plan.job_name.clone();
            }
            s.kind = plan.kind.clone();
            s.tasks = plan.total_tasks();
            s.history = history;
        });
    }

    fn task_finished(
        &self,
        _stage: &kask_worker::plan::Stage,
        _outcome: &kask_worker::task::TaskOutcome,
    ) {
        self.with(|s| s.done += 1);
    }
}

/// Reports a run's progress to two places: the terminal and the dashboard.
pub struct Both<'a>(pub &'a dyn Progress, pub &'a dyn Progress);

impl Progress for Both<'_> {
    fn planned(&self, plan: &Plan) {
        self.0.planned(plan);
        self.1.planned(plan);
    }
    fn stage_started(&self, stage: &kask_worker::plan::Stage) {
        self.0.stage_started(stage);
        self.1.stage_started(stage);
    }
    fn task_finished(
        &self,
        stage: &kask_worker::plan::Stage,
        outcome: &kask_worker::task::TaskOutcome,
    ) {
        self.0.task_finished(stage, outcome);
        self.1.task_finished(stage, outcome);
    }
    fn stage_finished(&self, stage: &kask_worker::plan::Stage) {
        self.0.stage_finished(stage);
        self.1.stage_finished(stage);
    }
}
