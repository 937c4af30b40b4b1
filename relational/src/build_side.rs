//! A partitioned hash join builds its table from its left input, the side the plan pod
//! estimated smaller; a task knows better. Both sides are shuffles that finished before it
//! started, and their map tasks recorded the rows and bytes they wrote. In TPC-H q21 the
//! estimate put the `F` orders (7.3 million rows) on the build side against 0.7 million
//! late `lineitem` rows that a key filter had left; each task hashed ten times the rows it
//! probed. A task builds from the right side instead when it has less than half the rows
//! and no more bytes (the table must fit where the left side's would).
//!
//! Only inner joins are turned: which side is built changes nothing in their rows, and
//! DataFusion's `swap_inputs` puts the columns back in their order.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::common::JoinType;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::Result as DfResult;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};

use super::exchange::{ShuffleReaderExec, ShuffleSource};

/// Rows and bytes a stage's map tasks wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Written {
    pub rows: u64,
    pub bytes: u64,
}

/// Whether a join should build from its right side, whose input wrote `right`, rather than
/// its left, which wrote `left`.
pub fn builds_right(left: Written, right: Written) -> bool {
    right.rows.saturating_mul(2) < left.rows && right.bytes <= left.bytes
}

/// `root` with each inner partitioned join of two shuffles building from the side that
/// wrote fewer rows ([`builds_right`]). Sizes that cannot be read leave a join as it is: its
/// readers will report the failure.
pub async fn smaller_builds(
    root: Arc<dyn ExecutionPlan>,
    source: &dyn ShuffleSource,
) -> DfResult<Arc<dyn ExecutionPlan>> {
    let mut stages = Vec::new();
    collect_joined_stages(&root, &mut stages);
    if stages.is_empty() {
        return Ok(root);
    }
    let mut written = BTreeMap::new();
    for stage in stages {
        if written.contains_key(&stage) {
            continue;
        }
        let Ok(maps) = source.maps(stage).await else {
            return Ok(root);
        };
        let total = maps.iter().fold(Written::default(), |t, m| Written {
            rows: t.rows + m.rows_out,
            bytes: t.bytes + m.bytes_out,
        });
        written.insert(stage, total);
    }
    turned(root, &written)
}

/// `root` with the joins of shuffles whose sizes are in `written` turned where
/// [`builds_right`] says so.
pub fn turned(
    root: Arc<dyn ExecutionPlan>,
    written: &BTreeMap<usize, Written>,
) -> DfResult<Arc<dyn ExecutionPlan>> {
    root.transform_up(|node| {
        let Some((join, left, right)) = candidate(&node) else {
            return Ok(Transformed::no(node));
        };
        match (written.get(&left), written.get(&right)) {
            (Some(l), Some(r)) if builds_right(*l, *r) => {
                tracing::debug!(
                    left_rows = l.rows,
                    right_rows = r.rows,
                    "a partitioned join builds from its right side, which wrote fewer rows"
                );
                Ok(Transformed::yes(
                    join.swap_inputs(PartitionMode::Partitioned)?,
                ))
            }
            _ => Ok(Transformed::no(node)),
        }
    })
    .map(|t| t.data)
}

/// An inner partitioned join whose sides read stages `left` and `right`'s shuffles.
fn candidate(node: &Arc<dyn ExecutionPlan>) -> Option<(&HashJoinExec, usize, usize)> {
    let join = node.downcast_ref::<HashJoinExec>()?;
    if *join.partition_mode() != PartitionMode::Partitioned || *join.join_type() != JoinType::Inner
    {
        return None;
    }
    let stage = |side: &Arc<dyn ExecutionPlan>| {
        side.downcast_ref::<ShuffleReaderExec>()
            .map(ShuffleReaderExec::stage)
    };
    Some((join, stage(join.left())?, stage(join.right())?))
}

fn collect_joined_stages(plan: &Arc<dyn ExecutionPlan>, out: &mut Vec<usize>) {
    if let Some((_, left, right)) = candidate(plan) {
        out.extend([left, right]);
    }
    for child in plan.children() {
        collect_joined_stages(child, out);
    }
}
