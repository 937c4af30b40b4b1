//! A corpus of generated bad files, each run as a job's input: truncated, bit-flipped and
//! hand-crafted Parquet (huge declared lengths, bad footers), CSV (bad quoting, ragged rows,
//! invalid UTF-8), JSON lines and Zarr arrays (bad metadata, wrong chunk sizes, bad codecs).
//! Every one must end with an error that names the file, within a time limit, without a
//! panic, and without unbounded memory; none may leave a `_SUCCESS`.

use std::time::Duration;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::support::{Lab, batch, floats, ints, parquet_bytes, strs};

/// A bad file: where it goes, what it holds, and the job that reads it.
struct Bad {
    what: String,
    path: String,
    body: Vec<u8>,
    /// The file a good input holds beside it, if any.
    good: Option<(String, Vec<u8>)>,
    spec: String,
    /// What the error must name (the file, or the array and its chunk).
    names: String,
}

fn dataframe(input: &str, format: &str) -> String {
    format!(
        "  dataframe:\n    inputs:\n      t: {{path: \"{input}\", format: {format}}}\n    pipeline:\n      - source: t\n  targetTaskBytes: 64\n  output: {{path: out}}\n"
    )
}

fn good_parquet() -> Vec<u8> {
    let n = 200;
    let b = batch(vec![
        ("id", ints(&(0..n).map(Some).collect::<Vec<_>>())),
        (
            "v",
            floats(&(0..n).map(|i| Some(i as f64 * 0.5)).collect::<Vec<_>>()),
        ),
        (
            "s",
            strs(
                &(0..n)
                    .map(|i| Some(["x", "y"][(i % 2) as usize]))
                    .collect::<Vec<_>>(),
            ),
        ),
    ]);
    parquet_bytes(&b, 50)
}

fn parquet_cases(rng: &mut StdRng) -> Vec<Bad> {
    let good = good_parquet();
    let len = good.len();
    let meta_len = u32::from_le_bytes(good[len - 8..len - 4].try_into().expect("4 bytes")) as usize;
    let mut bodies: Vec<(String, Vec<u8>)> = Vec::new();
    for cut in [
        0,
        1,
        4,
        7,
        8,
        12,
        len / 4,
        len / 2,
        len - meta_len - 8,
        len - meta_len,
        len - meta_len / 2,
        len - 9,
        len - 8,
        len - 5,
        len - 4,
        len - 1,
    ] {
        bodies.push((
            format!("truncated to {cut} bytes"),
            good[..cut.min(len)].to_vec(),
        ));
    }
    for _ in 0..14 {
        let cut = rng.random_range(1..len);
        bodies.push((format!("truncated to {cut} bytes"), good[..cut].to_vec()));
    }
    for (name, declared) in [
        ("huge", u32::MAX),
        ("2 GiB", 1u32 << 31),
        ("larger than the file", len as u32 + 10),
        ("zero", 0),
    ] {
        let mut b = good.clone();
        b[len - 8..len - 4].copy_from_slice(&declared.to_le_bytes());
        bodies.push((format!("a footer declaring a {name} metadata length"), b));
    }
    for (name, at) in [("leading", 0), ("trailing", len - 4)] {
        let mut b = good.clone();
        b[at..at + 4].copy_from_slice(b"PAR0");
        bodies.push((format!("a wrong {name} magic"), b));
    }
    for _ in 0..30 {
        // Bits of the footer's metadata: field ids, lengths, offsets, types.
        let mut b = good.clone();
        let at = rng.random_range(len - 8 - meta_len..len - 8);
        b[at] ^= 1 << rng.random_range(0..8);
        bodies.push((format!("a flipped bit at byte {at} of the footer"), b));
    }
    for _ in 0..6 {
        // Huge varint lengths written over the metadata (thrift lists and strings).
        let mut b = good.clone();
        let at = rng.random_range(len - 8 - meta_len..len - 16);
        b[at..at + 5].copy_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        bodies.push((format!("a huge varint at byte {at} of the footer"), b));
    }
    bodies.push((
        "random bytes".into(),
        (0..5000).map(|_| rng.random()).collect(),
    ));
    bodies.push((
        "random bytes between magics".into(),
        [
            b"PAR1".as_slice(),
            &(0..3000).map(|_| rng.random()).collect::<Vec<u8>>(),
            b"PAR1",
        ]
        .concat(),
    ));
    bodies.push(("CSV text".into(), b"id,v\n1,2\n".to_vec()));
    bodies
        .into_iter()
        .map(|(what, body)| Bad {
            what: format!("Parquet: {what}"),
            path: "p/bad.parquet".into(),
            body,
            good: Some(("p/a-good.parquet".into(), good.clone())),
            spec: dataframe("p/*.parquet", "parquet"),
            names: "p/bad.parquet".into(),
        })
        .collect()
}

