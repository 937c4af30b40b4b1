//! Hive-partitioned inputs: `key=value` folders read as typed columns in SQL and pipeline jobs,
//! folders that the filters rule out never planned into a task, and the inputs whose folders
//! are ambiguous refused by name. Checked against the rows as written here.

use crate::support::{Lab, V, batch, floats, ints, run, sorted};

/// One folder of the lake: `dt`, `h`, `region` (as written in the path, `None` for Hive's
/// null), and the rows of its file.
struct Folder {
    dt: &'static str,
    h: i64,
    region: Option<&'static str>,
    rows: Vec<(i64, f64)>,
}

fn lake() -> Vec<Folder> {
    let regions = [Some("eu"), Some("São Paulo"), None];
    let mut folders = Vec::new();
    let mut id = 0;
    for dt in ["2026-11-29", "2026-11-30", "2026-12-01"] {
        for h in [1, 12] {
            for region in regions {
                let rows = (0..5)
                    .map(|i| {
                        id += 1;
                        (id, (id * 3 + i) as f64 / 4.0)
                    })
                    .collect();
                folders.push(Folder {
                    dt,
                    h,
                    region,
                    rows,
                });
            }
        }
    }
    folders
}

/// The folder name of a region as pyarrow and Spark write it.
fn region_folder(region: Option<&str>) -> String {
    match region {
        None => "__HIVE_DEFAULT_PARTITION__".into(),
        Some(r) => r.replace(' ', "%20").replace('ã', "%C3%A3"),
    }
}

async fn write_lake(lab: &Lab, folders: &[Folder]) {
    write_lake_at(lab, "events", folders).await;
}

async fn write_lake_at(lab: &Lab, root: &str, folders: &[Folder]) {
    for f in folders {
        let ids: Vec<Option<i64>> = f.rows.iter().map(|r| Some(r.0)).collect();
        let vs: Vec<Option<f64>> = f.rows.iter().map(|r| Some(r.1)).collect();
        let path = format!(
            "{root}/dt={}/h={}/region={}/part-0.parquet",
            f.dt,
            f.h,
            region_folder(f.region)
        );
        lab.put_parquet(
            &path,
            &batch(vec![("id", ints(&ids)), ("v", floats(&vs))]),
            2,
        )
        .await;
    }
}

fn region_value(r: Option<&str>) -> V {
    r.map_or(V::Null, |r| V::S(r.into()))
}

#[test]
fn folder_keys_are_typed_columns_in_sql_and_pipelines() {
    run(async {
        let lab = Lab::local();
        let folders = lake();
        write_lake(&lab, &folders).await;
        lab.run(
            "  sql:\n    tables:\n      events: {path: events}\n    query: \"SELECT id, v, dt, h, region FROM events\"\n  targetTaskBytes: 2000\n  output: {path: all}\n",
        )
        .await
        .expect("an SQL job over a Hive-partitioned input");
        let (names, types, rows) = lab.typed_result("all").await;
        assert_eq!(names, ["id", "v", "dt", "h", "region"]);
        assert_eq!(types, ["Int64", "Float64", "Date32", "Int64", "Utf8"]);
        let want: Vec<Vec<V>> = folders
            .iter()
            .flat_map(|f| {
                f.rows.iter().map(|r| {
                    vec![
                        V::I(r.0),
                        V::F(r.1),
                        V::S(f.dt.into()),
                        V::I(f.h),
                        region_value(f.region),
                    ]
                })
            })
            .collect();
        assert_eq!(sorted(rows), sorted(want));

        // A pipeline groups by folder keys and a file column.
        lab.run(
            "  dataframe:\n    inputs:\n      events: {path: \"events/**/*.parquet\", partitioning: hive}\n    pipeline:\n      - source: events\n      - filter: \"h > 1\"\n      - groupby: {by: [region], aggs: {v: [sum], id: [count]}}\n  targetTaskBytes: 2000\n  shufflePartitions: 2\n  output: {path: by_region}\n",
        )
        .await
        .expect("a pipeline over a Hive-partitioned input");
        let (_, rows) = lab.result("by_region").await;
        // pandas' groupby leaves out the null key (`dropna=True`).
        let mut want: Vec<Vec<V>> = Vec::new();
        for region in [Some("eu"), Some("São Paulo")] {
            let kept: Vec<&(i64, f64)> = folders
                .iter()
                .filter(|f| f.h > 1 && f.region == region)
                .flat_map(|f| &f.rows)
                .collect();
            let sum: f64 = kept.iter().map(|r| r.1).sum();
            want.push(vec![
                region_value(region),
                V::F(sum),
                V::I(kept.len() as i64),
            ]);
        }
        assert_eq!(sorted(rows), sorted(want));
    });
}

