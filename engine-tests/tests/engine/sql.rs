//! SQL jobs end to end in local mode: every row read once however the tables are cut into
//! tasks, joins of every kind and the other wide operators equal to plain implementations
//! here, mistakes in a query named with their place, and tasks that run the stage plans the
//! plan pod recorded, or refuse to.

use crate::support::{Lab, V, batch, ints, sorted, strs};
use kask_worker::Error;
use kask_worker::plan::to_detail;
use kask_worker::relational::SqlStage;

/// `a(k, x)`: 40 rows, keys 0..7 with nulls, in 4 files of row groups of 5 rows.
fn table_a() -> (
    Vec<(Option<i64>, i64)>,
    datafusion::arrow::array::RecordBatch,
) {
    let rows: Vec<(Option<i64>, i64)> = (0..40)
        .map(|i| ((i % 9 != 4).then_some(i % 7), i * 10))
        .collect();
    let k: Vec<Option<i64>> = rows.iter().map(|r| r.0).collect();
    let x: Vec<Option<i64>> = rows.iter().map(|r| Some(r.1)).collect();
    let b = batch(vec![("k", ints(&k)), ("x", ints(&x))]);
    (rows, b)
}

/// `b(k, y)`: 15 rows, keys 3..10 (some matching `a`, some not) with a null, in 3 files.
fn table_b() -> (
    Vec<(Option<i64>, String)>,
    datafusion::arrow::array::RecordBatch,
) {
    let rows: Vec<(Option<i64>, String)> = (0..15)
        .map(|i| ((i != 7).then_some(3 + i % 8), format!("y{i}")))
        .collect();
    let k: Vec<Option<i64>> = rows.iter().map(|r| r.0).collect();
    let y: Vec<Option<&str>> = rows.iter().map(|r| Some(r.1.as_str())).collect();
    let b = batch(vec![("k", ints(&k)), ("y", strs(&y))]);
    (rows, b)
}

async fn lab() -> Lab {
    let lab = Lab::local();
    lab.put_partitioned("a", &table_a().1, 4, 5).await;
    lab.put_partitioned("b", &table_b().1, 3, 5).await;
    lab
}

/// An SQL job over `a` and `b`, cut into one task per row group, with `partitions` reduce
/// partitions.
fn job(query: &str, partitions: u32) -> String {
    format!(
        "  sql:\n    tables:\n      a: {{path: \"a/*.parquet\"}}\n      b: {{path: \"b/*.parquet\"}}\n    query: {}\n  targetTaskBytes: 1\n  shufflePartitions: {partitions}\n  output: {{path: out, mode: overwrite}}\n",
        serde_json::to_string(query).expect("json")
    )
}

async fn rows(lab: &Lab, query: &str, partitions: u32) -> Vec<Vec<V>> {
    let summary = lab
        .run(&job(query, partitions))
        .await
        .unwrap_or_else(|e| panic!("{query}: {e}"));
    assert!(summary.tasks > 1, "the tables are read by several tasks");
    lab.result("out").await.1
}

fn i(v: i64) -> V {
    V::I(v)
}

fn opt(v: Option<i64>) -> V {
    v.map_or(V::Null, V::I)
}

#[tokio::test]
async fn every_row_is_read_by_exactly_one_task() {
    let lab = lab().await;
    let (a, _) = table_a();
    let got = rows(&lab, "SELECT k, x FROM a", 3).await;
    let want: Vec<Vec<V>> = a.iter().map(|(k, x)| vec![opt(*k), i(*x)]).collect();
    assert_eq!(sorted(got), sorted(want));

    let (_, types, counted) = {
        lab.run(&job("SELECT count(*) AS n, sum(x) AS s FROM a", 3))
            .await
            .expect("count");
        lab.typed_result("out").await
    };
    let sum: i64 = a.iter().map(|r| r.1).sum();
    assert_eq!(counted, vec![vec![i(40), i(sum)]]);
    assert_eq!(types, ["Int64", "Int64"]);
}

