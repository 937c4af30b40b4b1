//! The order in which a query's tables are joined.
//!
//! DataFusion joins tables in the order a query names them and keeps a subquery's semi join
//! above every inner join, so TPC-H's q21 joins all of `lineitem` with `supplier` before the
//! one nation it asks for removes 24 of every 25 rows, and q18 builds a hash table of its whole
//! `customer ⋈ orders ⋈ lineitem` only to keep 624 rows that a semi join selects. In one
//! process that costs time; here it also costs shuffles through the store and a task's memory.
//!
//! This rule, in the logical optimizer, takes each tree of inner joins (its tables and its join
//! conditions), moves a semi join whose columns all come from one of those tables onto
//! that table when its other side is the smaller, and joins the tables again in the order that
//! keeps the estimated intermediate results smallest. Estimates are sizes in bytes: a table's
//! files, scaled by fixed selectivities for its filters, and for a join on keys, the product of
//! both sides over the smaller table's size (one side's key is the other's primary key, the
//! usual case). A tree with a table whose size is unknown, a condition it cannot place, or
//! tables no condition connects is left as it was.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, NullEquality, Result};
use datafusion::logical_expr::utils::{conjunction, split_conjunction_owned};
use datafusion::logical_expr::{Expr, Join, JoinConstraint, JoinType, LogicalPlan, Projection};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

use crate::estimate::{Estimate, estimate};

/// The rule; see the module's documentation.
#[derive(Debug, Default)]
pub struct JoinOrder;

impl OptimizerRule for JoinOrder {
    fn name(&self) -> &str {
        "kask_join_order"
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        reorder(plan)
    }
}

/// Reorders every tree of inner joins in `plan`.
fn reorder(plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    match &plan {
        LogicalPlan::Join(j) if is_inner(j) => cluster(plan, None),
        LogicalPlan::Join(j) if is_filtering(j) => filtering(plan),
        _ => plan.map_children(reorder),
    }
}

/// An inner equi-join whose inputs may be joined in another order.
fn is_inner(j: &Join) -> bool {
    j.join_type == JoinType::Inner && j.join_constraint == JoinConstraint::On && !j.null_aware
}

/// A semi or anti join: a filter of its left side's rows.
fn is_filtering(j: &Join) -> bool {
    matches!(j.join_type, JoinType::LeftSemi | JoinType::LeftAnti)
        && j.join_constraint == JoinConstraint::On
        && !j.null_aware
}

/// A semi or anti join: pushed onto a table of the inner joins below it when that pays, and
/// otherwise with the smaller side built (a hash join builds its left side).
fn filtering(plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    let LogicalPlan::Join(j) = &plan else {
        return Ok(Transformed::no(plan));
    };
    if let Some(inner) = through_columns(&j.left)
        && let LogicalPlan::Join(below) = inner
        && is_inner(below)
    {
        let pushed = cluster(j.left.as_ref().clone(), Some(j))?;
        if pushed.transformed && pushed.data.schema() == j.left.schema() {
            return Ok(pushed);
        }
    }
    let left = reorder(j.left.as_ref().clone())?;
    let right = reorder(j.right.as_ref().clone())?;
    let changed = left.transformed || right.transformed;
    let (joined, swapped) = smaller_built(j, left.data, right.data)?;
    if !swapped && !changed {
        return Ok(Transformed::no(plan));
    }
    Ok(Transformed::yes(joined))
}

/// The semi or anti join `j` of `left` and `right` (already reordered), turned around when its
/// right side is estimated smaller, so that the hash join builds that side; and whether it
/// was turned.
fn smaller_built(j: &Join, left: LogicalPlan, right: LogicalPlan) -> Result<(LogicalPlan, bool)> {
    let swap = matches!((estimate(&left), estimate(&right)), (Some(l), Some(r)) if r.size < l.size);
    let (left, right) = (Arc::new(left), Arc::new(right));
    let joined = if swap {
        let join_type = match j.join_type {
            JoinType::LeftSemi => JoinType::RightSemi,
            _ => JoinType::RightAnti,
        };
        let on = j.on.iter().map(|(l, r)| (r.clone(), l.clone())).collect();
        Join::try_new(
            right,
            left,
            on,
            j.filter.clone(),
            join_type,
            j.join_constraint,
            j.null_equality,
            false,
        )?
    } else {
        Join::try_new(
            left,
            right,
            j.on.clone(),
            j.filter.clone(),
            j.join_type,
            j.join_constraint,
            j.null_equality,
            false,
        )?
    };
    Ok((LogicalPlan::Join(joined), swap))
}

