//! The reduce side of the shuffle: one map task's slice of a partition, read and decoded a
//! window at a time (the next window fetched while the current one is decoded), so that a
//! reducer holds a window or two of each map output it reads rather than whole slices: a
//! merge of the sorted outputs of many map tasks reads them all at once.
//!
//! Every window is checked against its CRC-32C before a byte of it is decoded. A slice found
//! lost or corrupt at its first window is found before any row has been handed out, so it can be
//! made again and the replacement read instead; one found bad later fails the reading task,
//! retryably ([`SliceReader::next_or_recover`]).

use std::collections::VecDeque;
use std::ops::Range;

use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::buffer::Buffer;
use datafusion::arrow::ipc::reader::StreamDecoder;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::error::{Error, Result};
use crate::lineage::{Fetch, Recover, read_checked, with_recovery};
use crate::marker::TaskMarker;
use crate::store::Store;

/// One ranged read, and the checksum its bytes must have.
#[derive(Clone, Debug)]
struct Piece {
    path: String,
    range: Range<u64>,
    crc: Option<u32>,
}

/// A map task's slice of a reduce partition, batch by batch.
pub struct SliceReader {
    store: Store,
    marker: TaskMarker,
    pieces: VecDeque<Piece>,
    /// The next piece, being fetched while the current one is decoded.
    ahead: Option<(String, JoinHandle<std::result::Result<Bytes, Fetch>>)>,
    /// The file the bytes being decoded come from, for messages.
    path: String,
    current: Buffer,
    decoder: StreamDecoder,
    bytes: u64,
}

impl Drop for SliceReader {
    fn drop(&mut self) {
        if let Some((_, fetch)) = &self.ahead {
            fetch.abort();
        }
    }
}

/// The reads that fetch map task `marker`'s slice of `partition`, in order.
fn pieces(marker: &TaskMarker, partition: usize) -> std::result::Result<VecDeque<Piece>, Fetch> {
    let mut out = VecDeque::new();
    for f in &marker.files {
        let Some(r) = f.partitions.get(partition) else {
            continue;
        };
        if r.len == 0 {
            continue;
        }
        let end = r.offset + r.len;
        if r.windows.is_empty() || f.window == 0 {
            out.push_back(Piece {
                path: f.path.clone(),
                range: r.offset..end,
                crc: r.crc32c,
            });
            continue;
        }
        if r.windows.len() as u64 != r.len.div_ceil(f.window) {
            return Err(Fetch::Failed(Error::internal(format!(
                "the marker of {} lists {} window checksums for a {}-byte range in {}-byte windows",
                f.path,
                r.windows.len(),
                r.len,
                f.window
            ))));
        }
        for (i, crc) in r.windows.iter().enumerate() {
            let start = r.offset + i as u64 * f.window;
            out.push_back(Piece {
                path: f.path.clone(),
                range: start..(start + f.window).min(end),
                crc: Some(*crc),
            });
        }
    }
    Ok(out)
}

impl SliceReader {
    /// Opens map task `marker`'s slice of `partition` and reads its first window, so that a
    /// missing or corrupt output is found before any row is handed out.
    pub async fn open(
        store: &Store,
        marker: &TaskMarker,
        partition: usize,
    ) -> std::result::Result<Self, Fetch> {
        let mut reader = SliceReader {
            store: store.clone(),
            marker: marker.clone(),
            pieces: pieces(marker, partition)?,
            ahead: None,
            path: String::new(),
            current: Buffer::from(Vec::<u8>::new()),
            decoder: StreamDecoder::new(),
            bytes: 0,
        };
        reader.fetch_ahead();
        if let Some(first) = reader.next_piece().await? {
            reader.current = Buffer::from(first);
        }
        Ok(reader)
    }

    /// Bytes fetched so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// [`SliceReader::open`], having the map task run again through `lineage` while its
    /// output is found lost or corrupt.
    pub async fn open_or_recover(
        store: &Store,
        marker: TaskMarker,
        partition: usize,
        lineage: &dyn Recover,
    ) -> Result<Self> {
        with_recovery(lineage, marker, |m| async move {
            SliceReader::open(store, &m, partition).await
        })
        .await
    }

