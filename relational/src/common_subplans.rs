//! Sub-plans that a query computes more than once, computed once.
//!
//! TPC-H's q11 compares each part's stock value in one nation with a fraction of the nation's
//! total, and its scalar subquery joins `partsupp`, `supplier` and `nation` exactly as the
//! outer query does, with one column fewer: DataFusion plans the join twice, and Kask scanned
//! `partsupp` twice. As Spark reuses an exchange that a plan holds twice and Polars eliminates
//! common sub-plans, a sub-plan found twice or more in the optimised logical plan is computed
//! once here: its plan, with the columns of all its uses, is cut into stages of its own whose
//! last one keeps its rows (as a shared view's does, [`crate::graph`]), and each use reads the
//! columns it needs from there.
//!
//! Two sub-plans are the same up to the columns their scans and plain projections keep (the
//! subquery's join keeps no `ps_partkey`). Shared are sub-plans of scans, filters, joins that
//! keep their sides' nullability (inner and filtering ones), aliases and aggregations, with a
//! join among them (a scan alone is cheaper to read again than to copy), with no volatile
//! expression (`random()` computed once would change the answer), reading more than a join
//! sends whole to every task (q02's `nation ⋈ region` is read again in no time, while keeping
//! it costs stages), and not larger, by the estimates, than the tables they read. The largest such sub-plans are taken: one found inside
//! a larger shared one is shared with it.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, DataFusionError, Result};
use datafusion::logical_expr::{
    Expr, JoinType, LogicalPlan, LogicalPlanBuilder, Projection, TableScanBuilder, TableSource,
};

use crate::estimate::estimate;

/// A sub-plan that a plan holds more than once, with the columns of all its uses.
#[derive(Debug)]
pub struct Common {
    /// The sub-plan widened to every use's columns, each renamed to a flat name of its own
    /// (the uses' columns are qualified by their tables, which a table of its own cannot keep).
    pub plan: LogicalPlan,
    /// Where the uses are in the plan's pre-order walk: each one's position and the position
    /// after its subtree.
    uses: Vec<(usize, usize)>,
    /// The column of the uses each of `plan`'s columns stands for.
    columns: Vec<Column>,
}

impl Common {
    /// How many times the plan held the sub-plan.
    pub fn uses(&self) -> usize {
        self.uses.len()
    }
}

/// The sub-plans of `plan` to compute once, largest first, none inside another, each reading
/// more than `min_bytes` of tables (less is read again faster than it is kept and read back:
/// the size under which a join's side is sent whole to every task).
pub fn common_subplans(plan: &LogicalPlan, min_bytes: usize) -> Result<Vec<Common>> {
    let mut nodes = Vec::new();
    walk(plan, &mut nodes);
    let mut taken: Vec<(usize, usize)> = Vec::new();
    let inside =
        |at: usize, ranges: &[(usize, usize)]| ranges.iter().any(|&(s, e)| s <= at && at < e);
    let mut found = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        if inside(i, &taken) || !worth_sharing(node.plan, min_bytes as f64) {
            continue;
        }
        let mut uses = vec![(i, node.end)];
        for (j, other) in nodes.iter().enumerate().skip(node.end) {
            let free = !inside(j, &taken) && !inside(j, &uses);
            if free && same(node.plan, other.plan) {
                uses.push((j, other.end));
            }
        }
        if uses.len() < 2 {
            continue;
        }
        let plans: Vec<&LogicalPlan> = uses.iter().map(|&(at, _)| nodes[at].plan).collect();
        found.push(widened_for(&plans, uses.clone())?);
        taken.extend(uses);
    }
    Ok(found)
}

/// `plan` with each use of `common` replaced by a scan of `source`, the table of the common
/// sub-plan's rows, named `name`.
pub fn reading_common(
    plan: LogicalPlan,
    common: &Common,
    name: &str,
    source: Arc<dyn TableSource>,
) -> Result<LogicalPlan> {
    let scan_for = |used: &LogicalPlan| -> Result<LogicalPlan> {
        let wanted = used.schema().columns();
        let indices = wanted
            .iter()
            .map(|c| {
                common.columns.iter().position(|x| x == c).ok_or_else(|| {
                    DataFusionError::Internal(format!("a common sub-plan has no column {c}"))
                })
            })
            .collect::<Result<Vec<usize>>>()?;
        let flat = common.plan.schema();
        let exprs = indices.iter().zip(&wanted).map(|(&i, c)| {
            Expr::Column(Column::new_unqualified(flat.field(i).name()))
                .alias_qualified(c.relation.clone(), c.name.clone())
        });
        let scan = LogicalPlanBuilder::scan(name, Arc::clone(&source), Some(indices.clone()))?
            .project(exprs)?
            .build()?;
        // The nodes above the use keep their schemas, which must still hold.
        if !same_fields(scan.schema(), used.schema()) {
            return Err(DataFusionError::Internal(format!(
                "a common sub-plan's scan has the columns {} where its use had {}",
                scan.schema(),
                used.schema()
            )));
        }
        Ok(scan)
    };
    let mut walked = Walked { at: 0, replaced: 0 };
    let plan = replace(plan, &mut walked, &common.uses, &scan_for)?.data;
    if walked.replaced != common.uses.len() {
        return Err(DataFusionError::Internal(format!(
            "{} of a common sub-plan's {} uses were found again",
            walked.replaced,
            common.uses.len()
        )));
    }
    Ok(plan)
}