#[test]
fn filters_on_folder_keys_skip_whole_folders_at_planning() {
    run(async {
        let lab = Lab::local();
        let folders = lake();
        write_lake(&lab, &folders).await;
        let spec = "  sql:\n    tables:\n      events: {path: events}\n    query: \"SELECT region, sum(v) AS v, count(*) AS n FROM events WHERE dt >= DATE '2026-11-30' AND h = 12 AND v > 3 GROUP BY region\"\n  targetTaskBytes: 2000\n  output: {path: recent}\n";
        let (_, plan) = lab.planned(spec, None, |_| {}).await;
        let planned: Vec<&str> = plan.inputs["events"]
            .files
            .iter()
            .map(|f| f.path.as_str())
            .collect();
        assert_eq!(planned.len(), 6, "two days by three regions: {planned:?}");
        assert!(
            planned
                .iter()
                .all(|p| p.contains("/h=12/") && !p.contains("2026-11-29")),
            "{planned:?}"
        );
        lab.run(spec).await.expect("the pruned job runs");
        let (_, rows) = lab.result("recent").await;
        let mut want: Vec<Vec<V>> = Vec::new();
        for region in [Some("eu"), Some("São Paulo"), None] {
            let kept: Vec<f64> = folders
                .iter()
                .filter(|f| f.dt >= "2026-11-30" && f.h == 12 && f.region == region)
                .flat_map(|f| f.rows.iter().map(|r| r.1).filter(|v| *v > 3.0))
                .collect();
            want.push(vec![
                region_value(region),
                V::F(kept.iter().sum()),
                V::I(kept.len() as i64),
            ]);
        }
        assert_eq!(sorted(rows), sorted(want));

        // A filter that no folder passes: an empty result, not an error.
        lab.run(
            "  dataframe:\n    inputs:\n      events: {path: events}\n    pipeline:\n      - source: events\n      - filter: \"region = 'nowhere'\"\n  output: {path: none}\n",
        )
        .await
        .expect("a job whose filter skips every folder");
        let (names, rows) = lab.result("none").await;
        assert_eq!(names, ["id", "v", "dt", "h", "region"]);
        assert!(rows.is_empty(), "{rows:?}");
    });
}

/// One row with a column (`w`) that the lake's files lack.
fn extra_batch() -> datafusion::arrow::array::RecordBatch {
    batch(vec![
        ("id", ints(&[Some(1000)])),
        ("v", floats(&[Some(0.5)])),
        ("w", ints(&[Some(7)])),
    ])
}

#[test]
fn files_in_folders_the_filters_skip_are_never_opened() {
    run(async {
        let lab = Lab::local();
        let folders = lake();
        write_lake(&lab, &folders).await;
        // Not Parquet, in a folder that `h = 12` skips: a job that reads it fails on it, one
        // whose filter skips its folder never opens it.
        lab.put(
            "events/dt=2026-11-30/h=1/region=eu/part-1.parquet",
            "not parquet",
        )
        .await;
        let err = lab
            .run("  sql:\n    tables:\n      events: {path: events}\n    query: \"SELECT count(*) AS n FROM events\"\n  output: {path: all}\n")
            .await
            .expect_err("the damaged file is read");
        assert!(
            err.to_string().contains(
                "events/dt=2026-11-30/h=1/region=eu/part-1.parquet is not a valid Parquet file"
            ),
            "{err}"
        );
        lab.run("  sql:\n    tables:\n      events: {path: events}\n    query: \"SELECT count(*) AS n FROM events WHERE h = 12\"\n  output: {path: noon}\n")
            .await
            .expect("the damaged file's folder is skipped");
        let (_, types, rows) = lab.typed_result("noon").await;
        let want: usize = folders
            .iter()
            .filter(|f| f.h == 12)
            .map(|f| f.rows.len())
            .sum();
        assert_eq!(types, ["Int64"]);
        assert_eq!(rows, [vec![V::I(want as i64)]]);

        // An outer folder that the filters skip is not even listed: its odd layout, which
        // makes a job that reads it fail, does not matter to one that does not.
        write_lake_at(&lab, "sparse", &folders).await;
        lab.put_parquet(
            "sparse/dt=2026-12-02/notes/readme.parquet",
            &extra_batch(),
            10,
        )
        .await;
        let err = lab
            .run("  sql:\n    tables:\n      sparse: {path: sparse}\n    query: \"SELECT count(*) AS n FROM sparse\"\n  output: {path: sparse_all}\n")
            .await
            .expect_err("the odd folder is listed");
        assert!(
            err.to_string()
                .contains("sparse/dt=2026-12-02/notes/readme.parquet"),
            "{err}"
        );
        lab.run("  sql:\n    tables:\n      sparse: {path: sparse}\n    query: \"SELECT count(*) AS n FROM sparse WHERE dt < DATE '2026-12-02' AND h = 12\"\n  output: {path: sparse_recent}\n")
            .await
            .expect("the odd folder is skipped unlisted");
        let (_, rows) = lab.result("sparse_recent").await;
        let want: usize = folders
            .iter()
            .filter(|f| f.h == 12)
            .map(|f| f.rows.len())
            .sum();
        assert_eq!(rows, [vec![V::I(want as i64)]]);

        // The first file, opened alone while the filters are worked out, lacks a column that a
        // later file has: the query still sees it.
        write_lake_at(&lab, "grown", &folders).await;
        let extra = batch(vec![
            ("id", ints(&[Some(1000)])),
            ("v", floats(&[Some(0.5)])),
            ("w", ints(&[Some(7)])),
        ]);
        lab.put_parquet(
            "grown/dt=2026-12-01/h=12/region=eu/part-1.parquet",
            &extra,
            10,
        )
        .await;
        lab.run("  sql:\n    tables:\n      grown: {path: grown}\n    query: \"SELECT id, w FROM grown WHERE dt = DATE '2026-12-01' AND region = 'eu'\"\n  output: {path: grown_out}\n")
            .await
            .expect("a column that the first file lacks");
        let (names, types, rows) = lab.typed_result("grown_out").await;
        assert_eq!(names, ["id", "w"]);
        assert_eq!(types, ["Int64", "Int64"]);
        let mut want: Vec<Vec<V>> = folders
            .iter()
            .filter(|f| f.dt == "2026-12-01" && f.region == Some("eu"))
            .flat_map(|f| f.rows.iter().map(|r| vec![V::I(r.0), V::Null]))
            .collect();
        want.push(vec![V::I(1000), V::I(7)]);
        assert_eq!(sorted(rows), sorted(want));
    });
}

