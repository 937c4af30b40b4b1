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

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::common::NullEquality;
    use datafusion::physical_expr::expressions::Column;
    use datafusion::physical_expr::{Partitioning, PhysicalExpr};
    use datafusion::physical_plan::displayable;

    use super::*;
    use crate::exchange::ReadMode;
    use crate::test_plans::Named;

    fn written(rows: u64, bytes: u64) -> Written {
        Written { rows, bytes }
    }

    #[test]
    fn the_right_side_builds_when_it_has_under_half_the_rows_and_no_more_bytes() {
        assert!(builds_right(
            written(7_300_000, 58 << 20),
            written(740_000, 30 << 20)
        ));
        assert!(
            !builds_right(written(1_000, 80), written(600, 48)),
            "not under half"
        );
        assert!(
            !builds_right(written(1_000, 80), written(400, 81)),
            "more bytes"
        );
        assert!(!builds_right(written(100, 800), written(1_000, 80)));
        assert!(!builds_right(written(0, 0), written(0, 0)));
    }

    /// A join of type `join_type` of stage 0's shuffle (`k`, `a`) with stage 1's (`k`, `b`,
    /// `c`), partitioned two ways; an inner join keeps `a`, `b` and `c`.
    fn join_of_shuffles(join_type: JoinType) -> Arc<dyn ExecutionPlan> {
        let source: Arc<dyn ShuffleSource> = Arc::new(Named("build-side-test"));
        let side = |stage: usize, names: &[&str]| -> Arc<dyn ExecutionPlan> {
            let schema = Arc::new(Schema::new(
                names
                    .iter()
                    .map(|n| Field::new(*n, DataType::Int64, true))
                    .collect::<Vec<_>>(),
            ));
            let key: Arc<dyn PhysicalExpr> = Arc::new(Column::new("k", 0));
            Arc::new(ShuffleReaderExec::new(
                stage,
                ReadMode::Partition,
                schema,
                Partitioning::Hash(vec![key], 2),
                Arc::clone(&source),
            ))
        };
        let on: Vec<(Arc<dyn PhysicalExpr>, Arc<dyn PhysicalExpr>)> =
            vec![(Arc::new(Column::new("k", 0)), Arc::new(Column::new("k", 0)))];
        Arc::new(
            HashJoinExec::try_new(
                side(0, &["k", "a"]),
                side(1, &["k", "b", "c"]),
                on,
                None,
                &join_type,
                (join_type == JoinType::Inner).then(|| vec![1, 3, 4]),
                PartitionMode::Partitioned,
                NullEquality::NullEqualsNothing,
                false,
            )
            .expect("a join"),
        )
    }

    fn sizes(left: Written, right: Written) -> BTreeMap<usize, Written> {
        BTreeMap::from([(0, left), (1, right)])
    }

    #[test]
    fn a_join_builds_from_the_side_that_wrote_fewer_rows_and_keeps_its_columns() {
        let join = join_of_shuffles(JoinType::Inner);
        let turned_join = turned(
            Arc::clone(&join),
            &sizes(written(1_000, 1_000), written(100, 100)),
        )
        .expect("turned");
        assert_eq!(
            turned_join.schema(),
            join.schema(),
            "the same columns in the same order"
        );
        let text = displayable(turned_join.as_ref()).indent(false).to_string();
        let first_reader = text.find("stage=1").expect("reads stage 1");
        assert!(
            first_reader < text.find("stage=0").expect("reads stage 0"),
            "stage 1's rows are the build side now:\n{text}"
        );

        let kept = turned(
            Arc::clone(&join),
            &sizes(written(100, 100), written(1_000, 1_000)),
        )
        .expect("kept");
        assert!(
            Arc::ptr_eq(&kept, &join),
            "a smaller left side stays the build side"
        );
        let unknown = turned(Arc::clone(&join), &BTreeMap::new()).expect("kept");
        assert!(Arc::ptr_eq(&unknown, &join));
    }

    #[test]
    fn only_inner_joins_turn() {
        for join_type in [
            JoinType::Left,
            JoinType::LeftSemi,
            JoinType::LeftAnti,
            JoinType::Full,
        ] {
            let join = join_of_shuffles(join_type);
            let kept = turned(
                Arc::clone(&join),
                &sizes(written(1_000, 1_000), written(1, 1)),
            )
            .expect("kept");
            assert!(Arc::ptr_eq(&kept, &join), "{join_type}");
        }
    }
}
