//! Which partitioned joins may share a skewed partition among their tasks ([`crate::shares`]),
//! decided when the plan is cut: the readers of both sides are marked ([`SharedJoin`]), and
//! at run time they read what the stage's shares give their task instead of its own
//! partition.
//!
//! A join may do so when nothing above it in its stage needs its rows hash-partitioned (a
//! final aggregation or another partitioned join over it would see one key in several
//! tasks), each side is a chain of operators over one shuffle reader, and the join type lets
//! a side go: a side may be split only when its rows are kept or dropped by what they match
//! alone (inner joins either side; left, left semi, anti and mark joins the left; right ones
//! the right). The other side's partition goes whole to every task with a piece, so the
//! join must not emit that side's unmatched rows, which every such task would. A split side
//! must also be row-wise down to its reader: an aggregation there needs its whole partition.

use std::sync::Arc;

use datafusion::common::JoinType;
use datafusion::physical_expr::{Distribution, Partitioning};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};

use super::cut::renew;
use super::exchange::{ReadMode, ShuffleReaderExec};
use super::shares::Side;
use kask_core::error::Result;

/// A side of a partitioned join whose tasks share out a skewed partition: the stages the
/// two sides read, which sides may be split, and which side this reader reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedJoin {
    /// The stage the left side reads.
    pub left: usize,
    /// The stage the right side reads.
    pub right: usize,
    /// Whether the left side may be split.
    pub split_left: bool,
    /// Whether the right side may be split.
    pub split_right: bool,
    /// The side this reader reads.
    pub side: Side,
}

/// `root` (a stage's sub-plan) with the readers of every join that may share a skewed
/// partition marked.
pub fn share_skewed_joins(root: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    mark(root, true)
}

fn mark(plan: Arc<dyn ExecutionPlan>, free: bool) -> Result<Arc<dyn ExecutionPlan>> {
    if free && let Some(shared) = shared(&plan)? {
        return Ok(shared);
    }
    let children: Vec<Arc<dyn ExecutionPlan>> = plan.children().into_iter().cloned().collect();
    if children.is_empty() {
        return Ok(plan);
    }
    let marked = children
        .iter()
        .enumerate()
        .map(|(i, c)| mark(Arc::clone(c), free && unpartitioned(&plan, i)))
        .collect::<Result<Vec<_>>>()?;
    if marked.iter().zip(&children).all(|(a, b)| Arc::ptr_eq(a, b)) {
        return Ok(plan);
    }
    renew(plan, marked)
}

/// Whether `plan` takes its input `child` however it is partitioned.
fn unpartitioned(plan: &Arc<dyn ExecutionPlan>, child: usize) -> bool {
    matches!(
        plan.input_distribution_requirements()
            .child_distribution(child),
        Some(Distribution::UnspecifiedDistribution) | None
    )
}

/// `plan` with its sides' readers marked, when it is a join that may share its partitions.
fn shared(plan: &Arc<dyn ExecutionPlan>) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let Some(j) = plan.downcast_ref::<HashJoinExec>() else {
        return Ok(None);
    };
    if *j.partition_mode() != PartitionMode::Partitioned || j.null_aware {
        return Ok(None);
    }
    let (Some((left, left_rows)), Some((right, right_rows))) =
        (side_reader(j.left()), side_reader(j.right()))
    else {
        return Ok(None);
    };
    let t = *j.join_type();
    let split_left = left_rows
        && matches!(
            t,
            JoinType::Inner
                | JoinType::Left
                | JoinType::LeftSemi
                | JoinType::LeftAnti
                | JoinType::LeftMark
        );
    let split_right = right_rows
        && matches!(
            t,
            JoinType::Inner
                | JoinType::Right
                | JoinType::RightSemi
                | JoinType::RightAnti
                | JoinType::RightMark
        );
    if !(split_left || split_right) {
        return Ok(None);
    }
    let join = SharedJoin {
        left: left.stage(),
        right: right.stage(),
        split_left,
        split_right,
        side: Side::Left,
    };
    let sides = vec![
        with_share(j.left(), join)?,
        with_share(
            j.right(),
            SharedJoin {
                side: Side::Right,
                ..join
            },
        )?,
    ];
    Ok(Some(renew(Arc::clone(plan), sides)?))
}

/// The hash-partition reader at the bottom of a chain of one-input operators, and whether
/// the chain is row-wise (no operator in it needs its input partitioned).
fn side_reader(plan: &Arc<dyn ExecutionPlan>) -> Option<(&ShuffleReaderExec, bool)> {
    if let Some(r) = plan.downcast_ref::<ShuffleReaderExec>() {
        let hashed = matches!(r.properties().partitioning, Partitioning::Hash(_, n) if n > 1);
        return (r.mode() == ReadMode::Partition && hashed && r.shared().is_none())
            .then_some((r, true));
    }
    let [child] = plan.children()[..] else {
        return None;
    };
    let (reader, rows) = side_reader(child)?;
    Some((reader, rows && unpartitioned(plan, 0)))
}

/// `plan`'s chain with its reader marked as reading `join`'s side.
fn with_share(plan: &Arc<dyn ExecutionPlan>, join: SharedJoin) -> Result<Arc<dyn ExecutionPlan>> {
    if let Some(r) = plan.downcast_ref::<ShuffleReaderExec>() {
        return Ok(Arc::new(r.sharing(join)));
    }
    let children: Vec<Arc<dyn ExecutionPlan>> = plan
        .children()
        .into_iter()
        .map(|c| with_share(c, join))
        .collect::<Result<_>>()?;
    renew(Arc::clone(plan), children)
}