    /// [`SliceReader::next_batch`]. A loss found after rows were handed out cannot be made
    /// good by reading the replacement from where this one stopped (a task's rows need not
    /// come in the same order twice): the map task runs again through `lineage`, and the
    /// reading task fails with a retryable error, to read the replacement from the start.
    pub async fn next_or_recover(&mut self, lineage: &dyn Recover) -> Result<Option<RecordBatch>> {
        match self.next_batch().await {
            Ok(b) => Ok(b),
            Err(Fetch::Failed(e)) => Err(e),
            Err(Fetch::Lost(why)) => {
                let m = &self.marker;
                lineage.recover(m.stage, m.task, m.epoch, &why).await?;
                Err(Error::Storage {
                    url: self.store.url.clone(),
                    message: format!(
                        "the output of task {} of stage {} was found lost or corrupt part way \
                         through reading it ({why}); it was made again, and the reading task \
                         runs again to read it from the start",
                        m.task, m.stage
                    ),
                })
            }
        }
    }

    /// Starts fetching the next piece, if there is one and none is being fetched.
    fn fetch_ahead(&mut self) {
        if self.ahead.is_some() {
            return;
        }
        let Some(p) = self.pieces.pop_front() else {
            return;
        };
        let store = self.store.clone();
        let path = p.path.clone();
        // In the reading task's span, so that the store's retries and errors carry its job,
        // stage and task.
        let fetch = tokio::spawn(
            async move {
                let len = p.range.end - p.range.start;
                read_checked(&store, &p.path, Some(p.range), len, p.crc).await
            }
            .in_current_span(),
        );
        self.ahead = Some((path, fetch));
    }

    /// The piece being fetched, once it has arrived (checked), with the one after it started.
    async fn next_piece(&mut self) -> std::result::Result<Option<Bytes>, Fetch> {
        let Some((path, fetch)) = self.ahead.take() else {
            return Ok(None);
        };
        let bytes = fetch
            .await
            .map_err(|e| Fetch::Failed(Error::internal(format!("reading {path}: {e}"))))??;
        self.bytes += bytes.len() as u64;
        self.path = path;
        self.fetch_ahead();
        Ok(Some(bytes))
    }

    /// The next batch, or `None` at the end of the slice.
    pub async fn next_batch(&mut self) -> std::result::Result<Option<RecordBatch>, Fetch> {
        loop {
            if !self.current.is_empty() {
                match self.decoder.decode(&mut self.current) {
                    Ok(Some(batch)) => return Ok(Some(batch)),
                    Ok(None) => {}
                    // The decoder refuses bytes after an end-of-stream marker, leaving them
                    // unread: a range holds one IPC stream per spill of its map task, back to
                    // back, so the next stream starts there.
                    Err(_) if self.decoder.finish().is_ok() => self.decoder = StreamDecoder::new(),
                    Err(e) => {
                        return Err(Fetch::Lost(format!(
                            "{}: corrupt shuffle data: {e}",
                            self.path
                        )));
                    }
                }
                continue;
            }
            match self.next_piece().await? {
                Some(bytes) => self.current = Buffer::from(bytes),
                None => {
                    return match self.decoder.finish() {
                        Ok(()) => Ok(None),
                        Err(e) => Err(Fetch::Lost(format!(
                            "{}: shuffle data cut short: {e}",
                            self.path
                        ))),
                    };
                }
            }
        }
    }

    /// The rest of the slice.
    pub async fn read_all(mut self) -> std::result::Result<(Vec<RecordBatch>, u64), Fetch> {
        let mut batches = Vec::new();
        while let Some(b) = self.next_batch().await? {
            batches.push(b);
        }
        Ok((batches, self.bytes))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::ipc::writer::StreamWriter;

    use super::*;
    use crate::marker::{PartRange, TaskFile};
    use crate::store::checksum::crc32c;

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
        let range = &body[at..];
        TaskMarker {
            files: vec![TaskFile {
                path: path.into(),
                rows: 15,
                bytes: body.len() as u64,
                crc32c: Some(crc32c(body)),
                partitions: vec![PartRange {
                    offset: at as u64,
                    len: range.len() as u64,
                    rows: 15,
                    crc32c: Some(crc32c(range)),
                    windows: range.chunks(window).map(crc32c).collect(),
                    ..PartRange::default()
                }],
                window: window as u64,
                samples: vec![],
            }],
            ..TaskMarker::default()
        }
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
            let keys: Vec<i64> = batches
                .iter()
                .flat_map(|b| {
                    let k = b.column(0).as_any().downcast_ref::<Int64Array>();
                    k.expect("k").values().to_vec()
                })
                .collect();
            let want: Vec<i64> = [0, 10, 20].iter().flat_map(|f| *f..f + 5).collect();
            assert_eq!(keys, want, "window {window}");
        }
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
}
