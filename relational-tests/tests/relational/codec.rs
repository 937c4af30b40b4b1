use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::physical_expr::expressions::Column;
use datafusion::prelude::SessionContext;

use datafusion::arrow::datatypes::Schema;
use datafusion::physical_expr::{LexOrdering, Partitioning};
use datafusion::physical_plan::ExecutionPlan;
use kask_relational::codec::*;
use kask_relational::csv_guard::NoLineBreaks;
use kask_relational::exchange::PlanningOnly;
use kask_relational::exchange::{ReadMode, ShuffleReaderExec, SinkKind};
use kask_relational::key_filter::KeyFilterExec;
use kask_relational::planner::plan_text;
use kask_relational::shares::Side;
use kask_relational::skew::SharedJoin;
use std::sync::Arc;

/// Two nullable columns, `k: Int64` and `s: Utf8`.
fn k_and_s() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, true),
        Field::new("s", DataType::Utf8, true),
    ]))
}

/// `root` and `sink` encoded and decoded again, as a task gets them.
fn round_trip(
    root: &Arc<dyn ExecutionPlan>,
    sink: &SinkKind,
) -> (Arc<dyn ExecutionPlan>, Option<SinkKind>) {
    let encoded = encode(root, sink).expect("encodes");
    let ctx = SessionContext::new();
    decode(
        &encoded.plan,
        (encoded.hash.as_deref(), encoded.range.as_deref()),
        &ctx.task_ctx(),
        Arc::new(PlanningOnly),
    )
    .expect("decodes")
}

