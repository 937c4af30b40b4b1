//! A join that a query computes twice, computed once: q11's shape, whose scalar subquery
//! joins the same tables as its outer query with fewer columns. The answer equals a plain
//! implementation here.

use crate::join_order::{fact, job, job_with, lab, mid};
use crate::support::{V, sorted};
use kask_worker::relational::SqlStage;

/// Each key of group 3 whose sum is above a tenth of the group's total.
const ABOVE_A_TENTH: &str = "SELECT fact.m, sum(fact.v) AS value FROM fact, mid, tiny \
                             WHERE fact.m = mid.m AND mid.t = tiny.t AND tiny.name = 'n3' \
                             GROUP BY fact.m HAVING sum(fact.v) > (SELECT sum(fact.v) / 10 \
                             FROM fact, mid, tiny WHERE fact.m = mid.m AND mid.t = tiny.t \
                             AND tiny.name = 'n3')";

/// With a broadcast limit below the size of `fact`'s files, which are then worth reading once.
const SMALL_BROADCASTS: &str = "  broadcastBytes: 1000\n";

/// How many stages scan `fact`, and the stages' names.
async fn fact_scans(lab: &crate::support::Lab, job: &str) -> (usize, Vec<String>) {
    let (_, plan) = lab.staged(job).await;
    let scans = plan
        .stages
        .iter()
        .map(|s| SqlStage::of(s).expect("an SQL stage").plan)
        .map(|p| {
            p.lines()
                .filter(|l| l.contains("DataSourceExec") && l.contains("/fact/"))
                .count()
        })
        .sum();
    (scans, plan.stages.iter().map(|s| s.name.clone()).collect())
}

#[tokio::test]
async fn a_join_the_query_computes_twice_is_computed_once() {
    let lab = lab().await;
    let spec = job_with(ABOVE_A_TENTH, SMALL_BROADCASTS);
    let (scans, names) = fact_scans(&lab, &spec).await;
    assert_eq!(scans, 1, "{names:?}");
    assert!(
        names.iter().any(|n| n.ends_with("view-subplan-0")),
        "a stage keeps the join's rows: {names:?}"
    );
    // Tables small enough to be sent whole to every task are read twice instead.
    let (scans, names) = fact_scans(&lab, &job(ABOVE_A_TENTH)).await;
    assert_eq!(scans, 2, "{names:?}");

    lab.run(&spec).await.expect("runs");
    let (_, types, got) = lab.typed_result("out").await;
    let keys: Vec<i64> = mid().iter().filter(|r| r.1 == 3).map(|r| r.0).collect();
    let sum_of = |m: i64| -> i64 { fact().iter().filter(|r| r.0 == m).map(|r| r.1).sum() };
    let total: i64 = keys.iter().map(|&m| sum_of(m)).sum();
    let want: Vec<Vec<V>> = keys
        .iter()
        .filter(|&&m| sum_of(m) > total / 10)
        .map(|&m| vec![V::I(m), V::I(sum_of(m))])
        .collect();
    assert!(!want.is_empty() && want.len() < keys.len(), "{want:?}");
    assert_eq!(sorted(got), sorted(want));
    assert_eq!(types, ["Int64", "Int64"]);
}
