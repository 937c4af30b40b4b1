//! Subqueries planned for a distributed run: an aggregation in a correlated subquery computes
//! only the groups its outer query keeps, and `NOT IN` over Parquet columns without nulls is a
//! plain anti join (DataFusion's rule, once the tables say their columns cannot be null);
//! answers equal plain implementations here, nulls included.

use crate::join_order::{fact, job, job_with, joins_innermost_first, lab, mid, stage_plans};
use crate::support::{Lab, V, batch, ints, sorted};
use kask_worker::relational::SqlStage;

/// The rows of `fact` in group 3 whose value is above their key's average (q17's shape).
const ABOVE_AVERAGE: &str = "SELECT fact.m, fact.v FROM fact, mid WHERE fact.m = mid.m \
                             AND mid.t = 3 AND fact.v > (SELECT avg(f2.v) FROM fact AS f2 \
                             WHERE f2.m = mid.m)";

#[tokio::test]
async fn a_correlated_aggregation_computes_only_the_groups_the_outer_query_keeps() {
    let lab = lab().await;
    let plans = stage_plans(&lab, ABOVE_AVERAGE).await;
    // Without the filter the subquery's aggregation reads all of `fact`, and no semi join
    // is planned at all.
    let aggregated = plans
        .split("\n\n")
        .find(|p| p.contains("AggregateExec: mode=Partial"))
        .unwrap_or_else(|| panic!("a partial aggregation:\n{plans}"));
    let joins = joins_innermost_first(aggregated);
    assert!(
        joins.first().is_some_and(|j| j.contains("Semi")),
        "the partial aggregation reads a semi join of fact with mid's keys:\n{plans}"
    );

    lab.run(&job(ABOVE_AVERAGE)).await.expect("runs");
    let (_, types, got) = lab.typed_result("out").await;
    let keys: Vec<i64> = mid().iter().filter(|r| r.1 == 3).map(|r| r.0).collect();
    let average = |m: i64| {
        let vs: Vec<i64> = fact().iter().filter(|r| r.0 == m).map(|r| r.1).collect();
        vs.iter().sum::<i64>() as f64 / vs.len() as f64
    };
    let want: Vec<Vec<V>> = fact()
        .into_iter()
        .filter(|(m, v)| keys.contains(m) && *v as f64 > average(*m))
        .map(|(m, v)| vec![V::I(m), V::I(v)])
        .collect();
    assert!(!want.is_empty());
    assert_eq!(sorted(got), sorted(want));
    assert_eq!(types, ["Int64", "Int64"]);
}

/// Each key of group 3 below 50 with its smallest value (q02's shape: a correlated
/// aggregation joined back to an outer query whose keys come from a filtered table that is
/// joined further with `fact` and `tiny`).
const SMALLEST_OF_GROUP_3: &str = "SELECT mid.m, fact.v FROM mid, fact, tiny \
                                   WHERE mid.m = fact.m AND mid.m < 50 AND mid.t = tiny.t \
                                   AND tiny.name = 'n3' AND tiny.t < 5 AND fact.v = \
                                   (SELECT min(f2.v) FROM fact AS f2 WHERE f2.m = mid.m)";

#[tokio::test]
async fn the_subquerys_keys_come_from_the_filtered_table_not_its_join_with_the_large_one() {
    let lab = lab().await;
    let plans = stage_plans(&lab, SMALLEST_OF_GROUP_3).await;
    // The outer query scans `fact` once and the subquery once; keys taken from the outer
    // query's whole join would scan it a third time.
    let fact_scans = plans
        .lines()
        .filter(|l| l.contains("DataSourceExec") && l.contains("/fact/"))
        .count();
    assert_eq!(fact_scans, 2, "{plans}");
    let aggregated = plans
        .split("\n\n")
        .find(|p| p.contains("AggregateExec: mode=Partial"))
        .unwrap_or_else(|| panic!("a partial aggregation:\n{plans}"));
    assert!(
        joins_innermost_first(aggregated)
            .first()
            .is_some_and(|j| j.contains("Semi")),
        "the aggregation reads fact semi-joined with keys:\n{plans}"
    );
    assert!(
        aggregated.contains("/mid/"),
        "the keys are mid's, read where they filter:\n{plans}"
    );

    lab.run(&job(SMALLEST_OF_GROUP_3)).await.expect("runs");
    let (_, types, got) = lab.typed_result("out").await;
    let want: Vec<Vec<V>> = mid()
        .iter()
        .filter(|(m, t)| *t == 3 && *m < 50)
        .map(|(m, _)| {
            let least = fact().iter().filter(|r| r.0 == *m).map(|r| r.1).min();
            vec![V::I(*m), V::I(least.expect("every key has rows"))]
        })
        .collect();
    assert_eq!(want.len(), 5);
    assert_eq!(sorted(got), sorted(want));
    assert_eq!(types, ["Int64", "Int64"]);
}

/// `fact` rows whose key is not one of group 3's.
const NOT_IN_GROUP_3: &str =
    "SELECT count(*) AS n FROM fact WHERE m NOT IN (SELECT m FROM mid WHERE t = 3)";