fn csv_cases(rng: &mut StdRng) -> Vec<Bad> {
    let header = "id,v,s\n";
    let good: String = header.to_string()
        + &(0..300)
            .map(|i| format!("{i},{}.5,w{i}\n", i % 7))
            .collect::<String>();
    let mut bodies: Vec<(String, Vec<u8>)> = Vec::new();
    for _ in 0..12 {
        let line = rng.random_range(1..300);
        let extra = if rng.random_bool(0.5) { "1,2,3,4" } else { "1" };
        bodies.push((
            format!("a ragged row at line {line}"),
            splice(&good, line, extra),
        ));
    }
    for _ in 0..12 {
        let line = rng.random_range(1..300);
        bodies.push((
            format!("an unterminated quote at line {line}"),
            splice(&good, line, "1,2.5,\"never closed"),
        ));
    }
    for _ in 0..12 {
        let line = rng.random_range(1..300);
        let mut b = splice(&good, line, "1,2.5,XX");
        let at = find(&b, b"XX").expect("marker");
        b[at] = 0xff;
        b[at + 1] = 0xfe;
        bodies.push((format!("invalid UTF-8 at line {line}"), b));
    }
    for _ in 0..12 {
        let line = rng.random_range(1..300);
        bodies.push((
            format!("text in a number column at line {line}"),
            splice(&good, line, "1,not-a-number,w"),
        ));
    }
    for n in [3usize, 64, 1000] {
        bodies.push((
            format!("{n} random bytes"),
            (0..n).map(|_| rng.random()).collect(),
        ));
    }
    bodies
        .into_iter()
        .map(|(what, body)| Bad {
            what: format!("CSV: {what}"),
            path: "c/bad.csv".into(),
            body,
            good: Some(("c/a-good.csv".into(), good.clone().into_bytes())),
            spec: dataframe("c/*.csv", "csv"),
            names: "c/bad.csv".into(),
        })
        .collect()
}

fn json_cases(rng: &mut StdRng) -> Vec<Bad> {
    let good: String = (0..200)
        .map(|i| format!("{{\"id\":{i},\"v\":{}.25,\"s\":\"w{i}\"}}\n", i % 5))
        .collect();
    let mut cases = Vec::new();
    let broken = [
        ("a cut-off record", "{\"id\":1,\"v\":"),
        ("a bare word", "hello"),
        ("a trailing comma", "{\"id\":1,}"),
        ("an unclosed string", "{\"id\":1,\"s\":\"abc}"),
        ("an array where a record belongs", "[1,2,3]"),
        ("a number where a record belongs", "42"),
        (
            "text in a number field",
            "{\"id\":\"seven\",\"v\":1.0,\"s\":\"x\"}",
        ),
        (
            "a record in a number field",
            "{\"id\":{\"a\":1},\"v\":1.0,\"s\":\"x\"}",
        ),
    ];
    for (what, line) in broken {
        for _ in 0..3 {
            let at = rng.random_range(0..200);
            cases.push((
                format!("{what} at line {}", at + 1),
                splice(&good, at, line),
            ));
        }
    }
    for _ in 0..8 {
        let at = rng.random_range(0..200);
        let mut b = splice(&good, at, "{\"id\":1,\"v\":1.0,\"s\":\"XX\"}");
        let i = find(&b, b"XX").expect("marker");
        b[i] = 0xc3;
        b[i + 1] = 0x28;
        cases.push((format!("invalid UTF-8 at line {}", at + 1), b));
    }
    let mut out = Vec::new();
    for (what, body) in cases {
        // The same bad lines, read as a table and as a bag of records.
        out.push(Bad {
            what: format!("JSON lines (table): {what}"),
            path: "j/bad.jsonl".into(),
            body: body.clone(),
            good: Some(("j/a-good.jsonl".into(), good.clone().into_bytes())),
            spec: dataframe("j/*.jsonl", "json"),
            names: "j/bad.jsonl".into(),
        });
        if !what.starts_with("text in")
            && !what.starts_with("a record in")
            && !what.starts_with("an array")
            && !what.starts_with("a number")
        {
            out.push(Bad {
                what: format!("JSON lines (bag): {what}"),
                path: "j/bad.jsonl".into(),
                body,
                good: Some(("j/a-good.jsonl".into(), good.clone().into_bytes())),
                spec: "  bag:\n    inputs:\n      r: {path: \"j/*.jsonl\"}\n    steps:\n      - source: r\n      - pluck: s\n      - distinct: {}\n  targetTaskBytes: 64\n  output: {path: out}\n".into(),
                names: "j/bad.jsonl".into(),
            });
        }
    }
    out
}

