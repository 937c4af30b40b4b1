//! A `dataframe` pipeline as one DataFusion logical plan, which the same distributed planner
//! as an SQL query cuts into stages. The steps keep pandas' semantics: missing keys match in
//! merges, groups with a missing key are dropped (`dropna`), `sum` of nothing is 0, `first` and
//! `last` skip missing values, a median of integers is a float, sorts put missing values last,
//! and `head` without a sort takes the first rows in file order.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::TableReference;
use datafusion::datasource::provider_as_source;
use datafusion::functions::expr_fn::coalesce;
use datafusion::functions_aggregate::{
    average, count, first_last, median, min_max, stddev, sum, variance,
};
use datafusion::logical_expr::expr::NullTreatment;
use datafusion::logical_expr::type_coercion::functions::fields_with_udf;
use datafusion::logical_expr::utils::find_aggregate_exprs;
use datafusion::logical_expr::{
    AggregateUDF, Expr, ExprFunctionExt, LogicalPlan, LogicalPlanBuilder, SortExpr, cast, lit,
};
use datafusion::prelude::SessionContext;

use crate::expr_split;
use crate::merge::join;
use crate::reshape;
use crate::steps::{self, column, names};
use crate::tables::ScanTable;
use kask_api::{Agg, DataframeJob, Distinct, GroupBy, NamedPipeline, Sort, StepRef};
use kask_core::error::df_message;
use kask_core::error::{Error, Result};
use kask_core::plan::Plan;
use kask_core::store::Store;

/// A named pipeline's steps as one logical plan, over the job's inputs scanned with one
/// partition per task and the pipelines before it (`before`: inlined, or the scan of a
/// shared one's stage).
pub fn logical(
    ctx: &SessionContext,
    store: &Store,
    plan: &Plan,
    pipeline: &NamedPipeline<'_>,
    before: &HashMap<String, LogicalPlan>,
) -> Result<LogicalPlan> {
    let field = pipeline.field.as_str();
    let step = |i: usize| {
        pipeline
            .steps
            .get(i)
            .and_then(|s| s.as_ref())
            .ok_or_else(|| Error::internal(format!("{field}[{i}] was not validated")))
    };
    let source = match step(0)? {
        StepRef::Source(s) => s,
        _ => {
            return Err(Error::spec(
                format!("{field}[0]"),
                "the first step must be `source: <input>`",
            ));
        }
    };
    let mut lp = table(store, plan, source, before)?;
    for i in 1..pipeline.steps.len() {
        let at = format!("{field}[{i}]");
        let fail = |e: datafusion::error::DataFusionError| Error::spec(&at, df_message(&e));
        lp = match step(i)? {
            StepRef::Source(_) => {
                return Err(Error::spec(at, "only the first step can be a source"));
            }
            row @ (StepRef::Filter(_)
            | StepRef::Select(_)
            | StepRef::Drop(_)
            | StepRef::Rename(_)
            | StepRef::Assign(_)) => steps::apply(ctx, lp, row, &at)?,
            StepRef::Merge(m) => {
                let right = table(store, plan, &m.right, before)?
                    .build()
                    .map_err(fail)?;
                join(lp, right, m, &format!("{at}.merge"))?
            }
            StepRef::GroupBy(g) => groupby(ctx, lp, g, &format!("{at}.groupby"))?,
            StepRef::Distinct(d) => distinct(lp, d, &format!("{at}.distinct"))?,
            StepRef::Sort(s) => sort(lp, s, &at)?,
            StepRef::Concat(names) => {
                let mut others = Vec::with_capacity(names.len());
                for name in names.iter() {
                    others.push((name.as_str(), table(store, plan, name, before)?));
                }
                reshape::concat(lp, others, &at)?
            }
            StepRef::Melt(m) => reshape::melt(lp, m, &format!("{at}.melt"))?,
            StepRef::Explode(c) => reshape::explode(lp, c, &format!("{at}.explode"))?,
            StepRef::Window(w) => {
                let columns = super::window_step::expressions(w);
                steps::apply(ctx, lp, StepRef::Assign(&columns), &format!("{at}.window"))?
            }
            StepRef::Head(n) => lp
                .limit(0, Some(usize::try_from(n).unwrap_or(usize::MAX)))
                .map_err(fail)?,
        };
    }
    lp.build().map_err(|e| Error::spec(field, df_message(&e)))
}

/// What `source` or `right` names: an earlier pipeline, or an input.
fn table(
    store: &Store,
    plan: &Plan,
    name: &str,
    before: &HashMap<String, LogicalPlan>,
) -> Result<LogicalPlanBuilder> {
    match before.get(name) {
        Some(lp) => Ok(LogicalPlanBuilder::from(lp.clone())),
        None => scan(store, plan, name),
    }
}

