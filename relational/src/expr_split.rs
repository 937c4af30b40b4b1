//! Aggregate and window calls inside a step's SQL expression. A plan node of their own
//! computes them (an aggregation, a window); the expression around them then reads their
//! results back as columns, as DataFusion's SQL planner does for a `SELECT` list.

use datafusion::common::Column;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::logical_expr::utils::{find_aggregate_exprs, find_window_exprs};
use datafusion::logical_expr::{Expr, LogicalPlanBuilder};

use kask_core::error::{Error, Result, df_message};

/// The function of the first aggregate call of `expr` that is not inside a window (`OVER`),
/// as `name(…)`.
pub fn aggregate_in(expr: &Expr) -> Option<String> {
    find_aggregate_exprs(std::iter::once(expr))
        .first()
        .map(call_name)
}

/// The function of the first window call of `expr`, as `name(…)`.
pub fn window_in(expr: &Expr) -> Option<String> {
    find_window_exprs(std::iter::once(expr))
        .first()
        .map(call_name)
}

fn call_name(call: &Expr) -> String {
    match call {
        Expr::AggregateFunction(a) => format!("{}(…)", a.func.name()),
        Expr::WindowFunction(w) => format!("{}(…)", w.fun.name()),
        other => other.schema_name().to_string(),
    }
}

/// Refuses an aggregate call in a row-wise step's expression: each row needs a value.
pub fn refuse_aggregates(expr: &Expr, sql: &str, at: &str) -> Result<()> {
    match aggregate_in(expr) {
        Some(call) => Err(Error::spec(
            at,
            format!(
                "{call} in {sql:?} is an aggregate, one value for many rows: use it in a groupby's \
                 `expressions`, or give it a window, e.g. `... OVER (PARTITION BY key)`, for each \
                 row's value"
            ),
        )),
        None => Ok(()),
    }
}

/// The window calls of `exprs` computed as columns beside the input's, and `exprs` reading
/// them. Inputs without window calls come back as they were.
pub fn with_windows(
    lp: LogicalPlanBuilder,
    exprs: Vec<Expr>,
    at: &str,
) -> Result<(LogicalPlanBuilder, Vec<Expr>)> {
    let windows = find_window_exprs(&exprs);
    if windows.is_empty() {
        return Ok((lp, exprs));
    }
    let fail = |e: datafusion::error::DataFusionError| Error::spec(at, df_message(&e));
    let plan = lp.build().map_err(fail)?;
    let plan = LogicalPlanBuilder::window_plan(plan, windows.clone()).map_err(fail)?;
    let exprs = exprs
        .into_iter()
        .map(|e| read_back(e, &windows))
        .collect::<Result<Vec<_>>>()?;
    Ok((LogicalPlanBuilder::from(plan), exprs))
}

/// `expr` with every call in `computed` replaced by the column that holds its result.
pub fn read_back(expr: Expr, computed: &[Expr]) -> Result<Expr> {
    expr.transform_down(|e| {
        Ok(if computed.contains(&e) {
            Transformed::yes(Expr::Column(Column::from_name(e.schema_name().to_string())))
        } else {
            Transformed::no(e)
        })
    })
    .map(|t| t.data)
    .map_err(|e| Error::internal(format!("rewriting an expression: {e}")))
}
