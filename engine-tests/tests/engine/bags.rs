//! Bag jobs against plain references: every step over random records (missing fields, nulls,
//! lists) cut into random files, tasks and shuffle partitions; text, `.gz` and `.zst` inputs
//! and inputs larger than a read window; truncated compressed files; and malformed lines with
//! and without `onBadRecord: skip`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::support::{Lab, run};

#[derive(Clone, Debug)]
struct Layout {
    files: usize,
    task_bytes: u64,
    partitions: u32,
}

fn layout() -> impl Strategy<Value = Layout> {
    (
        1usize..4,
        prop::sample::select(vec![40u64, 300, 1 << 30]),
        1u32..4,
    )
        .prop_map(|(files, task_bytes, partitions)| Layout {
            files,
            task_bytes,
            partitions,
        })
}

fn record() -> impl Strategy<Value = Value> {
    (
        prop::option::of(0i64..5),
        prop::option::of(prop::sample::select(vec!["ok", "error", "slow"])),
        prop::option::of(prop::sample::select(vec!["pt", "de", "fr"])),
        prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 0..3),
    )
        .prop_map(|(k, status, country, tags)| {
            let mut m = serde_json::Map::new();
            if let Some(k) = k {
                m.insert("k".into(), json!(k));
            }
            if let Some(s) = status {
                m.insert("status".into(), json!(s));
            }
            if let Some(c) = country {
                m.insert("user".into(), json!({"country": c}));
            }
            m.insert("tags".into(), json!(tags));
            Value::Object(m)
        })
}

async fn put_records(lab: &Lab, records: &[Value], files: usize) {
    let n = records.len();
    for f in 0..files {
        let part = &records[n * f / files..n * (f + 1) / files];
        let text: String = part.iter().map(|r| format!("{r}\n")).collect();
        lab.put(&format!("in/part-{f}.jsonl"), text.into_bytes())
            .await;
    }
}

fn job(steps: &str, l: &Layout) -> String {
    format!(
        "  bag:\n    inputs:\n      r: {{path: \"in/*.jsonl\"}}\n    steps:\n      - source: r\n{steps}  targetTaskBytes: {}\n  shufflePartitions: {}\n  output: {{path: out}}\n",
        l.task_bytes, l.partitions
    )
}

/// The committed JSON lines, in part order.
async fn output(lab: &Lab) -> Vec<Value> {
    let m = lab.manifest("out").await.expect("committed");
    let mut out = Vec::new();
    for f in &m.files {
        let bytes = lab
            .store
            .get(&format!("out/{}", f.path))
            .await
            .expect("part");
        for line in String::from_utf8(bytes.to_vec()).expect("utf8").lines() {
            out.push(serde_json::from_str(line).expect("every output line is JSON"));
        }
    }
    assert_eq!(
        m.rows as usize,
        out.len(),
        "the manifest counts the records"
    );
    out
}

/// The committed output of a `frequencies` step over string values: count by value.
async fn frequencies(lab: &Lab) -> BTreeMap<String, i64> {
    output(lab)
        .await
        .iter()
        .map(|r| {
            (
                r["value"].as_str().expect("s").to_string(),
                r["count"].as_i64().expect("n"),
            )
        })
        .collect()
}

/// A value's JSON with object keys sorted at every level, written here rather than taken from
/// the engine, so that the expected sets do not come from the code under test.
fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical(&m[k])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