/// A node of a plan in a pre-order walk, and where its subtree ends in that walk.
pub struct Node<'a> {
    pub plan: &'a LogicalPlan,
    end: usize,
}

pub fn walk<'a>(plan: &'a LogicalPlan, out: &mut Vec<Node<'a>>) {
    let at = out.len();
    out.push(Node { plan, end: at });
    for input in plan.inputs() {
        walk(input, out);
    }
    out[at].end = out.len();
}

/// Where [`replace`] is in its walk, and how many nodes it replaced.
struct Walked {
    at: usize,
    replaced: usize,
}

/// `plan` with the subtrees at the positions `uses` holds (in the walk of [`walk`], which
/// `map_children` follows) replaced by what `with` makes of them.
fn replace(
    plan: LogicalPlan,
    walked: &mut Walked,
    uses: &[(usize, usize)],
    with: &dyn Fn(&LogicalPlan) -> Result<LogicalPlan>,
) -> Result<Transformed<LogicalPlan>> {
    if let Some(&(_, end)) = uses.iter().find(|&&(at, _)| at == walked.at) {
        walked.at = end;
        walked.replaced += 1;
        return with(&plan).map(Transformed::yes);
    }
    walked.at += 1;
    plan.map_children(|child| replace(child, walked, uses, with))
}

/// Whether two schemas have the same columns: names, tables, types and nullability.
pub fn same_fields(a: &DFSchema, b: &DFSchema) -> bool {
    a.fields().len() == b.fields().len()
        && a.iter().zip(b.iter()).all(|((qa, fa), (qb, fb))| {
            qa == qb
                && fa.name() == fb.name()
                && fa.data_type() == fb.data_type()
                && fa.is_nullable() == fb.is_nullable()
        })
}

/// `plan` under the projections that only pick columns, which sharing widens away.
fn through(plan: &LogicalPlan) -> &LogicalPlan {
    match plan {
        LogicalPlan::Projection(p) if picks_columns(p) => through(&p.input),
        _ => plan,
    }
}

fn picks_columns(p: &Projection) -> bool {
    p.expr.iter().all(|e| matches!(e, Expr::Column(_)))
}

/// Whether `plan` may be shared and would pay to be: made of the nodes sharing can widen,
/// with a join among them, reading more than `min_bytes` and estimated no larger than what
/// it reads.
pub fn worth_sharing(plan: &LogicalPlan, min_bytes: f64) -> bool {
    if !shareable(plan) || !has_join(plan) {
        return false;
    }
    match (estimate(plan), scanned_bytes(plan)) {
        (Some(out), Some(read)) => read > min_bytes && out.size <= read,
        _ => true,
    }
}

fn shareable(plan: &LogicalPlan) -> bool {
    let fixed = |exprs: &[Expr]| exprs.iter().all(|e| !e.is_volatile());
    match through(plan) {
        LogicalPlan::TableScan(s) => fixed(&s.filters),
        LogicalPlan::Filter(f) => !f.predicate.is_volatile() && shareable(&f.input),
        LogicalPlan::SubqueryAlias(a) => shareable(&a.input),
        LogicalPlan::Join(j) => {
            keeps_nullability(j.join_type)
                && j.on
                    .iter()
                    .all(|(l, r)| !l.is_volatile() && !r.is_volatile())
                && j.filter.as_ref().is_none_or(|f| !f.is_volatile())
                && shareable(&j.left)
                && shareable(&j.right)
        }
        LogicalPlan::Aggregate(a) => {
            fixed(&a.group_expr)
                && fixed(&a.aggr_expr)
                && !a
                    .group_expr
                    .iter()
                    .any(|e| matches!(e, Expr::GroupingSet(_)))
                && shareable(&a.input)
        }
        _ => false,
    }
}