/// `plan` below projections that only pick columns.
fn through_columns(plan: &LogicalPlan) -> Option<&LogicalPlan> {
    match plan {
        LogicalPlan::Projection(p) if only_columns(p) => through_columns(&p.input),
        other => Some(other),
    }
}

fn only_columns(p: &Projection) -> bool {
    p.expr.iter().all(|e| matches!(e, Expr::Column(_)))
}

/// How a tree of inner joins combines its tables (by index).
#[derive(Clone, Debug, PartialEq)]
pub enum Shape {
    Table(usize),
    Join(Box<Shape>, Box<Shape>),
}

/// A tree of inner joins taken apart: its tables and its conditions.
pub struct Tree {
    pub tables: Vec<LogicalPlan>,
    /// Equality conditions, each a pair of expressions that the join hashes.
    pub keys: Vec<(Expr, Expr)>,
    /// Other conditions.
    pub filters: Vec<Expr>,
    pub null_equality: NullEquality,
}

impl Tree {
    fn take_apart(&mut self, plan: &LogicalPlan) -> Shape {
        match plan {
            LogicalPlan::Join(j) if is_inner(j) && j.null_equality == self.null_equality => {
                self.keys.extend(j.on.iter().cloned());
                if let Some(f) = &j.filter {
                    self.filters.extend(split_conjunction_owned(f.clone()));
                }
                let left = self.take_apart(&j.left);
                let right = self.take_apart(&j.right);
                Shape::Join(Box::new(left), Box::new(right))
            }
            LogicalPlan::Projection(p)
                if only_columns(p)
                    && matches!(p.input.as_ref(), LogicalPlan::Join(j)
                        if is_inner(j) && j.null_equality == self.null_equality) =>
            {
                self.take_apart(&p.input)
            }
            other => {
                self.tables.push(other.clone());
                Shape::Table(self.tables.len() - 1)
            }
        }
    }

    /// The tables whose columns `expr` reads; `None` when a column is in none of them or in
    /// more than one.
    fn tables_of(&self, expr: &Expr) -> Option<BTreeSet<usize>> {
        let mut found = BTreeSet::new();
        for column in expr.column_refs() {
            let mut owners = self.owners(column);
            let first = owners.next()?;
            if owners.next().is_some() {
                return None;
            }
            found.insert(first);
        }
        Some(found)
    }

    fn owners<'a>(&'a self, column: &'a Column) -> impl Iterator<Item = usize> + 'a {
        self.tables
            .iter()
            .enumerate()
            .filter(move |(_, t)| t.schema().has_column(column))
            .map(|(i, _)| i)
    }
}

/// Reorders the inner joins of `plan` (an inner join), after pushing `filtering` (a semi or
/// anti join whose left side is `plan`) onto one of its tables when that pays.
fn cluster(plan: LogicalPlan, filtering: Option<&Join>) -> Result<Transformed<LogicalPlan>> {
    let LogicalPlan::Join(root) = through_columns(&plan).unwrap_or(&plan) else {
        return Ok(Transformed::no(plan));
    };
    let mut tree = Tree {
        tables: Vec::new(),
        keys: Vec::new(),
        filters: Vec::new(),
        null_equality: root.null_equality,
    };
    let shape = tree.take_apart(&plan);
    let mut changed = false;
    for table in &mut tree.tables {
        let t = reorder(std::mem::take(table))?;
        changed |= t.transformed;
        *table = t.data;
    }
    if let Some(f) = filtering {
        match push_onto(&mut tree, f)? {
            true => changed = true,
            false => return Ok(Transformed::no(plan)),
        }
    }
    let order = best_order(&tree).unwrap_or_else(|| shape.clone());
    if order == shape && !changed {
        return Ok(Transformed::no(plan));
    }
    let Some(joined) = build(&tree, &order)? else {
        return Ok(Transformed::no(plan));
    };
    Ok(Transformed::yes(restore_columns(joined, &plan)?))
}