/// The pairs of a join on `k` (nulls never equal), as (a.x, b.y) with `None` for a side
/// without a match.
fn join(kind: &str) -> Vec<Vec<V>> {
    let (a, b) = (table_a().0, table_b().0);
    let matches = |ka: Option<i64>, kb: Option<i64>| ka.is_some() && ka == kb;
    let mut out = Vec::new();
    for (ka, x) in &a {
        let mut found = false;
        for (kb, y) in &b {
            if matches(*ka, *kb) {
                found = true;
                out.push(vec![i(*x), V::S(y.clone())]);
            }
        }
        if !found && matches!(kind, "LEFT" | "FULL") {
            out.push(vec![i(*x), V::Null]);
        }
    }
    if matches!(kind, "RIGHT" | "FULL") {
        for (kb, y) in &b {
            if !a.iter().any(|(ka, _)| matches(*ka, *kb)) {
                out.push(vec![V::Null, V::S(y.clone())]);
            }
        }
    }
    sorted(out)
}

#[tokio::test]
async fn joins_of_every_kind_equal_a_plain_join_across_partitions() {
    let lab = lab().await;
    // One reduce partition makes DataFusion collect a side whole; three make it shuffle both.
    for partitions in [1, 3] {
        for kind in ["INNER", "LEFT", "RIGHT", "FULL"] {
            let q = format!("SELECT a.x, b.y FROM a {kind} JOIN b ON a.k = b.k");
            let got = sorted(rows(&lab, &q, partitions).await);
            assert_eq!(got, join(kind), "{q} with {partitions} partition(s)");
        }
        let (a, b) = (table_a().0, table_b().0);
        let in_b = |k: &Option<i64>| k.is_some() && b.iter().any(|(kb, _)| kb == k);
        let semi: Vec<Vec<V>> = a
            .iter()
            .filter(|r| in_b(&r.0))
            .map(|r| vec![i(r.1)])
            .collect();
        let anti: Vec<Vec<V>> = a
            .iter()
            .filter(|r| !in_b(&r.0))
            .map(|r| vec![i(r.1)])
            .collect();
        let q = "SELECT x FROM a WHERE EXISTS (SELECT 1 FROM b WHERE b.k = a.k)";
        assert_eq!(
            sorted(rows(&lab, q, partitions).await),
            sorted(semi.clone()),
            "{q}"
        );
        let q = "SELECT x FROM a WHERE NOT EXISTS (SELECT 1 FROM b WHERE b.k = a.k)";
        assert_eq!(sorted(rows(&lab, q, partitions).await), sorted(anti), "{q}");
        // b.k holds a null: `k NOT IN (...)` is never true, by SQL's three-valued logic.
        let q = "SELECT x FROM a WHERE k NOT IN (SELECT k FROM b)";
        assert_eq!(rows(&lab, q, partitions).await, Vec::<Vec<V>>::new(), "{q}");
        let q = "SELECT x FROM a WHERE k IN (SELECT k FROM b)";
        assert_eq!(sorted(rows(&lab, q, partitions).await), sorted(semi), "{q}");
    }
}

