use std::sync::Arc;

use datafusion::arrow::array::Int64Array;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::ipc::writer::StreamWriter;

use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use kask_core::lineage::Fetch;
use kask_core::marker::TaskMarker;
use kask_core::marker::{PartRange, TaskFile};
use kask_core::shuffle::reader::*;
use kask_core::store::Store;
use kask_core::store::checksum::crc32c;
use std::collections::VecDeque;
use std::ops::Range;

/// An IPC stream of two batches of keys `from..from + 3` and `from + 3..from + 5`.
fn stream(from: i64) -> Vec<u8> {
    let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)]));
    let batch = |keys: Vec<i64>| {
        RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(Int64Array::from(keys))])
            .expect("batch")
    };
    let mut out = Vec::new();
    let mut w = StreamWriter::try_new(&mut out, &schema).expect("writer");
    w.write(&batch((from..from + 3).collect())).expect("write");
    w.write(&batch((from + 3..from + 5).collect()))
        .expect("write");
    w.finish().expect("finish");
    drop(w);
    out
}

/// A marker for one file whose partition 0 is `body[at..]`, in `window`-byte windows.
fn marker(path: &str, body: &[u8], at: usize, window: usize) -> TaskMarker {
    marker_of_partitions(path, body, std::slice::from_ref(&(at..body.len())), window)
}

/// A marker for one file whose partitions are `ranges` of `body`, in `window`-byte windows
/// (none when 0: each range one read).
fn marker_of_partitions(
    path: &str,
    body: &[u8],
    ranges: &[Range<usize>],
    window: usize,
) -> TaskMarker {
    let part = |r: &Range<usize>| {
        let bytes = &body[r.clone()];
        PartRange {
            offset: r.start as u64,
            len: bytes.len() as u64,
            crc32c: Some(crc32c(bytes)),
            windows: if window > 0 {
                bytes.chunks(window).map(crc32c).collect()
            } else {
                Vec::new()
            },
            ..PartRange::default()
        }
    };
    TaskMarker {
        files: vec![TaskFile {
            path: path.into(),
            rows: 0,
            bytes: body.len() as u64,
            crc32c: Some(crc32c(body)),
            partitions: ranges.iter().map(part).collect(),
            window: window as u64,
            samples: vec![],
        }],
        ..TaskMarker::default()
    }
}

/// The keys of `batches`, in order.
fn keys(batches: &[RecordBatch]) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            let k = b.column(0).as_any().downcast_ref::<Int64Array>();
            k.expect("k").values().to_vec()
        })
        .collect()
}

#[tokio::test]
async fn streams_back_to_back_decode_in_order_whatever_the_window_boundaries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::local_dir(dir.path()).expect("store");
    // Another partition's bytes first, so that the range does not start at 0.
    let body = [vec![7u8; 13], stream(0), stream(10), stream(20)].concat();
    store
        .put("m/shuffle.arrow", Bytes::from(body.clone()))
        .await
        .expect("put");
    let sizes: Vec<usize> = (1..=80).chain([127, 500, 1000, body.len()]).collect();
    for window in sizes {
        let m = marker("m/shuffle.arrow", &body, 13, window);
        let (batches, bytes) = SliceReader::open(&store, &m, 0)
            .await
            .map_err(|e| format!("{e:?}"))
            .expect("opens")
            .read_all()
            .await
            .map_err(|e| format!("window {window}: {e:?}"))
            .expect("reads");
        assert_eq!(bytes as usize, body.len() - 13);
        let want: Vec<i64> = [0, 10, 20].iter().flat_map(|f| *f..f + 5).collect();
        assert_eq!(keys(&batches), want, "window {window}");
    }
}

fn piece(path: &str, range: Range<u64>) -> Piece {
    Piece::new(path, range, Some(0))
}

