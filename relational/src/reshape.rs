//! Steps that change the shape of the rows, with pandas' semantics: `concat` (rows of other
//! tables appended), `melt` (columns into rows) and `explode` (list elements into rows).

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Column, NullHandling, ScalarValue, UnnestOptions};
use datafusion::logical_expr::type_coercion::binary::type_union_resolution;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, cast, lit};

use crate::steps::{column, names};
use kask_api::Melt;
use kask_core::error::{Error, Result, df_message};

/// pandas' `concat` of the rows so far with those of `others` (each named for errors):
/// columns by name, in order of first appearance, null where a table lacks one.
pub fn concat(
    lp: LogicalPlanBuilder,
    others: Vec<(&str, LogicalPlanBuilder)>,
    at: &str,
) -> Result<LogicalPlanBuilder> {
    let mut sides = vec![("the rows so far".to_string(), at.to_string(), lp)];
    for (i, (name, b)) in others.into_iter().enumerate() {
        sides.push((format!("{name:?}"), format!("{at}.concat[{i}]"), b));
    }
    // Every column once, in order of first appearance, with the type its values can share.
    let mut columns: Vec<(String, DataType)> = Vec::new();
    for (side, field, b) in &sides {
        for f in b.schema().fields() {
            match columns.iter_mut().find(|(n, _)| n == f.name()) {
                None => columns.push((f.name().clone(), f.data_type().clone())),
                Some((n, t)) => {
                    let shared = type_union_resolution(&[t.clone(), f.data_type().clone()]);
                    *t = shared.ok_or_else(|| {
                        Error::spec(
                            field,
                            format!(
                                "column {n:?} is {t} before but {} in {side}; the rows cannot \
                                 share it (cast one side with `assign` first)",
                                f.data_type()
                            ),
                        )
                    })?;
                }
            }
        }
    }
    let mut projected = Vec::with_capacity(sides.len());
    for (_, field, b) in sides {
        let exprs = columns
            .iter()
            .map(|(n, t)| {
                let e = match b.schema().qualified_field_with_unqualified_name(n) {
                    Ok((_, f)) => as_type(column(b.schema(), n, &field)?, f.data_type(), t),
                    Err(_) => cast(lit(ScalarValue::Null), t.clone()),
                };
                Ok(e.alias(n))
            })
            .collect::<Result<Vec<_>>>()?;
        let side = b
            .project(exprs)
            .map_err(|e| Error::spec(&field, df_message(&e)))?;
        projected.push((field, side));
    }
    union_all(projected)
}

/// `e` of type `from` as type `to`: itself when they are the same.
fn as_type(e: Expr, from: &DataType, to: &DataType) -> Expr {
    if from == to { e } else { cast(e, to.clone()) }
}

/// The rows of every side, one after another; each side's field path names its errors.
fn union_all(sides: Vec<(String, LogicalPlanBuilder)>) -> Result<LogicalPlanBuilder> {
    let mut out: Option<LogicalPlanBuilder> = None;
    for (field, side) in sides {
        let fail = |e: datafusion::error::DataFusionError| Error::spec(&field, df_message(&e));
        out = Some(match out {
            None => side,
            Some(o) => o.union(side.build().map_err(fail)?).map_err(fail)?,
        });
    }
    out.ok_or_else(|| Error::internal("a union of no tables"))
}

/// pandas' `melt`: for each value column, every row as the identifier columns, the value
/// column's name and its value (of the type the value columns share).
pub fn melt(lp: LogicalPlanBuilder, m: &Melt, at: &str) -> Result<LogicalPlanBuilder> {
    let schema = lp.schema().clone();
    for (i, c) in m.id_vars.iter().enumerate() {
        column(&schema, c, &format!("{at}.idVars[{i}]"))?;
    }
    let values: Vec<String> = match &m.value_vars {
        Some(v) => v.clone(),
        None => names(&schema)
            .into_iter()
            .filter(|n| !m.id_vars.contains(n))
            .collect(),
    };
    if values.is_empty() {
        return Err(Error::spec(
            at,
            "no value columns: every column is in idVars",
        ));
    }
    let mut types = Vec::with_capacity(values.len());
    for (i, c) in values.iter().enumerate() {
        let field = format!("{at}.valueVars[{i}]");
        column(&schema, c, &field)?;
        let (_, f) = schema
            .qualified_field_with_unqualified_name(c)
            .map_err(|e| Error::spec(&field, df_message(&e)))?;
        types.push(f.data_type().clone());
    }
    let shared = type_union_resolution(&types).ok_or_else(|| {
        let listed: Vec<String> = values
            .iter()
            .zip(&types)
            .map(|(c, t)| format!("{c} ({t})"))
            .collect();
        Error::spec(
            at,
            format!(
                "the value columns have no type in common: {} (select or cast them first)",
                listed.join(", ")
            ),
        )
    })?;
    let (var, value) = m.names();
    let mut sides = Vec::with_capacity(values.len());
    for (c, t) in values.iter().zip(&types) {
        let mut exprs = m
            .id_vars
            .iter()
            .map(|n| Ok(column(&schema, n, at)?.alias(n)))
            .collect::<Result<Vec<Expr>>>()?;
        exprs.push(lit(c.as_str()).alias(var));
        exprs.push(as_type(column(&schema, c, at)?, t, &shared).alias(value));
        let side = lp
            .clone()
            .project(exprs)
            .map_err(|e| Error::spec(at, df_message(&e)))?;
        sides.push((at.to_string(), side));
    }
    union_all(sides)
}

/// pandas' `explode`: one row per element of list column `c`, the other columns repeated;
/// a null or empty list gives one row with a null.
pub fn explode(lp: LogicalPlanBuilder, c: &str, at: &str) -> Result<LogicalPlanBuilder> {
    let schema = lp.schema().clone();
    let col = column(&schema, c, at)?;
    let (_, f) = schema
        .qualified_field_with_unqualified_name(c)
        .map_err(|e| Error::spec(at, df_message(&e)))?;
    if !matches!(
        f.data_type(),
        DataType::List(_)
            | DataType::LargeList(_)
            | DataType::FixedSizeList(..)
            | DataType::ListView(_)
            | DataType::LargeListView(_)
    ) {
        return Err(Error::spec(
            at,
            format!(
                "column {c:?} is {}, not a list; make one first, e.g. `assign: {{{c}: \
                 \"string_to_array({c}, ',')\"}}`",
                f.data_type()
            ),
        ));
    }
    let Expr::Column(col) = col else {
        return Err(Error::internal("a column reference that is not a column"));
    };
    let options = UnnestOptions {
        null_handling: NullHandling::PreserveAndExpandEmpty,
        ..UnnestOptions::default()
    };
    let fail = |e: datafusion::error::DataFusionError| Error::spec(at, df_message(&e));
    let unnested = lp.unnest_column_with_options(col, options).map_err(fail)?;
    // The exploded column keeps its name and place.
    let exprs = names(&schema)
        .iter()
        .map(|n| {
            let e = match unnested.schema().qualified_field_with_unqualified_name(n) {
                Ok((q, _)) => Expr::Column(Column::new(q.cloned(), n)),
                Err(_) => column(unnested.schema(), n, at)?,
            };
            Ok(e.alias(n))
        })
        .collect::<Result<Vec<_>>>()?;
    unnested.project(exprs).map_err(fail)
}