fn get<'a>(v: &'a Value, path: &str) -> &'a Value {
    let mut cur = v;
    for p in path.split('.') {
        match cur.get(p) {
            Some(x) => cur = x,
            None => return &Value::Null,
        }
    }
    cur
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn pluck_then_distinct_gives_each_value_once(records in prop::collection::vec(record(), 0..40), l in layout()) {
        let want: BTreeSet<String> = records.iter().map(|r| canonical(get(r, "user.country"))).collect();
        run(async {
            let lab = Lab::local();
            put_records(&lab, &records, l.files).await;
            lab.run(&job("      - pluck: user.country\n      - distinct: {}\n", &l)).await.expect("runs");
            let got: Vec<String> = output(&lab).await.iter().map(canonical).collect();
            let set: BTreeSet<String> = got.iter().cloned().collect();
            assert_eq!(set.len(), got.len(), "no duplicates: {got:?}");
            assert_eq!(set, want);
        });
    }

    #[test]
    fn frequencies_count_every_value(records in prop::collection::vec(record(), 0..40), l in layout()) {
        let mut want: BTreeMap<String, i64> = BTreeMap::new();
        for r in &records {
            *want.entry(canonical(get(r, "status"))).or_default() += 1;
        }
        run(async {
            let lab = Lab::local();
            put_records(&lab, &records, l.files).await;
            lab.run(&job("      - pluck: status\n      - frequencies: {}\n", &l)).await.expect("runs");
            let got: BTreeMap<String, i64> = output(&lab)
                .await
                .iter()
                .map(|r| (canonical(&r["value"]), r["count"].as_i64().expect("count")))
                .collect();
            assert_eq!(got, want);
        });
    }

    #[test]
    fn filter_map_flatten_and_count_agree_with_the_reference(records in prop::collection::vec(record(), 0..40), l in layout()) {
        let kept: Vec<&Value> = records.iter().filter(|r| get(r, "k").as_i64().is_some_and(|k| k >= 2)).collect();
        let want = kept.iter().map(|r| get(r, "tags").as_array().map_or(0, Vec::len)).sum::<usize>();
        run(async {
            let lab = Lab::local();
            put_records(&lab, &records, l.files).await;
            let steps = "      - filter: \"k >= 2\"\n      - map: {t: \"tags\", k2: \"k * 2\"}\n      - flatten: t\n      - count: {}\n";
            lab.run(&job(steps, &l)).await.expect("runs");
            assert_eq!(output(&lab).await, [json!(want)]);
        });
    }

    #[test]
    fn topk_keeps_the_largest_records(records in prop::collection::vec(record(), 0..40), l in layout(), k in 1u64..5) {
        let mut keys: Vec<i64> = records.iter().filter_map(|r| get(r, "k").as_i64()).collect();
        keys.sort_unstable_by(|a, b| b.cmp(a));
        let nulls = records.len() - keys.len();
        run(async {
            let lab = Lab::local();
            put_records(&lab, &records, l.files).await;
            lab.run(&job(&format!("      - topk: {{k: {k}, by: k}}\n"), &l)).await.expect("runs");
            let got: Vec<Value> = output(&lab).await.iter().map(|r| get(r, "k").clone()).collect();
            let mut want: Vec<Value> = keys.iter().take(k as usize).map(|k| json!(k)).collect();
            // Records without k sort lowest, after every number.
            want.extend(std::iter::repeat_n(Value::Null, nulls).take(k as usize - want.len().min(k as usize)));
            assert_eq!(got, want);
        });
    }

    #[test]
    fn word_count_over_text_matches_a_counter(
        lines in prop::collection::vec(prop::collection::vec(prop::sample::select(vec!["x", "yy", "zzz", "w"]), 0..6), 0..30),
        l in layout(),
    ) {
        let mut want: BTreeMap<String, i64> = BTreeMap::new();
        for line in &lines {
            for w in line {
                *want.entry((*w).to_string()).or_default() += 1;
            }
        }
        run(async {
            let lab = Lab::local();
            let text: Vec<String> = lines.iter().map(|l| l.join("  ")).collect();
            let n = text.len();
            for f in 0..l.files {
                let body: String = text[n * f / l.files..n * (f + 1) / l.files].iter().map(|t| format!("{t}\n")).collect();
                lab.put(&format!("in/part-{f}.txt"), body.into_bytes()).await;
            }
            let body = job("      - split: {}\n      - frequencies: {}\n", &l).replace("in/*.jsonl", "in/*.txt");
            lab.run(&body).await.expect("runs");
            let got: BTreeMap<String, i64> = output(&lab)
                .await
                .iter()
                .map(|r| (r["value"].as_str().expect("word").to_string(), r["count"].as_i64().expect("n")))
                .collect();
            assert_eq!(got, want);
        });
    }
}

