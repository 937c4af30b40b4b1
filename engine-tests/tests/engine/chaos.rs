//! Chaos runs: seeded jobs of every kind under mixed storage faults ([`crate::faults`]), some
//! killed part-way and run again, some replacing an earlier result, each compared with a
//! plain reference written here. Every run must end with the exact result (values and types),
//! or with a clear error and no result of its own; and a reader polling the output all along
//! must only ever see whole results. The tally of runs, faults and outcomes is printed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::faults::{FaultRates, FaultStore, Faults, Tally};
use crate::support::{Lab, V, batch, floats, ints, sorted, strs};
use kask_worker::Error;
use kask_worker::array::zarr;
use kask_worker::commit::verify::verify;
use kask_worker::commit::{lock, read_manifest};
use kask_worker::runner::StoreWrapper;
use kask_worker::store::Store;
use kask_worker::store::checksum::crc32c;

/// The job kinds and operations the runs cover.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Case {
    GroupBy,
    Merge(&'static str),
    Sort,
    Distinct,
    Elementwise,
    Reduce,
    MatMul,
    Frequencies,
    BagDistinct,
}

const CASES: [Case; 12] = [
    Case::GroupBy,
    Case::Merge("inner"),
    Case::Merge("left"),
    Case::Merge("right"),
    Case::Merge("outer"),
    Case::Sort,
    Case::Distinct,
    Case::Elementwise,
    Case::Reduce,
    Case::MatMul,
    Case::Frequencies,
    Case::BagDistinct,
];

/// What a run must produce.
enum Expected {
    /// Rows in any order, with their Arrow types.
    Table {
        types: Vec<&'static str>,
        rows: Vec<Vec<V>>,
    },
    /// Rows in this order (a sort), with their types.
    Ordered {
        types: Vec<&'static str>,
        rows: Vec<Vec<V>>,
    },
    /// An array.
    Array { shape: Vec<u64>, data: Vec<f64> },
    /// JSON records in any order.
    Records(Vec<String>),
}

fn opt_i(x: Option<i64>) -> V {
    x.map(V::I).unwrap_or(V::Null)
}
fn opt_f(x: Option<f64>) -> V {
    x.map(V::F).unwrap_or(V::Null)
}

