use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::functions_aggregate::expr_fn::sum;
use datafusion::logical_expr::{Expr, JoinType, LogicalPlan, LogicalPlanBuilder};
use datafusion::logical_expr::{LogicalTableSource, col, lit, table_scan};
use datafusion::prelude::random;
use kask_relational::common_subplans::*;
use std::sync::Arc;

use crate::group_keys::table;

/// `t(k, v, w, x)`, scanning the columns at `columns`, joined with `u(k, g)` where `u.g = 3`,
/// keeping the columns `keep` of the join.
fn joined(columns: &[usize], keep: &[&str]) -> LogicalPlanBuilder {
    joined_where(3, columns, keep)
}

/// [`joined`] with `u.g = g`.
fn joined_where(g: i64, columns: &[usize], keep: &[&str]) -> LogicalPlanBuilder {
    let u = table("u", &["k", "g"])
        .and_then(|b| b.filter(col("u.g").eq(lit(g))))
        .and_then(|b| b.build())
        .expect("u");
    let t = Schema::new(
        ["k", "v", "w", "x"]
            .map(|c| Field::new(c, DataType::Int64, false))
            .to_vec(),
    );
    table_scan(Some("t"), &t, Some(columns.to_vec()))
        .and_then(|b| b.join(u, JoinType::Inner, (vec!["t.k"], vec!["u.k"]), None))
        .and_then(|b| b.project(keep.iter().map(|c| col(*c))))
        .expect("a join")
}

/// q11's shape: the sum of `v` per key, against a tenth of the total of `w` over the same
/// join, computed by a scalar aggregation that reads other columns.
fn per_key_against_total() -> LogicalPlan {
    let total = joined(&[0, 2], &["t.w"])
        .aggregate(Vec::<Expr>::new(), vec![sum(col("t.w")).alias("total")])
        .and_then(|b| b.build())
        .expect("the total");
    joined(&[0, 1], &["t.k", "t.v", "u.g"])
        .aggregate(vec![col("t.k")], vec![sum(col("t.v")).alias("value")])
        .and_then(|b| b.cross_join(total))
        .and_then(|b| b.filter(col("value").gt(col("total") * lit(0.1))))
        .and_then(|b| b.build())
        .expect("the query")
}

fn aliased(plan: LogicalPlan, name: &str) -> LogicalPlan {
    LogicalPlanBuilder::from(plan)
        .alias(name)
        .and_then(|b| b.build())
        .expect("an alias")
}

/// The joins on keys in `plan` (not the cross join that takes the total to every key).
fn joins(plan: &LogicalPlan) -> usize {
    let mut nodes = Vec::new();
    walk(plan, &mut nodes);
    nodes
        .iter()
        .filter(|n| matches!(n.plan, LogicalPlan::Join(j) if !j.on.is_empty()))
        .count()
}