#[test]
fn gzip_inputs_are_read_beside_plain_ones() {
    run(async {
        let lab = Lab::local();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(b"{\"b\": \"x\"}\n{\"b\": \"y\"}\n{\"b\": \"x\"}\n")
            .expect("gzip");
        lab.put("in/a.jsonl.gz", gz.finish().expect("gzip")).await;
        lab.put("in/b.jsonl", b"{\"b\": \"z\"}\n".to_vec()).await;
        let l = Layout {
            files: 1,
            task_bytes: 8,
            partitions: 2,
        };
        let body = job("      - pluck: b\n      - distinct: {}\n", &l)
            .replace("{path: \"in/*.jsonl\"}", "{path: \"in/*\", format: json}");
        lab.run(&body).await.expect("runs");
        let got: BTreeSet<String> = output(&lab).await.iter().map(canonical).collect();
        let want: BTreeSet<String> = ["\"x\"", "\"y\"", "\"z\""]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(got, want);
    });
}

#[test]
fn a_malformed_line_is_named_by_file_and_line_unless_skipped() {
    run(async {
        let lab = Lab::local();
        let mut text = String::new();
        for i in 0..50 {
            text.push_str(&format!("{{\"n\": {i}}}\n"));
        }
        text.push_str("{\"n\": oops}\n{\"n\": 51}\n");
        lab.put("in/part-0.jsonl", text.into_bytes()).await;
        // Small tasks, so the bad line sits in a byte range that does not start the file.
        let l = Layout {
            files: 1,
            task_bytes: 100,
            partitions: 1,
        };
        let err = lab
            .run(&job("      - count: {}\n", &l))
            .await
            .expect_err("fails")
            .to_string();
        assert!(
            err.starts_with("input \"r\": in/part-0.jsonl line 51: not valid JSON"),
            "{err}"
        );
        assert!(err.contains("onBadRecord: skip"), "{err}");
        let skip = job("      - count: {}\n", &l).replace(
            "  targetTaskBytes",
            "    onBadRecord: skip\n  targetTaskBytes",
        );
        let summary = lab.run(&skip).await.expect("skips");
        assert_eq!(summary.manifest.skipped_records, 1);
        assert_eq!(output(&lab).await, [json!(51)]);
    });
}

#[test]
fn a_bad_expression_fails_at_plan_time_with_its_position() {
    run(async {
        let lab = Lab::local();
        lab.put("in/part-0.jsonl", b"{\"a\": 1}\n".to_vec()).await;
        let l = Layout {
            files: 1,
            task_bytes: 1 << 20,
            partitions: 1,
        };
        let err = lab
            .run(&job("      - map: {x: \"frob(a) + 1\"}\n", &l))
            .await
            .expect_err("fails")
            .to_string();
        assert!(
            err.starts_with("spec.bag.steps[1].map.x: at column 1: unknown function"),
            "{err}"
        );
        let err = lab
            .run(&job("      - filter: \"a + 'x' > 1\"\n", &l))
            .await
            .expect_err("fails")
            .to_string();
        assert!(err.starts_with("spec.bag.steps[1].filter: "), "{err}");
        assert!(err.contains("{\"a\":1}"), "names the record: {err}");
    });
}

#[test]
fn bag_jobs_run_on_s3_too() {
    let Some(lab) = Lab::s3() else { return };
    run(async move {
        let records: Vec<Value> = (0..30)
            .map(|i| {
                let b = ["x", "y", "z"][i % 3];
                json!({ "b": b })
            })
            .collect();
        put_records(&lab, &records, 2).await;
        let l = Layout {
            files: 2,
            task_bytes: 64,
            partitions: 2,
        };
        lab.run(&job("      - pluck: b\n      - frequencies: {}\n", &l))
            .await
            .expect("runs on MinIO");
        let got = frequencies(&lab).await;
        assert_eq!(
            got,
            [
                ("x".to_string(), 10),
                ("y".to_string(), 10),
                ("z".to_string(), 10)
            ]
            .into_iter()
            .collect()
        );
    });
}