#[tokio::test]
async fn aggregates_windows_unions_and_limits_equal_plain_implementations() {
    let lab = lab().await;
    let (a, b) = (table_a().0, table_b().0);

    let mut groups: std::collections::BTreeMap<Option<i64>, (i64, i64)> = Default::default();
    for (k, x) in &a {
        let g = groups.entry(*k).or_default();
        g.0 += 1;
        g.1 += x;
    }
    let want: Vec<Vec<V>> = groups
        .iter()
        .map(|(k, (n, s))| vec![opt(*k), i(*n), i(*s)])
        .collect();
    let q = "SELECT k, count(*) AS n, sum(x) AS s FROM a GROUP BY k ORDER BY k NULLS FIRST";
    assert_eq!(rows(&lab, q, 3).await, want, "{q}: in order");

    // The three largest x per key, by a window over a shuffle on the key.
    let q = "SELECT k, x FROM (SELECT k, x, row_number() OVER (PARTITION BY k ORDER BY x DESC) AS r FROM a) WHERE r <= 3";
    let mut want = Vec::new();
    for k in groups.keys() {
        let mut xs: Vec<i64> = a.iter().filter(|r| r.0 == *k).map(|r| r.1).collect();
        xs.sort_unstable_by(|p, q| q.cmp(p));
        want.extend(xs.into_iter().take(3).map(|x| vec![opt(*k), i(x)]));
    }
    assert_eq!(sorted(rows(&lab, q, 3).await), sorted(want), "{q}");

    // UNION removes duplicates across both tables' tasks; UNION ALL keeps them.
    let mut keys: Vec<Option<i64>> = a.iter().map(|r| r.0).chain(b.iter().map(|r| r.0)).collect();
    let all = keys.len();
    keys.sort_unstable();
    keys.dedup();
    let want: Vec<Vec<V>> = keys.iter().map(|k| vec![opt(*k)]).collect();
    let q = "SELECT k FROM a UNION SELECT k FROM b";
    assert_eq!(sorted(rows(&lab, q, 3).await), sorted(want), "{q}");
    let q = "SELECT k FROM a UNION ALL SELECT k FROM b";
    assert_eq!(rows(&lab, q, 3).await.len(), all, "{q}");

    // The global top 5 by x, whatever task each row was read by.
    let mut xs: Vec<i64> = a.iter().map(|r| r.1).collect();
    xs.sort_unstable_by(|p, q| q.cmp(p));
    let want: Vec<Vec<V>> = xs.into_iter().take(5).map(|x| vec![i(x)]).collect();
    let q = "SELECT x FROM a ORDER BY x DESC LIMIT 5";
    assert_eq!(rows(&lab, q, 3).await, want, "{q}: in order");

    // Without ORDER BY, LIMIT takes the first rows in the tables' file order, on every run.
    let want: Vec<Vec<V>> = a.iter().take(7).map(|r| vec![i(r.1)]).collect();
    for _ in 0..3 {
        assert_eq!(rows(&lab, "SELECT x FROM a LIMIT 7", 3).await, want);
    }

    // An uncorrelated scalar subquery is computed once and seen by every task.
    let max = a.iter().map(|r| r.1).max().unwrap_or_default();
    let q = "SELECT x FROM a WHERE x > (SELECT max(x) FROM a) - 25";
    let want: Vec<Vec<V>> = a
        .iter()
        .filter(|r| r.1 > max - 25)
        .map(|r| vec![i(r.1)])
        .collect();
    assert_eq!(sorted(rows(&lab, q, 3).await), sorted(want), "{q}");
}

async fn error_of(lab: &Lab, query: &str) -> (String, Error) {
    let e = lab
        .run(&job(query, 2))
        .await
        .expect_err("the query must be refused");
    assert!(
        lab.manifest("out").await.is_none(),
        "a refused query writes no result"
    );
    assert!(!e.is_retryable(), "a refused query is not tried again: {e}");
    (e.to_string(), e)
}

#[tokio::test]
async fn a_query_s_mistakes_are_the_user_s_and_say_where_and_what_exists() {
    let lab = lab().await;
    let (msg, e) = error_of(&lab, "SELECT k, x\nFROM a\nWHERE x >").await;
    assert!(matches!(e, Error::Spec { .. }), "{e:?}");
    assert!(msg.contains("spec.sql.query"), "{msg}");
    assert!(msg.contains("at the end of the query"), "{msg}");
    let (msg, _) = error_of(&lab, "SELECT k\n  x y FROM a").await;
    assert!(msg.contains("line 2, column 5"), "{msg}");

    let (msg, _) = error_of(&lab, "SELECT k FROM nowhere").await;
    assert!(
        msg.contains("nowhere") && msg.contains("(tables and views: a, b)"),
        "{msg}"
    );

    let (msg, _) = error_of(&lab, "SELECT k,\n  zz FROM a").await;
    assert!(msg.contains("line 2, column 3"), "{msg}");
    assert!(
        msg.contains("zz") && msg.contains("a.k") && msg.contains("a.x"),
        "{msg}"
    );

    let (msg, _) = error_of(&lab, "DROP TABLE a").await;
    assert!(msg.contains("spec.sql.query"), "{msg}");
}

#[tokio::test]
async fn a_task_refuses_a_stage_plan_it_cannot_read_as_recorded() {
    let lab = lab().await;
    let (store, plan) = lab
        .staged(&job("SELECT k, sum(x) FROM a GROUP BY k", 2))
        .await;
    let last = plan.stages.len() - 1;
    let recorded = SqlStage::of(&plan.stages[last]).expect("an SQL stage");
    let recoveries = kask_worker::task::recover::Recoveries::default();
    let attempt = "0123456789abcdef";
    let text_changed = SqlStage {
        plan: recorded.plan.replace("FinalPartitioned", "Final"),
        ..recorded.clone()
    };
    let not_protobuf = SqlStage {
        proto: "AAAA/w==".into(),
        ..recorded.clone()
    };
    let not_base64 = SqlStage {
        proto: "not base64!".into(),
        ..recorded
    };
    for changed in [text_changed, not_protobuf, not_base64] {
        let mut plan = plan.clone();
        plan.stages[last].detail = to_detail(&changed).expect("serializes");
        let e = kask_worker::task::execute(&store, &plan, &recoveries, last, 0, attempt)
            .await
            .expect_err("a changed stage plan is refused");
        assert!(matches!(e, Error::Incompatible(_)), "{e:?}");
        assert!(e.to_string().contains(&plan.stages[last].name), "{e}");
    }
}

