use std::sync::atomic::{AtomicUsize, Ordering};

use datafusion::arrow::array::{Array, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::NullEquality;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::common::collect;
use datafusion::prelude::SessionContext;

use crate::test_plans::{Counted, Named};
use datafusion::common::JoinType;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use kask_relational::exchange::ShuffleSource;
use kask_relational::shared_build::SharedBuildExec;
use kask_relational::shared_table::*;
use std::sync::Arc;

/// The probe side's keys in each of its two partitions (one per task).
fn probe_keys(partition: usize) -> Vec<i64> {
    match partition {
        0 => (500..1500).collect(),
        _ => (0..300).chain(0..10).collect(),
    }
}

fn build_batch() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("v", DataType::Int64, false),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(0..1000)),
            Arc::new(Int64Array::from_iter_values((0..1000).map(|k| k * 10))),
        ],
    )
    .expect("a batch")
}

/// One task's plan, decoded alike in every task: `join_type` of a build side of keys 0..1000
/// (counting its runs in `runs`, under a [`SharedBuildExec`] when `wrapped`) with a probe side
/// of two partitions.
fn task_plan(
    join_type: JoinType,
    runs: &Arc<AtomicUsize>,
    wrapped: bool,
) -> Arc<dyn ExecutionPlan> {
    let build = build_batch();
    let mut left: Arc<dyn ExecutionPlan> = Arc::new(Counted::new(
        MemorySourceConfig::try_new_exec(&[vec![build.clone()]], build.schema(), None)
            .expect("rows"),
        Arc::clone(runs),
    ));
    if wrapped {
        let source: Arc<dyn ShuffleSource> = Arc::new(Named("shared-table-wrapped"));
        left = Arc::new(SharedBuildExec::new(left, 1, 0, source));
    }
    let probe_schema = Arc::new(Schema::new(vec![Field::new("p", DataType::Int64, false)]));
    let partitions: Vec<Vec<RecordBatch>> = (0..2)
        .map(|p| {
            vec![
                RecordBatch::try_new(
                    Arc::clone(&probe_schema),
                    vec![Arc::new(Int64Array::from(probe_keys(p)))],
                )
                .expect("a batch"),
            ]
        })
        .collect();
    let right = MemorySourceConfig::try_new_exec(&partitions, probe_schema, None).expect("rows");
    let on = vec![(
        Arc::new(Column::new("k", 0)) as Arc<dyn datafusion::physical_expr::PhysicalExpr>,
        Arc::new(Column::new("p", 0)) as Arc<dyn datafusion::physical_expr::PhysicalExpr>,
    )];
    Arc::new(
        HashJoinExec::try_new(
            left,
            right,
            on,
            None,
            &join_type,
            None,
            PartitionMode::CollectLeft,
            NullEquality::NullEqualsNothing,
            false,
        )
        .expect("a join"),
    )
}

/// The rows of `plan`'s partition `partition`, as (k, v, p), sorted.
async fn run(plan: &Arc<dyn ExecutionPlan>, partition: usize) -> Vec<(i64, i64, i64)> {
    let ctx = SessionContext::new().task_ctx();
    let batches = collect(plan.execute(partition, ctx).expect("runs"))
        .await
        .expect("rows");
    let mut rows = Vec::new();
    for b in batches {
        let col = |i: usize| {
            b.column(i)
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("ints")
                .clone()
        };
        let (k, v, p) = (col(0), col(1), col(2));
        assert_eq!(k.null_count() + v.null_count() + p.null_count(), 0);
        rows.extend((0..b.num_rows()).map(|i| (k.value(i), v.value(i), p.value(i))));
    }
    rows.sort_unstable();
    rows
}

/// The inner join of partition `partition`, computed plainly.
fn expected(partition: usize) -> Vec<(i64, i64, i64)> {
    let mut rows: Vec<(i64, i64, i64)> = probe_keys(partition)
        .into_iter()
        .filter(|p| (0..1000).contains(p))
        .map(|p| (p, p * 10, p))
        .collect();
    rows.sort_unstable();
    rows
}

fn shared(plan: Arc<dyn ExecutionPlan>, scope: &str) -> (Arc<dyn ExecutionPlan>, Held) {
    share_tables(plan, 4, Some(scope.into())).expect("rewritten")
}

fn has_shared_build(plan: &Arc<dyn ExecutionPlan>) -> bool {
    plan.is::<SharedBuildExec>() || plan.children().into_iter().any(has_shared_build)
}

