//! Plans an array job: opens the inputs, checks the expression against their metadata, and
//! cuts it into stages (see the module above for the stage kinds).

use std::collections::BTreeMap;

use super::chunks::{self, derived, grid, grow};
use super::eval::{children, preorder};
use super::expr::{self, ArrayInfo, Expr, Kind};
use super::zarr::{self, ArrayMeta};
use super::{ArrayPlan, ArrayStage};
use kask_api::{ArrayJob, DaskJobSpec};
use kask_core::error::{Error, Result};
use kask_core::plan::{PLAN_VERSION, Plan, PlanSchema, Sink, Stage, StageSource, to_detail};
use kask_core::store::Store;

/// The most elements one task's block holds (32 MiB of float64), less when `targetTaskBytes`
/// asks for smaller tasks.
fn target_elements(spec: &DaskJobSpec) -> u64 {
    (spec.target_task_bytes().min(32 << 20) / 8).max(1)
}

/// Opens and describes every input, failing on a missing chunk; also returns what identifies
/// the inputs' contents (for a local job's id).
pub async fn open_inputs(
    store: &Store,
    job: &ArrayJob,
) -> Result<(BTreeMap<String, ArrayMeta>, Vec<String>)> {
    let mut metas = BTreeMap::new();
    let mut fingerprint = Vec::new();
    for (name, input) in &job.inputs {
        let (array, meta) =
            zarr::open_input(store, name, &input.path, input.missing_chunks).await?;
        zarr::check_chunks(store, name, &array, &meta).await?;
        for (path, size, version) in store.list_versions(&meta.path).await? {
            fingerprint.push(format!("{path}:{size}:{version}"));
        }
        metas.insert(name.clone(), meta);
    }
    Ok((metas, fingerprint))
}

/// Parses and checks the expression against the inputs.
pub fn check_expr(job: &ArrayJob, inputs: &BTreeMap<String, ArrayMeta>) -> Result<Expr> {
    let infos = inputs
        .iter()
        .map(|(n, m)| {
            Ok((
                n.clone(),
                ArrayInfo {
                    shape: m.shape.clone(),
                    dtype: m.dtype()?,
                },
            ))
        })
        .collect::<Result<BTreeMap<_, _>>>()?;
    expr::check(&job.expr, &infos).map_err(|e| Error::spec("spec.array.expr", e.render(&job.expr)))
}

/// The plan of an array job whose inputs are opened.
pub fn plan(job_id: &str, spec: &DaskJobSpec, inputs: BTreeMap<String, ArrayMeta>) -> Result<Plan> {
    let job = spec
        .array
        .as_ref()
        .ok_or_else(|| Error::internal("an array plan for a job without spec.array"))?;
    let root = check_expr(job, &inputs)?;
    let out_chunks = match &job.chunks {
        Some(c) if c.len() != root.shape.len() => {
            return Err(Error::spec(
                "spec.array.chunks",
                format!(
                    "has {} lengths but the result has {} dimension{} (shape {:?})",
                    c.len(),
                    root.shape.len(),
                    if root.shape.len() == 1 { "" } else { "s" },
                    root.shape
                ),
            ));
        }
        Some(c) => chunks::clamp(c, &root.shape),
        None => derived(&root, &inputs),
    };
    let array = ArrayPlan {
        inputs,
        shape: root.shape.clone(),
        chunks: out_chunks.clone(),
        dtype: root.dtype.name().to_string(),
    };
    let target = target_elements(spec);
    let order = preorder(&root);
    let mut stages: Vec<(String, ArrayStage, usize)> = Vec::new();
    plan_node(
        &root,
        true,
        &out_chunks,
        &array,
        &order,
        target,
        &mut stages,
    )?;
    if !matches!(root.kind, Kind::Reduce { .. }) {
        let all: Vec<usize> = (0..root.shape.len()).collect();
        let block = grow(&out_chunks, &root.shape, &all, target);
        let g = grid(&root.shape, &block);
        let tasks = chunks::tasks(&g);
        stages.push((
            "blocks".into(),
            ArrayStage::Blocks { block, grid: g },
            tasks,
        ));
    }
    let last = stages.len().saturating_sub(1);
    let stages = stages
        .into_iter()
        .enumerate()
        .map(|(id, (name, st, tasks))| {
            Ok(Stage {
                id,
                name: format!("s{id}-{name}"),
                source: StageSource::Array,
                ops: vec![],
                sink: if id == last {
                    Sink::Output
                } else {
                    Sink::Scratch
                },
                tasks,
                fragments: vec![],
                task_bytes: vec![],
                output_schema: PlanSchema(std::sync::Arc::new(
                    datafusion::arrow::datatypes::Schema::empty(),
                )),
                detail: to_detail(&st)?,
                feeds: vec![],
            })
        })
        .collect::<Result<_>>()?;
    Ok(Plan {
        version: PLAN_VERSION,
        job_id: job_id.to_string(),
        job_name: String::new(),
        spec: spec.clone(),
        inputs: BTreeMap::new(),
        stages,
        kind: "array".into(),
        detail: to_detail(&array)?,
        output_stages: vec![],
    })
}