/// Tasks run the sub-plans recorded in the plan, not the spec: a plan whose spec was changed
/// after planning (here to another aggregate and another table) still gives the planned result.
#[tokio::test]
async fn tasks_run_the_recorded_stage_plans_not_the_spec() {
    let lab = lab().await;
    let (store, plan) = lab
        .staged_edited(
            &job("SELECT k, sum(x) AS s FROM a GROUP BY k", 2),
            None,
            |p| {
                if let Some(sql) = p.spec.sql.as_mut() {
                    sql.query = Some("SELECT k, max(y) AS s FROM b GROUP BY k".into());
                }
            },
        )
        .await;
    assert!(plan.stages.len() > 1, "a shuffle between stages");
    let recoveries = kask_worker::task::recover::Recoveries::default();
    let lineage = kask_worker::task::recover::Lineage {
        store: &store,
        plan: &plan,
        recoveries: &recoveries,
    };
    kask_worker::commit::commit_job(&store, &plan, &lineage)
        .await
        .expect("commit");
    let mut want: std::collections::BTreeMap<Option<i64>, i64> = Default::default();
    for (k, x) in table_a().0 {
        *want.entry(k).or_default() += x;
    }
    let want: Vec<Vec<V>> = want
        .into_iter()
        .map(|(k, s)| vec![k.map_or(V::Null, V::I), V::I(s)])
        .collect();
    let (columns, got) = lab.result("out").await;
    assert_eq!(columns, ["k", "s"]);
    assert_eq!(sorted(got), sorted(want));
}

#[tokio::test]
async fn a_bad_value_deep_in_a_table_names_the_table_the_file_and_the_line() {
    let lab = Lab::local();
    let mut csv = String::from("a,b\n");
    for i in 0..30_000 {
        csv.push_str(&format!("{i},x\n"));
    }
    csv.push_str("oops,y\n");
    lab.put("t/big.csv", csv).await;
    let spec = "  sql:\n    tables: {t: {path: \"t/*.csv\"}}\n    query: SELECT a, count(*) FROM t GROUP BY a\n  output: {path: out}\n";
    let e = lab
        .run(spec)
        .await
        .expect_err("a value that is not a number");
    let msg = e.to_string();
    assert!(
        msg.contains("\"t\"") && msg.contains("t/big.csv") && msg.contains("line 30002"),
        "{msg}"
    );
    assert!(lab.manifest("out").await.is_none());
}

#[tokio::test]
async fn views_build_on_tables_and_on_each_other() {
    let lab = lab().await;
    let spec = "  sql:\n    tables:\n      a: {path: \"a/*.parquet\"}\n      b: {path: \"b/*.parquet\"}\n    views:\n      big: SELECT k, x FROM a WHERE x >= 200\n      joined: SELECT big.x, b.y FROM big JOIN b ON big.k = b.k\n    query: SELECT count(*) AS n FROM joined\n  targetTaskBytes: 1\n  output: {path: out}\n";
    lab.run(spec).await.expect("views");
    let (a, b) = (table_a().0, table_b().0);
    let n = a
        .iter()
        .filter(|r| r.1 >= 200)
        .map(|r| b.iter().filter(|s| r.0.is_some() && s.0 == r.0).count())
        .sum::<usize>();
    assert_eq!(lab.result("out").await.1, vec![vec![i(n as i64)]]);

    let bad = spec.replace("FROM big JOIN", "FROM bigg JOIN");
    let e = lab.run(&bad).await.expect_err("an unknown view");
    let msg = e.to_string();
    assert!(
        msg.contains("spec.sql.views.joined")
            && msg.contains("bigg")
            && msg.contains("tables and views: a, b, big"),
        "{msg}"
    );
}