#[test]
fn ambiguous_folders_are_refused_and_plain_paths_stay_plain() {
    run(async {
        let lab = Lab::local();
        let one = batch(vec![("id", ints(&[Some(1)])), ("dt", floats(&[Some(2.0)]))]);
        lab.put_parquet("clash/dt=1/a.parquet", &one, 10).await;
        let err = lab
            .run("  sql:\n    tables:\n      t: {path: clash}\n    query: \"SELECT * FROM t\"\n  output: {path: o1}\n")
            .await
            .expect_err("a key that is also a column");
        assert!(
            err.to_string()
                .contains("\"dt\" is both a column of the files and a folder key"),
            "{err}"
        );
        // Read as plain paths, the file's own `dt` is the only one.
        lab.run("  sql:\n    tables:\n      t: {path: clash, partitioning: none}\n    query: \"SELECT * FROM t\"\n  output: {path: o2}\n")
            .await
            .expect("partitioning: none");
        let (names, rows) = lab.result("o2").await;
        assert_eq!(names, ["id", "dt"]);
        assert_eq!(rows, [vec![V::I(1), V::F(2.0)]]);

        // CSV files, split into byte ranges, with a string key.
        lab.put("csvlake/k=a/x.csv", "n,t\n1,one\n2,two\n3,three\n")
            .await;
        lab.put("csvlake/k=b%2Fc/y.csv", "n,t\n10,ten\n").await;
        lab.run("  sql:\n    tables:\n      t: {path: \"csvlake/*/*.csv\"}\n    query: \"SELECT k, sum(n) AS n, max(t) AS t FROM t GROUP BY k\"\n  targetTaskBytes: 8\n  output: {path: o4}\n")
            .await
            .expect("a Hive-partitioned CSV input");
        let (names, types, rows) = lab.typed_result("o4").await;
        assert_eq!(names, ["k", "n", "t"]);
        assert_eq!(types, ["Utf8", "Int64", "Utf8"]);
        assert_eq!(
            sorted(rows),
            [
                vec![V::S("a".into()), V::I(6), V::S("two".into())],
                vec![V::S("b/c".into()), V::I(10), V::S("ten".into())],
            ]
        );

        let plain = batch(vec![("id", ints(&[Some(1)]))]);
        lab.put_parquet("mixed/a=1/x.parquet", &plain, 10).await;
        lab.put_parquet("mixed/a=2/b=3/y.parquet", &plain, 10).await;
        let err = lab
            .run("  sql:\n    tables:\n      t: {path: mixed}\n    query: \"SELECT * FROM t\"\n  output: {path: o3}\n")
            .await
            .expect_err("different keys in different folders");
        let text = err.to_string();
        assert!(
            text.contains("mixed/a=2/b=3/y.parquet") && text.contains("partitioning: none"),
            "{text}"
        );
    });
}
