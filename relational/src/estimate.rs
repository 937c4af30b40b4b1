//! Estimated sizes of logical plans, for the join order ([`crate::join_order`]) and the
//! joins' build sides ([`crate::size_hint`]): bytes of a table's files, scaled by fixed shares
//! for filters and aggregations, since the tables here record no row or distinct counts.

use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::catalog::default_table_source::source_as_provider;
use datafusion::logical_expr::expr::{Between, InList, Like};
use datafusion::logical_expr::{Aggregate, BinaryExpr, Expr, JoinType, LogicalPlan, Operator};

use crate::tables::ScanTable;

/// A plan's estimated size in bytes, and the size of the table its keys come from (the
/// number of distinct keys it can have, in the same unit).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    pub size: f64,
    pub base: f64,
}

/// The estimated size of `plan` in bytes, if its tables' sizes are known.
pub(crate) fn estimated_bytes(plan: &LogicalPlan) -> Option<usize> {
    estimate(plan).map(|e| e.size as usize)
}

/// What share of rows a filter keeps when nothing is known of the data.
pub const EQUAL: f64 = 0.1;
pub const RANGE: f64 = 1.0 / 3.0;
pub const BETWEEN: f64 = 0.25;
pub const UNKNOWN: f64 = 0.5;
/// What share of its rows an aggregation's groups are.
pub(crate) const GROUPS: f64 = 0.1;

/// `plan`'s estimated size, if the sizes of its tables are known.
pub fn estimate(plan: &LogicalPlan) -> Option<Estimate> {
    let scaled = |e: Estimate, by: f64| Estimate {
        size: (e.size * by).max(1.0),
        base: e.base,
    };
    match plan {
        LogicalPlan::TableScan(scan) => {
            let provider = source_as_provider(&scan.source).ok()?;
            let table = provider.downcast_ref::<ScanTable>()?;
            let bytes = table.bytes() as f64;
            let kept: f64 = scan.filters.iter().map(selectivity).product();
            Some(scaled(
                Estimate {
                    size: bytes,
                    base: bytes.max(1.0),
                },
                kept,
            ))
        }
        LogicalPlan::Filter(f) => Some(scaled(estimate(&f.input)?, selectivity(&f.predicate))),
        LogicalPlan::Projection(p) => estimate(&p.input),
        LogicalPlan::SubqueryAlias(a) => estimate(&a.input),
        LogicalPlan::Sort(s) => estimate(&s.input),
        LogicalPlan::Repartition(r) => estimate(&r.input),
        LogicalPlan::Window(w) => estimate(&w.input),
        LogicalPlan::Limit(l) => estimate(&l.input),
        // A size hint (`crate::size_hint`), which passes its input on.
        LogicalPlan::Extension(e) if e.node.name() == "SizeHint" => {
            estimate(e.node.inputs().first()?)
        }
        LogicalPlan::Aggregate(a) => {
            let input = estimate(&a.input)?;
            let size = if a.group_expr.is_empty() {
                1.0
            } else {
                (input.size * GROUPS * narrowing(a)).max(1.0)
            };
            Some(Estimate { size, base: size })
        }
        LogicalPlan::Distinct(d) => {
            let input = estimate(d.input())?;
            let size = (input.size * GROUPS).max(1.0);
            Some(Estimate { size, base: size })
        }
        LogicalPlan::Join(j) => {
            let (l, r) = (estimate(&j.left)?, estimate(&j.right)?);
            match j.join_type {
                JoinType::Inner => Some(Estimate {
                    size: (l.size * r.size / l.base.min(r.base).max(1.0)).max(1.0),
                    base: l.base.max(r.base),
                }),
                JoinType::Left | JoinType::LeftMark => Some(l),
                JoinType::Right | JoinType::RightMark => Some(r),
                JoinType::LeftSemi => Some(Estimate {
                    size: l.size.min(r.size),
                    base: l.base,
                }),
                JoinType::RightSemi => Some(Estimate {
                    size: l.size.min(r.size),
                    base: r.base,
                }),
                JoinType::LeftAnti => Some(scaled(l, UNKNOWN)),
                JoinType::RightAnti => Some(scaled(r, UNKNOWN)),
                JoinType::Full => Some(Estimate {
                    size: l.size + r.size,
                    base: l.base.max(r.base),
                }),
            }
        }
        LogicalPlan::Union(u) => {
            let parts: Vec<Estimate> = u
                .inputs
                .iter()
                .map(|i| estimate(i))
                .collect::<Option<_>>()?;
            let size = parts.iter().map(|e| e.size).sum();
            Some(Estimate { size, base: size })
        }
        LogicalPlan::EmptyRelation(_) | LogicalPlan::Values(_) => Some(Estimate {
            size: 1.0,
            base: 1.0,
        }),
        _ => None,
    }
}

