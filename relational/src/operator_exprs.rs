//! The task-side expression rewrites (exact decimal arithmetic, string comparisons view by
//! view, lean `AND`/`OR`) change expressions inside operators and leave the operators' schemas
//! and results as they were; these rebuild a filter or a projection around the rewritten
//! expressions.

use std::sync::Arc;

use datafusion::arrow::datatypes::Schema;
use datafusion::common::Result;
use datafusion::common::tree_node::Transformed;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::projection::ProjectionExpr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::filter::{FilterExec, FilterExecBuilder};
use datafusion::physical_plan::projection::ProjectionExec;

/// A rewrite of an expression over its operator's input `schema`.
pub type Rewrite =
    fn(&Arc<dyn PhysicalExpr>, &Schema) -> Result<Transformed<Arc<dyn PhysicalExpr>>>;

/// `f` with `predicate` in place of its own: the same input, projection, selectivity, batch
/// size and limit.
pub fn with_predicate(f: &FilterExec, predicate: Arc<dyn PhysicalExpr>) -> Result<FilterExec> {
    FilterExecBuilder::new(predicate, Arc::clone(f.input()))
        .with_default_selectivity(f.default_selectivity())
        .with_batch_size(f.batch_size())
        .with_fetch(f.fetch())
        .apply_projection_by_ref(f.projection().as_ref())?
        .build()
}

/// `f` with its predicate rewritten, or `None` if `rewrite` changed nothing.
pub fn filter_rewritten(
    f: &FilterExec,
    rewrite: Rewrite,
) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let t = rewrite(f.predicate(), &f.input().schema())?;
    if !t.transformed {
        return Ok(None);
    }
    Ok(Some(Arc::new(with_predicate(f, t.data)?)))
}

/// `p` with its expressions rewritten, or `None` if `rewrite` changed none.
pub fn projection_rewritten(
    p: &ProjectionExec,
    rewrite: Rewrite,
) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let schema = p.input().schema();
    let mut changed = false;
    let mut exprs = Vec::with_capacity(p.expr().len());
    for e in p.expr() {
        let t = rewrite(&e.expr, &schema)?;
        changed |= t.transformed;
        exprs.push(ProjectionExpr {
            expr: t.data,
            alias: e.alias.clone(),
        });
    }
    if !changed {
        return Ok(None);
    }
    Ok(Some(Arc::new(ProjectionExec::try_new(
        exprs,
        Arc::clone(p.input()),
    )?)))
}

/// `rewritten` as a tree node's change: `node` itself when it is `None`.
pub fn changed(
    node: Arc<dyn ExecutionPlan>,
    rewritten: Option<Arc<dyn ExecutionPlan>>,
) -> Transformed<Arc<dyn ExecutionPlan>> {
    match rewritten {
        Some(plan) => Transformed::yes(plan),
        None => Transformed::no(node),
    }
}
