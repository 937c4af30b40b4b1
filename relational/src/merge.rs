//! A pandas-style merge as a DataFusion hash join, plus the projection that gives pandas'
//! columns: one key column for `on` keys (from whichever side has it, for outer merges),
//! suffixes on clashing names, left columns first. Semi and anti merges keep the left side's
//! columns only.

use datafusion::common::{Column, NullEquality};
use datafusion::functions::expr_fn::coalesce;
use datafusion::logical_expr::{Expr, JoinType, LogicalPlan, LogicalPlanBuilder};

use super::steps::names;
use kask_api::{How, Merge};
use kask_core::error::{Error, Result};

fn check_keys(
    plan: &LogicalPlan,
    keys: &[String],
    side: &str,
    field: &str,
    at: &str,
) -> Result<()> {
    let cols = names(plan.schema());
    for (i, k) in keys.iter().enumerate() {
        if !cols.contains(k) {
            return Err(Error::spec(
                format!("{at}.{field}[{i}]"),
                format!(
                    "no column {k:?} on the {side} side (columns: {})",
                    cols.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// Joins `left` with `right` as `m` says. `at` is the merge's field path.
pub fn join(
    left: LogicalPlanBuilder,
    right: LogicalPlan,
    m: &Merge,
    at: &str,
) -> Result<LogicalPlanBuilder> {
    let (lk, rk) = m.key_columns();
    let left = left
        .build()
        .map_err(|e| Error::spec(at, kask_core::error::df_message(&e)))?;
    let (lfield, rfield) = if m.on.is_some() {
        ("on", "on")
    } else {
        ("leftOn", "rightOn")
    };
    check_keys(&left, &lk, "left", lfield, at)?;
    check_keys(&right, &rk, "right", rfield, at)?;
    let left_names = names(left.schema());
    let right_names = names(right.schema());

    let fail =
        |e: datafusion::error::DataFusionError| Error::spec(at, kask_core::error::df_message(&e));
    let l = LogicalPlanBuilder::from(left)
        .alias("l")
        .map_err(fail)?
        .build()
        .map_err(fail)?;
    let r = LogicalPlanBuilder::from(right)
        .alias("r")
        .map_err(fail)?
        .build()
        .map_err(fail)?;
    let join_type = match m.how {
        How::Inner => JoinType::Inner,
        How::Left => JoinType::Left,
        How::Right => JoinType::Right,
        How::Outer => JoinType::Full,
        How::Semi => JoinType::LeftSemi,
        How::Anti => JoinType::LeftAnti,
    };
    let lcols: Vec<Column> = lk.iter().map(|k| Column::new(Some("l"), k)).collect();
    let rcols: Vec<Column> = rk.iter().map(|k| Column::new(Some("r"), k)).collect();
    // pandas matches missing keys with each other, unlike SQL. DataFusion chooses which side
    // to build its hash table from; the projection below picks columns by side.
    let joined = LogicalPlanBuilder::from(l)
        .join_detailed(
            r,
            join_type,
            (lcols, rcols),
            None,
            NullEquality::NullEqualsNull,
        )
        .map_err(fail)?;

    let lcol = |n: &str| Expr::Column(Column::new(Some("l"), n));
    let rcol = |n: &str| Expr::Column(Column::new(Some("r"), n));
    if matches!(m.how, How::Semi | How::Anti) {
        // The left side's rows as they were: no right columns to name.
        let exprs = left_names.iter().map(|n| lcol(n).alias(n));
        return joined.project(exprs).map_err(fail);
    }

    // Key pairs with the same name become one column, as in pandas.
    let shared: Vec<&String> = lk
        .iter()
        .zip(&rk)
        .filter(|(a, b)| a == b)
        .map(|(a, _)| a)
        .collect();
    let right_rest: Vec<&String> = right_names.iter().filter(|n| !shared.contains(n)).collect();
    let left_rest: Vec<&String> = left_names.iter().filter(|n| !shared.contains(n)).collect();
    let suffixes = m
        .suffixes
        .clone()
        .unwrap_or_else(|| vec!["_x".into(), "_y".into()]);

    let mut exprs = Vec::with_capacity(left_names.len() + right_rest.len());
    for n in &left_names {
        if shared.contains(&n) {
            let e = match m.how {
                How::Inner | How::Left => lcol(n),
                How::Right => rcol(n),
                How::Outer => coalesce(vec![lcol(n), rcol(n)]),
                How::Semi | How::Anti => lcol(n),
            };
            exprs.push(e.alias(n));
        } else if right_rest.contains(&n) {
            exprs.push(lcol(n).alias(format!("{n}{}", suffixes[0])));
        } else {
            exprs.push(lcol(n).alias(n));
        }
    }
    for n in right_rest {
        if left_rest.contains(&n) {
            exprs.push(rcol(n).alias(format!("{n}{}", suffixes[1])));
        } else {
            exprs.push(rcol(n).alias(n));
        }
    }
    joined.project(exprs).map_err(fail)
}