/// How much narrower an aggregation's rows (its keys and results) are than the rows of the
/// tables it reads, all of whose columns the estimates count: TPC-H q18's `GROUP BY l_orderkey`
/// with one sum keeps 24 of each `lineitem` row's 200-odd bytes. The same in the join order
/// (before projections reach the scans) and for the joins' build sides (after).
pub fn narrowing(a: &Aggregate) -> f64 {
    match tables_width(&a.input) {
        Some(full) if full > 0.0 => (row_width(a.schema.as_arrow()) / full).min(1.0),
        _ => 1.0,
    }
}

/// The width of a row of all columns of the tables under `plan` (the rows a scan's estimate
/// stands for), and of an aggregation's output for an aggregation under it.
fn tables_width(plan: &LogicalPlan) -> Option<f64> {
    match plan {
        LogicalPlan::TableScan(scan) => Some(row_width(&scan.source.schema())),
        LogicalPlan::Aggregate(a) => Some(row_width(a.schema.as_arrow())),
        LogicalPlan::Join(j) => match j.join_type {
            JoinType::LeftSemi | JoinType::LeftAnti | JoinType::LeftMark => tables_width(&j.left),
            JoinType::RightSemi | JoinType::RightAnti | JoinType::RightMark => {
                tables_width(&j.right)
            }
            _ => Some(tables_width(&j.left)? + tables_width(&j.right)?),
        },
        LogicalPlan::Filter(_)
        | LogicalPlan::Projection(_)
        | LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Sort(_)
        | LogicalPlan::Repartition(_)
        | LogicalPlan::Limit(_)
        | LogicalPlan::Extension(_) => match plan.inputs().as_slice() {
            [input] => tables_width(input),
            _ => None,
        },
        _ => None,
    }
}

/// The bytes of one row in memory: fixed-width types their width, strings and anything
/// nested a guess.
fn row_width(schema: &Schema) -> f64 {
    schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Boolean => 1.0,
            dt => dt.primitive_width().map_or(STRING_WIDTH, |w| w as f64),
        })
        .sum()
}

/// The guessed in-memory bytes of a string or nested value.
const STRING_WIDTH: f64 = 24.0;

/// The share of rows `predicate` keeps, from fixed guesses by its form.
pub fn selectivity(predicate: &Expr) -> f64 {
    match predicate {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::And => selectivity(left) * selectivity(right),
            Operator::Or => (selectivity(left) + selectivity(right)).min(1.0),
            Operator::Eq | Operator::IsNotDistinctFrom => EQUAL,
            Operator::NotEq | Operator::IsDistinctFrom => 1.0 - EQUAL,
            Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq => RANGE,
            _ => UNKNOWN,
        },
        Expr::Between(Between { negated, .. }) => {
            if *negated {
                1.0 - BETWEEN
            } else {
                BETWEEN
            }
        }
        Expr::Like(Like { negated, .. }) | Expr::SimilarTo(Like { negated, .. }) => {
            if *negated {
                1.0 - EQUAL
            } else {
                EQUAL
            }
        }
        Expr::InList(InList { list, negated, .. }) => {
            let kept = (list.len() as f64 * EQUAL).min(UNKNOWN);
            if *negated { 1.0 - kept } else { kept }
        }
        Expr::IsNull(_) => EQUAL,
        Expr::IsNotNull(_) => 1.0 - EQUAL,
        Expr::Not(inner) => 1.0 - selectivity(inner),
        _ => UNKNOWN,
    }
}