/// Puts the semi join `f` onto the one table of `tree` that holds every column it reads from
/// its left side, if its right side is estimated smaller than that table.
///
/// An anti join stays above the tree: a right side smaller than the table removes the few rows
/// that match it, so on the table it would filter little and pass over (and copy) every row,
/// where above the joins it sees only the rows they keep. TPC-H q16's `NOT IN` of 50-odd
/// suppliers went over all 8 million `partsupp` rows before the join with `part` kept 15%.
fn push_onto(tree: &mut Tree, f: &Join) -> Result<bool> {
    if f.join_type == JoinType::LeftAnti {
        return Ok(false);
    }
    let mut reads: Vec<&Expr> = f.on.iter().map(|(l, _)| l).collect();
    let left_columns: Vec<Expr> = f
        .filter
        .iter()
        .flat_map(|e| e.column_refs())
        .filter(|c| f.left.schema().has_column(c))
        .map(|c| Expr::Column(c.clone()))
        .collect();
    reads.extend(left_columns.iter());
    let mut owners = BTreeSet::new();
    for e in reads {
        match tree.tables_of(e) {
            Some(t) => owners.extend(t),
            None => return Ok(false),
        }
    }
    let [target] = owners.into_iter().collect::<Vec<_>>()[..] else {
        return Ok(false);
    };
    let right = reorder(f.right.as_ref().clone())?.data;
    match (estimate(&tree.tables[target]), estimate(&right)) {
        (Some(table), Some(r)) if r.size <= table.size => {}
        _ => return Ok(false),
    }
    let table = std::mem::take(&mut tree.tables[target]);
    tree.tables[target] = smaller_built(f, table, right)?.0;
    Ok(true)
}

/// The left-deep order, from the start that gives the smallest sum of estimated intermediate
/// results, each step joining the table whose result is estimated smallest, with the smaller
/// side on the left (the side a hash join builds). `None` when a table's size is unknown,
/// a condition names columns the tables do not hold, or the tables are not all connected.
fn best_order(tree: &Tree) -> Option<Shape> {
    let n = tree.tables.len();
    if n < 3 {
        return None;
    }
    let sizes: Vec<Estimate> = tree.tables.iter().map(estimate).collect::<Option<_>>()?;
    // Pairs of tables that a key condition connects, with the most distinct keys the
    // condition can see: no more than the smallest table whose column is equal to the keys on
    // both sides (`c_nationkey = s_nationkey` and `s_nationkey = n_nationkey`: as many as
    // there are nations, not customers or suppliers).
    let classes = KeyClasses::of(tree, &sizes)?;
    let mut edges = Vec::new();
    for (i, (l, r)) in tree.keys.iter().enumerate() {
        let (tl, tr) = (tree.tables_of(l)?, tree.tables_of(r)?);
        if let ([a], [b]) = (
            &tl.iter().collect::<Vec<_>>()[..],
            &tr.iter().collect::<Vec<_>>()[..],
        ) && a != b
        {
            let distinct = classes
                .distinct(i)
                .unwrap_or(sizes[**a].base.min(sizes[**b].base));
            edges.push(Edge {
                tables: (**a, **b),
                distinct,
            });
        }
    }
    for f in &tree.filters {
        tree.tables_of(f)?;
    }
    let mut best: Option<(f64, Shape)> = None;
    for start in 0..n {
        let Some((cost, shape)) = greedy_from(start, &sizes, &edges) else {
            continue;
        };
        if best.as_ref().is_none_or(|(c, _)| cost < *c) {
            best = Some((cost, shape));
        }
    }
    best.map(|(_, shape)| shape)
}

