//! Row-wise steps as DataFusion logical operators: filter, select, drop, rename, assign.
//! Expressions are parsed by DataFusion's SQL expression parser, so users get its functions,
//! CAST, CASE, LIKE, IN, BETWEEN and IS NULL, and window functions (`OVER`), whose values
//! a window node computes first.

use datafusion::common::{Column, DFSchema, DataFusionError, SchemaError};
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlanBuilder};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::expr_split;
use kask_api::StepRef;
use kask_core::error::{Error, Result};

/// Applies one row-wise step. `path` is the step's field path, for errors.
pub fn apply(
    ctx: &SessionContext,
    lp: LogicalPlanBuilder,
    step: StepRef<'_>,
    path: &str,
) -> Result<LogicalPlanBuilder> {
    match step {
        StepRef::Filter(sql) => {
            let at = format!("{path}.filter");
            let expr = parse_expr(ctx, lp.schema(), sql, &at)?;
            expr_split::refuse_aggregates(&expr, sql, &at)?;
            let schema = lp.schema().clone();
            let before = names(&schema);
            let (lp, mut exprs) = expr_split::with_windows(lp, vec![expr], &at)?;
            let windowed = lp.schema().fields().len() != schema.fields().len();
            let expr = exprs
                .pop()
                .ok_or_else(|| Error::internal("a filter lost its expression"))?;
            let lp = lp
                .filter(expr)
                .map_err(|e| expr_error_with_columns(&e, sql, &schema, &at))?;
            if !windowed {
                return Ok(lp);
            }
            // The window's columns served the filter only.
            let keep = before
                .iter()
                .map(|n| Ok(column(lp.schema(), n, &at)?.alias(n)))
                .collect::<Result<Vec<_>>>()?;
            project(lp, keep, &at)
        }
        StepRef::Select(cols) => {
            let at = format!("{path}.select");
            let exprs = cols
                .iter()
                .enumerate()
                .map(|(i, c)| column(lp.schema(), c, &format!("{at}[{i}]")))
                .collect::<Result<Vec<_>>>()?;
            project(lp, exprs, &at)
        }
        StepRef::Drop(cols) => {
            let at = format!("{path}.drop");
            for (i, c) in cols.iter().enumerate() {
                column(lp.schema(), c, &format!("{at}[{i}]"))?;
            }
            let exprs = names(lp.schema())
                .into_iter()
                .filter(|n| !cols.contains(n))
                .map(|n| column(lp.schema(), &n, &at))
                .collect::<Result<Vec<_>>>()?;
            project(lp, exprs, &at)
        }
        StepRef::Rename(map) => {
            let at = format!("{path}.rename");
            for old in map.keys() {
                column(lp.schema(), old, &format!("{at}.{old}"))?;
            }
            let exprs = names(lp.schema())
                .into_iter()
                .map(|n| {
                    let e = column(lp.schema(), &n, &at)?;
                    Ok(match map.get(&n) {
                        Some(new) => e.alias(new),
                        None => e.alias(&n),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            project(lp, exprs, &at)
        }
        StepRef::Assign(map) => {
            let mut lp = lp;
            for (name, sql) in map {
                let at = format!("{path}.assign.{name}");
                let expr = parse_expr(ctx, lp.schema(), sql, &at)?;
                expr_split::refuse_aggregates(&expr, sql, &at)?;
                let existing = names(lp.schema());
                let (windowed, mut read) = expr_split::with_windows(lp, vec![expr], &at)?;
                lp = windowed;
                let expr = read
                    .pop()
                    .ok_or_else(|| Error::internal("an assign lost its expression"))?
                    .alias(name);
                let mut exprs = Vec::with_capacity(existing.len() + 1);
                let mut replaced = false;
                for n in &existing {
                    if n == name {
                        exprs.push(expr.clone());
                        replaced = true;
                    } else {
                        exprs.push(column(lp.schema(), n, &at)?.alias(n));
                    }
                }
                if !replaced {
                    exprs.push(expr);
                }
                lp = project(lp, exprs, &at)?;
            }
            Ok(lp)
        }
        other => Err(Error::internal(format!(
            "{path}: {other:?} is not a row-wise step"
        ))),
    }
}

fn project(lp: LogicalPlanBuilder, exprs: Vec<Expr>, at: &str) -> Result<LogicalPlanBuilder> {
    lp.project(exprs)
        .map_err(|e| Error::spec(at, kask_core::error::df_message(&e)))
}

/// The unqualified column names of a schema, in order.
pub fn names(schema: &DFSchema) -> Vec<String> {
    schema.fields().iter().map(|f| f.name().clone()).collect()
}

/// A column by its exact name (dots and capitals are part of the name, as in pandas).
pub fn column(schema: &DFSchema, name: &str, at: &str) -> Result<Expr> {
    match schema.qualified_field_with_unqualified_name(name) {
        Ok((qualifier, _)) => Ok(Expr::Column(Column::new(qualifier.cloned(), name))),
        Err(_) => Err(Error::spec(
            at,
            format!("no column {name:?} (columns: {})", names(schema).join(", ")),
        )),
    }
}

/// Parses a SQL expression against a schema, with errors that name the unknown column and
/// where it stands in the expression.
pub fn parse_expr(ctx: &SessionContext, schema: &DFSchema, sql: &str, at: &str) -> Result<Expr> {
    let expr = ctx
        .parse_sql_expr(sql, schema)
        .map_err(|e| expr_error_with_columns(&e, sql, schema, at))?;
    // Resolving columns and types now reports mistakes before any task runs.
    expr.get_type(schema)
        .map_err(|e| expr_error_with_columns(&e, sql, schema, at))?;
    Ok(expr)
}

fn expr_error_with_columns(e: &DataFusionError, sql: &str, schema: &DFSchema, at: &str) -> Error {
    if let Some(name) = unknown_column(e) {
        let position = match find_identifier(sql, &name) {
            Some((line, col)) if sql.contains('\n') => format!(" at line {line}, column {col}"),
            Some((_, col)) => format!(" at column {col}"),
            None => String::new(),
        };
        return Error::spec(
            at,
            format!(
                "unknown column {name:?}{position} of {sql:?} (columns: {})",
                names(schema).join(", ")
            ),
        );
    }
    Error::spec(
        at,
        format!("{} in {sql:?}", kask_core::error::df_message(e)),
    )
}

/// The column name a "no field named" error is about.
pub fn unknown_column(e: &DataFusionError) -> Option<String> {
    match e.find_root() {
        DataFusionError::SchemaError(err, _) => match err.as_ref() {
            SchemaError::FieldNotFound { field, .. } => Some(field.name.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// The 1-based line and column of an identifier in a SQL expression.
pub fn find_identifier(sql: &str, name: &str) -> Option<(u64, u64)> {
    let dialect = GenericDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .ok()?;
    tokens.into_iter().find_map(|t| match &t.token {
        Token::Word(w) if w.value == name => Some((t.span.start.line, t.span.start.column)),
        _ => None,
    })
}