/// The pipelines that two or more outputs use, directly or through other pipelines (an
/// output uses itself): each is computed once, in stages of its own.
pub fn shared(df: &DataframeJob) -> BTreeSet<String> {
    let pipelines = df.pipelines();
    let uses = |steps: &[kask_api::Step]| -> Vec<String> {
        steps
            .iter()
            .filter_map(|s| match s.as_ref()? {
                StepRef::Source(n) => Some(vec![n.to_string()]),
                StepRef::Merge(m) => Some(vec![m.right.clone()]),
                StepRef::Concat(names) => Some(names.to_vec()),
                _ => None,
            })
            .flatten()
            .filter(|n| pipelines.iter().any(|p| &p.name == n))
            .collect()
    };
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for out in pipelines.iter().filter(|p| p.is_output) {
        let mut reached = BTreeSet::new();
        let mut todo = vec![out.name.clone()];
        while let Some(n) = todo.pop() {
            if reached.insert(n.clone())
                && let Some(p) = pipelines.iter().find(|p| p.name == n)
            {
                todo.extend(uses(p.steps));
            }
        }
        for n in reached {
            *count.entry(n).or_default() += 1;
        }
    }
    count
        .into_iter()
        .filter(|(_, c)| *c >= 2)
        .map(|(n, _)| n)
        .collect()
}

/// Input `name` with one partition per task, its columns qualified by the input's name.
fn scan(store: &Store, plan: &Plan, name: &str) -> Result<LogicalPlanBuilder> {
    let input = plan
        .inputs
        .get(name)
        .ok_or_else(|| Error::internal(format!("input {name:?} was not listed")))?;
    let sql = crate::SqlPlan::of(plan)?;
    let tasks = sql
        .tables
        .get(name)
        .ok_or_else(|| Error::internal(format!("input {name:?} was not cut into tasks")))?;
    let table = ScanTable::grouped(store, input, tasks)?;
    LogicalPlanBuilder::scan(
        TableReference::bare(name),
        provider_as_source(Arc::new(table)),
        None,
    )
    .map_err(|e| Error::internal(format!("scanning input {name:?}: {e}")))
}

