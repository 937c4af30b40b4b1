use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::logical_expr::{Expr, JoinType, LogicalPlan};
use datafusion::logical_expr::{col, lit};
use kask_relational::estimate::*;

#[test]
fn an_aggregation_is_as_much_narrower_as_its_keys_and_results_are_than_the_tables_rows() {
    use datafusion::arrow::datatypes::Field;
    use datafusion::functions_aggregate::expr_fn::sum;
    use datafusion::logical_expr::table_scan;
    // 8 + 16 + 24 bytes a row; grouped by the key with one decimal sum: 8 + 16.
    let schema = Schema::new(vec![
        Field::new("key", DataType::Int64, false),
        Field::new("qty", DataType::Decimal128(15, 2), false),
        Field::new("comment", DataType::Utf8View, false),
    ]);
    let narrowing_of = |plan: LogicalPlan| match &plan {
        LogicalPlan::Aggregate(a) => narrowing(a),
        other => panic!("not an aggregation: {other}"),
    };
    let aggregate = table_scan(Some("t"), &schema, None)
        .and_then(|b| b.aggregate(vec![col("key")], vec![sum(col("qty"))]))
        .and_then(|b| b.build())
        .expect("plan");
    // sum() of a Decimal128(15, 2) is a Decimal128(25, 2): 16 bytes.
    assert_eq!(narrowing_of(aggregate), 24.0 / 48.0);
    // Through a join, the rows are both tables' columns.
    let joined = table_scan(Some("t"), &schema, None)
        .and_then(|b| {
            b.join_on(
                table_scan(Some("u"), &schema, None)?.build()?,
                JoinType::Inner,
                vec![col("t.key").eq(col("u.key"))],
            )
        })
        .and_then(|b| b.aggregate(vec![col("t.key")], vec![sum(col("u.qty"))]))
        .and_then(|b| b.build())
        .expect("plan");
    assert_eq!(narrowing_of(joined), 24.0 / 96.0);
}

#[test]
fn filters_keep_shares_by_their_form() {
    let eq = col("a").eq(lit(1));
    assert_eq!(selectivity(&eq), EQUAL);
    assert_eq!(selectivity(&col("a").gt(lit(1))), RANGE);
    assert_eq!(
        selectivity(&eq.clone().and(col("b").lt(lit(2)))),
        EQUAL * RANGE
    );
    assert_eq!(selectivity(&eq.clone().or(eq.clone())), 2.0 * EQUAL);
    assert_eq!(selectivity(&col("a").between(lit(1), lit(2))), BETWEEN);
    assert_eq!(
        selectivity(&col("a").in_list(vec![lit(1), lit(2)], false)),
        2.0 * EQUAL
    );
    assert!((selectivity(&Expr::Not(Box::new(eq))) - (1.0 - EQUAL)).abs() < 1e-12);
    assert_eq!(selectivity(&col("a")), UNKNOWN);
}