#[test]
fn kask_nodes_and_a_hash_exchange_survive_the_trip() {
    let schema = k_and_s();
    let key: Arc<dyn datafusion::physical_expr::PhysicalExpr> = Arc::new(Column::new("k", 0));
    let reader: Arc<dyn ExecutionPlan> = Arc::new(ShuffleReaderExec::new(
        3,
        ReadMode::Partition,
        Arc::clone(&schema),
        Partitioning::Hash(vec![Arc::clone(&key)], 4),
        Arc::new(PlanningOnly),
    ));
    let root: Arc<dyn ExecutionPlan> = Arc::new(NoLineBreaks::new(reader));
    let sink = SinkKind::Hash(vec![Arc::new(Column::new("s", 1))], 8);
    let (back, hash) = round_trip(&root, &sink);
    assert_eq!(plan_text(&back), plan_text(&root));
    assert!(back.is::<NoLineBreaks>());
    let [child] = back.children()[..] else {
        panic!("one input")
    };
    let r = child
        .downcast_ref::<ShuffleReaderExec>()
        .expect("a shuffle reader");
    assert_eq!((r.stage(), r.mode()), (3, ReadMode::Partition));
    assert_eq!(r.schema(), schema);
    match r.properties().output_partitioning() {
        Partitioning::Hash(exprs, 4) => assert_eq!(exprs[0].to_string(), "k@0"),
        other => panic!("{other:?}"),
    }
    match hash {
        Some(SinkKind::Hash(exprs, 8)) => assert_eq!(exprs[0].to_string(), "s@1"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_key_filter_survives_the_trip() {
    let schema = k_and_s();
    let reader: Arc<dyn ExecutionPlan> = Arc::new(ShuffleReaderExec::new(
        1,
        ReadMode::Partition,
        Arc::clone(&schema),
        Partitioning::UnknownPartitioning(2),
        Arc::new(PlanningOnly),
    ));
    let keys: Vec<Arc<dyn datafusion::physical_expr::PhysicalExpr>> =
        vec![Arc::new(Column::new("s", 1)), Arc::new(Column::new("k", 0))];
    let root: Arc<dyn ExecutionPlan> =
        Arc::new(KeyFilterExec::new(reader, 5, keys, Arc::new(PlanningOnly)));
    let (back, _) = round_trip(&root, &SinkKind::Output);
    assert_eq!(plan_text(&back), plan_text(&root));
    let k = back.downcast_ref::<KeyFilterExec>().expect("a key filter");
    assert_eq!(k.stage(), 5);
    let keys: Vec<String> = k.keys().iter().map(|e| e.to_string()).collect();
    assert_eq!(keys, ["s@1", "k@0"]);
}

#[test]
fn a_reader_taking_small_partitions_together_survives_the_trip() {
    let key: Arc<dyn datafusion::physical_expr::PhysicalExpr> = Arc::new(Column::new("k", 0));
    let reader: Arc<dyn ExecutionPlan> = Arc::new(
        ShuffleReaderExec::new(
            3,
            ReadMode::Partition,
            k_and_s(),
            Partitioning::Hash(vec![key], 4),
            Arc::new(PlanningOnly),
        )
        .coalescing(&[1, 3]),
    );
    let (back, _) = round_trip(&reader, &SinkKind::Output);
    assert_eq!(plan_text(&back), plan_text(&reader));
    let r = back
        .downcast_ref::<ShuffleReaderExec>()
        .expect("a shuffle reader");
    assert_eq!(r.coalesced(), Some(&[1, 3][..]));
    assert_eq!(r.stage(), 3);
}

#[test]
fn a_side_of_a_join_sharing_skewed_partitions_survives_the_trip() {
    let key: Arc<dyn datafusion::physical_expr::PhysicalExpr> = Arc::new(Column::new("k", 0));
    let join = SharedJoin {
        left: 1,
        right: 4,
        split_left: false,
        split_right: true,
        side: Side::Right,
    };
    let reader: Arc<dyn ExecutionPlan> = Arc::new(
        ShuffleReaderExec::new(
            4,
            ReadMode::Partition,
            k_and_s(),
            Partitioning::Hash(vec![key], 4),
            Arc::new(PlanningOnly),
        )
        .sharing(join),
    );
    let (back, _) = round_trip(&reader, &SinkKind::Output);
    assert_eq!(plan_text(&back), plan_text(&reader));
    let r = back
        .downcast_ref::<ShuffleReaderExec>()
        .expect("a shuffle reader");
    assert_eq!(r.shared(), Some(join));
}

#[test]
fn a_key_range_reader_and_sorted_runs_survive_the_trip() {
    use datafusion::arrow::compute::SortOptions;
    use datafusion::physical_expr::PhysicalSortExpr;
    let schema = k_and_s();
    let ordering = LexOrdering::new(vec![
        PhysicalSortExpr::new(
            Arc::new(Column::new("k", 0)),
            SortOptions {
                descending: true,
                nulls_first: false,
            },
        ),
        PhysicalSortExpr::new_default(Arc::new(Column::new("s", 1))),
    ])
    .expect("an order");
    let reader: Arc<dyn ExecutionPlan> = Arc::new(ShuffleReaderExec::ranges(
        2,
        Arc::clone(&schema),
        (ordering.clone(), 5_000),
        6,
        Arc::new(PlanningOnly),
    ));
    let (back, sink) = round_trip(&reader, &SinkKind::Ranges(ordering.clone(), 4_096));
    assert_eq!(plan_text(&back), plan_text(&reader));
    let r = back
        .downcast_ref::<ShuffleReaderExec>()
        .expect("a shuffle reader");
    assert_eq!((r.stage(), r.mode()), (2, ReadMode::Range));
    assert_eq!(r.ordering(), Some(&ordering));
    assert_eq!(r.min_range_rows(), 5_000);
    assert_eq!(r.properties().output_partitioning().partition_count(), 6);
    match sink {
        Some(SinkKind::Ranges(o, 4_096)) => assert_eq!(o, ordering),
        other => panic!("{other:?}"),
    }
}

#[test]
fn bytes_that_are_not_a_plan_are_refused() {
    let ctx = SessionContext::new();
    for plan in ["not base64!", "AAAA/w=="] {
        assert!(decode(plan, (None, None), &ctx.task_ctx(), Arc::new(PlanningOnly)).is_err());
    }
}