fn zarr_meta(shape: &str, chunks: &str, dtype: &str, codecs: &str) -> String {
    format!(
        "{{\"zarr_format\":3,\"node_type\":\"array\",\"shape\":{shape},\"data_type\":\"{dtype}\",\"chunk_grid\":{{\"name\":\"regular\",\"configuration\":{{\"chunk_shape\":{chunks}}}}},\"chunk_key_encoding\":{{\"name\":\"default\",\"configuration\":{{\"separator\":\"/\"}}}},\"fill_value\":0.0,\"codecs\":{codecs}}}"
    )
}

const RAW: &str = "[{\"name\":\"bytes\",\"configuration\":{\"endian\":\"little\"}}]";
const ZSTD: &str = "[{\"name\":\"bytes\",\"configuration\":{\"endian\":\"little\"}},{\"name\":\"zstd\",\"configuration\":{\"level\":1,\"checksum\":false}}]";

fn zarr_cases(rng: &mut StdRng) -> Vec<Bad> {
    let spec = "  array:\n    inputs:\n      a: {path: z/a.zarr}\n    expr: \"a * 2\"\n  output: {path: out.zarr}\n".to_string();
    let chunk = |v: f64| (0..16).flat_map(|_| v.to_le_bytes()).collect::<Vec<u8>>();
    let mut out = Vec::new();
    let metas = [
        (
            "metadata that is not JSON",
            "{\"zarr_format\":3,".to_string(),
        ),
        ("metadata that is a list", "[]".to_string()),
        (
            "metadata without a shape",
            zarr_meta("[4,4]", "[4,4]", "float64", RAW).replace("\"shape\":[4,4],", ""),
        ),
        (
            "a negative shape",
            zarr_meta("[-4,4]", "[4,4]", "float64", RAW),
        ),
        (
            "a zero chunk length",
            zarr_meta("[4,4]", "[0,4]", "float64", RAW),
        ),
        (
            "chunks of another rank",
            zarr_meta("[4,4]", "[4]", "float64", RAW),
        ),
        (
            "an unknown data type",
            zarr_meta("[4,4]", "[4,4]", "float128x", RAW),
        ),
        (
            "an unknown codec",
            zarr_meta(
                "[4,4]",
                "[4,4]",
                "float64",
                "[{\"name\":\"bytes\"},{\"name\":\"frobnicate\"}]",
            ),
        ),
        (
            "codecs that are not a list",
            zarr_meta("[4,4]", "[4,4]", "float64", "\"zstd\""),
        ),
        (
            "zarr_format 7",
            zarr_meta("[4,4]", "[4,4]", "float64", RAW)
                .replace("\"zarr_format\":3", "\"zarr_format\":7"),
        ),
        (
            "a group, not an array",
            "{\"zarr_format\":3,\"node_type\":\"group\"}".to_string(),
        ),
        ("invalid UTF-8", "{\"zarr_format\":3,\u{fffd}}".to_string()),
    ];
    for (what, meta) in metas {
        let mut body = meta.into_bytes();
        if what == "invalid UTF-8" {
            let i = find(&body, "\u{fffd}".as_bytes()).expect("marker");
            body[i] = 0xff;
        }
        out.push(Bad {
            what: format!("Zarr: {what}"),
            path: "z/a.zarr/zarr.json".into(),
            body,
            good: None,
            spec: spec.clone(),
            names: "z/a.zarr".into(),
        });
    }
    // Chunk files that do not decode to a chunk: a raw chunk of the wrong size, zstd garbage.
    for n in [0usize, 1, 8, 127, 129, 256, 1024] {
        let mut body = chunk(1.5);
        body.resize(n, 7);
        out.push(Bad {
            what: format!("Zarr: a raw chunk of {n} bytes instead of 128"),
            path: "z/a.zarr/c/0/0".into(),
            body,
            good: Some((
                "z/a.zarr/zarr.json".into(),
                zarr_meta("[4,4]", "[4,4]", "float64", RAW).into_bytes(),
            )),
            spec: spec.clone(),
            names: "z/a.zarr".into(),
        });
    }
    let frame = zstd::bulk::compress(&chunk(2.5), 1).expect("zstd");
    for _ in 0..14 {
        let mut body = frame.clone();
        match rng.random_range(0..3) {
            0 => body.truncate(rng.random_range(0..frame.len())),
            1 => {
                let at = rng.random_range(0..4usize.min(body.len()));
                body[at] ^= 0xff;
            }
            _ => {
                body = (0..rng.random_range(1..200))
                    .map(|_| rng.random())
                    .collect()
            }
        }
        out.push(Bad {
            what: "Zarr: a zstd chunk that does not decompress".into(),
            path: "z/a.zarr/c/0/0".into(),
            body,
            good: Some((
                "z/a.zarr/zarr.json".into(),
                zarr_meta("[4,4]", "[4,4]", "float64", ZSTD).into_bytes(),
            )),
            spec: spec.clone(),
            names: "z/a.zarr".into(),
        });
    }
    for n in [16usize, 100, 500] {
        let big = zstd::bulk::compress(&vec![0u8; n * 8], 1).expect("zstd");
        out.push(Bad {
            what: format!("Zarr: a zstd chunk of {n} elements instead of 16"),
            path: "z/a.zarr/c/0/0".into(),
            body: big,
            good: Some((
                "z/a.zarr/zarr.json".into(),
                zarr_meta("[4,4]", "[4,4]", "float64", ZSTD).into_bytes(),
            )),
            spec: spec.clone(),
            names: "z/a.zarr".into(),
        });
    }
    out.retain(|b| !(b.what.contains("16 elements instead of 16")));
    out
}

