//! `kask verify`: checks a committed result the way a careful reader would. Every file the
//! manifest names exists with its size, rows and checksum; no data file lies beside them that
//! the manifest does not name (a glob reader would take it for part of the result).

use std::collections::BTreeSet;

use datafusion::parquet::file::metadata::ParquetMetaDataReader;
use futures::StreamExt;

use super::lock;
use super::manifest::{MANIFEST, Manifest, ManifestFile, output_dir, read_manifest};
use crate::error::Result;
use crate::store::Store;
use crate::store::checksum::crc32c;
use kask_api::Format;
use kask_api::paths::SCRATCH_DIR;

/// The outcome of a check.
#[derive(Clone, Debug, Default)]
pub struct Verdict {
    /// The manifest, when there is one.
    pub manifest: Option<Manifest>,
    /// What is wrong, one line each; empty when the result is whole.
    pub problems: Vec<String>,
    /// Things worth knowing that do not make the result wrong.
    pub notes: Vec<String>,
    /// Bytes read.
    pub bytes_read: u64,
}

impl Verdict {
    /// Whether the result is whole.
    pub fn ok(&self) -> bool {
        self.manifest.is_some() && self.problems.is_empty()
    }

    /// One line for a person or a pipeline.
    pub fn summary(&self, output: &str) -> String {
        match (&self.manifest, self.problems.len()) {
            (None, _) => format!("FAIL {output}: {}", self.problems.join("; ")),
            (Some(m), 0) => format!(
                "OK {output}: {}, {}, {} bytes, checksums match ({})",
                count(m.files.len() as u64, "file"),
                count(m.rows, if m.array.is_some() { "element" } else { "row" }),
                m.files.iter().map(|f| f.bytes).sum::<u64>(),
                m.writer()
            ),
            (Some(_), n) => format!(
                "FAIL {output}: {n} problem{}: {}",
                if n == 1 { "" } else { "s" },
                self.problems.join("; ")
            ),
        }
    }
}

/// "1 file", "3 files".
fn count(n: u64, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// How many files are read at once.
const CONCURRENCY: usize = 8;

/// Checks the result at `output`.
pub async fn verify(store: &Store, output: &str) -> Result<Verdict> {
    let out = output_dir(output);
    let mut v = Verdict::default();
    if let Some(h) = lock::holder(store, &out).await? {
        v.notes.push(format!(
            "{} holds the commit lock (since {}): a commit is in progress or was interrupted",
            h.describe(),
            h.since
        ));
    }
    let Some(m) = read_manifest(store, &out).await? else {
        v.problems.push(format!(
            "no {MANIFEST} manifest: not a committed result (a job may be running, or have failed)"
        ));
        return Ok(v);
    };
    let checks: Vec<(Option<String>, u64)> = futures::stream::iter(&m.files)
        .map(|f| check_file(store, &out, m.format, f))
        .buffered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_>>()?;
    for (problem, read) in checks {
        v.bytes_read += read;
        v.problems.extend(problem);
    }
    let total: u64 = m.files.iter().map(|f| f.rows).sum();
    if total != m.rows {
        v.problems.push(format!(
            "the manifest says {} rows but its files add up to {total}",
            m.rows
        ));
    }
    let named: BTreeSet<String> = m
        .files
        .iter()
        .map(|f| format!("{out}/{}", f.path))
        .collect();
    let scratch = format!("{out}/{SCRATCH_DIR}/");
    let manifest = format!("{out}/{MANIFEST}");
    for (path, _) in store.list(&out).await? {
        if path.starts_with(&scratch) || path == manifest || named.contains(&path) {
            continue;
        }
        let rel = path.strip_prefix(&format!("{out}/")).unwrap_or(&path);
        v.problems.push(format!(
            "{rel} lies in the output but the manifest does not name it (a glob reader would read it as data)"
        ));
    }
    v.manifest = Some(m);
    Ok(v)
}

/// Checks one file: exists, size, checksum, rows. Returns the problem and the bytes read.
async fn check_file(
    store: &Store,
    out: &str,
    format: Format,
    f: &ManifestFile,
) -> Result<(Option<String>, u64)> {
    let Some(body) = store.get_opt(&format!("{out}/{}", f.path)).await? else {
        return Ok((Some(format!("{} is missing", f.path)), 0));
    };
    let read = body.len() as u64;
    if read != f.bytes {
        return Ok((
            Some(format!("{} has {read} bytes, not {}", f.path, f.bytes)),
            read,
        ));
    }
    if let Some(want) = f.crc32c {
        let got = crc32c(&body);
        if got != want {
            return Ok((
                Some(format!("{} has checksum {got:08x}, not {want:08x}", f.path)),
                read,
            ));
        }
    }
    let rows = match format {
        Format::Parquet => match ParquetMetaDataReader::new().parse_and_finish(&body) {
            Ok(meta) => Some(meta.file_metadata().num_rows() as u64),
            Err(e) => return Ok((Some(format!("{} is not Parquet: {e}", f.path)), read)),
        },
        Format::Csv => Some(csv_records(&body).saturating_sub(1)),
        Format::Json => Some(
            body.split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .count() as u64,
        ),
        // A chunk's element count is the chunk's share of the array, not something its bytes say.
        Format::Zarr => None,
    };
    match rows {
        Some(n) if n != f.rows => Ok((
            Some(format!("{} holds {n} rows, not {}", f.path, f.rows)),
            read,
        )),
        _ => Ok((None, read)),
    }
}

/// Records in CSV text (a header counts as one): newlines outside double quotes, and a last
/// line without one.
pub fn csv_records(body: &[u8]) -> u64 {
    let mut quoted = false;
    let mut n = 0;
    for b in body {
        match b {
            b'"' => quoted = !quoted,
            b'\n' if !quoted => n += 1,
            _ => {}
        }
    }
    if body.last().is_some_and(|b| *b != b'\n') {
        n += 1;
    }
    n
}
