//! Aggregations that compute only the groups a join keeps.
//!
//! DataFusion turns a correlated subquery such as TPC-H q17's
//! `l_quantity < (SELECT 0.2 * avg(l_quantity) FROM lineitem WHERE l_partkey = p_partkey)`
//! into a join with an aggregation over the whole table, grouped by the correlated key: the
//! average quantity of all two million parts, of which the join then keeps the two thousand
//! that the outer query's filters on `part` select. DuckDB passes the outer keys into the
//! subquery instead.
//!
//! This rule does the same within one plan: where a join keeps only the groups of an
//! aggregation whose keys match rows on its other side (an inner or semi join, or an outer
//! join that keeps the other side's rows), and that other side holds the keys in a plan
//! estimated much smaller than the aggregation's input (and small enough to send whole to
//! every task), the aggregation's input is first semi-joined with those keys. Rows of the
//! groups the join drops are then never aggregated or shuffled. The keys come from a plan
//! below the other side that the key columns pass through unchanged (filters, projections,
//! inner and semi joins only remove rows): the lowest one estimated near the smallest
//! ([`NEAR_SMALLEST`]), since a plan holds the keys of every plan above it and costs no more
//! to compute. So in q17 they are the filtered `part` table, not its join with `lineitem`; in
//! q02 the filtered `part` too, not its five-way join with `partsupp`, `supplier`, `nation` and
//! `region`, which keeps a few keys fewer but scans `partsupp` once more.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, NullEquality, Result};
use datafusion::logical_expr::{
    Aggregate, Expr, Join, JoinConstraint, JoinType, LogicalPlan, Projection, SubqueryAlias,
};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

use crate::estimate::estimate;

/// The rule; see the module's documentation.
#[derive(Debug, Default)]
pub struct FilterGroupsByKeys;

/// How much smaller than an aggregation's input the keys must be estimated for the filter
/// to pay: the semi join costs one hash probe per input row, and the keys are computed twice.
const SMALLER_BY: f64 = 8.0;

/// How much larger than the smallest plan holding the keys a plan lower down may be estimated
/// and still be preferred: the filter then keeps up to that many times the rows, and the
/// joins above the lower plan are not computed twice.
const NEAR_SMALLEST: f64 = 4.0;

/// The alias of the key plans this rule adds, by which it knows where it has been.
const KEYS: &str = "__kask_group_keys";

/// The alias of key plans whose aggregation gives the same answer when its input's rows come
/// more than once (only `min`, `max` and `DISTINCT` aggregates): their semi join may then be
/// computed as an inner join, which the query may compute anyway ([`crate::set_semi_joins`]).
const SET_KEYS: &str = "__kask_group_keys_set";

impl OptimizerRule for FilterGroupsByKeys {
    fn name(&self) -> &str {
        "kask_filter_groups_by_keys"
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let most = config
            .options()
            .optimizer
            .hash_join_single_partition_threshold as f64;
        plan.transform_down(|node| match &node {
            LogicalPlan::Join(j) => filter_join(j, most),
            _ => Ok(Transformed::no(node)),
        })
    }
}

/// `j` with the aggregation on one of its sides filtered by the keys of the other, if one
/// side is such an aggregation and that pays.
fn filter_join(j: &Join, most: f64) -> Result<Transformed<LogicalPlan>> {
    let unchanged = || Ok(Transformed::no(LogicalPlan::Join(j.clone())));
    if j.join_constraint != JoinConstraint::On || j.null_aware {
        return unchanged();
    }
    // The sides whose unmatched rows the join drops: an aggregation there may lose them early.
    let (filter_left, filter_right) = match j.join_type {
        JoinType::Inner => (true, true),
        JoinType::LeftSemi | JoinType::Right => (true, false),
        JoinType::RightSemi | JoinType::Left => (false, true),
        _ => (false, false),
    };
    let pairs = |right: bool| -> Vec<(Column, Column)> {
        j.on.iter()
            .filter_map(|(l, r)| {
                let (own, other) = if right { (r, l) } else { (l, r) };
                match (own, other) {
                    (Expr::Column(own), Expr::Column(other)) => Some((own.clone(), other.clone())),
                    _ => None,
                }
            })
            .collect()
    };
    if filter_right
        && let Some(right) = filtered(&j.right, &j.left, &pairs(true), j.null_equality, most)?
    {
        return Ok(Transformed::yes(LogicalPlan::Join(rejoin(
            j,
            (*j.left).clone(),
            right,
        )?)));
    }
    if filter_left
        && let Some(left) = filtered(&j.left, &j.right, &pairs(false), j.null_equality, most)?
    {
        return Ok(Transformed::yes(LogicalPlan::Join(rejoin(
            j,
            left,
            (*j.right).clone(),
        )?)));
    }
    unchanged()
}

