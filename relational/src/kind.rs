//! The relational job kind: SQL jobs and `dataframe` pipelines, planned and run through
//! [`crate::planner`] and [`crate::task`]; their results are the last stages' files as written.

use async_trait::async_trait;

use kask_api::DaskJobSpec;
use kask_core::Result;
use kask_core::kind::{JobIds, JobKind, TaskRun};
use kask_core::marker::TaskMarker;
use kask_core::plan::Plan;
use kask_core::store::Store;

/// SQL jobs and `dataframe` pipelines.
pub struct Relational;

#[async_trait]
impl JobKind for Relational {
    fn name(&self) -> &'static str {
        "relational"
    }

    fn runs(&self, spec: &DaskJobSpec) -> bool {
        spec.dataframe.is_some() || spec.sql.is_some()
    }

    async fn plan(&self, store: &Store, spec: &DaskJobSpec, ids: &dyn JobIds) -> Result<Plan> {
        crate::planner::list_and_plan(store, spec, ids).await
    }

    async fn execute(&self, run: &TaskRun<'_>) -> Result<TaskMarker> {
        crate::task::execute(run.store, run.plan, run.stage, run.task, run.dir).await
    }
}
