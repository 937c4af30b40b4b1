//! The order in which SQL jobs join their tables: a query that names its largest table first
//! still joins the small tables first, and a subquery's semi join is applied to the table it
//! filters before the inner joins; a partitioned join whose planned build side turns out the
//! larger builds from the other; results equal plain implementations here either way.

use crate::support::{Lab, V, batch, ints, sorted, strs};
use kask_worker::relational::SqlStage;

/// `fact(m, v)`: 3000 rows over 100 keys, `mid(m, t)`: the 100 keys in 10 groups,
/// `tiny(t, name)`: the 10 groups' names.
pub(crate) fn fact() -> Vec<(i64, i64)> {
    (0..3000).map(|i| ((i * 7) % 100, i)).collect()
}

pub(crate) fn mid() -> Vec<(i64, i64)> {
    (0..100).map(|m| (m, m % 10)).collect()
}

fn tiny() -> Vec<(i64, String)> {
    (0..10).map(|t| (t, format!("n{t}"))).collect()
}

pub(crate) async fn lab() -> Lab {
    let lab = Lab::local();
    let (f, m, t) = (fact(), mid(), tiny());
    let col = |v: Vec<i64>| ints(&v.into_iter().map(Some).collect::<Vec<_>>());
    let fact = batch(vec![
        ("m", col(f.iter().map(|r| r.0).collect())),
        ("v", col(f.iter().map(|r| r.1).collect())),
    ]);
    let mid = batch(vec![
        ("m", col(m.iter().map(|r| r.0).collect())),
        ("t", col(m.iter().map(|r| r.1).collect())),
    ]);
    let names: Vec<Option<&str>> = t.iter().map(|r| Some(r.1.as_str())).collect();
    let tiny = batch(vec![
        ("t", col(t.iter().map(|r| r.0).collect())),
        ("name", strs(&names)),
    ]);
    lab.put_partitioned("fact", &fact, 3, 500).await;
    lab.put_partitioned("mid", &mid, 1, 100).await;
    lab.put_partitioned("tiny", &tiny, 1, 10).await;
    lab
}

pub(crate) fn job(query: &str) -> String {
    job_with(query, "")
}

/// [`job`] with more lines of spec.
pub(crate) fn job_with(query: &str, more: &str) -> String {
    format!(
        "{more}  sql:\n    tables:\n      fact: {{path: \"fact/*.parquet\"}}\n      mid: {{path: \"mid/*.parquet\"}}\n      tiny: {{path: \"tiny/*.parquet\"}}\n    query: {}\n  targetTaskBytes: 1\n  shufflePartitions: 2\n  output: {{path: out, mode: overwrite}}\n",
        serde_json::to_string(query).expect("json")
    )
}

/// Every stage's sub-plan, in stage order, separated by empty lines.
pub(crate) async fn stage_plans(lab: &Lab, query: &str) -> String {
    stage_plans_of(lab, &job(query)).await
}

