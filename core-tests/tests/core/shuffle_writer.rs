use std::collections::BTreeMap;

use datafusion::arrow::array::{Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};

use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use kask_core::marker::TaskFile;
use kask_core::marker::TaskMarker;
use kask_core::memory::{Budget, Source};
use kask_core::shuffle::SliceReader;
use kask_core::shuffle::writer::*;
use kask_core::store::Store;
use kask_core::store::checksum::crc32c;
use std::sync::Arc;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("s", DataType::Utf8, false),
    ]))
}

/// Rows `from..from + n`, each about 100 bytes.
fn rows(from: i64, n: i64) -> RecordBatch {
    let keys: Vec<i64> = (from..from + n).collect();
    let text: Vec<String> = keys.iter().map(|k| format!("{k:>96}")).collect();
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from(keys)),
            Arc::new(StringArray::from(text)),
        ],
    )
    .expect("batch")
}

/// The (key, text) pairs of some batches.
fn pairs(batches: &[RecordBatch]) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    for b in batches {
        let k = b
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("k");
        let s = b
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("s");
        out.extend((0..b.num_rows()).map(|i| (k.value(i), s.value(i).to_string())));
    }
    out
}

/// Each partition's rows as (key, text) pairs, read back from the object through its
/// ranges as a reducer reads them, every range's checksums checked here too.
async fn read_back(store: &Store, file: &TaskFile) -> Vec<Vec<(i64, String)>> {
    let body = store
        .get_opt(&file.path)
        .await
        .expect("read")
        .expect("there");
    assert_eq!(body.len() as u64, file.bytes);
    assert_eq!(Some(crc32c(&body)), file.crc32c);
    let marker = TaskMarker {
        files: vec![file.clone()],
        ..TaskMarker::default()
    };
    let mut out = Vec::new();
    for (p, r) in file.partitions.iter().enumerate() {
        let bytes = body.slice(r.offset as usize..(r.offset + r.len) as usize);
        assert_eq!(r.crc32c, (r.len > 0).then(|| crc32c(&bytes)));
        if !r.windows.is_empty() {
            let w = file.window as usize;
            let want: Vec<u32> = bytes.chunks(w).map(crc32c).collect();
            assert_eq!(r.windows, want);
        }
        let (batches, fetched) = SliceReader::open(store, &marker, p)
            .await
            .map_err(|e| format!("{e:?}"))
            .expect("opens")
            .read_all()
            .await
            .map_err(|e| format!("{e:?}"))
            .expect("reads");
        assert_eq!(fetched, r.len);
        let part = pairs(&batches);
        assert_eq!(part.len() as u64, r.rows);
        out.push(part);
    }
    out
}

/// Files (not directories) anywhere under `dir`.
fn files_under(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .expect("a directory")
        .map(|e| e.expect("an entry").path())
        .map(|p| if p.is_dir() { files_under(&p) } else { 1 })
        .sum()
}

async fn shuffle(store: &Store, budgeted: bool, dir: &str) -> (TaskFile, u64) {
    let mut p = Partitioner::new(schema(), &["k".into()], 4).expect("keys");
    if budgeted {
        p = p.within(&store.runtime);
    }
    for i in 0..40 {
        p.push(rows(i * 5_000, 5_000)).expect("push");
    }
    let spilled = p.spilled_bytes();
    (write(store, dir, p, 4).await.expect("written"), spilled)
}

