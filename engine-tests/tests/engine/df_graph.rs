//! Dataframe job graphs in local mode: a view that several outputs use, and an output that a
//! later output uses, are each computed once (counted from the plan and from the task
//! markers); a view that one output uses is inlined; every output equals a plain
//! implementation here, in its own format. The tables are the SQL graph tests'.

use std::collections::BTreeMap;

use crate::sql_graph::{big, csv_lines, lab, top_reference};
use crate::support::{V, sorted};
use kask_worker::relational::SqlStage;

/// `big` feeds all three outputs; `by_k` is an output that `busy` reads; `small` is used by
/// `top` only.
const GRAPH: &str = r#"  dataframe:
    inputs:
      a: {path: "a/*.parquet"}
      b: {path: "b/*.parquet"}
    views:
      big: [{source: a}, {filter: "x >= 100"}]
      small: [{source: b}, {filter: "k > 5"}, {distinct: {subset: [k]}}, {select: [k]}]
    outputs:
      by_k:
        pipeline: [{source: big}, {groupby: {by: [k], aggs: {x: [count, sum]}}}]
        path: res/by_k
      top:
        pipeline:
          - source: big
          - merge: {right: small, "on": [k]}
          - sort: {by: [x], descending: true}
          - head: 4
        path: res/top
        format: csv
      busy:
        pipeline: [{source: by_k}, {filter: "x_count >= 3"}, {assign: {mean: "x_sum / x_count"}}]
        path: res/busy
  targetTaskBytes: 1
  shufflePartitions: 3
"#;

/// `k → (count, sum)` of `big`, without the null key (pandas' dropna).
fn groups() -> BTreeMap<i64, (i64, i64)> {
    let mut groups: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for (k, x) in big() {
        if let Some(k) = k {
            let g = groups.entry(k).or_default();
            g.0 += 1;
            g.1 += x;
        }
    }
    groups
}

#[tokio::test]
async fn shared_pipelines_are_computed_once_and_every_output_is_exact() {
    let lab = lab().await;
    let (store, plan) = lab.staged(GRAPH).await;
    let views: Vec<&str> = plan
        .stages
        .iter()
        .filter(|s| s.name.contains("-view-"))
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(
        views.len(),
        2,
        "big and by_k are kept, small is inlined: {views:?}"
    );
    assert!(views[0].ends_with("-view-big"), "{views:?}");
    assert!(views[1].ends_with("-view-by-k"), "{views:?}");
    let big_stage = plan
        .stages
        .iter()
        .find(|s| s.name.ends_with("-view-big"))
        .expect("big");
    assert_eq!(big_stage.feeds, ["by_k", "top", "busy"]);
    // Only big's stages scan `a`, once for every output; each of its tasks committed once.
    let scans_a = plan
        .stages
        .iter()
        .filter(|s| SqlStage::of(s).is_ok_and(|q| q.scanned_tables(&plan).contains(&"a")))
        .count();
    assert_eq!(scans_a, 1);
    let markers = store
        .list(&plan.markers_dir(big_stage.id))
        .await
        .expect("markers");
    assert_eq!(markers.len(), big_stage.tasks);
    assert_eq!(plan.targets().len(), 3);

    let lab = self::lab().await;
    let summary = lab.run(GRAPH).await.expect("the graph runs");
    assert_eq!(summary.others.len(), 2, "three outputs");

    let (names, types, rows) = lab.typed_result("res/by_k").await;
    assert_eq!(names, ["k", "x_count", "x_sum"]);
    assert_eq!(types, ["Int64", "Int64", "Int64"]);
    let want: Vec<Vec<V>> = groups()
        .into_iter()
        .map(|(k, (n, s))| vec![V::I(k), V::I(n), V::I(s)])
        .collect();
    assert_eq!(sorted(rows), sorted(want));

    let (names, _, rows) = lab.typed_result("res/busy").await;
    assert_eq!(names, ["k", "x_count", "x_sum", "mean"]);
    let want: Vec<Vec<V>> = groups()
        .into_iter()
        .filter(|(_, (n, _))| *n >= 3)
        .map(|(k, (n, s))| vec![V::I(k), V::I(n), V::I(s), V::I(s / n)])
        .collect();
    assert_eq!(sorted(rows), sorted(want));

    // The same rows as the SQL graph's `top`: big's keys found in small, largest x first.
    assert_eq!(csv_lines(&lab.store, "res/top").await, top_reference());
}