#[tokio::test]
async fn not_in_over_keys_that_cannot_be_null_is_a_plain_anti_join() {
    let lab = lab().await;
    let plans = stage_plans(&lab, NOT_IN_GROUP_3).await;
    assert!(plans.contains("Anti"), "{plans}");
    assert!(
        !plans.contains("null_aware"),
        "neither key can be null, so the anti join need not be null-aware:\n{plans}"
    );
    lab.run(&job(NOT_IN_GROUP_3)).await.expect("runs");
    let groups: Vec<i64> = mid().iter().filter(|r| r.1 == 3).map(|r| r.0).collect();
    let n = fact().iter().filter(|r| !groups.contains(&r.0)).count();
    assert_eq!(lab.typed_result("out").await.2, vec![vec![V::I(n as i64)]]);
}

/// With a null among the subquery's keys, `NOT IN` keeps no row, as SQL says; with a null
/// only among the outer keys, it keeps the other rows that match no key.
#[tokio::test]
async fn not_in_with_nulls_keeps_sql_semantics() {
    for (outer, inner, want) in [
        (vec![Some(1), Some(2), Some(3)], vec![Some(2), None], 0),
        (vec![Some(1), None, Some(3)], vec![Some(2), Some(3)], 1),
        (vec![Some(1), None, Some(3)], vec![Some(9)], 2),
    ] {
        let lab = Lab::local();
        lab.put_partitioned("fact", &batch(vec![("m", ints(&outer))]), 1, 10)
            .await;
        lab.put_partitioned(
            "mid",
            &batch(vec![
                ("m", ints(&inner)),
                ("t", ints(&[Some(3); 2][..inner.len()])),
            ]),
            1,
            10,
        )
        .await;
        lab.put_partitioned("tiny", &batch(vec![("t", ints(&[Some(1)]))]), 1, 10)
            .await;
        lab.run(&job(NOT_IN_GROUP_3)).await.expect("runs");
        assert_eq!(
            lab.typed_result("out").await.2,
            vec![vec![V::I(want)]],
            "{outer:?} NOT IN {inner:?}"
        );
    }
}

/// The keys of `fact` with a row whose value exceeds the key's mean by more than 1000/30 times
/// the key: the semi join's left side is an aggregation, computed in several tasks.
const EXISTS_ABOVE: &str = "SELECT count(*) AS n FROM (SELECT m, sum(v) AS s FROM fact \
                            GROUP BY m) g WHERE EXISTS (SELECT 1 FROM fact f2 \
                            WHERE f2.m = g.m AND f2.v * 30 > g.s + g.m * 1000)";

/// A semi join that collected its left side becomes a partitioned one (each task would emit
/// the collected rows it matched, all of them together only once every task has run); the
/// left side is hashed by the tasks that compute it, not gathered into one task first.
#[tokio::test]
async fn a_semi_join_s_left_side_is_hashed_where_it_is_computed() {
    let lab = lab().await;
    // Below `fact`'s files, above the estimate of its sums per key.
    let spec = job_with(EXISTS_ABOVE, "  broadcastBytes: 4000\n");
    let (_, plan) = lab.staged(&spec).await;
    let listing: Vec<String> = plan
        .stages
        .iter()
        .map(|s| format!("{} ({} tasks)", s.name, s.tasks))
        .collect();
    let semi = plan
        .stages
        .iter()
        .map(|s| SqlStage::of(s).expect("an SQL stage").plan)
        .find(|p| p.contains("Semi"))
        .unwrap_or_else(|| panic!("a semi join: {listing:?}"));
    assert!(semi.contains("mode=Partitioned"), "{semi}");
    assert!(
        !listing.iter().any(|s| s.contains("select")),
        "no stage only gathers rows into one task to hash them: {listing:?}"
    );
    lab.run(&spec).await.expect("runs");
    let f = fact();
    let sum = |m: i64| f.iter().filter(|r| r.0 == m).map(|r| r.1).sum::<i64>();
    let n = (0..100)
        .filter(|&m| {
            f.iter()
                .any(|&(m2, v)| m2 == m && v * 30 > sum(m) + m * 1000)
        })
        .count();
    assert!(n > 0 && n < 100, "some keys, not all: {n}");
    assert_eq!(lab.typed_result("out").await.2, vec![vec![V::I(n as i64)]]);
}

/// The keys of `fact` whose sum of `v` is the largest, through a CTE named twice.
const TOP_SUM: &str = "WITH g AS (SELECT m, sum(v) AS s FROM fact GROUP BY m) \
                       SELECT m, s FROM g WHERE s = (SELECT max(s) FROM g)";

#[tokio::test]
async fn a_cte_named_twice_is_computed_once() {
    let lab = lab().await;
    let (_, plan) = lab.staged(&job(TOP_SUM)).await;
    let scans = plan
        .stages
        .iter()
        .filter(|s| {
            SqlStage::of(s)
                .expect("an SQL stage")
                .scanned_tables(&plan)
                .contains(&"fact")
        })
        .count();
    assert_eq!(scans, 1, "fact is scanned once, for both uses of g");
    assert!(plan.stages.iter().any(|s| s.name.ends_with("-view-g")));
    lab.run(&job(TOP_SUM)).await.expect("runs");
    let (_, types, got) = lab.typed_result("out").await;
    let mut sums = std::collections::BTreeMap::new();
    for (m, v) in fact() {
        *sums.entry(m).or_insert(0i64) += v;
    }
    let top = sums.values().copied().max().expect("groups");
    let want: Vec<Vec<V>> = sums
        .into_iter()
        .filter(|(_, s)| *s == top)
        .map(|(m, s)| vec![V::I(m), V::I(s)])
        .collect();
    assert_eq!(sorted(got), sorted(want));
    assert_eq!(types, ["Int64", "Int64"]);
}
