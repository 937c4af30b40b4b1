//! Line numbers for errors in text files that a task reads from the middle: the lines before
//! its byte range are counted by streaming the file's head in windows, never holding it, and
//! only up to a limit past which an error names the byte offset instead.

use super::Store;
use crate::error::Result;

/// Bytes fetched at a time while counting.
const WINDOW: u64 = 8 << 20;

/// How far into a file lines are counted for an error message; past it the error names the
/// line's byte offset, so that a bad line near the end of a huge file does not download it.
pub const COUNT_LIMIT: u64 = 256 << 20;

/// The number of line breaks in bytes `0..upto` of `path`, or `None` when `upto` is past
/// [`COUNT_LIMIT`].
pub async fn lines_before(store: &Store, path: &str, upto: u64) -> Result<Option<u64>> {
    if upto > COUNT_LIMIT {
        return Ok(None);
    }
    let mut n = 0u64;
    let mut at = 0u64;
    while at < upto {
        let to = (at + WINDOW).min(upto);
        let bytes = store.get_range(path, at..to).await?;
        n += memchr::memchr_iter(b'\n', &bytes).count() as u64;
        at = to;
    }
    Ok(Some(n))
}

/// Where line `n` (1-based) after byte `start` of `path` is, for an error: its line in the
/// file when the lines before `start` could be counted, else its place after the byte offset.
pub async fn locate(store: &Store, path: &str, start: u64, n: u64) -> String {
    if start == 0 {
        return format!("line {n}");
    }
    match lines_before(store, path, start).await {
        Ok(Some(before)) => format!("line {}", before + n),
        _ => format!("line {n} after byte {start}"),
    }
}