/// The operand axes a reduction keeps, in order.
pub fn kept_axes(ndim: usize, axes: &[usize]) -> Vec<usize> {
    (0..ndim).filter(|a| !axes.contains(a)).collect()
}

/// The result axis of kept operand axis `i`.
pub fn result_axis(i: usize, axes: &[usize], keepdims: bool) -> usize {
    if keepdims {
        i
    } else {
        i - axes.iter().filter(|&&a| a < i).count()
    }
}

fn plan_node(
    e: &Expr,
    is_root: bool,
    out_chunks: &[u64],
    array: &ArrayPlan,
    order: &[&Expr],
    target: u64,
    stages: &mut Vec<(String, ArrayStage, usize)>,
) -> Result<()> {
    for c in children(e) {
        plan_node(c, false, out_chunks, array, order, target, stages)?;
    }
    let Kind::Reduce {
        op,
        arg,
        axes,
        keepdims,
        ..
    } = &e.kind
    else {
        return Ok(());
    };
    let node = order
        .iter()
        .position(|n| std::ptr::eq(*n, e))
        .ok_or_else(|| Error::internal("a reduction outside the expression"))?;
    let result_chunks = if is_root {
        out_chunks.to_vec()
    } else {
        derived(e, &array.inputs)
    };
    let arg_chunks = derived(arg, &array.inputs);
    let reduced_chunk: u64 = axes.iter().map(|&a| arg_chunks[a]).product::<u64>().max(1);
    let result_order: Vec<usize> = (0..e.shape.len()).collect();
    let combine_block = grow(
        &result_chunks,
        &e.shape,
        &result_order,
        (target / reduced_chunk).max(1),
    );
    let mut partial_block = arg_chunks.clone();
    for i in kept_axes(arg.shape.len(), axes) {
        partial_block[i] = combine_block[result_axis(i, axes, *keepdims)];
    }
    let partial_block = grow(&partial_block, &arg.shape, axes, target);
    let partial_grid = grid(&arg.shape, &partial_block);
    let name = format!("{op:?}").to_lowercase();
    let partials = stages.len();
    stages.push((
        format!("partials-{name}"),
        ArrayStage::Partials {
            node,
            block: partial_block,
            grid: partial_grid.clone(),
        },
        chunks::tasks(&partial_grid),
    ));
    let combine_grid = grid(&e.shape, &combine_block);
    stages.push((
        format!("combine-{name}"),
        ArrayStage::Combine {
            node,
            partials,
            block: combine_block,
            grid: combine_grid.clone(),
            chunks: result_chunks,
            output: is_root,
        },
        chunks::tasks(&combine_grid),
    ));
    Ok(())
}