/// Writes a case's inputs and returns its spec (under `spec:`, without the output) and the
/// reference result.
async fn setup(lab: &Lab, case: Case, rng: &mut StdRng) -> (String, Expected) {
    let files = rng.random_range(1..4usize);
    let target = [200u64, 900, 1 << 30][rng.random_range(0..3usize)];
    let partitions = rng.random_range(1..4u32);
    let settings = format!("  targetTaskBytes: {target}\n  shufflePartitions: {partitions}\n");
    match case {
        Case::GroupBy | Case::Merge(_) | Case::Sort | Case::Distinct => {
            let n = rng.random_range(0..300usize);
            let t: Vec<(Option<i64>, Option<&str>, Option<f64>)> = (0..n)
                .map(|_| {
                    let k = rng.random_bool(0.9).then(|| rng.random_range(0..7i64));
                    let s = rng
                        .random_bool(0.9)
                        .then(|| ["a", "b", "c"][rng.random_range(0..3usize)]);
                    let v = rng
                        .random_bool(0.85)
                        .then(|| f64::from(rng.random_range(-40..40i32)) / 4.0);
                    (k, s, v)
                })
                .collect();
            let tb = batch(vec![
                ("k", ints(&t.iter().map(|r| r.0).collect::<Vec<_>>())),
                ("s", strs(&t.iter().map(|r| r.1).collect::<Vec<_>>())),
                ("v", floats(&t.iter().map(|r| r.2).collect::<Vec<_>>())),
            ]);
            lab.put_partitioned("t", &tb, files, rng.random_range(5..60usize))
                .await;
            let df = |steps: &str, inputs: &str| {
                format!(
                    "  dataframe:\n    inputs:\n      t: {{path: \"t/*.parquet\"}}\n{inputs}    pipeline:\n      - source: t\n{steps}{settings}"
                )
            };
            match case {
                Case::GroupBy => {
                    let mut groups: BTreeMap<i64, (f64, i64)> = BTreeMap::new();
                    for (k, _, v) in &t {
                        if let Some(k) = k {
                            let g = groups.entry(*k).or_default();
                            if let Some(v) = v {
                                g.0 += v;
                                g.1 += 1;
                            }
                        }
                    }
                    let rows = groups
                        .into_iter()
                        .map(|(k, (sum, n))| vec![V::I(k), V::F(sum), V::I(n)])
                        .collect();
                    (
                        df("      - groupby: {by: [k], aggs: {v: [sum, count]}}\n", ""),
                        Expected::Table {
                            types: vec!["Int64", "Float64", "Int64"],
                            rows,
                        },
                    )
                }
                Case::Merge(how) => {
                    let m = rng.random_range(0..60usize);
                    let r: Vec<(Option<i64>, Option<f64>)> = (0..m)
                        .map(|_| {
                            (
                                rng.random_bool(0.9).then(|| rng.random_range(0..9i64)),
                                rng.random_bool(0.9)
                                    .then(|| f64::from(rng.random_range(0..100i32))),
                            )
                        })
                        .collect();
                    let rb = batch(vec![
                        ("k", ints(&r.iter().map(|x| x.0).collect::<Vec<_>>())),
                        ("w", floats(&r.iter().map(|x| x.1).collect::<Vec<_>>())),
                    ]);
                    lab.put_partitioned("r", &rb, 1, 20).await;
                    // pandas: null keys match each other; unmatched sides get nulls.
                    let text = |s: &Option<&str>| s.map_or(V::Null, |s| V::S(s.into()));
                    let mut rows = Vec::new();
                    for (k, s, v) in &t {
                        for (rk, w) in &r {
                            if rk == k {
                                rows.push(vec![opt_i(*k), text(s), opt_f(*v), opt_f(*w)]);
                            }
                        }
                    }
                    if how == "left" || how == "outer" {
                        for (k, s, v) in t.iter().filter(|l| !r.iter().any(|x| x.0 == l.0)) {
                            rows.push(vec![opt_i(*k), text(s), opt_f(*v), V::Null]);
                        }
                    }
                    if how == "right" || how == "outer" {
                        for (rk, w) in r.iter().filter(|x| !t.iter().any(|l| l.0 == x.0)) {
                            rows.push(vec![opt_i(*rk), V::Null, V::Null, opt_f(*w)]);
                        }
                    }
                    let broadcast = if rng.random_bool(0.5) { 1u64 << 30 } else { 0 };
                    (
                        df(
                            &format!("      - merge: {{right: r, on: [k], how: {how}}}\n"),
                            "      r: {path: \"r/*.parquet\"}\n",
                        ) + &format!("  broadcastBytes: {broadcast}\n"),
                        Expected::Table {
                            types: vec!["Int64", "Utf8", "Float64", "Float64"],
                            rows,
                        },
                    )
                }
                Case::Sort => {
                    let mut rows: Vec<(f64, Option<i64>)> = t
                        .iter()
                        .filter_map(|(k, _, v)| v.map(|v| (v, *k)))
                        .collect();
                    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
                    (
                        df(
                            "      - filter: \"v IS NOT NULL\"\n      - select: [v, k]\n      - sort: {by: [v], descending: true}\n",
                            "",
                        ),
                        Expected::Ordered {
                            types: vec!["Float64", "Int64"],
                            rows: rows
                                .into_iter()
                                .map(|(v, k)| vec![V::F(v), opt_i(k)])
                                .collect(),
                        },
                    )
                }
                _ => {
                    let set: BTreeSet<(Option<i64>, Option<&str>)> =
                        t.iter().map(|(k, s, _)| (*k, *s)).collect();
                    let rows = set
                        .into_iter()
                        .map(|(k, s)| vec![opt_i(k), s.map_or(V::Null, |s| V::S(s.into()))])
                        .collect();
                    (
                        df("      - select: [k, s]\n      - distinct: {}\n", ""),
                        Expected::Table {
                            types: vec!["Int64", "Utf8"],
                            rows,
                        },
                    )
                }
            }
        }
        Case::Elementwise | Case::Reduce | Case::MatMul => {
            let (r, c, p) = (
                rng.random_range(1..14u64),
                rng.random_range(1..14u64),
                rng.random_range(1..9u64),
            );
            let a: Vec<f64> = (0..r * c)
                .map(|_| f64::from(rng.random_range(-20..20i32)) / 2.0)
                .collect();
            let b_shape = if case == Case::MatMul {
                vec![c, p]
            } else {
                vec![r, c]
            };
            let b: Vec<f64> = (0..b_shape.iter().product::<u64>())
                .map(|_| f64::from(rng.random_range(-20..20i32)) / 2.0)
                .collect();
            let chunk = [rng.random_range(1..6u64), rng.random_range(1..6u64)];
            put_array(lab, "a.zarr", &[r, c], &chunk, &a).await;
            put_array(lab, "b.zarr", &b_shape, &chunk, &b).await;
            let (expr, shape, data) = match case {
                Case::Elementwise => (
                    "a * b + 1",
                    vec![r, c],
                    a.iter().zip(&b).map(|(x, y)| x * y + 1.0).collect(),
                ),
                Case::Reduce => (
                    "a.sum(axis=0) + b.mean(axis=0)",
                    vec![c],
                    (0..c)
                        .map(|j| {
                            let sa: f64 = (0..r).map(|i| a[(i * c + j) as usize]).sum();
                            let mb: f64 =
                                (0..r).map(|i| b[(i * c + j) as usize]).sum::<f64>() / r as f64;
                            sa + mb
                        })
                        .collect(),
                ),
                _ => (
                    "a @ b",
                    vec![r, p],
                    (0..r)
                        .flat_map(|i| (0..p).map(move |j| (i, j)))
                        .map(|(i, j)| {
                            (0..c)
                                .map(|k| a[(i * c + k) as usize] * b[(k * p + j) as usize])
                                .sum()
                        })
                        .collect(),
                ),
            };
            (
                format!(
                    "  array:\n    inputs:\n      a: {{path: a.zarr}}\n      b: {{path: b.zarr}}\n    expr: \"{expr}\"\n  targetTaskBytes: {}\n",
                    [64u64, 256, 1 << 20][rng.random_range(0..3usize)]
                ),
                Expected::Array { shape, data },
            )
        }
        Case::Frequencies | Case::BagDistinct => {
            let n = rng.random_range(0..120usize);
            let records: Vec<Value> = (0..n)
                .map(|_| {
                    let mut m = serde_json::Map::new();
                    if rng.random_bool(0.9) {
                        m.insert(
                            "status".into(),
                            json!(["ok", "error", "slow"][rng.random_range(0..3usize)]),
                        );
                    }
                    m.insert("k".into(), json!(rng.random_range(0..12i64)));
                    Value::Object(m)
                })
                .collect();
            for f in 0..files {
                let part = &records[n * f / files..n * (f + 1) / files];
                let text: String = part.iter().map(|r| format!("{r}\n")).collect();
                lab.put(&format!("in/part-{f}.jsonl"), text.into_bytes())
                    .await;
            }
            let bag = |steps: &str| {
                format!(
                    "  bag:\n    inputs:\n      r: {{path: \"in/*.jsonl\"}}\n    steps:\n      - source: r\n{steps}{settings}"
                )
            };
            if case == Case::Frequencies {
                let mut freq: BTreeMap<String, i64> = BTreeMap::new();
                for r in &records {
                    *freq
                        .entry(r.get("status").cloned().unwrap_or(Value::Null).to_string())
                        .or_default() += 1;
                }
                let want = freq.into_iter().map(|(v, c)| format!("{v}={c}")).collect();
                (
                    bag("      - pluck: status\n      - frequencies: {}\n"),
                    Expected::Records(want),
                )
            } else {
                let set: BTreeSet<String> = records.iter().map(|r| r["k"].to_string()).collect();
                (
                    bag("      - pluck: k\n      - distinct: {}\n"),
                    Expected::Records(set.into_iter().collect()),
                )
            }
        }
    }
}

