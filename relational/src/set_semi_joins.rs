//! Semi joins by group keys computed as the inner joins a query computes anyway.
//!
//! TPC-H's q02 wants, for each part of size 15 made of brass, its suppliers in Europe with the
//! lowest `ps_supplycost`. [`crate::group_keys`] filters the correlated `min(ps_supplycost)`
//! by the parts the outer query keeps: `partsupp ⋉ part'`, while the outer query joins
//! `part' ⋈ partsupp`. Two different joins, so `partsupp` (8 million rows at SF10, decoding
//! most of the query's time) was scanned twice. A `min` gives the same answer if rows of its
//! input come more than once, so there the semi join may be the inner join with `partsupp`'s
//! columns kept: the same rows, each once per matching key. Where the query holds that inner
//! join elsewhere, the semi join is replaced by it, and [`crate::common_subplans`] computes
//! it once for both.
//!
//! Only semi joins that [`crate::group_keys`] added for an aggregation that
//! [`ignores_repeats`](crate::group_keys::ignores_repeats) are rewritten (their keys' alias
//! says so), and only where the inner join is found elsewhere in the plan and is worth
//! sharing: otherwise the semi join stays, since an inner join repeats rows whose key the
//! keys hold more than once.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, Result};
use datafusion::logical_expr::{
    Expr, Join, JoinConstraint, JoinType, LogicalPlan, Projection, SubqueryAlias,
};

use crate::common_subplans::{same, same_fields, worth_sharing};
use crate::group_keys::is_set_keys;

/// `plan` with each semi join by set keys that the plan also computes as an inner join (one
/// worth sharing, reading more than `min_bytes`) replaced by that inner join under a
/// projection of the semi join's columns.
pub fn set_semi_joins_as_inner(plan: LogicalPlan, min_bytes: usize) -> Result<LogicalPlan> {
    let whole = plan.clone();
    let found = |candidate: &LogicalPlan| -> Result<bool> {
        whole.exists(|node| {
            Ok(!matches!(node, LogicalPlan::Projection(_))
                && same(node, candidate)
                && worth_sharing(node, min_bytes as f64))
        })
    };
    Ok(plan
        .transform_down(|node| {
            let LogicalPlan::Join(j) = &node else {
                return Ok(Transformed::no(node));
            };
            for inner in inner_forms(j) {
                if found(&inner)? {
                    let kept = kept_columns(j, inner)?;
                    if same_fields(kept.schema(), node.schema()) {
                        return Ok(Transformed::yes(kept));
                    }
                }
            }
            Ok(Transformed::no(node))
        })?
        .data)
}

/// The inner joins that give `j`'s rows, each repeated once per matching key, if `j` is a semi
/// join with set keys: the keys' plan joined with the other side, in either order.
fn inner_forms(j: &Join) -> Vec<LogicalPlan> {
    if j.join_constraint != JoinConstraint::On || j.null_aware || j.filter.is_some() {
        return Vec::new();
    }
    let (keys, other, keys_left) = match j.join_type {
        JoinType::RightSemi => (&j.left, &j.right, true),
        JoinType::LeftSemi => (&j.right, &j.left, false),
        _ => return Vec::new(),
    };
    let Some((plan, columns)) = key_source(keys) else {
        return Vec::new();
    };
    // Each pair as (the key plan's column, the other side's expression).
    let mut on = Vec::new();
    for (l, r) in &j.on {
        let (k, o) = if keys_left { (l, r) } else { (r, l) };
        let Expr::Column(k) = k else {
            return Vec::new();
        };
        let Some((_, source)) = columns.iter().find(|(name, _)| name == &k.name) else {
            return Vec::new();
        };
        on.push((Expr::Column(source.clone()), o.clone()));
    }
    let picked: Vec<Expr> = on.iter().map(|(k, _)| k.clone()).collect();
    let Ok(keys) = Projection::try_new(picked, Arc::clone(plan)).map(LogicalPlan::Projection)
    else {
        return Vec::new();
    };
    let keys = Arc::new(keys);
    let flipped: Vec<(Expr, Expr)> = on.iter().map(|(k, o)| (o.clone(), k.clone())).collect();
    [
        (Arc::clone(&keys), Arc::clone(other), on),
        (Arc::clone(other), keys, flipped),
    ]
    .into_iter()
    .filter_map(|(left, right, on)| {
        Join::try_new(
            left,
            right,
            on,
            None,
            JoinType::Inner,
            JoinConstraint::On,
            j.null_equality,
            false,
        )
        .ok()
        .map(LogicalPlan::Join)
    })
    .collect()
}

/// Each key's name, and the column of the plan under the keys that it is.
type KeyColumns = Vec<(String, Column)>;

/// The plan under set keys `keys` (an alias over a projection naming its columns), with its
/// [`KeyColumns`].
fn key_source(keys: &LogicalPlan) -> Option<(&Arc<LogicalPlan>, KeyColumns)> {
    let LogicalPlan::SubqueryAlias(SubqueryAlias { input, alias, .. }) = keys else {
        return None;
    };
    if !is_set_keys(alias.table()) {
        return None;
    }
    let LogicalPlan::Projection(p) = input.as_ref() else {
        return None;
    };
    let columns = p
        .expr
        .iter()
        .map(|e| match e {
            Expr::Alias(a) => match a.expr.as_ref() {
                Expr::Column(c) => Some((a.name.clone(), c.clone())),
                _ => None,
            },
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some((&p.input, columns))
}

/// `inner` (an inner form of semi join `j`) with only the columns `j` keeps.
fn kept_columns(j: &Join, inner: LogicalPlan) -> Result<LogicalPlan> {
    let side = match j.join_type {
        JoinType::RightSemi => &j.right,
        _ => &j.left,
    };
    let exprs = side
        .schema()
        .columns()
        .into_iter()
        .map(Expr::Column)
        .collect();
    Ok(LogicalPlan::Projection(Projection::try_new(
        exprs,
        Arc::new(inner),
    )?))
}
