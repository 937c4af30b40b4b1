//! Reading a bag input's byte range as records: whole lines only (a line belongs to the range
//! its first byte falls in), fetched a window at a time so that a task holds a few megabytes of
//! its range, never all of it; `.gz` and `.zst` files decoded as they arrive; JSON lines parsed
//! one by one so that a bad line is reported with its file and line number, or skipped and
//! counted.

use std::io::Write;

use serde_json::Value;

use kask_api::{BagFormat, OnBadRecord};
use kask_core::error::{Error, Result};
use kask_core::plan::Fragment;
use kask_core::store::Store;
use kask_core::store::lines::locate;

/// What reading a range found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Lines read (records, skipped lines and blank lines).
    pub lines: u64,
    /// Lines skipped as malformed (with `onBadRecord: skip`).
    pub skipped: u64,
    /// Bytes fetched.
    pub bytes: u64,
}

/// Bytes of a plain file fetched at a time.
const WINDOW: u64 = 8 << 20;

/// Bytes of a compressed file fetched at a time: they decode to several times as many.
const COMPRESSED_WINDOW: u64 = 1 << 20;

/// How many bytes past a range's end are fetched at a time to finish its last line.
const TAIL: u64 = 64 * 1024;

/// How a bag input is read.
#[derive(Clone, Copy, Debug)]
pub struct Reader<'a> {
    /// The job's store.
    pub store: &'a Store,
    /// The input's name, for errors.
    pub input: &'a str,
    /// JSON or text.
    pub format: BagFormat,
    /// What a malformed line does.
    pub on_bad: OnBadRecord,
}

/// Whether a file is read whole through a decompressor.
pub fn compressed(path: &str) -> bool {
    let p = path.to_ascii_lowercase();
    p.ends_with(".gz") || p.ends_with(".zst")
}

/// Why reading lines stopped.
enum Stop {
    /// Line `n` (1-based, within the piece) is malformed.
    Bad(u64, String),
    /// The step the record went to failed.
    Failed(Error),
}

/// Whole lines of a range, the next piece of it.
pub struct Piece {
    data: Vec<u8>,
    /// The number, within the range, of the piece's first line (1-based).
    first_line: u64,
}

enum Decoder {
    Gz(Box<flate2::write::MultiGzDecoder<Vec<u8>>>),
    Zst(zstd::stream::write::Decoder<'static, Vec<u8>>),
}

impl Decoder {
    fn write(&mut self, data: &[u8]) -> std::io::Result<Vec<u8>> {
        match self {
            Decoder::Gz(d) => {
                d.write_all(data)?;
                d.flush()?;
                Ok(std::mem::take(d.get_mut()))
            }
            Decoder::Zst(d) => {
                d.write_all(data)?;
                d.flush()?;
                Ok(std::mem::take(d.get_mut()))
            }
        }
    }

    /// The rest of the output; an error when the input ended inside a member or frame.
    fn finish(&mut self) -> std::io::Result<Vec<u8>> {
        match self {
            Decoder::Gz(d) => {
                d.try_finish()?;
                Ok(std::mem::take(d.get_mut()))
            }
            Decoder::Zst(d) => {
                d.do_finish()?;
                Ok(std::mem::take(d.get_mut()))
            }
        }
    }
}

/// A range's whole lines, fetched and handed out a piece at a time.
pub struct Pieces<'a> {
    reader: Reader<'a>,
    frag: &'a Fragment,
    /// Bytes fetched (and decoded) not yet handed out; they start a line unless `skip`.
    buf: Vec<u8>,
    /// The file offset of `buf[0]` (plain files).
    buf_at: u64,
    /// The next offset to fetch.
    pos: u64,
    /// The start of `buf` is the end of the previous range's last line.
    skip: bool,
    decoder: Option<Decoder>,
    /// The file offset of the range's first line (plain files).
    first_line_at: u64,
    lines_out: u64,
    done: bool,
    /// Bytes fetched so far.
    pub fetched: u64,
}