/// Writes a float64 Zarr array, chunk by chunk (through zarrs).
pub async fn put_array(lab: &Lab, path: &str, shape: &[u64], chunks: &[u64], data: &[f64]) {
    use kask_worker::array::block::Block;
    use kask_worker::array::expr::DType;
    let array = zarr::new_array(
        zarr::storage_at(&lab.store, path),
        shape,
        chunks,
        DType::F64,
    )
    .expect("metadata");
    lab.put(
        &format!("{path}/zarr.json"),
        zarr::metadata_json(&array).expect("json"),
    )
    .await;
    let grid: Vec<u64> = shape
        .iter()
        .zip(chunks)
        .map(|(s, c)| s.div_ceil(*c))
        .collect();
    let mut idxs = Vec::new();
    zarr::for_each_index(&grid, |i| idxs.push(i.to_vec()));
    for idx in idxs {
        let (ci, cj) = (idx[0], idx[1]);
        let mut chunk = vec![0.0; (chunks[0] * chunks[1]) as usize];
        for i in 0..chunks[0] {
            for j in 0..chunks[1] {
                let (gi, gj) = (ci * chunks[0] + i, cj * chunks[1] + j);
                if gi < shape[0] && gj < shape[1] {
                    chunk[(i * chunks[1] + j) as usize] = data[(gi * shape[1] + gj) as usize];
                }
            }
        }
        let block = ndarray::ArrayD::from_shape_vec(
            ndarray::IxDyn(&[chunks[0] as usize, chunks[1] as usize]),
            chunk,
        )
        .expect("chunk");
        zarr::write_chunk(&array, &idx, Block::F64(block))
            .await
            .expect("chunk written");
    }
}