#[test]
fn adjacent_small_pieces_of_a_file_are_read_together_up_to_the_limit() {
    let got = merged(
        VecDeque::from(vec![
            piece("a", 0..10),
            piece("a", 10..30),
            piece("a", 30..95),
            // Past the limit of 100 bytes from 0: a read of its own.
            piece("a", 95..120),
            // Not adjacent.
            piece("a", 130..140),
            // Another file.
            piece("b", 140..150),
            piece("b", 150..400),
        ]),
        100,
    );
    let ranges: Vec<(&str, Range<u64>, usize)> = got
        .iter()
        .map(|p| (p.path.as_str(), p.range.clone(), p.parts.len()))
        .collect();
    assert_eq!(
        ranges,
        [
            ("a", 0..95, 3),
            ("a", 95..120, 1),
            ("a", 130..140, 1),
            ("b", 140..150, 1),
            ("b", 150..400, 1)
        ]
    );
    let lens: Vec<u64> = got[0].parts.iter().map(|p| p.0).collect();
    assert_eq!(lens, [10, 20, 65]);
}

#[tokio::test]
async fn a_run_of_partitions_reads_each_slice_in_order_and_checks_each() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::local_dir(dir.path()).expect("store");
    let (a, b, c) = (stream(0), stream(10), stream(20));
    let body = [a.clone(), Vec::new(), b.clone(), c.clone()].concat();
    let at = [0, a.len(), a.len(), a.len() + b.len(), body.len()];
    let ranges: Vec<Range<usize>> = at.windows(2).map(|w| w[0]..w[1]).collect();
    store
        .put("m/shuffle.arrow", Bytes::from(body.clone()))
        .await
        .expect("put");
    let m = marker_of_partitions("m/shuffle.arrow", &body, &ranges, 0);
    let read = |run: Range<usize>| {
        let (store, m) = (store.clone(), m.clone());
        async move {
            SliceReader::open_run(&store, &m, run)
                .await
                .map_err(|e| format!("{e:?}"))?
                .read_all()
                .await
                .map_err(|e| format!("{e:?}"))
        }
    };
    let (batches, bytes) = read(0..4).await.expect("reads");
    assert_eq!(bytes as usize, body.len());
    let want: Vec<i64> = [0, 10, 20].iter().flat_map(|f| *f..f + 5).collect();
    assert_eq!(keys(&batches), want);
    let (batches, _) = read(1..3).await.expect("reads");
    assert_eq!(keys(&batches), (10..15).collect::<Vec<_>>());
    // One partition's bytes altered (its length kept): the read that covers it is refused.
    let mut bad = body.clone();
    let i = at[2] + b.len() / 2;
    bad[i] ^= 0x40;
    store
        .put("m/shuffle.arrow", Bytes::from(bad))
        .await
        .expect("put");
    let r = read(0..4).await;
    assert!(
        matches!(&r, Err(why) if why.contains("checksum")),
        "{:?}",
        r.map(|(b, _)| b.len())
    );
}

#[tokio::test]
async fn a_slice_cut_short_or_missing_is_lost_not_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::local_dir(dir.path()).expect("store");
    let whole = stream(0);
    // The committed checksums match the bytes, but the stream stops before its end.
    let cut = whole[..whole.len() - 20].to_vec();
    store
        .put("m/shuffle.arrow", Bytes::from(cut.clone()))
        .await
        .expect("put");
    let m = marker("m/shuffle.arrow", &cut, 0, 64);
    let r = SliceReader::open(&store, &m, 0)
        .await
        .map_err(|e| format!("{e:?}"))
        .expect("opens")
        .read_all()
        .await;
    assert!(
        matches!(&r, Err(Fetch::Lost(why)) if why.contains("m/shuffle.arrow")),
        "{:?}",
        r.map(|(b, _)| b.len())
    );
    let gone = marker("m/other.arrow", &cut, 0, 64);
    let r = SliceReader::open(&store, &gone, 0).await;
    assert!(matches!(&r, Err(Fetch::Lost(why)) if why.contains("missing")));
}
