use datafusion::common::tree_node::TreeNode;
use datafusion::functions_aggregate::expr_fn::{count_distinct, max, min, sum};
use datafusion::logical_expr::{Aggregate, LogicalPlanBuilder, col, lit};
use datafusion::logical_expr::{Expr, JoinType, LogicalPlan};
use kask_relational::set_semi_joins::*;

use crate::group_keys::table;
use kask_relational::common_subplans::common_subplans;
use kask_relational::group_keys::ignores_repeats;

/// `p` filtered by `p.s = 15` (q02's parts of size 15).
fn parts() -> LogicalPlanBuilder {
    table("p", &["k", "m", "s"])
        .and_then(|b| b.filter(col("p.s").eq(lit(15))))
        .expect("parts")
}

/// q02's shape: each of the parts' rows of `t` whose `v` is the lowest of its part's, the
/// lowest taken from `t` semi-joined with the parts' keys aliased `alias` (as
/// [`kask_relational::group_keys`] filters it), by `low`.
fn lowest_per_part(alias: &str, low: fn(Expr) -> Expr) -> LogicalPlan {
    let keys = parts()
        .project(vec![col("p.k").alias("k0")])
        .and_then(|b| b.alias(alias))
        .and_then(|b| b.build())
        .expect("keys");
    let t = table("t", &["k", "v"]).and_then(|b| b.build()).expect("t");
    let lowest = LogicalPlanBuilder::from(keys)
        .join(
            t.clone(),
            JoinType::RightSemi,
            (vec![format!("{alias}.k0")], vec!["t.k".to_string()]),
            None,
        )
        .and_then(|b| b.aggregate(vec![col("t.k")], vec![low(col("t.v")).alias("low")]))
        .and_then(|b| b.alias("sq"))
        .and_then(|b| b.build())
        .expect("the lowest");
    parts()
        .project(vec![col("p.k"), col("p.m")])
        .and_then(|b| b.join(t, JoinType::Inner, (vec!["p.k"], vec!["t.k"]), None))
        .and_then(|b| {
            b.join(
                lowest,
                JoinType::Inner,
                (vec!["t.k", "t.v"], vec!["sq.k", "sq.low"]),
                None,
            )
        })
        .and_then(|b| b.project(vec![col("p.k"), col("p.m"), col("t.v")]))
        .and_then(|b| b.build())
        .expect("the query")
}

fn semi_joins(plan: &LogicalPlan) -> usize {
    let mut n = 0;
    plan.apply(|p| {
        if matches!(p, LogicalPlan::Join(j) if j.join_type == JoinType::RightSemi) {
            n += 1;
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    })
    .expect("walked");
    n
}

#[test]
fn a_semi_join_for_a_min_is_the_inner_join_the_query_computes_and_is_shared() {
    let plan = lowest_per_part("__kask_group_keys_set_7", min);
    assert!(common_subplans(&plan, 0).expect("planned").is_empty());
    let rewritten = set_semi_joins_as_inner(plan.clone(), 0).expect("rewritten");
    assert_eq!(semi_joins(&rewritten), 0, "{}", rewritten.display_indent());
    assert_eq!(rewritten.schema(), plan.schema());
    let found = common_subplans(&rewritten, 0).expect("planned");
    assert_eq!(found.len(), 1, "{}", rewritten.display_indent());
    assert_eq!(found[0].uses(), 2);
}

#[test]
fn a_semi_join_for_a_sum_stays() {
    // `group_keys` names keys so only for aggregations that ignore repeated rows.
    let plan = lowest_per_part("__kask_group_keys_7", sum);
    let rewritten = set_semi_joins_as_inner(plan.clone(), 0).expect("rewritten");
    assert_eq!(rewritten, plan);
}

#[test]
fn a_semi_join_whose_inner_join_the_query_does_not_compute_stays() {
    let alias = "__kask_group_keys_set_8";
    let keys = parts()
        .project(vec![col("p.k").alias("k0")])
        .and_then(|b| b.alias(alias))
        .and_then(|b| b.build())
        .expect("keys");
    let plan = LogicalPlanBuilder::from(keys)
        .join(
            table("t", &["k", "v"]).and_then(|b| b.build()).expect("t"),
            JoinType::RightSemi,
            (vec![format!("{alias}.k0")], vec!["t.k".to_string()]),
            None,
        )
        .and_then(|b| b.aggregate(vec![col("t.k")], vec![min(col("t.v"))]))
        .and_then(|b| b.build())
        .expect("the query");
    let rewritten = set_semi_joins_as_inner(plan.clone(), 0).expect("rewritten");
    assert_eq!(rewritten, plan);
}

#[test]
fn min_max_and_distinct_aggregates_ignore_repeated_rows_and_others_do_not() {
    let aggregate = |exprs: Vec<Expr>| -> Aggregate {
        let plan = table("t", &["k", "v"])
            .and_then(|b| b.aggregate(vec![col("t.k")], exprs))
            .and_then(|b| b.build())
            .expect("an aggregation");
        match plan {
            LogicalPlan::Aggregate(a) => a,
            other => panic!("not an aggregation: {other}"),
        }
    };
    assert!(ignores_repeats(&aggregate(vec![
        min(col("t.v")).alias("a"),
        max(col("t.v")),
        count_distinct(col("t.v")),
    ])));
    assert!(ignores_repeats(&aggregate(Vec::new())));
    assert!(!ignores_repeats(&aggregate(vec![
        min(col("t.v")),
        sum(col("t.v"))
    ])));
}