/// Two tables that a key condition connects, and the most distinct keys it can see.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Edge {
    pub tables: (usize, usize),
    pub distinct: f64,
}

/// The key columns that conditions make equal, in classes, each with the smallest size of a
/// table among its columns.
pub struct KeyClasses {
    /// Per key condition, its class (conditions between expressions other than columns have
    /// none).
    class_of_key: Vec<Option<usize>>,
    smallest: Vec<f64>,
}

impl KeyClasses {
    pub fn of(tree: &Tree, sizes: &[Estimate]) -> Option<KeyClasses> {
        // Union-find over (table, column).
        let mut columns: Vec<(usize, &Column)> = Vec::new();
        let mut parent: Vec<usize> = Vec::new();
        let mut key_nodes = Vec::new();
        for (l, r) in &tree.keys {
            let (Expr::Column(cl), Expr::Column(cr)) = (l, r) else {
                key_nodes.push(None);
                continue;
            };
            let tl = tree.owners(cl).next()?;
            let tr = tree.owners(cr).next()?;
            let a = find_or_add(&mut columns, &mut parent, tl, cl);
            let b = find_or_add(&mut columns, &mut parent, tr, cr);
            let (ra, rb) = (root(&mut parent, a), root(&mut parent, b));
            parent[ra] = rb;
            key_nodes.push(Some(a));
        }
        let mut smallest = vec![f64::INFINITY; parent.len()];
        for (node, (table, _)) in columns.iter().enumerate() {
            let r = root(&mut parent, node);
            smallest[r] = smallest[r].min(sizes[*table].base);
        }
        let class_of_key = key_nodes
            .into_iter()
            .map(|n| n.map(|n| root(&mut parent, n)))
            .collect();
        Some(KeyClasses {
            class_of_key,
            smallest,
        })
    }

    /// The most distinct keys that key condition `i` can see.
    pub fn distinct(&self, i: usize) -> Option<f64> {
        self.class_of_key[i].map(|c| self.smallest[c])
    }
}

fn find_or_add<'a>(
    columns: &mut Vec<(usize, &'a Column)>,
    parent: &mut Vec<usize>,
    table: usize,
    column: &'a Column,
) -> usize {
    if let Some(i) = columns.iter().position(|c| c.0 == table && c.1 == column) {
        return i;
    }
    columns.push((table, column));
    parent.push(parent.len());
    parent.len() - 1
}

fn root(parent: &mut [usize], mut node: usize) -> usize {
    while parent[node] != node {
        parent[node] = parent[parent[node]];
        node = parent[node];
    }
    node
}

pub fn greedy_from(start: usize, sizes: &[Estimate], edges: &[Edge]) -> Option<(f64, Shape)> {
    let n = sizes.len();
    let mut joined = vec![false; n];
    joined[start] = true;
    let mut size = sizes[start].size;
    let mut shape = Shape::Table(start);
    let mut cost = 0.0;
    for _ in 1..n {
        let mut next: Option<(f64, usize)> = None;
        for candidate in (0..n).filter(|&c| !joined[c]) {
            // The most selective key between the joined tables and the candidate.
            let distinct = edges
                .iter()
                .filter(|e| {
                    let (a, b) = e.tables;
                    (joined[a] && b == candidate) || (joined[b] && a == candidate)
                })
                .map(|e| e.distinct)
                .fold(None, |m: Option<f64>, d| Some(m.map_or(d, |m| m.max(d))));
            let Some(distinct) = distinct else { continue };
            let result = (size * sizes[candidate].size / distinct.max(1.0)).max(1.0);
            if next.is_none_or(|(r, _)| result < r) {
                next = Some((result, candidate));
            }
        }
        let (result, candidate) = next?;
        joined[candidate] = true;
        let table = Box::new(Shape::Table(candidate));
        shape = if sizes[candidate].size < size {
            Shape::Join(table, Box::new(shape))
        } else {
            Shape::Join(Box::new(shape), table)
        };
        size = result;
        cost += result;
    }
    Some((cost, shape))
}