/// The values of a committed float64 array, row-major.
pub async fn read_array(lab: &Lab, out: &str) -> Vec<f64> {
    let array = zarr::ZarrArray::async_open(zarr::storage_at(&lab.store, out), "/")
        .await
        .expect("opens");
    let region: Vec<std::ops::Range<u64>> = array.shape().iter().map(|&n| 0..n).collect();
    zarr::read(
        &array,
        "out",
        "out",
        &region,
        kask_worker::array::expr::DType::F64,
    )
    .await
    .expect("read")
    .to_f64()
    .iter()
    .copied()
    .collect()
}

/// Compares the committed result at `out` with the reference; `Err` says how it differs.
async fn check(lab: &Lab, out: &str, want: &Expected) -> Result<(), String> {
    match want {
        Expected::Table { types, rows } | Expected::Ordered { types, rows } => {
            let (_, got_types, got) = lab.typed_result(out).await;
            if got_types != *types {
                return Err(format!("types {got_types:?}, expected {types:?}"));
            }
            let ordered = matches!(want, Expected::Ordered { .. });
            let (g, w) = if ordered {
                (got.clone(), rows.clone())
            } else {
                (sorted(got.clone()), sorted(rows.clone()))
            };
            if g.len() != w.len() {
                return Err(format!("{} rows, expected {}", g.len(), w.len()));
            }
            if ordered {
                // Ties in the sort key may come in any order: compare the key column in order,
                // and the rows as a multiset.
                let keys = |r: &[Vec<V>]| r.iter().map(|x| x[0].clone()).collect::<Vec<_>>();
                if keys(&g) != keys(&w) || sorted(g) != sorted(w) {
                    return Err("rows differ, or are out of order".into());
                }
            } else if g != w {
                return Err(format!("rows differ: got {g:?}, expected {w:?}"));
            }
            Ok(())
        }
        Expected::Array { shape, data } => {
            let m = lab.manifest(out).await.ok_or("no manifest")?;
            let meta = m.array.ok_or("not an array")?;
            if meta.shape != *shape || meta.dtype != "float64" {
                return Err(format!(
                    "{:?} {}, expected {shape:?} float64",
                    meta.shape, meta.dtype
                ));
            }
            let array = zarr::ZarrArray::async_open(zarr::storage_at(&lab.store, out), "/")
                .await
                .map_err(|e| e.to_string())?;
            let region: Vec<std::ops::Range<u64>> = shape.iter().map(|&n| 0..n).collect();
            let block = zarr::read(
                &array,
                "out",
                "out",
                &region,
                kask_worker::array::expr::DType::F64,
            )
            .await
            .map_err(|e| e.to_string())?;
            let got: Vec<f64> = block.to_f64().iter().copied().collect();
            if got.len() != data.len()
                || got
                    .iter()
                    .zip(data)
                    .any(|(a, b)| (a - b).abs() > 1e-9 * b.abs().max(1.0))
            {
                return Err(format!("values differ: got {got:?}, expected {data:?}"));
            }
            Ok(())
        }
        Expected::Records(want) => {
            let m = lab.manifest(out).await.ok_or("no manifest")?;
            let mut got = Vec::new();
            for f in &m.files {
                let body = lab
                    .store
                    .get(&format!("{out}/{}", f.path))
                    .await
                    .map_err(|e| e.to_string())?;
                for line in String::from_utf8_lossy(&body).lines() {
                    let v: Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
                    got.push(match (v.get("value"), v.get("count")) {
                        (Some(value), Some(count)) => format!("{value}={count}"),
                        _ => v.to_string(),
                    });
                }
            }
            got.sort();
            let mut want = want.clone();
            want.sort();
            if got != want {
                return Err(format!("records {got:?}, expected {want:?}"));
            }
            Ok(())
        }
    }
}