fn sort(lp: LogicalPlanBuilder, s: &Sort, at: &str) -> Result<LogicalPlanBuilder> {
    let exprs =
        s.by.iter()
            .zip(s.descending_per_key())
            .enumerate()
            .map(|(i, (c, desc))| {
                // pandas puts missing values last in either direction.
                Ok(SortExpr::new(
                    column(lp.schema(), c, &format!("{at}.sort.by[{i}]"))?,
                    !desc,
                    false,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
    lp.sort(exprs).map_err(|e| Error::spec(at, df_message(&e)))
}

fn udaf(a: Agg) -> Arc<AggregateUDF> {
    match a {
        Agg::Count | Agg::Nunique => count::count_udaf(),
        Agg::Sum => sum::sum_udaf(),
        Agg::Mean => average::avg_udaf(),
        Agg::Min => min_max::min_udaf(),
        Agg::Max => min_max::max_udaf(),
        Agg::Var => variance::var_samp_udaf(),
        Agg::Std => stddev::stddev_udaf(),
        Agg::First => first_last::first_value_udaf(),
        Agg::Last => first_last::last_value_udaf(),
        Agg::Median => median::median_udaf(),
    }
}

fn is_integer_or_decimal(dt: &DataType) -> bool {
    dt.is_integer() || matches!(dt, DataType::Decimal128(..) | DataType::Decimal256(..))
}

/// Drops the rows whose key has a null (pandas' `dropna`).
fn drop_null_keys(lp: LogicalPlanBuilder, keys: &[Expr], at: &str) -> Result<LogicalPlanBuilder> {
    match keys
        .iter()
        .map(|k| k.clone().is_not_null())
        .reduce(Expr::and)
    {
        Some(not_null) => lp
            .filter(not_null)
            .map_err(|e| Error::spec(at, df_message(&e))),
        None => Ok(lp),
    }
}

/// A groupby: keys first, then `<column>_<agg>` for every aggregation, in the spec's order,
/// then the named expressions.
fn groupby(
    ctx: &SessionContext,
    lp: LogicalPlanBuilder,
    g: &GroupBy,
    at: &str,
) -> Result<LogicalPlanBuilder> {
    let fail = |e: datafusion::error::DataFusionError| Error::spec(at, df_message(&e));
    let schema = lp.schema().clone();
    let keys =
        g.by.iter()
            .enumerate()
            .map(|(i, k)| column(&schema, k, &format!("{at}.by[{i}]")))
            .collect::<Result<Vec<_>>>()?;
    let lp = if g.dropna {
        drop_null_keys(lp, &keys, at)?
    } else {
        lp
    };
    let mut aggs = Vec::new();
    let mut outputs = g.by.clone();
    let mut sums = Vec::new();
    for (col, list) in &g.aggs {
        let field_at = format!("{at}.aggs.{col}");
        let arg = column(&schema, col, &field_at)?;
        let (_, field) = schema
            .qualified_field_with_unqualified_name(col)
            .map_err(fail)?;
        for &a in list {
            let alias = format!("{col}_{}", a.name());
            let mut dt = field.data_type().clone();
            let mut e = arg.clone();
            if a == Agg::Median && is_integer_or_decimal(&dt) {
                // pandas' median of integers is a float.
                dt = DataType::Float64;
                e = cast(e, DataType::Float64);
            }
            // Checked here so that the error names the column and the aggregation; the
            // planner would only say that no signature matches.
            let f = udaf(a);
            fields_with_udf(&[Arc::new(Field::new("arg", dt.clone(), true))], f.as_ref()).map_err(
                |err| {
                    Error::spec(
                        &field_at,
                        format!(
                            "cannot compute {alias} of {dt} column {col:?}: {}",
                            df_message(&err)
                        ),
                    )
                },
            )?;
            let call = f.call(vec![e]);
            let call = match a {
                Agg::Nunique => call.distinct().build().map_err(fail)?,
                Agg::First | Agg::Last => call
                    .null_treatment(NullTreatment::IgnoreNulls)
                    .build()
                    .map_err(fail)?,
                _ => call,
            };
            if a == Agg::Sum {
                sums.push(alias.clone());
            }
            outputs.push(alias.clone());
            aggs.push(call.alias(alias));
        }
    }
    let (calls, expressions) = aggregate_expressions(ctx, &schema, g, at)?;
    aggs.extend(calls);
    let grouped = lp.aggregate(keys, aggs).map_err(fail)?;
    let schema = grouped.schema().clone();
    let mut exprs = outputs
        .iter()
        .map(|name| {
            let e = column(&schema, name, at)?;
            Ok(if sums.contains(name) {
                // pandas' sum of a group whose values are all missing is 0.
                coalesce(vec![e, lit(0)]).alias(name)
            } else {
                e.alias(name)
            })
        })
        .collect::<Result<Vec<_>>>()?;
    exprs.extend(expressions);
    grouped.project(exprs).map_err(fail)
}

/// A groupby's named expressions: the aggregate calls they hold (each once), and each
/// expression reading those calls' results, named.
fn aggregate_expressions(
    ctx: &SessionContext,
    schema: &datafusion::common::DFSchema,
    g: &GroupBy,
    at: &str,
) -> Result<(Vec<Expr>, Vec<Expr>)> {
    let mut parsed = Vec::with_capacity(g.expressions.len());
    for (name, sql) in &g.expressions {
        let field = format!("{at}.expressions.{name}");
        let expr = steps::parse_expr(ctx, schema, sql, &field)?;
        if let Some(call) = expr_split::window_in(&expr) {
            return Err(Error::spec(
                field,
                format!(
                    "{call} in {sql:?} is a window function, a value per row: use it in an \
                     `assign` step"
                ),
            ));
        }
        parsed.push((name, sql, field, expr));
    }
    let calls = find_aggregate_exprs(parsed.iter().map(|(_, _, _, e)| e));
    let mut named = Vec::with_capacity(parsed.len());
    for (name, sql, field, expr) in parsed {
        let read = expr_split::read_back(expr, &calls)?;
        // What is left outside the aggregate calls is one value per group only for the keys.
        let stray = read
            .column_refs()
            .into_iter()
            .find(|c| {
                !g.by.contains(&c.name)
                    && !calls.iter().any(|a| a.schema_name().to_string() == c.name)
            })
            .map(|c| c.name.clone());
        if let Some(col) = stray {
            return Err(Error::spec(
                field,
                format!(
                    "column {col:?} is used outside an aggregate function in {sql:?}: aggregate \
                     it (e.g. sum({col})) or group by it (keys: {})",
                    if g.by.is_empty() {
                        "none".to_string()
                    } else {
                        g.by.join(", ")
                    }
                ),
            ));
        }
        named.push(read.alias(name));
    }
    Ok((calls, named))
}

/// `drop_duplicates`: one row per key (the subset, or every column), the first that comes,
/// missing values included; columns in the input's order.
fn distinct(lp: LogicalPlanBuilder, d: &Distinct, at: &str) -> Result<LogicalPlanBuilder> {
    let fail = |e: datafusion::error::DataFusionError| Error::spec(at, df_message(&e));
    let schema = lp.schema().clone();
    let all = names(&schema);
    let subset = d.subset.clone().unwrap_or_else(|| all.clone());
    let keys = subset
        .iter()
        .enumerate()
        .map(|(i, k)| column(&schema, k, &format!("{at}.subset[{i}]")))
        .collect::<Result<Vec<_>>>()?;
    let firsts = all
        .iter()
        .filter(|c| !subset.contains(c))
        .map(|c| {
            Ok(first_last::first_value_udaf()
                .call(vec![column(&schema, c, at)?])
                .alias(c))
        })
        .collect::<Result<Vec<_>>>()?;
    let grouped = lp.aggregate(keys, firsts).map_err(fail)?;
    let schema = grouped.schema().clone();
    let exprs = all
        .iter()
        .map(|c| Ok(column(&schema, c, at)?.alias(c)))
        .collect::<Result<Vec<_>>>()?;
    grouped.project(exprs).map_err(fail)
}
