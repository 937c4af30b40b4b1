//! Groupby and distinct on DataFusion's `AggregateExec`: partial states on the map side,
//! final aggregation over the shuffled states on the reduce side, or both in one task.
//!
//! pandas semantics: `dropna` drops groups with a null key, aggregations skip nulls, `count`
//! counts non-null values, `sum` of a group of nulls is 0, `first`/`last` take the first/last
//! non-null value, `var`/`std` are sample statistics (ddof = 1), `median` is a float.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, SchemaRef};
use datafusion::functions::expr_fn::coalesce;
use datafusion::functions_aggregate::{
    average, count, first_last, median, min_max, stddev, sum, variance,
};
use datafusion::logical_expr::type_coercion::functions::fields_with_udf;
use datafusion::logical_expr::{AggregateUDF, Expr, LogicalPlanBuilder, cast, lit};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::aggregate::{AggregateExprBuilder, AggregateFunctionExpr};
use datafusion::physical_expr::expressions::Column as PhysicalColumn;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode, PhysicalGroupBy};
use datafusion::prelude::SessionContext;

use super::steps::{column, names};
use super::tables::ExecTable;
use crate::error::{Error, Result};
use kask_api::{Agg, Distinct, GroupBy};

/// What one aggregated output column computes.
#[derive(Clone, Debug)]
enum Func {
    /// A pandas aggregation.
    Agg(Agg),
    /// The first value, nulls included (distinct's "keep first row").
    FirstRow,
}

#[derive(Clone, Debug)]
struct AggCol {
    column: String,
    func: Func,
    alias: String,
}

/// A grouping: key columns, aggregated columns, and the output's column order.
#[derive(Clone, Debug)]
pub struct GroupSpec {
    keys: Vec<String>,
    aggs: Vec<AggCol>,
    dropna: bool,
    /// Output columns in order (distinct keeps the input's order).
    output: Vec<String>,
    at: String,
}

impl GroupSpec {
    /// A groupby step.
    pub fn groupby(g: &GroupBy, at: &str) -> Self {
        let aggs: Vec<AggCol> = g
            .aggs
            .iter()
            .flat_map(|(col, aggs)| {
                aggs.iter().map(move |a| AggCol {
                    column: col.clone(),
                    func: Func::Agg(*a),
                    alias: format!("{col}_{}", a.name()),
                })
            })
            .collect();
        let output =
            g.by.iter()
                .cloned()
                .chain(aggs.iter().map(|a| a.alias.clone()))
                .collect();
        GroupSpec {
            keys: g.by.clone(),
            aggs,
            dropna: g.dropna,
            output,
            at: format!("{at}.groupby"),
        }
    }

    /// A distinct step over a table with `columns`.
    pub fn distinct(d: &Distinct, columns: &[String], at: &str) -> Self {
        let keys = d.subset.clone().unwrap_or_else(|| columns.to_vec());
        let aggs = columns
            .iter()
            .filter(|c| !keys.contains(c))
            .map(|c| AggCol {
                column: c.clone(),
                func: Func::FirstRow,
                alias: c.clone(),
            })
            .collect();
        GroupSpec {
            keys,
            aggs,
            dropna: false,
            output: columns.to_vec(),
            at: format!("{at}.distinct"),
        }
    }

    /// The key columns, which lead the partial states and choose the shuffle partition.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    fn fail(&self, e: datafusion::error::DataFusionError) -> Error {
        Error::spec(&self.at, super::df_message(&e))
    }
}

fn udaf(f: &Func) -> Arc<AggregateUDF> {
    match f {
        Func::Agg(Agg::Count) | Func::Agg(Agg::Nunique) => count::count_udaf(),
        Func::Agg(Agg::Sum) => sum::sum_udaf(),
        Func::Agg(Agg::Mean) => average::avg_udaf(),
        Func::Agg(Agg::Min) => min_max::min_udaf(),
        Func::Agg(Agg::Max) => min_max::max_udaf(),
        Func::Agg(Agg::Var) => variance::var_samp_udaf(),
        Func::Agg(Agg::Std) => stddev::stddev_udaf(),
        Func::Agg(Agg::First) | Func::FirstRow => first_last::first_value_udaf(),
        Func::Agg(Agg::Last) => first_last::last_value_udaf(),
        Func::Agg(Agg::Median) => median::median_udaf(),
    }
}

