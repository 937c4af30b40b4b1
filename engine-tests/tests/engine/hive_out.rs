//! Results written in folders by column (`partitionBy`): every row in the folder of its key
//! values and in no other, the keys left out of the files, every file named by the one
//! manifest, a sorted result sorted within each file, and the folders read back as the
//! columns they came from. Checked against the rows as written here.

use datafusion::arrow::array::RecordBatch;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::support::{Lab, V, batch, floats, ints, rows_of, run, sorted, strs};

/// `k` (nulls, a value with `/`), `n`, `v`: 120 rows in 4 files.
async fn table(lab: &Lab) -> Vec<(Option<String>, i64, f64)> {
    let keys = [Some("a"), Some("b/c"), None, Some("d e")];
    let rows: Vec<(Option<String>, i64, f64)> = (0..120)
        .map(|i| {
            (
                keys[(i * 7 % 11) as usize % 4].map(String::from),
                i % 3,
                ((i * 37) % 101) as f64 / 4.0,
            )
        })
        .collect();
    let k: Vec<Option<&str>> = rows.iter().map(|r| r.0.as_deref()).collect();
    let n: Vec<Option<i64>> = rows.iter().map(|r| Some(r.1)).collect();
    let v: Vec<Option<f64>> = rows.iter().map(|r| Some(r.2)).collect();
    lab.put_partitioned(
        "t",
        &batch(vec![("k", strs(&k)), ("n", ints(&n)), ("v", floats(&v))]),
        4,
        10,
    )
    .await;
    rows
}

/// Each file of a result with its column names and rows.
async fn files(lab: &Lab, out: &str) -> Vec<(String, Vec<String>, Vec<Vec<V>>)> {
    let m = lab.manifest(out).await.expect("a manifest");
    let mut all = Vec::new();
    for f in &m.files {
        let bytes = lab
            .store
            .get(&format!("{out}/{}", f.path))
            .await
            .expect("a file");
        let batches: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .expect("parquet")
            .build()
            .expect("reader")
            .map(|b| b.expect("batch"))
            .collect();
        let names = batches[0]
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let rows = rows_of(&batches);
        assert_eq!(rows.len() as u64, f.rows, "{}", f.path);
        all.push((f.path.clone(), names, rows));
    }
    all
}

fn folder(k: &Option<String>) -> String {
    match k {
        None => "__HIVE_DEFAULT_PARTITION__".into(),
        Some(k) => k.replace('/', "%2F"),
    }
}

#[test]
fn rows_land_in_the_folders_of_their_keys_and_read_back_as_columns() {
    run(async {
        let lab = Lab::local();
        let rows = table(&lab).await;
        lab.run(
            "  dataframe:\n    inputs:\n      t: {path: \"t/*.parquet\"}\n    pipeline:\n      - source: t\n      - assign: {w: \"v * 2\"}\n  targetTaskBytes: 600\n  shufflePartitions: 2\n  output: {path: out, partitionBy: [n, k]}\n",
        )
        .await
        .expect("a result in folders by n and k");
        let written = files(&lab, "out").await;
        assert!(written.len() >= 12, "3 x 4 folders: {}", written.len());
        let mut seen = Vec::new();
        for (path, names, got) in &written {
            assert_eq!(names, &["v", "w"], "keys left out of {path}");
            let (n, k) = rows
                .iter()
                .map(|r| (r.1, &r.0))
                .find(|(n, k)| path.starts_with(&format!("n={n}/k={}/part-", folder(k))))
                .unwrap_or_else(|| panic!("{path} is not the folder of any key"));
            for r in got {
                seen.push((n, k.clone(), r.clone()));
            }
        }
        let mut want: Vec<Vec<V>> = rows
            .iter()
            .map(|r| {
                vec![
                    V::I(r.1),
                    r.0.clone().map_or(V::Null, V::S),
                    V::F(r.2),
                    V::F(r.2 * 2.0),
                ]
            })
            .collect();
        let got: Vec<Vec<V>> = seen
            .into_iter()
            .map(|(n, k, r)| vec![V::I(n), k.map_or(V::Null, V::S), r[0].clone(), r[1].clone()])
            .collect();
        want = sorted(want);
        assert_eq!(sorted(got), want, "each row once, in its folder");

        // Read back, the folders are the columns again.
        lab.run(
            "  sql:\n    tables:\n      o: {path: out}\n    query: \"SELECT n, k, v, w FROM o\"\n  output: {path: back}\n",
        )
        .await
        .expect("the result read as a Hive-partitioned input");
        let (names, types, back) = lab.typed_result("back").await;
        assert_eq!(names, ["n", "k", "v", "w"]);
        assert_eq!(types, ["Int64", "Utf8", "Float64", "Float64"]);
        assert_eq!(sorted(back), want);
    });
}

#[test]
fn a_sorted_result_stays_sorted_in_each_folder_and_overwrite_replaces_the_folders() {
    run(async {
        let lab = Lab::local();
        let rows = table(&lab).await;
        let job = |mode: &str, filter: &str| {
            format!(
                "  sql:\n    tables:\n      t: {{path: \"t/*.parquet\"}}\n    query: \"SELECT k, v FROM t WHERE {filter} ORDER BY v DESC\"\n  targetTaskBytes: 600\n  shufflePartitions: 3\n  output: {{path: sorted, partitionBy: [k], mode: {mode}}}\n"
            )
        };
        lab.run(&job("error", "true"))
            .await
            .expect("a sorted result in folders");
        let first = lab.manifest("sorted").await.expect("manifest");
        let written = files(&lab, "sorted").await;
        // Each task sorts by the key first, so it writes one file per folder, not one per run
        // of a key in the order of `v`.
        assert!(written.len() <= 3 * 4, "{} files", written.len());
        let mut count = 0;
        for (path, _, got) in written {
            let vs: Vec<f64> = got
                .iter()
                .map(|r| match r[0] {
                    V::F(v) => v,
                    _ => panic!("v is a float"),
                })
                .collect();
            assert!(
                vs.windows(2).all(|w| w[0] >= w[1]),
                "{path} in order: {vs:?}"
            );
            count += vs.len();
        }
        assert_eq!(count, rows.len());

        lab.run(&job("overwrite", "k = 'a'"))
            .await
            .expect("overwritten");
        let second = lab.manifest("sorted").await.expect("manifest");
        assert!(
            second.files.iter().all(|f| f.path.starts_with("k=a/")),
            "{:?}",
            second.files
        );
        for old in &first.files {
            let gone = lab
                .store
                .get_opt(&format!("sorted/{}", old.path))
                .await
                .expect("read");
            assert!(
                gone.is_none(),
                "{} of the replaced result is removed",
                old.path
            );
        }
        let want = rows.iter().filter(|r| r.0.as_deref() == Some("a")).count() as u64;
        assert_eq!(second.rows, want);
    });
}

#[test]
fn folder_keys_that_are_not_columns_or_are_all_columns_are_refused() {
    run(async {
        let lab = Lab::local();
        table(&lab).await;
        for (keys, says) in [
            ("[x]", "\"x\" is not a column of the result"),
            ("[k, n, v]", "names every column of the result"),
        ] {
            let err = lab
                .run(&format!(
                    "  dataframe:\n    inputs:\n      t: {{path: \"t/*.parquet\"}}\n    pipeline: [{{source: t}}]\n  output: {{path: bad, partitionBy: {keys}}}\n"
                ))
                .await
                .expect_err("bad folder keys");
            let text = err.to_string();
            assert!(
                text.contains("spec.output.partitionBy") && text.contains(says),
                "{text}"
            );
        }
    });
}