fn rejoin(j: &Join, left: LogicalPlan, right: LogicalPlan) -> Result<Join> {
    Join::try_new(
        Arc::new(left),
        Arc::new(right),
        j.on.clone(),
        j.filter.clone(),
        j.join_type,
        j.join_constraint,
        j.null_equality,
        j.null_aware,
    )
}

/// `side` with its aggregation's input semi-joined with the keys that `other` holds, when
/// `side` is an aggregation grouped by the columns of `pairs` (seen through projections and
/// aliases) and `other` has a small plan holding their partners.
fn filtered(
    side: &LogicalPlan,
    other: &LogicalPlan,
    pairs: &[(Column, Column)],
    null_equality: NullEquality,
    most: f64,
) -> Result<Option<LogicalPlan>> {
    // Only the pairs whose column on this side is a group column of the aggregation.
    let mut grouped = Vec::new();
    for (own, theirs) in pairs {
        if let Some(group) = group_column(side, own) {
            grouped.push((group, theirs.clone()));
        }
    }
    if grouped.is_empty() {
        return Ok(None);
    }
    let Some(aggregate) = aggregate_below(side) else {
        return Ok(None);
    };
    let input = aggregate.input.as_ref();
    if input.exists(|p| Ok(is_keys(p)))? {
        return Ok(None);
    }
    let theirs: Vec<Column> = grouped.iter().map(|(_, c)| c.clone()).collect();
    // Keys that pay: much smaller than the aggregation's input, and small enough to send whole.
    let Some(largest) = estimate(input).map(|i| (i.size / SMALLER_BY).min(most)) else {
        return Ok(None);
    };
    let Some((keys, columns)) = plan_holding_keys(other, &theirs, largest) else {
        return Ok(None);
    };
    let prefix = if ignores_repeats(aggregate) {
        SET_KEYS
    } else {
        KEYS
    };
    let alias = format!("{prefix}_{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let names: Vec<String> = (0..columns.len()).map(|i| format!("k{i}")).collect();
    let projected = Projection::try_new(
        columns
            .into_iter()
            .zip(&names)
            .map(|(c, n)| Expr::Column(c).alias(n))
            .collect(),
        Arc::new(keys),
    )?;
    let keys = SubqueryAlias::try_new(Arc::new(LogicalPlan::Projection(projected)), &alias)?;
    let on = grouped
        .iter()
        .zip(&names)
        .map(|((group, _), n)| {
            (
                Expr::Column(group.clone()),
                Expr::Column(Column::new(Some(alias.as_str()), n)),
            )
        })
        .collect();
    let semi = Join::try_new(
        Arc::new(input.clone()),
        Arc::new(LogicalPlan::SubqueryAlias(keys)),
        on,
        None,
        JoinType::LeftSemi,
        JoinConstraint::On,
        null_equality,
        false,
    )?;
    Ok(Some(with_aggregate_input(side, LogicalPlan::Join(semi))?))
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn is_keys(plan: &LogicalPlan) -> bool {
    matches!(plan, LogicalPlan::SubqueryAlias(a) if a.alias.table().starts_with(KEYS))
}

/// The column of the aggregation's input that `column` of `plan` (an aggregation below
/// projections and aliases) groups by, if it is one.
pub fn group_column(plan: &LogicalPlan, column: &Column) -> Option<Column> {
    let at = plan.schema().index_of_column(column).ok()?;
    match plan {
        LogicalPlan::SubqueryAlias(a) => {
            let (q, f) = a.input.schema().qualified_field(at);
            group_column(&a.input, &Column::from((q, f)))
        }
        LogicalPlan::Projection(p) => group_column(&p.input, column_of(&p.expr[at])?),
        LogicalPlan::Aggregate(a) if !is_grouping_set(a) => {
            column_of(a.group_expr.get(at)?).cloned()
        }
        _ => None,
    }
}

fn is_grouping_set(a: &Aggregate) -> bool {
    matches!(a.group_expr.as_slice(), [Expr::GroupingSet(_)])
}

/// The column an expression passes on unchanged, if it does.
fn column_of(expr: &Expr) -> Option<&Column> {
    match expr {
        Expr::Column(c) => Some(c),
        Expr::Alias(a) => column_of(&a.expr),
        _ => None,
    }
}

/// The aggregation below `plan`'s projections and aliases.
pub fn aggregate_below(plan: &LogicalPlan) -> Option<&Aggregate> {
    match plan {
        LogicalPlan::SubqueryAlias(a) => aggregate_below(&a.input),
        LogicalPlan::Projection(p) => aggregate_below(&p.input),
        LogicalPlan::Aggregate(a) if !is_grouping_set(a) => Some(a),
        _ => None,
    }
}

/// Whether `a` answers the same when rows of its input come more than once: each aggregate
/// is a `min`, a `max` or a `DISTINCT` one (or there are none, as in `SELECT DISTINCT`).
pub fn ignores_repeats(a: &Aggregate) -> bool {
    a.aggr_expr.iter().all(|e| {
        let mut e = e;
        while let Expr::Alias(inner) = e {
            e = &inner.expr;
        }
        match e {
            Expr::AggregateFunction(f) => {
                f.params.distinct || matches!(f.func.name(), "min" | "max")
            }
            _ => false,
        }
    })
}

/// Whether `alias` names keys that [`FilterGroupsByKeys`] added for an aggregation that
/// [`ignores_repeats`].
pub fn is_set_keys(alias: &str) -> bool {
    alias.starts_with(SET_KEYS)
}

/// `plan` with the input of its aggregation replaced by `input` (whose schema is the same).
fn with_aggregate_input(plan: &LogicalPlan, input: LogicalPlan) -> Result<LogicalPlan> {
    let child = match plan {
        LogicalPlan::Aggregate(a) => {
            return Ok(LogicalPlan::Aggregate(Aggregate::try_new(
                Arc::new(input),
                a.group_expr.clone(),
                a.aggr_expr.clone(),
            )?));
        }
        LogicalPlan::SubqueryAlias(a) => a.input.as_ref(),
        LogicalPlan::Projection(p) => p.input.as_ref(),
        other => return Ok(other.clone()),
    };
    let child = with_aggregate_input(child, input)?;
    plan.with_new_exprs(plan.expressions(), vec![child])
}

/// The plan below `plan` that the keys come from, with the columns' names there: `plan`
/// itself, or a plan reached through operators that pass the columns on unchanged and only
/// remove or repeat rows; of those with an estimate, the one [`lowest_near_smallest`] picks
/// among those estimated at most `largest`. `None` if there is none.
fn plan_holding_keys(
    plan: &LogicalPlan,
    columns: &[Column],
    largest: f64,
) -> Option<(LogicalPlan, Vec<Column>)> {
    let mut chain = Vec::new();
    let (mut at, mut cols) = (plan, columns.to_vec());
    loop {
        if let Some(e) = estimate(at) {
            chain.push((at, cols.clone(), e.size));
        }
        let Some((below, below_cols)) = step_down(at, &cols) else {
            break;
        };
        (at, cols) = (below, below_cols);
    }
    let sizes: Vec<f64> = chain.iter().map(|(_, _, size)| *size).collect();
    let (chosen, cols, _) = chain.swap_remove(lowest_near_smallest(&sizes, largest)?);
    Some((chosen.clone(), cols))
}

/// Of plans each below the one before, estimated `sizes`, the index of the lowest within
/// [`NEAR_SMALLEST`] of the smallest and at most `largest`; `None` if none is.
pub fn lowest_near_smallest(sizes: &[f64], largest: f64) -> Option<usize> {
    let smallest = sizes.iter().copied().fold(f64::INFINITY, f64::min);
    sizes
        .iter()
        .rposition(|s| *s <= smallest * NEAR_SMALLEST && *s <= largest)
}

/// The input of `plan` that all `columns` come from unchanged, with their names there.
pub fn step_down<'a>(
    plan: &'a LogicalPlan,
    columns: &[Column],
) -> Option<(&'a LogicalPlan, Vec<Column>)> {
    let schema = plan.schema();
    let at: Vec<usize> = columns
        .iter()
        .map(|c| schema.index_of_column(c).ok())
        .collect::<Option<_>>()?;
    let by_index = |input: &LogicalPlan, at: &[usize]| -> Vec<Column> {
        at.iter()
            .map(|i| Column::from(input.schema().qualified_field(*i)))
            .collect()
    };
    match plan {
        LogicalPlan::SubqueryAlias(a) => Some((&a.input, by_index(&a.input, &at))),
        LogicalPlan::Projection(p) => {
            let cols = at
                .iter()
                .map(|i| column_of(&p.expr[*i]).cloned())
                .collect::<Option<_>>()?;
            Some((&p.input, cols))
        }
        LogicalPlan::Filter(f) => Some((&f.input, columns.to_vec())),
        LogicalPlan::Sort(s) => Some((&s.input, columns.to_vec())),
        LogicalPlan::Join(j) if j.join_constraint == JoinConstraint::On => {
            let left_width = j.left.schema().fields().len();
            match j.join_type {
                JoinType::Inner => {
                    if at.iter().all(|i| *i < left_width) {
                        Some((&j.left, by_index(&j.left, &at)))
                    } else if at.iter().all(|i| *i >= left_width) {
                        let shifted: Vec<usize> = at.iter().map(|i| i - left_width).collect();
                        Some((&j.right, by_index(&j.right, &shifted)))
                    } else {
                        None
                    }
                }
                JoinType::LeftSemi | JoinType::LeftAnti => Some((&j.left, by_index(&j.left, &at))),
                JoinType::RightSemi | JoinType::RightAnti => {
                    Some((&j.right, by_index(&j.right, &at)))
                }
                _ => None,
            }
        }
        _ => None,
    }
}