fn is_integer_or_decimal(dt: &DataType) -> bool {
    dt.is_integer() || matches!(dt, DataType::Decimal128(..) | DataType::Decimal256(..))
}

/// Filters null keys (dropna) and projects the keys and each aggregation's argument, so the
/// physical aggregation refers to plain columns.
fn prepare(lp: LogicalPlanBuilder, spec: &GroupSpec) -> Result<LogicalPlanBuilder> {
    let schema = lp.schema().clone();
    let mut key_exprs = Vec::new();
    for (i, k) in spec.keys.iter().enumerate() {
        let field = if spec.at.ends_with("distinct") {
            "subset"
        } else {
            "by"
        };
        key_exprs.push(column(&schema, k, &format!("{}.{field}[{i}]", spec.at))?);
    }
    let mut lp = lp;
    if spec.dropna && !key_exprs.is_empty() {
        let not_null = key_exprs
            .iter()
            .map(|k| k.clone().is_not_null())
            .reduce(Expr::and)
            .unwrap_or(lit(true));
        lp = lp.filter(not_null).map_err(|e| spec.fail(e))?;
    }
    let mut exprs: Vec<Expr> = spec
        .keys
        .iter()
        .zip(key_exprs)
        .map(|(k, e)| e.alias(k))
        .collect();
    for (i, a) in spec.aggs.iter().enumerate() {
        let at = format!("{}.aggs.{}", spec.at, a.column);
        let e = column(&schema, &a.column, &at)?;
        let (_, field) = schema
            .qualified_field_with_unqualified_name(&a.column)
            .map_err(|e| spec.fail(e))?;
        let mut dt = field.data_type().clone();
        let mut e = e;
        if matches!(a.func, Func::Agg(Agg::Median)) && is_integer_or_decimal(&dt) {
            // pandas' median of integers is a float.
            dt = DataType::Float64;
            e = cast(e, DataType::Float64);
        }
        // The logical planner would coerce arguments (sum of int32 computes in int64); the
        // physical aggregation we build needs the same casts spelled out.
        let arg = Arc::new(Field::new("arg", dt.clone(), true));
        let coerced = fields_with_udf(&[arg], udaf(&a.func).as_ref()).map_err(|err| {
            Error::spec(
                &at,
                format!(
                    "cannot compute {} of {} column {:?}: {}",
                    a.alias,
                    dt,
                    a.column,
                    super::df_message(&err)
                ),
            )
        })?;
        if let Some(target) = coerced.first().map(|f| f.data_type())
            && *target != dt
        {
            e = cast(e, target.clone());
        }
        exprs.push(e.alias(format!("__arg{i}")));
    }
    lp.project(exprs).map_err(|e| spec.fail(e))
}