/// The joins of `order`, each condition at the lowest join that has all its tables; `None`
/// when a condition is left over or a key condition could only be a filter under null-equal
/// keys (where `a = b` as a filter would differ).
fn build(tree: &Tree, order: &Shape) -> Result<Option<LogicalPlan>> {
    let keys: Vec<(BTreeSet<usize>, BTreeSet<usize>)> = tree
        .keys
        .iter()
        .map(|(l, r)| Some((tree.tables_of(l)?, tree.tables_of(r)?)))
        .collect::<Option<_>>()
        .unwrap_or_default();
    let filters: Vec<BTreeSet<usize>> = tree
        .filters
        .iter()
        .map(|f| tree.tables_of(f))
        .collect::<Option<_>>()
        .unwrap_or_default();
    if keys.len() != tree.keys.len() || filters.len() != tree.filters.len() {
        return Ok(None);
    }
    let mut placed = Placed {
        keys: vec![false; keys.len()],
        filters: vec![false; filters.len()],
    };
    let Some((plan, _)) = build_shape(tree, order, &keys, &filters, &mut placed)? else {
        return Ok(None);
    };
    if placed.keys.iter().chain(&placed.filters).all(|p| *p) {
        Ok(Some(plan))
    } else {
        Ok(None)
    }
}

struct Placed {
    keys: Vec<bool>,
    filters: Vec<bool>,
}

fn build_shape(
    tree: &Tree,
    shape: &Shape,
    keys: &[(BTreeSet<usize>, BTreeSet<usize>)],
    filters: &[BTreeSet<usize>],
    placed: &mut Placed,
) -> Result<Option<(LogicalPlan, BTreeSet<usize>)>> {
    let (left, right) = match shape {
        Shape::Table(i) => return Ok(Some((tree.tables[*i].clone(), BTreeSet::from([*i])))),
        Shape::Join(l, r) => (l, r),
    };
    let Some((left, in_left)) = build_shape(tree, left, keys, filters, placed)? else {
        return Ok(None);
    };
    let Some((right, in_right)) = build_shape(tree, right, keys, filters, placed)? else {
        return Ok(None);
    };
    let both: BTreeSet<usize> = in_left.union(&in_right).copied().collect();
    let mut on = Vec::new();
    let mut conditions = Vec::new();
    for (i, (l, r)) in keys.iter().enumerate() {
        if placed.keys[i] || !l.is_subset(&both) || !r.is_subset(&both) {
            continue;
        }
        let (le, re) = &tree.keys[i];
        if l.is_subset(&in_left) && r.is_subset(&in_right) {
            on.push((le.clone(), re.clone()));
        } else if l.is_subset(&in_right) && r.is_subset(&in_left) {
            on.push((re.clone(), le.clone()));
        } else if tree.null_equality == NullEquality::NullEqualsNothing {
            conditions.push(le.clone().eq(re.clone()));
        } else {
            return Ok(None);
        }
        placed.keys[i] = true;
    }
    for (i, f) in filters.iter().enumerate() {
        if !placed.filters[i] && f.is_subset(&both) {
            conditions.push(tree.filters[i].clone());
            placed.filters[i] = true;
        }
    }
    let join = Join::try_new(
        Arc::new(left),
        Arc::new(right),
        on,
        conjunction(conditions),
        JoinType::Inner,
        JoinConstraint::On,
        tree.null_equality,
        false,
    )?;
    Ok(Some((LogicalPlan::Join(join), both)))
}

/// `joined` with the columns of `original` in their order.
fn restore_columns(joined: LogicalPlan, original: &LogicalPlan) -> Result<LogicalPlan> {
    if joined.schema() == original.schema() {
        return Ok(joined);
    }
    let columns = original
        .schema()
        .columns()
        .into_iter()
        .map(Expr::Column)
        .collect();
    Ok(LogicalPlan::Projection(Projection::try_new(
        columns,
        Arc::new(joined),
    )?))
}