#[tokio::test]
async fn a_writer_over_its_budget_spills_and_every_partition_reads_back_the_same() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spill_dir = dir.path().join("spill");
    // A 4 MiB pool for 20 MB of rows.
    let budget = Budget::new(8 << 20, Source::Given, spill_dir.clone());
    let store = Store::local_dir(&dir.path().join("store"))
        .expect("store")
        .with_budget(&budget)
        .expect("budget");

    let (spilled_file, spilled) = shuffle(&store, true, "spilled").await;
    let (held_file, held) = shuffle(&store, false, "held").await;
    // Compressed on disk (the rows are mostly spaces), so fewer bytes than the rows held.
    assert!(spilled > 0, "spilled {spilled} bytes");
    assert_eq!(held, 0);
    assert_eq!(
        store.runtime.memory_pool.reserved(),
        0,
        "the budget is given back"
    );
    assert_eq!(files_under(&spill_dir), 0, "the spill file is removed");

    let spilled_parts = read_back(&store, &spilled_file).await;
    let held_parts = read_back(&store, &held_file).await;
    // Spilling changes where rows wait, not which partition they go to or what they are.
    let as_sets = |parts: &[Vec<(i64, String)>]| -> Vec<BTreeMap<i64, String>> {
        parts.iter().map(|p| p.iter().cloned().collect()).collect()
    };
    assert_eq!(as_sets(&spilled_parts), as_sets(&held_parts));
    // Every input row is in exactly one partition, unchanged.
    let mut all: Vec<(i64, String)> = spilled_parts.concat();
    all.sort();
    let expected: Vec<(i64, String)> = (0..200_000).map(|k| (k, format!("{k:>96}"))).collect();
    assert_eq!(all, expected);
    assert!(spilled_parts.iter().all(|p| !p.is_empty()));
    assert_eq!(spilled_file.rows, 200_000);
}

#[tokio::test]
async fn a_writer_in_small_windows_checks_each_and_reads_back_the_same_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let budget = Budget::new(8 << 20, Source::Given, dir.path().join("spill"));
    let store = Store::local_dir(&dir.path().join("store"))
        .expect("store")
        .with_budget(&budget)
        .expect("budget");
    // Spilled streams and the held one, cut into 4 KiB windows at every kind of place.
    let mut p = Partitioner::new(schema(), &["k".into()], 3)
        .expect("keys")
        .within(&store.runtime);
    for i in 0..40 {
        p.push(rows(i * 5_000, 5_000)).expect("push");
    }
    assert!(p.spilled_bytes() > 0);
    let file = write_windowed(&store, "windowed", p, 3, 4096)
        .await
        .expect("written");
    assert_eq!(file.window, 4096);
    assert!(file.partitions.iter().all(|r| r.windows.len() > 100));
    let mut all: Vec<(i64, String)> = read_back(&store, &file).await.concat();
    all.sort();
    let expected: Vec<(i64, String)> = (0..200_000).map(|k| (k, format!("{k:>96}"))).collect();
    assert_eq!(all, expected);

    // A range of one window has no window checksums; its own checksum covers it.
    let mut small = Partitioner::new(schema(), &["k".into()], 2).expect("keys");
    small.push(rows(0, 10)).expect("push");
    let file = write(&store, "small", small, 2).await.expect("written");
    assert_eq!(file.window, 0);
    assert!(file.partitions.iter().all(|r| r.windows.is_empty()));
    let mut all = read_back(&store, &file).await.concat();
    all.sort();
    assert_eq!(all.len(), 10);
}

#[tokio::test]
async fn a_corrupt_window_is_found_before_it_is_decoded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::local_dir(dir.path()).expect("store");
    let mut p = Partitioner::new(schema(), &[], 1).expect("keys");
    for i in 0..10 {
        p.push(rows(i * 1_000, 1_000)).expect("push");
    }
    let file = write_windowed(&store, "m", p, 1, 64 << 10)
        .await
        .expect("written");
    let marker = TaskMarker {
        files: vec![file.clone()],
        ..TaskMarker::default()
    };
    // Flip a byte in the third window.
    let mut body = store
        .get_opt(&file.path)
        .await
        .expect("read")
        .expect("there")
        .to_vec();
    body[2 * (64 << 10) + 10] ^= 0xff;
    store
        .put(&file.path, Bytes::from(body))
        .await
        .expect("rewritten");
    let mut reader = SliceReader::open(&store, &marker, 0)
        .await
        .map_err(|e| format!("{e:?}"))
        .expect("the first window is sound");
    let mut rows_read = 0;
    let why = loop {
        match reader.next_batch().await {
            Ok(Some(b)) => rows_read += b.num_rows(),
            Ok(None) => panic!("a corrupt window was decoded"),
            Err(kask_core::lineage::Fetch::Lost(why)) => break why,
            Err(kask_core::lineage::Fetch::Failed(e)) => panic!("{e}"),
        }
    };
    assert!(why.contains("checksum"), "{why}");
    assert!(rows_read < 10_000);
}
