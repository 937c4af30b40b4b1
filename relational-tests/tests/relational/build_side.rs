use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::NullEquality;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{Partitioning, PhysicalExpr};
use datafusion::physical_plan::displayable;

use crate::test_plans::Named;
use datafusion::common::JoinType;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use kask_relational::build_side::*;
use kask_relational::exchange::ReadMode;
use kask_relational::exchange::{ShuffleReaderExec, ShuffleSource};
use std::collections::BTreeMap;
use std::sync::Arc;

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
