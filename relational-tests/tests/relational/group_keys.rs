use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::Column;
use datafusion::functions_aggregate::expr_fn::avg;
use datafusion::logical_expr::{JoinType, LogicalPlan};
use datafusion::logical_expr::{LogicalPlanBuilder, col, lit, table_scan};
use kask_relational::group_keys::*;

/// A scan of a table of non-null Int64 `columns`.
pub(crate) fn table(
    name: &str,
    columns: &[&str],
) -> datafusion::common::Result<LogicalPlanBuilder> {
    let schema = Schema::new(
        columns
            .iter()
            .map(|c| Field::new(*c, DataType::Int64, false))
            .collect::<Vec<_>>(),
    );
    table_scan(Some(name), &schema, None)
}

/// `SELECT avg(q) * 2 AS limit, k AS key FROM t GROUP BY k` as `sq`.
fn averages() -> LogicalPlan {
    table("t", &["k", "q"])
        .and_then(|b| b.aggregate(vec![col("t.k")], vec![avg(col("t.q"))]))
        .and_then(|b| {
            b.project(vec![
                (avg(col("t.q")) * lit(2.0)).alias("limit"),
                col("t.k").alias("key"),
            ])
        })
        .and_then(|b| b.alias("sq"))
        .and_then(|b| b.build())
        .expect("a plan")
}

#[test]
fn a_group_column_is_followed_through_projections_and_aliases() {
    let plan = averages();
    assert_eq!(
        group_column(&plan, &Column::new(Some("sq"), "key")),
        Some(Column::new(Some("t"), "k"))
    );
    assert_eq!(
        group_column(&plan, &Column::new(Some("sq"), "limit")),
        None,
        "an aggregate is no group column"
    );
    assert!(aggregate_below(&plan).is_some());
}

#[test]
fn key_columns_are_followed_down_to_the_side_of_a_join_that_holds_them() {
    let joined = table("a", &["x", "y"])
        .and_then(|b| b.filter(col("a.y").eq(lit(1))))
        .and_then(|b| {
            b.join(
                table("b", &["x", "z"])?.build()?,
                JoinType::Inner,
                (vec!["a.x"], vec!["b.x"]),
                None,
            )
        })
        .and_then(|b| b.project(vec![col("b.z"), col("a.x").alias("ax")]))
        .and_then(|b| b.build())
        .expect("a plan");
    let (below, cols) =
        step_down(&joined, &[Column::from_name("ax")]).expect("through the projection");
    assert_eq!(cols, [Column::new(Some("a"), "x")]);
    let (below, cols) = step_down(below, &cols).expect("into the join");
    assert!(matches!(below, LogicalPlan::Filter(_)), "{below}");
    let (below, cols) = step_down(below, &cols).expect("through the filter");
    assert!(matches!(below, LogicalPlan::TableScan(_)), "{below}");
    assert_eq!(cols, [Column::new(Some("a"), "x")]);
    assert!(step_down(below, &cols).is_none());

    // Columns from both sides of a join have no one side that holds them all.
    let (join, _) = step_down(&joined, &[Column::from_name("ax")]).expect("a join");
    assert!(
        step_down(
            join,
            &[Column::new(Some("a"), "x"), Column::new(Some("b"), "z")]
        )
        .is_none()
    );
}

#[test]
fn the_keys_come_from_the_lowest_plan_near_the_smallest() {
    let any = f64::INFINITY;
    // q02: the five-way join (0.47 MB) is estimated a little smaller than the filtered `part`
    // below it (0.69 MB), which is far smaller than `part` itself (69 MB).
    let q02 = [0.47e6, 4.7e6, 4.7e6, 0.69e6, 0.69e6, 69e6];
    assert_eq!(lowest_near_smallest(&q02, any), Some(4));
    // A plan lower down more than four times the smallest is not taken.
    assert_eq!(lowest_near_smallest(&[1.0e6, 5.0e6], any), Some(0));
    assert_eq!(
        lowest_near_smallest(&[8.0e6, 1.0e6, 4.0e6, 4.1e6], any),
        Some(2)
    );
    assert_eq!(lowest_near_smallest(&[3.0], any), Some(0));
    // Nor one too large to pay, while a smaller one above it does.
    assert_eq!(lowest_near_smallest(&q02, 0.5e6), Some(0));
    assert_eq!(lowest_near_smallest(&q02, 0.4e6), None);
    assert_eq!(lowest_near_smallest(&[], any), None);
}