/// The physical grouping and aggregate expressions over `input_schema` (the prepared input).
fn physical_parts(
    spec: &GroupSpec,
    input_schema: &SchemaRef,
) -> Result<(PhysicalGroupBy, Vec<Arc<AggregateFunctionExpr>>)> {
    let group_by = PhysicalGroupBy::new_single(
        spec.keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                (
                    Arc::new(PhysicalColumn::new(k, i)) as Arc<dyn PhysicalExpr>,
                    k.clone(),
                )
            })
            .collect(),
    );
    let n = spec.keys.len();
    let aggs = spec
        .aggs
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let arg: Arc<dyn PhysicalExpr> =
                Arc::new(PhysicalColumn::new(&format!("__arg{i}"), n + i));
            let b = AggregateExprBuilder::new(udaf(&a.func), vec![arg])
                .schema(input_schema.clone())
                .alias(&a.alias)
                .with_distinct(matches!(a.func, Func::Agg(Agg::Nunique)))
                .with_ignore_nulls(matches!(
                    a.func,
                    Func::Agg(Agg::First) | Func::Agg(Agg::Last)
                ));
            b.build().map(Arc::new).map_err(|e| {
                Error::spec(
                    format!("{}.aggs.{}", spec.at, a.column),
                    format!("cannot compute {}: {}", a.alias, super::df_message(&e)),
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((group_by, aggs))
}

async fn prepared_input(
    ctx: &SessionContext,
    lp: LogicalPlanBuilder,
    spec: &GroupSpec,
) -> Result<Arc<dyn ExecutionPlan>> {
    let lp = prepare(lp, spec)?.build().map_err(|e| spec.fail(e))?;
    ctx.state()
        .create_physical_plan(&lp)
        .await
        .map_err(|e| spec.fail(e))
}

/// Map side: partial states per group. Returns the plan and the schema of its input, which
/// the reduce side needs to rebuild the same aggregate expressions.
pub async fn partial(
    ctx: &SessionContext,
    lp: LogicalPlanBuilder,
    spec: &GroupSpec,
) -> Result<(Arc<dyn ExecutionPlan>, SchemaRef)> {
    let input = prepared_input(ctx, lp, spec).await?;
    let input_schema = input.schema();
    let (group_by, aggs) = physical_parts(spec, &input_schema)?;
    let filters = vec![None; aggs.len()];
    let exec = AggregateExec::try_new(
        AggregateMode::Partial,
        group_by,
        aggs,
        filters,
        input,
        input_schema.clone(),
    )
    .map_err(|e| spec.fail(e))?;
    Ok((Arc::new(exec), input_schema))
}

/// Reduce side: merges the partial states that `states` yields and finishes the groups.
pub fn final_over(
    spec: &GroupSpec,
    states: Arc<dyn ExecutionPlan>,
    input_schema: &SchemaRef,
) -> Result<LogicalPlanBuilder> {
    let (group_by, aggs) = physical_parts(spec, input_schema)?;
    let filters = vec![None; aggs.len()];
    let exec = AggregateExec::try_new(
        AggregateMode::Final,
        group_by.as_final(),
        aggs,
        filters,
        states,
        input_schema.clone(),
    )
    .map_err(|e| spec.fail(e))?;
    finish(Arc::new(exec), spec)
}

/// A whole aggregation inside one task.
pub async fn complete(
    ctx: &SessionContext,
    lp: LogicalPlanBuilder,
    spec: &GroupSpec,
) -> Result<LogicalPlanBuilder> {
    let input = prepared_input(ctx, lp, spec).await?;
    let input_schema = input.schema();
    let (group_by, aggs) = physical_parts(spec, &input_schema)?;
    let filters = vec![None; aggs.len()];
    let exec = AggregateExec::try_new(
        AggregateMode::Single,
        group_by,
        aggs,
        filters,
        input,
        input_schema.clone(),
    )
    .map_err(|e| spec.fail(e))?;
    finish(Arc::new(exec), spec)
}

/// pandas' finishing touches, and the output column order.
fn finish(exec: Arc<dyn ExecutionPlan>, spec: &GroupSpec) -> Result<LogicalPlanBuilder> {
    let table = datafusion::datasource::provider_as_source(Arc::new(ExecTable::new(exec)));
    let lp = LogicalPlanBuilder::scan("g", table, None).map_err(|e| spec.fail(e))?;
    let schema = lp.schema().clone();
    let exprs = spec
        .output
        .iter()
        .map(|name| {
            let e = column(&schema, name, &spec.at)?;
            let sum = spec
                .aggs
                .iter()
                .any(|a| &a.alias == name && matches!(a.func, Func::Agg(Agg::Sum)));
            Ok(if sum {
                coalesce(vec![e, lit(0)]).alias(name)
            } else {
                e.alias(name)
            })
        })
        .collect::<Result<Vec<_>>>()?;
    lp.project(exprs).map_err(|e| spec.fail(e))
}

/// The columns of a logical plan, for building a distinct over all of them.
pub fn columns_of(lp: &LogicalPlanBuilder) -> Vec<String> {
    names(lp.schema())
}