impl<'a> Pieces<'a> {
    fn new(reader: Reader<'a>, frag: &'a Fragment) -> Result<Pieces<'a>> {
        let lower = frag.path.to_ascii_lowercase();
        let decoder = if lower.ends_with(".gz") {
            Some(Decoder::Gz(Box::new(flate2::write::MultiGzDecoder::new(
                Vec::new(),
            ))))
        } else if lower.ends_with(".zst") {
            Some(Decoder::Zst(
                zstd::stream::write::Decoder::new(Vec::new())
                    .map_err(|e| Error::internal(format!("starting a zstd decoder: {e}")))?,
            ))
        } else {
            None
        };
        // A compressed file is one range from its start; a plain range that does not start
        // the file starts after the first newline at or after `start - 1`: the line before
        // belongs to the previous range.
        let (pos, skip) = if decoder.is_some() || frag.start == 0 {
            (0, false)
        } else {
            (frag.start - 1, true)
        };
        Ok(Pieces {
            reader,
            frag,
            buf: Vec::new(),
            buf_at: pos,
            pos,
            skip,
            decoder,
            first_line_at: frag.start,
            lines_out: 0,
            done: false,
            fetched: 0,
        })
    }

    /// The next piece of whole lines, or `None` at the range's end.
    pub async fn next(&mut self) -> Result<Option<Piece>> {
        loop {
            if self.done {
                return Ok(None);
            }
            let cut = if self.decoder.is_some() {
                self.compressed_cut()?
            } else {
                self.plain_cut()
            };
            match cut {
                Some(0) => {}
                Some(n) => return Ok(Some(self.hand_out(n))),
                None => self.fetch().await?,
            }
        }
    }

    fn hand_out(&mut self, n: usize) -> Piece {
        let rest = self.buf.split_off(n);
        let data = std::mem::replace(&mut self.buf, rest);
        self.buf_at += n as u64;
        let first_line = self.lines_out + 1;
        let mut lines = memchr::memchr_iter(b'\n', &data).count() as u64;
        if data.last().is_some_and(|&b| b != b'\n') {
            lines += 1;
        }
        self.lines_out += lines;
        Piece { data, first_line }
    }

    /// How many bytes of `buf` to hand out now (`Some(0)` when the range is done), or `None`
    /// to fetch more first.
    fn plain_cut(&mut self) -> Option<usize> {
        let eof = self.pos >= self.frag.size;
        if self.skip {
            match memchr::memchr(b'\n', &self.buf) {
                Some(i) => {
                    self.buf.drain(..=i);
                    self.buf_at += i as u64 + 1;
                    self.first_line_at = self.buf_at;
                    self.skip = false;
                }
                None if eof => {
                    self.done = true;
                    return Some(0);
                }
                None => return None,
            }
        }
        if self.buf_at >= self.frag.end {
            self.done = true;
            return Some(0);
        }
        // The range's last line is the one holding byte `end - 1`: it runs to the first
        // newline at or after it.
        let last = (self.frag.end - 1 - self.buf_at) as usize;
        if let Some(i) = self.buf.get(last..).and_then(|t| memchr::memchr(b'\n', t)) {
            self.done = true;
            return Some(last + i + 1);
        }
        if eof {
            self.done = true;
            return Some(self.buf.len());
        }
        if self.buf.len() as u64 >= WINDOW {
            return memchr::memrchr(b'\n', &self.buf).map(|i| i + 1);
        }
        None
    }

    fn compressed_cut(&mut self) -> Result<Option<usize>> {
        if self.pos >= self.frag.size {
            let rest = self.decode(None)?;
            self.buf.extend_from_slice(&rest);
            self.done = true;
            return Ok(Some(self.buf.len()));
        }
        if self.buf.len() as u64 >= COMPRESSED_WINDOW {
            return Ok(memchr::memrchr(b'\n', &self.buf).map(|i| i + 1));
        }
        Ok(None)
    }

    fn decode(&mut self, data: Option<&[u8]>) -> Result<Vec<u8>> {
        let Some(d) = self.decoder.as_mut() else {
            return Ok(data.map(<[u8]>::to_vec).unwrap_or_default());
        };
        let out = match data {
            Some(data) => d.write(data),
            None => d.finish(),
        };
        out.map_err(|e| {
            Error::input(
                self.reader.input,
                format!("{}: cannot decompress: {e}", self.frag.path),
            )
        })
    }

    async fn fetch(&mut self) -> Result<()> {
        let size = self.frag.size;
        let step = if self.decoder.is_some() {
            COMPRESSED_WINDOW
        } else if self.pos < self.frag.end {
            WINDOW.min(self.frag.end - self.pos + TAIL)
        } else {
            TAIL
        };
        let to = (self.pos + step).min(size);
        let bytes = self
            .reader
            .store
            .get_range(&self.frag.path, self.pos..to)
            .await?;
        self.fetched += bytes.len() as u64;
        self.pos = to;
        if self.decoder.is_some() {
            let out = self.decode(Some(&bytes))?;
            self.buf.extend_from_slice(&out);
        } else {
            self.buf.extend_from_slice(&bytes);
        }
        Ok(())
    }
}

