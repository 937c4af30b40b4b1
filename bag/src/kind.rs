//! The bag job kind: listing the source, running a task, and the parts of the result (whose
//! Parquet files the commit rewrites to one schema, see [`crate::unify`]).

use async_trait::async_trait;
use tracing::info;

use kask_api::{DaskJobSpec, Format};
use kask_core::kind::{JobIds, JobKind, TaskRun};
use kask_core::marker::{TaskMarker, latest_markers};
use kask_core::parts::OutputParts;
use kask_core::plan::{Plan, Target};
use kask_core::store::Store;
use kask_core::{Error, Result};

/// Bag jobs: steps over JSON records or text lines.
pub struct Bag;

#[async_trait]
impl JobKind for Bag {
    fn name(&self) -> &'static str {
        "bag"
    }

    fn runs(&self, spec: &DaskJobSpec) -> bool {
        spec.bag.is_some()
    }

    async fn plan(&self, store: &Store, spec: &DaskJobSpec, ids: &dyn JobIds) -> Result<Plan> {
        let bag = spec
            .bag
            .as_ref()
            .ok_or_else(|| Error::internal("a bag plan for a job of another kind"))?;
        let (source, listed) = crate::planner::list_source(store, bag).await?;
        info!(files = listed.files.len(), "listed the inputs");
        let fingerprint: Vec<String> = listed
            .files
            .iter()
            .map(|f| format!("{}:{}:{}", f.path, f.size, f.version))
            .collect();
        let id = ids.id(store, &fingerprint).await?;
        let pool = kask_core::memory::pool_limit(&store.runtime);
        crate::planner::plan(&id, spec, &source, &listed, pool)
    }

    async fn execute(&self, run: &TaskRun<'_>) -> Result<TaskMarker> {
        crate::task::execute(
            run.store,
            run.plan,
            run.stage,
            run.task,
            run.dir,
            run.lineage,
        )
        .await
    }

    /// The last stage's files; Parquet parts rewritten to one schema when records differed
    /// from task to task; and the records the first stage skipped as bad.
    async fn output_parts(
        &self,
        store: &Store,
        plan: &Plan,
        target: &Target,
        markers: &[TaskMarker],
    ) -> Result<OutputParts> {
        let mut out = OutputParts::table(plan, target, markers);
        if target.format == Format::Parquet {
            out.schema = crate::unify::unify_parts(store, plan, markers, &mut out.parts).await?;
        }
        out.skipped_records = match plan.stages.first() {
            Some(first) if first.id == target.stage => markers.iter().map(|m| m.skipped).sum(),
            Some(first) => latest_markers(store, plan, first.id)
                .await?
                .iter()
                .map(|m| m.skipped)
                .sum(),
            None => 0,
        };
        Ok(out)
    }
}
