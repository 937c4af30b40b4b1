//! Key filters across stages: a partitioned join's right side shuffles only the rows whose
//! keys its left side has, when the join would drop the others; answers equal plain
//! implementations here, nulls included, and a filter whose hashes are lost or damaged
//! leaves the rows unfiltered rather than dropping any.

use crate::join_order::{fact, job_with, lab, mid};
use crate::support::{Lab, V, batch, commit_staged, ints, rows_out, run_stage, sorted};
use kask_worker::relational::SqlStage;

/// `fact` joined with the keys of group 3 of `mid`, both sides shuffled.
const GROUP_3_ROWS: &str =
    "SELECT fact.m, fact.v FROM mid JOIN fact ON fact.m = mid.m WHERE mid.t = 3";

fn partitioned(query: &str) -> String {
    job_with(query, "  broadcastBytes: 0\n")
}

/// Each stage's recorded sub-plan.
fn sub_plans(plan: &kask_worker::plan::Plan) -> Vec<SqlStage> {
    plan.stages
        .iter()
        .map(|s| SqlStage::of(s).expect("an SQL stage"))
        .collect()
}

/// The stage filtered by key hashes and the stage whose hashes it reads.
fn filtered_stage(plan: &kask_worker::plan::Plan) -> (usize, usize) {
    let subs = sub_plans(plan);
    let text: Vec<&str> = subs.iter().map(|s| s.plan.as_str()).collect();
    let (to, sub) = subs
        .iter()
        .enumerate()
        .find(|(_, s)| !s.filtered_by.is_empty())
        .unwrap_or_else(|| panic!("a stage filtered by keys:\n{}", text.join("\n\n")));
    assert!(sub.plan.starts_with("KeyFilterExec"), "{}", sub.plan);
    let from = sub.filtered_by[0];
    assert!(subs[from].key_hashes, "stage {from} records its key hashes");
    assert!(from < to);
    assert!(
        plan.after(to).contains(&from),
        "the filtered stage waits for the stage whose keys it reads"
    );
    (to, from)
}

fn group_3_rows() -> Vec<Vec<V>> {
    let keys: Vec<i64> = mid().iter().filter(|r| r.1 == 3).map(|r| r.0).collect();
    fact()
        .into_iter()
        .filter(|r| keys.contains(&r.0))
        .map(|(m, v)| vec![V::I(m), V::I(v)])
        .collect()
}

#[tokio::test]
async fn a_join_shuffles_only_the_rows_whose_keys_the_other_side_has() {
    let lab = lab().await;
    let (store, plan) = lab.staged(&partitioned(GROUP_3_ROWS)).await;
    let (to, _) = filtered_stage(&plan);
    let want = group_3_rows();
    // A false positive of the Bloom filter may keep a row; of 3000, nearly all go.
    let kept = rows_out(&store, &plan, to).await;
    assert!(
        kept >= want.len() as u64 && kept < 2 * want.len() as u64,
        "the filtered stage wrote {kept} rows; {} match",
        want.len()
    );
    commit_staged(&store, &plan).await;
    let (_, types, got) = lab.typed_result("out").await;
    assert_eq!(sorted(got), sorted(want));
    assert_eq!(types, ["Int64", "Int64"]);
}

#[tokio::test]
async fn a_filter_whose_hashes_are_lost_or_damaged_keeps_every_row() {
    for damage in ["lose", "corrupt"] {
        let lab = lab().await;
        let (store, plan) = lab.planned(&partitioned(GROUP_3_ROWS), None, |_| {}).await;
        let (to, from) = filtered_stage(&plan);
        for s in 0..to {
            run_stage(&store, &plan, s).await;
        }
        let mut damaged = 0;
        for (m, _) in store.list(&plan.markers_dir(from)).await.expect("markers") {
            let marker: serde_json::Value =
                serde_json::from_slice(&store.get(&m).await.expect("marker")).expect("json");
            let path = marker["keyHashes"]["path"]
                .as_str()
                .expect("key hashes")
                .to_string();
            if damage == "lose" {
                store.delete(&path).await.expect("deleted");
            } else {
                let mut bytes = store.get(&path).await.expect("hashes").to_vec();
                bytes.iter_mut().for_each(|b| *b = !*b);
                store.put(&path, bytes.into()).await.expect("written");
            }
            damaged += 1;
        }
        assert!(damaged > 0);
        for s in to..plan.stages.len() {
            run_stage(&store, &plan, s).await;
        }
        assert_eq!(
            rows_out(&store, &plan, to).await,
            fact().len() as u64,
            "{damage}"
        );
        commit_staged(&store, &plan).await;
        let (_, _, got) = lab.typed_result("out").await;
        assert_eq!(sorted(got), sorted(group_3_rows()), "{damage}");
    }
}

