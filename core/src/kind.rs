//! Job kinds: what a relational, array or bag job does that the core does not.
//!
//! The core runs any plan: it schedules stages of tasks, commits each task with a marker,
//! re-runs tasks whose outputs were lost, and publishes the results exactly once. A job kind
//! turns its spec into such a plan, runs one task of it, and tells the commit which files make
//! up a result. The `kask` binary installs the kinds it carries once at start ([`install`]);
//! a plan records the name of the kind that made it, so a pod runs it with the same kind.

use std::sync::OnceLock;

use async_trait::async_trait;
use kask_api::DaskJobSpec;

use crate::error::{Error, Result};
use crate::lineage::Recover;
use crate::marker::TaskMarker;
use crate::parts::OutputParts;
use crate::plan::{Plan, Target};
use crate::store::Store;

/// One kind of job.
#[async_trait]
pub trait JobKind: Send + Sync {
    /// The name plans record (`relational`, `array`, `bag`).
    fn name(&self) -> &'static str;

    /// Whether `spec` is a job of this kind.
    fn runs(&self, spec: &DaskJobSpec) -> bool;

    /// Lists or opens the inputs and plans the job. `spec` has its storage resolved; `ids`
    /// gives the job's id once the kind knows what identifies its inputs.
    async fn plan(&self, store: &Store, spec: &DaskJobSpec, ids: &dyn JobIds) -> Result<Plan>;

    /// Runs one attempt of a task, writing its files under `task.dir`; returns the marker that
    /// would commit them.
    async fn execute(&self, task: &TaskRun<'_>) -> Result<TaskMarker>;

    /// The files that make up result `target`, from the newest markers of its last stage.
    async fn output_parts(
        &self,
        store: &Store,
        plan: &Plan,
        target: &Target,
        markers: &[TaskMarker],
    ) -> Result<OutputParts> {
        let _ = store;
        Ok(OutputParts::table(plan, target, markers))
    }
}

/// Gives a job its id once its kind knows what identifies the inputs (the local runner's
/// is in `job_id`).
#[async_trait]
pub trait JobIds: Send + Sync {
    /// The job's id, given `inputs`: lines that change when the inputs' contents do (file
    /// paths, sizes and versions).
    async fn id(&self, store: &Store, inputs: &[String]) -> Result<String>;
}

/// One attempt of one task.
pub struct TaskRun<'a> {
    /// The job's store.
    pub store: &'a Store,
    /// The plan.
    pub plan: &'a Plan,
    /// The stage's index.
    pub stage: usize,
    /// The task's index in its stage.
    pub task: usize,
    /// The attempt's own prefix, where its files go.
    pub dir: &'a str,
    /// What re-running an earlier task needs, when this one finds its input lost.
    pub lineage: &'a dyn Recover,
}

static KINDS: OnceLock<Vec<&'static dyn JobKind>> = OnceLock::new();

/// Installs the job kinds this process runs; the first call wins (the binary and tests install
/// the same list).
pub fn install(kinds: Vec<&'static dyn JobKind>) {
    let _ = KINDS.set(kinds);
}

fn installed() -> Result<&'static [&'static dyn JobKind]> {
    KINDS
        .get()
        .map(Vec::as_slice)
        .ok_or_else(|| Error::internal("no job kinds are installed (kask_core::kind::install)"))
}

/// The kind that runs `spec`.
pub fn of_spec(spec: &DaskJobSpec) -> Result<&'static dyn JobKind> {
    installed()?
        .iter()
        .copied()
        .find(|k| k.runs(spec))
        .ok_or_else(|| Error::spec("spec", "one of dataframe, sql, array or bag is required"))
}

/// The kind that made `plan`.
pub fn of_plan(plan: &Plan) -> Result<&'static dyn JobKind> {
    installed()?
        .iter()
        .copied()
        .find(|k| k.name() == plan.kind)
        .ok_or_else(|| {
            Error::internal(format!(
                "a plan of job kind {:?}, which this kask does not run",
                plan.kind
            ))
        })
}