fn scan_columns(plan: &LogicalPlan, name: &str) -> Vec<String> {
    let mut nodes = Vec::new();
    walk(plan, &mut nodes);
    nodes
        .iter()
        .find_map(|n| match n.plan {
            LogicalPlan::TableScan(s) if s.table_name.table() == name => Some(
                s.projected_schema
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect(),
            ),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no scan of {name} in\n{}", plan.display_indent()))
}

#[test]
fn a_join_used_twice_with_different_columns_is_computed_once_with_the_columns_of_both() {
    let plan = per_key_against_total();
    assert_eq!(joins(&plan), 2);
    let found = common_subplans(&plan, 0).expect("planned");
    assert_eq!(found.len(), 1, "{found:?}");
    let common = &found[0];
    assert_eq!(common.uses(), 2);
    // The scans keep what either use reads (`x` neither), and the top what either returns.
    assert_eq!(scan_columns(&common.plan, "t"), ["k", "v", "w"]);
    let names: Vec<&String> = common
        .plan
        .schema()
        .fields()
        .iter()
        .map(|f| f.name())
        .collect();
    assert_eq!(names, ["k", "v", "g", "w"]);

    let source = Arc::new(LogicalTableSource::new(Arc::new(
        common.plan.schema().as_arrow().clone(),
    )));
    let read = reading_common(plan.clone(), common, "subplan-0", source).expect("replaced");
    assert_eq!(joins(&read), 0, "{}", read.display_indent());
    assert!(same_fields(read.schema(), plan.schema()));
    let text = read.display_indent().to_string();
    assert_eq!(text.matches("TableScan: subplan-0").count(), 2, "{text}");
    assert!(!text.contains("TableScan: t"), "{text}");
}

#[test]
fn joins_that_differ_in_a_filter_are_not_shared() {
    let total = joined_where(4, &[0, 1], &["t.v"])
        .aggregate(Vec::<Expr>::new(), vec![sum(col("t.v")).alias("total")])
        .and_then(|b| b.build())
        .expect("the total");
    let plan = joined(&[0, 1], &["t.k", "t.v"])
        .aggregate(vec![col("t.k")], vec![sum(col("t.v")).alias("value")])
        .and_then(|b| b.cross_join(total))
        .and_then(|b| b.build())
        .expect("the query");
    assert!(common_subplans(&plan, 0).expect("planned").is_empty());
}

#[test]
fn a_join_with_a_volatile_filter_is_computed_for_each_use() {
    let noisy = || {
        joined(&[0, 1], &["t.k", "t.v"])
            .filter(random().lt(lit(0.5)))
            .and_then(|b| b.build())
            .expect("a sample")
    };
    let plan = LogicalPlanBuilder::from(noisy())
        .cross_join(aliased(noisy(), "y"))
        .and_then(|b| b.build())
        .expect("the query");
    let found = common_subplans(&plan, 0).expect("planned");
    // The join under the sample is the same in both and is shared; the sample is not.
    assert_eq!(found.len(), 1);
    assert!(!format!("{}", found[0].plan.display_indent()).contains("random"));
}

#[test]
fn a_scan_read_twice_is_not_copied() {
    let scan = || {
        table("t", &["k", "v"])
            .and_then(|b| b.filter(col("t.v").gt(lit(1i64))))
            .and_then(|b| b.build())
            .expect("t")
    };
    let plan = LogicalPlanBuilder::from(scan())
        .cross_join(aliased(scan(), "y"))
        .and_then(|b| b.build())
        .expect("the query");
    assert!(common_subplans(&plan, 0).expect("planned").is_empty());
}

#[test]
fn an_outer_join_is_not_shared() {
    let outer = || {
        let u = table("u", &["k", "g"]).and_then(|b| b.build()).expect("u");
        table("t", &["k", "v"])
            .and_then(|b| b.join(u, JoinType::Left, (vec!["t.k"], vec!["u.k"]), None))
            .and_then(|b| b.aggregate(Vec::<Expr>::new(), vec![sum(col("t.v")).alias("s")]))
            .and_then(|b| b.build())
            .expect("an outer join")
    };
    let plan = LogicalPlanBuilder::from(aliased(outer(), "x"))
        .cross_join(aliased(outer(), "y"))
        .and_then(|b| b.build())
        .expect("the query");
    assert!(common_subplans(&plan, 0).expect("planned").is_empty());
}

/// The same aggregation of the same join twice: the aggregation is shared, not only the join.
#[test]
fn the_largest_common_sub_plan_is_taken() {
    let totals = || {
        joined(&[0, 1], &["t.k", "t.v"])
            .aggregate(vec![col("t.k")], vec![sum(col("t.v")).alias("s")])
            .and_then(|b| b.alias("x"))
            .and_then(|b| b.build())
            .expect("totals")
    };
    let plan = LogicalPlanBuilder::from(totals())
        .cross_join(aliased(totals(), "y"))
        .and_then(|b| b.build())
        .expect("the query");
    let found = common_subplans(&plan, 0).expect("planned");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        format!("{}", found[0].plan.display_indent()).contains("Aggregate"),
        "{}",
        found[0].plan.display_indent()
    );
}