/// `text` with `line` (0-based, after the header for CSV) replaced by `with`.
fn splice(text: &str, line: usize, with: &str) -> Vec<u8> {
    let mut lines: Vec<&str> = text.lines().collect();
    let at = line.min(lines.len().saturating_sub(1));
    lines[at] = with;
    (lines.join("\n") + "\n").into_bytes()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The process's peak resident memory, in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[test]
fn every_malformed_input_fails_with_an_error_naming_the_file() {
    crate::support::run(async {
        let mut rng = StdRng::seed_from_u64(7);
        let mut corpus = parquet_cases(&mut rng);
        corpus.extend(csv_cases(&mut rng));
        corpus.extend(json_cases(&mut rng));
        corpus.extend(zarr_cases(&mut rng));
        assert!(corpus.len() >= 200, "the corpus has {} files", corpus.len());
        let mut by_kind: std::collections::BTreeMap<String, usize> = Default::default();
        let mut succeeded = Vec::new();
        for bad in &corpus {
            let lab = Lab::local();
            if let Some((p, body)) = &bad.good {
                lab.put(p, Bytes::from(body.clone())).await;
            }
            lab.put(&bad.path, Bytes::from(bad.body.clone())).await;
            let run = tokio::time::timeout(Duration::from_secs(20), lab.run(&bad.spec)).await;
            let result = run.unwrap_or_else(|_| panic!("{}: the job hung", bad.what));
            let kind = bad.what.split(':').next().unwrap_or_default().to_string();
            *by_kind.entry(kind).or_default() += 1;
            match result {
                Ok(_) => succeeded.push(bad.what.clone()),
                Err(e) => {
                    let msg = e.to_string();
                    assert!(
                        !matches!(e, kask_worker::Error::Internal(_)) && msg.contains(&bad.names),
                        "{}: the error must name {}: {msg}",
                        bad.what,
                        bad.names
                    );
                }
            }
            let out = if bad.spec.contains("out.zarr") {
                "out.zarr"
            } else {
                "out"
            };
            if !succeeded.contains(&bad.what) {
                assert!(
                    lab.manifest(out).await.is_none(),
                    "{}: a failed job left a manifest",
                    bad.what
                );
            }
        }
        // A flipped bit can land where it changes a value but not the structure; such a file
        // is valid, if different. Structural damage must never pass.
        assert!(
            succeeded.iter().all(|w| w.contains("flipped bit")),
            "these malformed inputs were read as if valid: {succeeded:?}"
        );
        let peak = peak_rss();
        assert!(
            peak < 4 << 30,
            "reading the corpus took {peak} bytes of memory"
        );
        println!(
            "malformed: {} files ({by_kind:?}), {} bit flips read as valid, peak memory {} MiB",
            corpus.len(),
            succeeded.len(),
            peak >> 20
        );
    });
}