/// A reader polling the output while a job runs: every manifest it sees must name files that
/// are all there, whole; a file missing because the result was replaced in between is read
/// again through the new manifest.
fn poll(
    store: Store,
    out: String,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<String>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.load(Ordering::SeqCst) {
            let Ok(Some(m)) = read_manifest(&store, &out).await else {
                tokio::time::sleep(Duration::from_millis(2)).await;
                continue;
            };
            for f in &m.files {
                let body = store
                    .get_opt(&format!("{out}/{}", f.path))
                    .await
                    .ok()
                    .flatten();
                let whole = body.as_ref().is_some_and(|b| {
                    b.len() as u64 == f.bytes && f.crc32c.is_none_or(|c| crc32c(b) == c)
                });
                if !whole {
                    let now = read_manifest(&store, &out).await.ok().flatten();
                    if now.as_ref().map(|n| &n.created_at) == Some(&m.created_at)
                        && now.map(|n| n.job_id) == Some(m.job_id.clone())
                    {
                        seen.lock().expect("seen").push(format!(
                            "{} of the result of {} is not whole while its manifest stands",
                            f.path, m.job_id
                        ));
                    }
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
}

/// The outcome of one run, for the tally.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Exact,
    FailedClearlyThenResumedExact,
    KilledThenResumedExact,
}

/// Seeds run at once: a run spends most of its time waiting (on injected delays, on retries'
/// back-off, on MinIO), not computing, so several overlap well on two cores.
const AT_ONCE: usize = 8;

/// What one run did, for the tally.
struct Run {
    case: Case,
    overwrite: bool,
    faults: Tally,
    outcome: Outcome,
    error: Option<String>,
}

/// Runs seeds `seeds` on fresh labs made by `lab`, [`AT_ONCE`] at a time, and prints the
/// tally.
async fn chaos(name: &str, seeds: std::ops::Range<u64>, lab: impl Fn() -> Option<Lab>) {
    let mut faults = Tally::new();
    let mut outcomes: BTreeMap<Outcome, u64> = BTreeMap::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut cases: BTreeMap<String, u64> = BTreeMap::new();
    let mut overwrites = 0;
    let runs = seeds.end - seeds.start;
    let mut labs = Vec::new();
    for seed in seeds {
        let Some(lab) = lab() else { return };
        labs.push((seed, lab));
    }
    let mut done = futures::stream::iter(labs)
        .map(|(seed, lab)| async move { one_run(seed, lab).await })
        .buffer_unordered(AT_ONCE);
    while let Some(run) = done.next().await {
        *cases.entry(format!("{:?}", run.case)).or_default() += 1;
        overwrites += u64::from(run.overwrite);
        for (k, n) in run.faults {
            *faults.entry(k).or_default() += n;
        }
        *outcomes.entry(run.outcome).or_default() += 1;
        if let Some(e) = run.error {
            *errors.entry(e).or_default() += 1;
        }
    }
    println!("chaos {name}: {runs} runs ({overwrites} replacing an earlier result)");
    println!("chaos {name}: cases {cases:?}");
    println!(
        "chaos {name}: faults injected {faults:?} (total {})",
        faults.values().sum::<u64>()
    );
    println!("chaos {name}: outcomes {outcomes:?}");
    println!("chaos {name}: errors before the rerun {errors:?}");
}

/// One seeded run on its own lab: the job under faults (perhaps killed part-way), then run
/// again without faults when it did not end exact; every check on the way panics with the seed.
async fn one_run(seed: u64, lab: Lab) -> Run {
    let mut rng = StdRng::seed_from_u64(seed);
    let case = CASES[rng.random_range(0..CASES.len())];
    let (spec, want) = setup(&lab, case, &mut rng).await;
    let out = if matches!(case, Case::Elementwise | Case::Reduce | Case::MatMul) {
        "out.zarr"
    } else {
        "out"
    };
    let job = format!("{spec}  output: {{path: {out}, mode: overwrite}}\n");
    // Some runs replace an earlier result of the same job, cut into other tasks.
    let overwrite = rng.random_bool(0.3);
    if overwrite {
        let earlier = job.replace("targetTaskBytes:", "targetTaskBytes: 1\n  # was");
        lab.run(&earlier)
            .await
            .unwrap_or_else(|e| panic!("seed {seed}: the earlier, fault-free run failed: {e}"));
    }
    let injected = Faults::new(seed, FaultRates::mixed(rng.random_range(0.2..2.0)));
    let root = lab.store.root.as_ref().to_string();
    let f = Arc::clone(&injected);
    let wrap = StoreWrapper(Arc::new(move |inner| {
        Arc::new(FaultStore::new(inner, Arc::clone(&f), &root))
    }));
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let poller = poll(
        lab.store.clone(),
        out.to_string(),
        Arc::clone(&stop),
        Arc::clone(&seen),
    );
    let kill = rng
        .random_bool(0.15)
        .then(|| Duration::from_millis(rng.random_range(1..150)));
    let result = match kill {
        Some(after) => killed_run(&lab, &job, wrap, after),
        None => Some(lab.run_wrapped(&job, Some(wrap)).await),
    };
    injected.disable();
    let mut error = None;
    let outcome = match result {
        Some(Ok(_)) => Outcome::Exact,
        Some(Err(e)) => {
            // Every fault injected is the store's, so the error must say so (and be
            // retryable), never blame the data, the spec or Kask.
            assert!(
                matches!(e, Error::Storage { .. } | Error::DataLost(_)),
                "seed {seed} ({case:?}): a storage fault reported as something else: {e:?}"
            );
            error = Some(error_class(&e));
            // No result of its own: the output holds nothing, or an earlier whole result.
            if let Some(m) = lab.manifest(out).await {
                let v = verify(&lab.store, out).await.expect("verify");
                assert!(
                    v.ok(),
                    "seed {seed} ({case:?}): after a failure ({e}) the output is not whole: {:?}",
                    v.problems
                );
                let _ = m;
            }
            Outcome::FailedClearlyThenResumedExact
        }
        None => Outcome::KilledThenResumedExact,
    };
    if outcome != Outcome::Exact {
        // Run again, without faults: it resumes and ends exact.
        lab.run(&job).await.unwrap_or_else(|e| {
            panic!("seed {seed} ({case:?}): the run after {outcome:?} failed: {e}")
        });
    }
    stop.store(true, Ordering::SeqCst);
    poller.await.expect("poller");
    let seen = seen.lock().expect("seen").clone();
    assert!(
        seen.is_empty(),
        "seed {seed} ({case:?}): a reader saw a partial result: {seen:?}"
    );
    if let Err(why) = check(&lab, out, &want).await {
        panic!("seed {seed} ({case:?}, {outcome:?}): the result is wrong: {why}");
    }
    let v = verify(&lab.store, out).await.expect("verify");
    assert!(
        v.ok(),
        "seed {seed} ({case:?}): kask verify: {:?}",
        v.problems
    );
    assert!(
        lock::holder(&lab.store, out).await.expect("lock").is_none(),
        "seed {seed}: the commit lock is still held"
    );
    let left: Vec<String> = lab
        .store
        .list(&format!("{out}/_kask"))
        .await
        .expect("list")
        .into_iter()
        .map(|(p, _)| p)
        // Commit records, the lock and the jobs' histories are kept; nothing else is.
        .filter(|p| {
            !p.contains("/_kask/commits/")
                && !p.contains("/_kask/history/")
                && !p.ends_with("/_kask/lock.json")
        })
        .collect();
    assert!(
        left.is_empty(),
        "seed {seed} ({case:?}): scratch left behind: {left:?}"
    );
    Run {
        case,
        overwrite,
        faults: injected.tally(),
        outcome,
        error,
    }
}

/// Runs `job` for at most `after` and then kills it as a process dies: on a runtime of its
/// own, shut down before this returns. Dropping the run's future alone would leave its writes
/// in flight (a local file write already started on a blocking thread cannot be stopped), and
/// one landing after the next run cleaned the scratch space would be a leftover no real
/// process could leave. `None` if it was killed.
fn killed_run(
    lab: &Lab,
    job: &str,
    wrap: StoreWrapper,
    after: Duration,
) -> Option<Result<kask_worker::runner::RunSummary, Error>> {
    tokio::task::block_in_place(|| {
        std::thread::scope(|s| {
            s.spawn(|| {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                    .expect("runtime");
                let result = runtime
                    .block_on(async {
                        tokio::time::timeout(after, lab.run_wrapped(job, Some(wrap))).await
                    })
                    .ok();
                // Waits for the run's blocking work to end.
                drop(runtime);
                result
            })
            .join()
            .expect("the killed run's thread")
        })
    })
}

/// An error's class for the tally: its kind and the first words of its message.
fn error_class(e: &Error) -> String {
    let kind = match e {
        Error::Storage { .. } => "storage",
        Error::DataLost(_) => "data lost",
        Error::Output { .. } => "output",
        Error::Task { .. } => "task",
        Error::Input { .. } => "input",
        _ => "other",
    };
    let text = e.to_string();
    let reason = if text.contains("injected") {
        text.split(" (injected)")
            .next()
            .and_then(|s| s.rsplit(": ").next())
            .unwrap_or("")
            .to_string()
    } else {
        text.chars().take(60).collect()
    };
    format!("{kind}: {reason}")
}

#[test]
fn chaos_runs_on_a_local_directory_end_exact_or_fail_clearly() {
    crate::support::run(chaos("file://", 0..200, || Some(Lab::local())));
}

#[test]
fn chaos_runs_on_minio_end_exact_or_fail_clearly() {
    crate::support::run(chaos("s3://", 1000..1100, Lab::s3));
}