#[tokio::test]
async fn tasks_of_one_process_build_an_inner_joins_table_once() {
    let runs = Arc::new(AtomicUsize::new(0));
    let (a, held_a) = shared(task_plan(JoinType::Inner, &runs, false), "table-inner");
    let (b, held_b) = shared(task_plan(JoinType::Inner, &runs, false), "table-inner");
    assert_eq!((held_a.len(), held_b.len()), (1, 1));
    assert_eq!(run(&a, 0).await, expected(0));
    assert_eq!(run(&b, 1).await, expected(1));
    assert_eq!(runs.load(Ordering::SeqCst), 1, "one table for both tasks");

    // A task that failed lets the next one build afresh, while the others keep theirs.
    held_a.forget();
    let (c, _held_c) = shared(task_plan(JoinType::Inner, &runs, false), "table-inner");
    assert_eq!(run(&c, 1).await, expected(1));
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "built again after a failure"
    );
    assert_eq!(run(&b, 0).await, expected(0));
    assert_eq!(runs.load(Ordering::SeqCst), 2, "the holders kept theirs");

    // Another job's tasks build their own.
    let (d, _held_d) = shared(task_plan(JoinType::Inner, &runs, false), "table-other-job");
    assert_eq!(run(&d, 0).await, expected(0));
    assert_eq!(runs.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_task_dropped_before_it_ended_leaves_no_table() {
    let runs = Arc::new(AtomicUsize::new(0));
    let (a, held) = shared(task_plan(JoinType::Inner, &runs, false), "table-dropped");
    assert_eq!(run(&a, 0).await, expected(0));
    // Dropped without `finished`, as a cancelled task's future is: the next task, starting
    // at once, builds its own table rather than inherit one that may hold a cancelled build.
    drop((a, held));
    let (b, _held) = shared(task_plan(JoinType::Inner, &runs, false), "table-dropped");
    assert_eq!(run(&b, 1).await, expected(1));
    assert_eq!(runs.load(Ordering::SeqCst), 2, "built again");
}

#[tokio::test]
async fn a_table_outlives_its_last_task_a_moment() {
    let runs = Arc::new(AtomicUsize::new(0));
    let (a, mut held) = shared(task_plan(JoinType::Inner, &runs, false), "table-linger");
    assert_eq!(run(&a, 0).await, expected(0));
    held.finished();
    drop((a, held));
    // The next task starts right after: the table is still there.
    let (b, mut held) = shared(task_plan(JoinType::Inner, &runs, false), "table-linger");
    assert_eq!(run(&b, 1).await, expected(1));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    held.finished();
    drop((b, held));
    std::thread::sleep(LINGER * 3);
    let (c, _held) = shared(task_plan(JoinType::Inner, &runs, false), "table-linger");
    assert_eq!(run(&c, 0).await, expected(0));
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "gone once no task held it for a while"
    );
}

#[tokio::test]
async fn a_shared_build_side_under_a_shared_table_is_not_kept_twice() {
    let runs = Arc::new(AtomicUsize::new(0));
    let (a, _held_a) = shared(task_plan(JoinType::Inner, &runs, true), "table-wrapped");
    let (b, _held_b) = shared(task_plan(JoinType::Inner, &runs, true), "table-wrapped");
    assert!(!has_shared_build(&a) && !has_shared_build(&b));
    assert_eq!(run(&b, 1).await, expected(1));
    assert_eq!(run(&a, 0).await, expected(0));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn joins_that_emit_unmatched_build_rows_keep_their_own_table() {
    for join_type in [
        JoinType::Left,
        JoinType::Full,
        JoinType::LeftSemi,
        JoinType::LeftAnti,
    ] {
        let runs = Arc::new(AtomicUsize::new(0));
        let scope = format!("table-own-{join_type}");
        let plan = task_plan(join_type, &runs, false);
        let before = line(&plan);
        let (a, held_a) = share_tables(plan, 4, Some(scope.clone())).expect("rewritten");
        let (b, held_b) =
            share_tables(task_plan(join_type, &runs, false), 4, Some(scope)).expect("rewritten");
        assert!(held_a.is_empty() && held_b.is_empty(), "{join_type}");
        assert_eq!(line(&a), before);
        for plan in [&a, &b] {
            let ctx = SessionContext::new().task_ctx();
            collect(plan.execute(0, ctx).expect("runs"))
                .await
                .expect("rows");
        }
        assert_eq!(
            runs.load(Ordering::SeqCst),
            2,
            "{join_type}: one table per task"
        );
    }
}

#[test]
fn a_plan_without_a_job_is_left_alone() {
    let runs = Arc::new(AtomicUsize::new(0));
    let (_, held) =
        share_tables(task_plan(JoinType::Inner, &runs, false), 4, None).expect("rewritten");
    assert!(held.is_empty());
}