async fn stage_plans_of(lab: &Lab, job: &str) -> String {
    let (_, plan) = lab.staged(job).await;
    plan.stages
        .iter()
        .map(|s| SqlStage::of(s).expect("an SQL stage").plan)
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// The lines of `plan` that show a join, innermost (last displayed) first.
pub(crate) fn joins_innermost_first(plan: &str) -> Vec<&str> {
    let mut joins: Vec<&str> = plan.lines().filter(|l| l.contains("JoinExec")).collect();
    joins.reverse();
    joins
}

/// The count and sum of `fact`'s rows in group 3, naming the largest table first.
const GROUP_3_QUERY: &str = "SELECT count(*) AS n, sum(v) AS s FROM fact, mid, tiny \
                             WHERE fact.m = mid.m AND mid.t = tiny.t AND tiny.name = 'n3'";

/// [`GROUP_3_QUERY`]'s answer, computed here.
fn group_3_count_and_sum() -> Vec<Vec<V>> {
    let groups: Vec<i64> = mid().iter().filter(|r| r.1 == 3).map(|r| r.0).collect();
    let kept: Vec<i64> = fact()
        .iter()
        .filter(|r| groups.contains(&r.0))
        .map(|r| r.1)
        .collect();
    let want = vec![vec![V::I(kept.len() as i64), V::I(kept.iter().sum())]];
    want
}

#[tokio::test]
async fn the_small_tables_are_joined_first_whatever_the_order_the_query_names_them() {
    let lab = lab().await;
    let query = GROUP_3_QUERY;
    let plans = stage_plans(&lab, query).await;
    let joins = joins_innermost_first(&plans);
    assert_eq!(joins.len(), 2, "{plans}");
    assert!(
        joins[0].contains("on=[(t@") && joins[0].matches(", t@").count() == 1,
        "tiny and mid are joined first, not fact and mid:\n{plans}"
    );

    lab.run(&job(query)).await.expect("runs");
    let (_, types, got) = lab.typed_result("out").await;
    assert_eq!(got, group_3_count_and_sum());
    assert_eq!(types, ["Int64", "Int64"]);
}

/// With a broadcast limit below the fact table's size, the join of the two small tables is
/// still sent whole to the tasks that scan the fact table: its estimated size is below the
/// limit, although DataFusion has no size for a join's output.
#[tokio::test]
async fn a_small_join_is_broadcast_to_the_scan_of_a_large_table() {
    let lab = lab().await;
    let query = GROUP_3_QUERY;
    let spec = job_with(query, "  broadcastBytes: 20000\n");
    let plans = stage_plans_of(&lab, &spec).await;
    let fact_stage = plans
        .split("\n\n")
        .find(|p| p.contains("fact/part-0.parquet"))
        .unwrap_or_else(|| panic!("a scan of fact:\n{plans}"));
    assert!(
        fact_stage.contains("mode=CollectLeft") && fact_stage.contains("tiny/part-0.parquet"),
        "the stage that scans fact joins it with tiny and mid, collected whole:\n{plans}"
    );
    assert!(
        !plans.contains("SizeHint"),
        "the hints are gone from the stages:\n{plans}"
    );
    lab.run(&spec).await.expect("runs");
    assert_eq!(lab.typed_result("out").await.2, group_3_count_and_sum());
}

#[tokio::test]
async fn a_selective_semi_join_filters_its_table_before_the_inner_joins() {
    let lab = lab().await;
    let query = "SELECT tiny.name, count(*) AS n FROM tiny, mid, fact \
                 WHERE tiny.t = mid.t AND mid.m = fact.m AND mid.m IN \
                 (SELECT m FROM fact GROUP BY m HAVING sum(v) > 46000) GROUP BY tiny.name";
    // The tables are small enough to be broadcast, so the inner joins run in the stage that
    // reads the semi join's sides, above it; without the reordering they come first, in
    // another stage, and the semi join is the only join of its stage.
    let plans = stage_plans(&lab, query).await;
    let semi_stage = plans
        .split("\n\n")
        .find(|p| p.contains("Semi"))
        .unwrap_or_else(|| panic!("a semi join:\n{plans}"));
    let joins = joins_innermost_first(semi_stage);
    assert_eq!(
        joins.len(),
        3,
        "the inner joins are above the semi join:\n{plans}"
    );
    assert!(joins[0].contains("Semi"), "{plans}");

    lab.run(&job(query)).await.expect("runs");
    let sums = |m: i64| fact().iter().filter(|r| r.0 == m).map(|r| r.1).sum::<i64>();
    let selected: Vec<i64> = (0..100).filter(|&m| sums(m) > 46000).collect();
    assert!(
        !selected.is_empty() && selected.len() < 100,
        "the subquery selects some keys: {selected:?}"
    );
    let mut counts = std::collections::BTreeMap::new();
    for (m, _) in fact() {
        if selected.contains(&m) {
            *counts.entry(m % 10).or_insert(0i64) += 1;
        }
    }
    let want: Vec<Vec<V>> = counts
        .into_iter()
        .map(|(t, n)| vec![V::S(format!("n{t}")), V::I(n)])
        .collect();
    assert_eq!(sorted(lab.result("out").await.1), sorted(want));
}

/// A `NOT EXISTS` whose other side is smaller than the table it reads from removes few of that
/// table's rows, so it is applied to what the inner joins keep (a tenth of `fact` here), not to
/// the whole table before them.
#[tokio::test]
async fn an_anti_join_filters_what_the_inner_joins_keep() {
    let lab = lab().await;
    let query = "SELECT tiny.name, count(*) AS n, sum(fact.v) AS s FROM tiny, mid, fact \
                 WHERE tiny.t = mid.t AND mid.m = fact.m AND tiny.name = 'n3' AND NOT EXISTS \
                 (SELECT 1 FROM fact AS late WHERE late.m = fact.m AND late.v > 2990) \
                 GROUP BY tiny.name";
    let plans = stage_plans(&lab, query).await;
    let stages: Vec<&str> = plans.split("\n\n").collect();
    let anti = stages
        .iter()
        .position(|p| p.contains("Anti"))
        .unwrap_or_else(|| panic!("an anti join:\n{plans}"));
    let joins: Vec<&str> = stages[..=anti]
        .iter()
        .flat_map(|p| joins_innermost_first(p))
        .collect();
    assert_eq!(joins.len(), 3, "the inner joins come first:\n{plans}");
    assert!(
        joins[2].contains("Anti") && !stages[anti + 1..].iter().any(|p| p.contains("JoinExec")),
        "the anti join is the last join, over the inner joins' rows:\n{plans}"
    );

    lab.run(&job(query)).await.expect("runs");
    let (_, types, got) = lab.typed_result("out").await;
    let late: Vec<i64> = fact().iter().filter(|r| r.1 > 2990).map(|r| r.0).collect();
    let kept: Vec<i64> = fact()
        .iter()
        .filter(|r| r.0 % 10 == 3 && !late.contains(&r.0))
        .map(|r| r.1)
        .collect();
    assert!(
        late.iter().any(|m| m % 10 == 3) && !kept.is_empty(),
        "the subquery removes some of group 3's rows and keeps others: {late:?}"
    );
    let want = vec![vec![
        V::S("n3".into()),
        V::I(kept.len() as i64),
        V::I(kept.iter().sum()),
    ]];
    assert_eq!(got, want);
    assert_eq!(types, ["Utf8", "Int64", "Int64"]);
}

/// `big(k, a)`: 2000 rows, each key once; `few(k, b)`: 50,000 rows over the same keys, in
/// three files. The query's filters fool the estimate, which gives both the same share of
/// their table: `a % 2 = 0` keeps every row of `big`, `b % 997 = 1` 51 of `few`'s.
async fn misjudged_lab() -> Lab {
    let lab = Lab::local();
    let col = |v: Vec<i64>| ints(&v.into_iter().map(Some).collect::<Vec<_>>());
    let big = batch(vec![
        ("k", col((0..2000).collect())),
        ("a", col((0..2000).map(|k| k * 10).collect())),
    ]);
    let few = batch(vec![
        ("k", col((0..50_000).map(|b| (b * 7) % 2000).collect())),
        ("b", col((0..50_000).collect())),
    ]);
    lab.put_partitioned("big", &big, 1, 2000).await;
    lab.put_partitioned("few", &few, 3, 10_000).await;
    lab
}

/// The planned build side of a partitioned join turns out the larger; each task builds from
/// the other side (`kask_relational::build_side`), and the rows and columns are the join's.
#[tokio::test]
async fn a_join_builds_from_the_side_that_turned_out_smaller() {
    let lab = misjudged_lab().await;
    let query = "SELECT big.a, few.b, big.k FROM big JOIN few ON big.k = few.k \
                 WHERE big.a % 2 = 0 AND few.b % 997 = 1";
    let spec = format!(
        "  sql:\n    tables:\n      big: {{path: \"big/*.parquet\"}}\n      few: {{path: \"few/*.parquet\"}}\n    query: {}\n  targetTaskBytes: 1\n  shufflePartitions: 2\n  broadcastBytes: 0\n  output: {{path: out, mode: overwrite}}\n",
        serde_json::to_string(query).expect("json")
    );
    let plans = stage_plans_of(&lab, &spec).await;
    let join_stage = plans
        .split("\n\n")
        .find(|p| p.contains("mode=Partitioned"))
        .unwrap_or_else(|| panic!("a partitioned join:\n{plans}"));
    let scan_of = |table: &str| {
        plans
            .split("\n\n")
            .position(|p| p.contains(&format!("{table}/part-0.parquet")))
            .unwrap_or_else(|| panic!("a scan of {table}:\n{plans}"))
    };
    let readers: Vec<&str> = join_stage
        .lines()
        .filter(|l| l.contains("ShuffleReaderExec"))
        .collect();
    assert!(
        readers.len() == 2 && readers[0].contains(&format!("stage={}", scan_of("big"))),
        "the plan builds from big, which the estimate thinks smaller:\n{plans}"
    );

    lab.run(&spec).await.expect("runs");
    let (names, types, got) = lab.typed_result("out").await;
    assert_eq!(names, ["a", "b", "k"]);
    assert_eq!(types, ["Int64", "Int64", "Int64"]);
    let want: Vec<Vec<V>> = (0..50_000i64)
        .filter(|b| b % 997 == 1)
        .map(|b| {
            let k = (b * 7) % 2000;
            vec![V::I(k * 10), V::I(b), V::I(k)]
        })
        .collect();
    assert_eq!(want.len(), 51);
    assert_eq!(sorted(got), sorted(want));
}