impl<'a> Reader<'a> {
    /// The pieces of one range, to be read in turn with [`Reader::records`].
    pub fn pieces(&self, frag: &'a Fragment) -> Result<Pieces<'a>> {
        Pieces::new(*self, frag)
    }

    /// Parses one piece's records, passing each to `emit`.
    pub async fn records(
        &self,
        pieces: &Pieces<'_>,
        piece: &Piece,
        emit: &mut (dyn FnMut(Value) -> Result<()> + Send),
    ) -> Result<ReadStats> {
        match self.lines(&piece.data, emit) {
            Ok(stats) => Ok(stats),
            Err(Stop::Failed(e)) => Err(e),
            Err(Stop::Bad(n, what)) => {
                let n = piece.first_line - 1 + n;
                // Line numbers count from the file's start; only a failure needs the lines
                // before the range, so they are counted now.
                let at = if pieces.decoder.is_some() {
                    format!("line {n}")
                } else {
                    locate(self.store, &pieces.frag.path, pieces.first_line_at, n).await
                };
                Err(Error::input(
                    self.input,
                    format!("{} {at}: {what}", pieces.frag.path),
                ))
            }
        }
    }

    /// Reads the records of one range, passing each to `emit`.
    pub async fn read(
        &self,
        frag: &'a Fragment,
        emit: &mut (dyn FnMut(Value) -> Result<()> + Send),
    ) -> Result<ReadStats> {
        let mut pieces = self.pieces(frag)?;
        let mut stats = ReadStats::default();
        while let Some(piece) = pieces.next().await? {
            let s = self.records(&pieces, &piece, emit).await?;
            stats.lines += s.lines;
            stats.skipped += s.skipped;
        }
        stats.bytes = pieces.fetched;
        Ok(stats)
    }

    fn lines(
        &self,
        data: &[u8],
        emit: &mut (dyn FnMut(Value) -> Result<()> + Send),
    ) -> std::result::Result<ReadStats, Stop> {
        let mut stats = ReadStats::default();
        let body = data.strip_suffix(b"\n").unwrap_or(data);
        if data.is_empty() {
            return Ok(stats);
        }
        for (i, raw) in split_lines(body).enumerate() {
            let n = i as u64 + 1;
            stats.lines += 1;
            let line = raw.strip_suffix(b"\r").unwrap_or(raw);
            let parsed = match self.format {
                BagFormat::Text => std::str::from_utf8(line)
                    .map(|s| Value::String(s.to_string()))
                    .map_err(|e| format!("not UTF-8 text: {e}")),
                BagFormat::Json => {
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    serde_json::from_slice::<Value>(line).map_err(|e| {
                        format!(
                            "not valid JSON ({e}); set spec.bag.onBadRecord: skip to drop such lines"
                        )
                    })
                }
            };
            match parsed {
                Ok(v) => emit(v).map_err(Stop::Failed)?,
                Err(_) if self.on_bad == OnBadRecord::Skip => stats.skipped += 1,
                Err(what) => return Err(Stop::Bad(n, what)),
            }
        }
        Ok(stats)
    }
}

/// The lines of `body`, split at each `\n` (memchr finds them many bytes at a time).
fn split_lines(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    let mut ends = memchr::memchr_iter(b'\n', body).chain(std::iter::once(body.len()));
    std::iter::from_fn(move || {
        let end = ends.next()?;
        let line = &body[start..end];
        start = end + 1;
        Some(line)
    })
}
