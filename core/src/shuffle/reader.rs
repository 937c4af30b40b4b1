//! The reduce side of the shuffle: one map task's slice of a partition (or of a run of adjacent
//! partitions, which a task that takes small partitions together reads in as few requests as
//! their bytes allow), read and decoded a window at a time (the next window fetched while the
//! current one is decoded), so that a reducer holds a window or two of each map output it reads
//! rather than whole slices: a merge of the sorted outputs of many map tasks reads them all at
//! once.
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
use crate::lineage::{Fetch, Recover, read_parts, with_recovery};
use crate::marker::TaskMarker;
use crate::shuffle::WINDOW_BYTES;
use crate::store::Store;

/// One ranged read, and the consecutive parts it covers: each part's length and the checksum
/// its bytes must have.
#[derive(Clone, Debug)]
pub struct Piece {
    pub path: String,
    pub range: Range<u64>,
    pub parts: Vec<(u64, Option<u32>)>,
}

impl Piece {
    pub fn new(path: &str, range: Range<u64>, crc: Option<u32>) -> Piece {
        Piece {
            path: path.to_string(),
            parts: vec![(range.end - range.start, crc)],
            range,
        }
    }
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

/// The reads that fetch map task `marker`'s slices of `partitions`, in order: a window each,
/// and the small ranges of adjacent partitions of a file together, up to its window's bytes.
fn pieces(
    marker: &TaskMarker,
    partitions: Range<usize>,
) -> std::result::Result<VecDeque<Piece>, Fetch> {
    let mut out = VecDeque::new();
    for f in &marker.files {
        let mut file = VecDeque::new();
        for r in f.partitions.get(partitions.clone()).unwrap_or_default() {
            if r.len == 0 {
                continue;
            }
            let end = r.offset + r.len;
            if r.windows.is_empty() || f.window == 0 {
                file.push_back(Piece::new(&f.path, r.offset..end, r.crc32c));
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
                file.push_back(Piece::new(
                    &f.path,
                    start..(start + f.window).min(end),
                    Some(*crc),
                ));
            }
        }
        // Reads of at most a window, which is what a reader holds of each map output.
        let window = if f.window > 0 { f.window } else { WINDOW_BYTES };
        out.extend(merged(file, window));
    }
    Ok(out)
}

/// `pieces` with each run of pieces that follow each other in one file read as one, while the
/// run stays within `most` bytes: a task reading many small partitions makes a request per
/// window of bytes, not one per partition.
pub fn merged(pieces: VecDeque<Piece>, most: u64) -> VecDeque<Piece> {
    let mut out: VecDeque<Piece> = VecDeque::with_capacity(pieces.len());
    for p in pieces {
        if let Some(last) = out.back_mut()
            && last.path == p.path
            && last.range.end == p.range.start
            && p.range.end - last.range.start <= most
        {
            last.range.end = p.range.end;
            last.parts.extend(p.parts);
            continue;
        }
        out.push_back(p);
    }
    out
}

impl SliceReader {
    /// Opens map task `marker`'s slice of `partition` and reads its first window, so that a
    /// missing or corrupt output is found before any row is handed out.
    pub async fn open(
        store: &Store,
        marker: &TaskMarker,
        partition: usize,
    ) -> std::result::Result<Self, Fetch> {
        SliceReader::open_run(store, marker, partition..partition + 1).await
    }

    /// [`SliceReader::open`] of the slices of adjacent `partitions`, one after the other.
    pub async fn open_run(
        store: &Store,
        marker: &TaskMarker,
        partitions: Range<usize>,
    ) -> std::result::Result<Self, Fetch> {
        let mut reader = SliceReader {
            store: store.clone(),
            marker: marker.clone(),
            pieces: pieces(marker, partitions)?,
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

    /// [`SliceReader::open_run`], having the map task run again through `lineage` while its
    /// output is found lost or corrupt.
    pub async fn open_or_recover(
        store: &Store,
        marker: TaskMarker,
        partitions: Range<usize>,
        lineage: &dyn Recover,
    ) -> Result<Self> {
        with_recovery(lineage, marker, |m| {
            let partitions = partitions.clone();
            async move { SliceReader::open_run(store, &m, partitions).await }
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
            async move { read_parts(&store, &p.path, Some(p.range), &p.parts).await }
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
