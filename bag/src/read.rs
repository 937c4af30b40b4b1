//! Reading a bag input's byte range as records: whole lines only (a line belongs to the range
//! its first byte falls in), `.gz` and `.zst` files whole and decompressed; JSON lines parsed
//! one by one so that a bad line is reported with its file and line number, or skipped and
//! counted.

use std::io::Read;

use serde_json::Value;

use kask_api::{BagFormat, OnBadRecord};
use kask_core::error::{Error, Result};
use kask_core::plan::Fragment;
use kask_core::store::Store;

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
    /// Line `n` (1-based, within the bytes read) is malformed.
    Bad(u64, String),
    /// The step the record went to failed.
    Failed(Error),
}

impl Reader<'_> {
    /// Reads the records of one range, passing each to `emit`.
    pub async fn read(
        &self,
        frag: &Fragment,
        emit: &mut (dyn FnMut(Value) -> Result<()> + Send),
    ) -> Result<ReadStats> {
        let (data, first_line_at, bytes) = if compressed(&frag.path) {
            let raw = self.store.get(&frag.path).await?;
            (self.decompress(&frag.path, &raw)?, 0, raw.len() as u64)
        } else {
            let (data, first) = self.fetch_lines(frag).await?;
            let n = data.len() as u64;
            (data, first, n)
        };
        match self.lines(&data, emit) {
            Ok(mut stats) => {
                stats.bytes = bytes;
                Ok(stats)
            }
            Err(Stop::Failed(e)) => Err(e),
            Err(Stop::Bad(n, what)) => {
                // Line numbers count from the file's start; only a failure needs the lines
                // before the range, so they are counted now.
                let before = if first_line_at == 0 {
                    0
                } else {
                    let prefix = self.store.get_range(&frag.path, 0..first_line_at).await?;
                    prefix.iter().filter(|&&b| b == b'\n').count() as u64
                };
                Err(Error::input(
                    self.input,
                    format!("{} line {}: {what}", frag.path, before + n),
                ))
            }
        }
    }

    fn decompress(&self, path: &str, raw: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let result = if path.to_ascii_lowercase().ends_with(".gz") {
            flate2::read::MultiGzDecoder::new(raw).read_to_end(&mut out)
        } else {
            zstd::stream::read::Decoder::new(raw).and_then(|mut d| d.read_to_end(&mut out))
        };
        result.map_err(|e| Error::input(self.input, format!("{path}: cannot decompress: {e}")))?;
        Ok(out)
    }

    /// The bytes of the whole lines that start in the range, and the offset of the first.
    async fn fetch_lines(&self, frag: &Fragment) -> Result<(Vec<u8>, u64)> {
        let from = frag.start.saturating_sub(1);
        let mut fetched_to = (frag.end + TAIL).min(frag.size);
        if from >= fetched_to {
            return Ok((Vec::new(), frag.start));
        }
        let mut buf = self
            .store
            .get_range(&frag.path, from..fetched_to)
            .await?
            .to_vec();
        // A range that does not start the file starts after the first newline at or after
        // `start - 1`: the line before belongs to the previous range.
        let skip = if frag.start == 0 {
            0
        } else {
            match buf.iter().position(|&b| b == b'\n') {
                Some(i) => i + 1,
                None => return Ok((Vec::new(), frag.start)),
            }
        };
        let first = from + skip as u64;
        if first >= frag.end {
            return Ok((Vec::new(), first));
        }
        // The last line starting before `end` runs to the first newline at or after
        // `end - 1`; fetch more until it is complete or the file ends.
        let last_start = (frag.end - 1 - from) as usize;
        loop {
            if let Some(i) = buf
                .get(last_start..)
                .and_then(|t| t.iter().position(|&b| b == b'\n'))
            {
                buf.truncate(last_start + i + 1);
                break;
            }
            if fetched_to >= frag.size {
                break;
            }
            let next = (fetched_to + TAIL).min(frag.size);
            let more = self.store.get_range(&frag.path, fetched_to..next).await?;
            fetched_to = next;
            buf.extend_from_slice(&more);
        }
        Ok((buf.split_off(skip), first))
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