/// Join types whose output columns are their inputs' columns unchanged: a use's columns then
/// mean the same in the widened sub-plan.
fn keeps_nullability(t: JoinType) -> bool {
    matches!(
        t,
        JoinType::Inner
            | JoinType::LeftSemi
            | JoinType::RightSemi
            | JoinType::LeftAnti
            | JoinType::RightAnti
    )
}

fn has_join(plan: &LogicalPlan) -> bool {
    matches!(plan, LogicalPlan::Join(_)) || plan.inputs().into_iter().any(has_join)
}

/// The bytes of the tables `plan` reads, if all are known.
fn scanned_bytes(plan: &LogicalPlan) -> Option<f64> {
    match plan {
        LogicalPlan::TableScan(_) => estimate(plan).map(|e| e.base),
        _ => plan.inputs().into_iter().map(scanned_bytes).sum(),
    }
}

/// Whether `a` and `b` compute the same rows, up to the columns their scans and plain
/// projections keep.
pub fn same(a: &LogicalPlan, b: &LogicalPlan) -> bool {
    use LogicalPlan as P;
    match (through(a), through(b)) {
        (P::TableScan(x), P::TableScan(y)) => {
            x.table_name == y.table_name
                && x.filters == y.filters
                && x.fetch == y.fetch
                && x.source.schema() == y.source.schema()
        }
        (P::Filter(x), P::Filter(y)) => x.predicate == y.predicate && same(&x.input, &y.input),
        (P::SubqueryAlias(x), P::SubqueryAlias(y)) => {
            x.alias == y.alias && same(&x.input, &y.input)
        }
        (P::Join(x), P::Join(y)) => {
            x.join_type == y.join_type
                && x.join_constraint == y.join_constraint
                && x.on == y.on
                && x.filter == y.filter
                && x.null_equality == y.null_equality
                && x.null_aware == y.null_aware
                && same(&x.left, &y.left)
                && same(&x.right, &y.right)
        }
        (P::Aggregate(x), P::Aggregate(y)) => {
            x.group_expr == y.group_expr && x.aggr_expr == y.aggr_expr && same(&x.input, &y.input)
        }
        _ => false,
    }
}

/// The common sub-plan of `uses` (the same by [`same`]), at the places `at`: the first use
/// with every scan keeping the columns it keeps in any use, and the columns of all uses on top
/// under flat names.
fn widened_for(uses: &[&LogicalPlan], at: Vec<(usize, usize)>) -> Result<Common> {
    let body = widened(uses)?;
    let mut columns: Vec<Column> = Vec::new();
    for u in uses {
        for c in u.schema().columns() {
            if !columns.contains(&c) {
                columns.push(c);
            }
        }
    }
    let mut names = BTreeSet::new();
    let exprs: Vec<Expr> = columns
        .iter()
        .map(|c| {
            let mut name = c.name.clone();
            let mut n = 1;
            while !names.insert(name.clone()) {
                n += 1;
                name = format!("{}_{n}", c.name);
            }
            Expr::Column(c.clone()).alias(name)
        })
        .collect();
    let plan = LogicalPlan::Projection(Projection::try_new(exprs, Arc::new(body))?);
    Ok(Common {
        plan,
        uses: at,
        columns,
    })
}

fn widened(uses: &[&LogicalPlan]) -> Result<LogicalPlan> {
    let nodes: Vec<&LogicalPlan> = uses.iter().map(|u| through(u)).collect();
    let first = nodes[0];
    if let LogicalPlan::TableScan(scan) = first {
        let mut kept = Some(BTreeSet::new());
        for n in &nodes {
            if let (LogicalPlan::TableScan(s), Some(set)) = (n, kept.as_mut()) {
                match &s.projection {
                    Some(p) => set.extend(p.iter().copied()),
                    None => kept = None,
                }
            }
        }
        let scan = TableScanBuilder::new(scan.table_name.clone(), Arc::clone(&scan.source))
            .with_projection(kept.map(|s| s.into_iter().collect()))
            .with_filters(scan.filters.clone())
            .with_fetch(scan.fetch)
            .with_statistics_requests(scan.statistics_requests.clone())
            .build()?;
        return Ok(LogicalPlan::TableScan(scan));
    }
    let inputs = (0..first.inputs().len())
        .map(|i| {
            let children: Vec<&LogicalPlan> = nodes.iter().map(|n| n.inputs()[i]).collect();
            widened(&children)
        })
        .collect::<Result<Vec<_>>>()?;
    first.with_new_exprs(first.expressions(), inputs)
}
