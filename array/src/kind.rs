//! The array job kind: opening the inputs, planning, running a task, and the parts of the
//! result (the chunks under their Zarr keys and the array's `zarr.json`).

use async_trait::async_trait;
use bytes::Bytes;
use tracing::info;

use crate::{ArrayPlan, commit, planner, task};
use kask_api::DaskJobSpec;
use kask_core::commit::manifest::{ManifestArray, output_dir};
use kask_core::kind::{JobIds, JobKind, TaskRun};
use kask_core::marker::TaskMarker;
use kask_core::parts::OutputParts;
use kask_core::parts::written;
use kask_core::plan::{Plan, Target};
use kask_core::store::Store;
use kask_core::{Error, Result};

/// Array jobs: a NumPy expression over Zarr arrays.
pub struct Array;

#[async_trait]
impl JobKind for Array {
    fn name(&self) -> &'static str {
        "array"
    }

    fn runs(&self, spec: &DaskJobSpec) -> bool {
        spec.array.is_some()
    }

    async fn plan(&self, store: &Store, spec: &DaskJobSpec, ids: &dyn JobIds) -> Result<Plan> {
        let job = spec
            .array
            .as_ref()
            .ok_or_else(|| Error::internal("an array plan for a job of another kind"))?;
        let (inputs, fingerprint) = planner::open_inputs(store, job).await?;
        info!(arrays = inputs.len(), "opened the inputs");
        let id = ids.id(store, &fingerprint).await?;
        planner::plan(&id, spec, inputs)
    }

    async fn execute(&self, run: &TaskRun<'_>) -> Result<TaskMarker> {
        task::execute(
            run.store,
            run.plan,
            run.stage,
            run.task,
            run.dir,
            run.lineage,
        )
        .await
    }

    /// The chunks under their Zarr keys, and the array's `zarr.json`.
    async fn output_parts(
        &self,
        store: &Store,
        plan: &Plan,
        target: &Target,
        markers: &[TaskMarker],
    ) -> Result<OutputParts> {
        let a = ArrayPlan::of(plan)?;
        let mut parts = commit::parts(plan, markers)?;
        let meta = commit::metadata(store, &output_dir(&target.output.path), &a)?;
        let from = format!("{}/zarr.json", plan.scratch());
        parts.push(written(store, from, "zarr.json".into(), 0, Bytes::from(meta)).await?);
        Ok(OutputParts {
            parts,
            schema: std::sync::Arc::new(datafusion::arrow::datatypes::Schema::empty()),
            array: Some(ManifestArray {
                shape: a.shape,
                chunks: a.chunks,
                dtype: a.dtype,
            }),
            skipped_records: 0,
        })
    }
}