#[test]
fn parquet_parts_of_a_bag_share_one_schema_as_pandas_would_read_them() {
    run(async {
        let lab = Lab::local();
        // Three files, one task each: `id` is an integer in one, a float in another and
        // missing from the third; `tag` exists only in the second.
        lab.put(
            "in/a.jsonl",
            b"{\"id\": 1, \"name\": \"x\"}\n{\"id\": 2, \"name\": \"y\"}\n".to_vec(),
        )
        .await;
        lab.put(
            "in/b.jsonl",
            b"{\"id\": 2.5, \"name\": \"z\", \"tag\": true}\n".to_vec(),
        )
        .await;
        lab.put("in/c.jsonl", b"{\"name\": \"w\"}\n".to_vec()).await;
        let l = Layout {
            files: 1,
            task_bytes: 1,
            partitions: 1,
        };
        let body = job("      - filter: \"name IS NOT NULL\"\n", &l).replace(
            "output: {path: out}",
            "output: {path: out, format: parquet}",
        );
        let s = lab.run(&body).await.expect("runs");
        assert!(
            s.manifest.files.len() >= 3,
            "a part per task at least per file"
        );
        let schema: Vec<(String, String)> = s
            .manifest
            .schema
            .iter()
            .map(|c| (c.name.clone(), c.type_.clone()))
            .collect();
        let want: Vec<(String, String)> = [("id", "Float64"), ("name", "Utf8"), ("tag", "Boolean")]
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect();
        assert_eq!(schema, want, "the manifest carries the unified schema");
        let (names, types, rows) = lab.typed_result("out").await;
        assert_eq!(names, ["id", "name", "tag"]);
        assert_eq!(types, ["Float64", "Utf8", "Boolean"]);
        for f in &s.manifest.files {
            let body = lab
                .store
                .get(&format!("out/{}", f.path))
                .await
                .expect("part");
            let reader =
                datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                    body,
                )
                .expect("parquet");
            let fields: Vec<String> = reader
                .schema()
                .fields()
                .iter()
                .map(|f| format!("{}:{}", f.name(), f.data_type()))
                .collect();
            assert_eq!(
                fields,
                ["id:Float64", "name:Utf8", "tag:Boolean"],
                "{}",
                f.path
            );
        }
        assert_eq!(rows.len(), 4);
    });
}

/// Record `i` of the large-input tests: about 110 bytes as a JSON line.
fn padded(i: u64) -> Value {
    json!({"i": i, "w": format!("word{}", i % 1000), "pad": "x".repeat(80)})
}

fn lines_of(range: std::ops::Range<u64>) -> Vec<u8> {
    range
        .map(|i| format!("{}\n", padded(i)))
        .collect::<String>()
        .into_bytes()
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(body).expect("gzip");
    gz.finish().expect("gzip")
}