/// Semi and anti joins, with nulls among the keys of both sides: `EXISTS` and `NOT EXISTS`
/// keep SQL's answers (a null key matches nothing).
#[tokio::test]
async fn semi_and_anti_joins_keep_their_answers_with_null_keys() {
    let left: Vec<Option<i64>> = (0..400).map(|i| (i % 7 != 0).then_some(i % 50)).collect();
    let right: Vec<Option<i64>> = (0..40).map(|i| (i % 5 != 0).then_some(i * 3)).collect();
    let lab = Lab::local();
    let l = batch(vec![
        ("k", ints(&left)),
        ("i", ints(&(0..400).map(Some).collect::<Vec<_>>())),
    ]);
    lab.put_partitioned("l", &l, 3, 50).await;
    lab.put_partitioned("r", &batch(vec![("k", ints(&right))]), 2, 10)
        .await;
    for (query, exists) in [
        (
            "SELECT i FROM l WHERE EXISTS (SELECT 1 FROM r WHERE r.k = l.k)",
            true,
        ),
        (
            "SELECT i FROM l WHERE NOT EXISTS (SELECT 1 FROM r WHERE r.k = l.k)",
            false,
        ),
    ] {
        let spec = format!(
            "  sql:\n    tables:\n      l: {{path: \"l/*.parquet\"}}\n      r: {{path: \"r/*.parquet\"}}\n    query: {}\n  targetTaskBytes: 1\n  shufflePartitions: 3\n  broadcastBytes: 0\n  output: {{path: out, mode: overwrite}}\n",
            serde_json::to_string(query).expect("json")
        );
        lab.run(&spec).await.expect("runs");
        let (_, types, got) = lab.typed_result("out").await;
        let want: Vec<Vec<V>> = left
            .iter()
            .enumerate()
            .filter(|(_, k)| k.is_some_and(|k| right.contains(&Some(k))) == exists)
            .map(|(i, _)| vec![V::I(i as i64)])
            .collect();
        assert_eq!(sorted(got), sorted(want), "{query}");
        assert_eq!(types, ["Int64"]);
    }
}

/// A left side that scans its whole table holds every key the right side refers to: no key
/// filter, and the right side's stage does not wait for the left's.
#[tokio::test]
async fn a_whole_table_on_the_left_filters_nothing_and_is_not_waited_for() {
    let lab = lab().await;
    let query = "SELECT fact.m, fact.v, mid.t FROM mid JOIN fact ON fact.m = mid.m";
    let (store, plan) = lab.staged(&partitioned(query)).await;
    let subs = sub_plans(&plan);
    assert!(
        subs.iter()
            .all(|s| s.filtered_by.is_empty() && !s.key_hashes),
        "no key filter:\n{}",
        subs.iter()
            .map(|s| s.plan.as_str())
            .collect::<Vec<_>>()
            .join("\n\n")
    );
    let scan_of = |table: &str| {
        subs.iter()
            .position(|s| s.plan.contains(&format!("{table}/part-0.parquet")))
            .unwrap_or_else(|| panic!("a scan of {table}"))
    };
    let (mid_stage, fact_stage) = (scan_of("mid"), scan_of("fact"));
    assert!(
        !plan.after(fact_stage).contains(&mid_stage),
        "the scan of fact does not wait for the scan of mid"
    );
    commit_staged(&store, &plan).await;
    let (_, types, got) = lab.typed_result("out").await;
    let groups: std::collections::HashMap<i64, i64> = mid().into_iter().collect();
    let want: Vec<Vec<V>> = fact()
        .into_iter()
        .map(|(m, v)| vec![V::I(m), V::I(v), V::I(groups[&m])])
        .collect();
    assert_eq!(sorted(got), sorted(want));
    assert_eq!(types, ["Int64", "Int64", "Int64"]);
}