#[test]
fn inputs_larger_than_a_read_window_are_read_in_pieces_and_exact() {
    run(async {
        let lab = Lab::local();
        // 33 MB of plain lines cut into three ranges of 11 MB (each more than one 8 MiB
        // window), and compressed files that decode to many 1 MiB windows.
        lab.put("in/a.jsonl", lines_of(0..300_000)).await;
        lab.put("in/b.jsonl.gz", gzip(&lines_of(300_000..400_000)))
            .await;
        let zst = zstd::bulk::compress(&lines_of(400_000..500_000), 1).expect("zstd");
        lab.put("in/c.jsonl.zst", zst).await;
        let l = Layout {
            files: 1,
            task_bytes: 11_500_000,
            partitions: 1,
        };
        let body = job("", &l).replace("{path: \"in/*.jsonl\"}", "{path: \"in/*\", format: json}");
        let summary = lab.run(&body).await.expect("runs");
        let m = lab.manifest("out").await.expect("committed");
        assert!(
            m.files.iter().any(|f| f.bytes > 10 << 20),
            "no part spans two upload parts: {:?}",
            m.files.iter().map(|f| f.bytes).collect::<Vec<_>>()
        );
        let mut got = output(&lab).await;
        got.sort_by_key(|r| r["i"].as_u64().expect("i"));
        assert_eq!(got.len(), 500_000, "{summary:?}");
        assert!(
            got.iter().zip(0..).all(|(r, i)| *r == padded(i)),
            "a record was lost, duplicated or changed"
        );
    });
}

#[test]
fn truncated_compressed_inputs_fail_naming_the_file() {
    run(async {
        let l = Layout {
            files: 1,
            task_bytes: 1 << 30,
            partitions: 1,
        };
        let body = lines_of(0..50_000);
        let gz = gzip(&body);
        let zst = zstd::bulk::compress(&body, 1).expect("zstd");
        for (name, whole) in [("in/t.jsonl.gz", gz), ("in/t.jsonl.zst", zst)] {
            let lab = Lab::local();
            lab.put(name, whole[..whole.len() * 2 / 3].to_vec()).await;
            let job = job("      - count: {}\n", &l)
                .replace("{path: \"in/*.jsonl\"}", "{path: \"in/*\", format: json}");
            let err = lab.run(&job).await.expect_err("fails").to_string();
            assert!(
                err.contains(name) && err.contains("cannot decompress"),
                "{name}: {err}"
            );
            assert!(lab.manifest("out").await.is_none(), "{name}: committed");
        }
    });
}

#[test]
fn a_malformed_line_deep_in_a_later_range_is_named_by_its_line_in_the_file() {
    run(async {
        let lab = Lab::local();
        let mut body = lines_of(0..200_000);
        body.extend_from_slice(b"{\"i\": oops}\n");
        body.extend(lines_of(200_001..220_000));
        lab.put("in/part-0.jsonl", body).await;
        let l = Layout {
            files: 1,
            task_bytes: 9_000_000,
            partitions: 1,
        };
        let err = lab
            .run(&job("      - count: {}\n", &l))
            .await
            .expect_err("fails")
            .to_string();
        assert!(
            err.starts_with("input \"r\": in/part-0.jsonl line 200001: not valid JSON"),
            "{err}"
        );
    });
}

#[test]
fn small_frequencies_are_reduced_by_one_task_into_one_file() {
    run(async {
        let lab = Lab::local();
        let records: Vec<Value> = (0..600)
            .map(|i| json!({ "b": format!("v{}", (i * 7) % 23) }))
            .collect();
        put_records(&lab, &records, 6).await;
        // No shufflePartitions: the planner's partitions, taken together once the map tasks
        // are done, as every task of the reduce stage agrees.
        let body = "  workers: 4\n  bag:\n    inputs:\n      r: {path: \"in/*.jsonl\"}\n    steps:\n      - source: r\n      - pluck: b\n      - frequencies: {}\n  targetTaskBytes: 64\n  output: {path: out}\n";
        let (store, plan) = lab.staged(body).await;
        let reduce = plan.stages.last().expect("a reduce stage");
        assert_eq!(reduce.tasks, 4, "the plan keeps a task per partition");
        crate::support::commit_staged(&store, &plan).await;
        let m = lab.manifest("out").await.expect("committed");
        assert_eq!(m.files.len(), 1, "{:?}", m.files);
        let mut want: BTreeMap<String, i64> = BTreeMap::new();
        for r in &records {
            *want
                .entry(r["b"].as_str().expect("s").to_string())
                .or_default() += 1;
        }
        let got = frequencies(&lab).await;
        assert_eq!(got, want);
        assert_eq!(got.len(), 23);
    });
}
