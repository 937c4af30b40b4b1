//! Local files read by memory map.
//!
//! `object_store`'s local store reads each requested range into a new zero-filled buffer: the
//! kernel clears every fresh page, the buffer is zeroed again, and the read copies the page
//! cache into it. For a job over local Parquet those three took most of the CPU that was not
//! decoding (`perf` of db-benchmark groupby q4 at 1e7 rows: 28% of the samples clearing pages
//! for `read_range`'s buffers, 10% copying, 6% `memset`). Here the ranges of a file, and what a
//! whole or ranged get returns (shuffle objects, markers), are slices of one read-only mapping
//! of it, so the decoders read the page cache itself; the pages are mapped in bulk
//! (`MADV_POPULATE_READ`) on the blocking pool, where a read from disk would have waited too,
//! not in the decoding thread.
//!
//! Every other call, and any read the mapping cannot serve exactly (a file that cannot be
//! opened or mapped, an empty file, a range past its end), goes to the local store, so errors
//! are the ones it gives.
//!
//! A mapping sees a file as it is on disk: Kask replaces files it writes by renaming a new file
//! over them, which leaves a mapping of the old one intact; a user who truncates an input file
//! while a job reads it can make the reading process fail (`SIGBUS`), as with any program that
//! maps files (Polars' local reads do the same).

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

/// The local file system, with ranged reads served from memory maps.
#[derive(Debug, Default)]
pub struct Mapped {
    local: Arc<LocalFileSystem>,
}

impl Mapped {
    /// The whole local file system, as `LocalFileSystem::new()` sees it.
    pub fn new() -> Mapped {
        Mapped::default()
    }
}

impl std::fmt::Display for Mapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.local)
    }
}

/// The requested ranges as slices of one mapping of the file at `path`, or `None` where the
/// local store should answer (and give its own error).
fn mapped_ranges(path: &std::path::Path, ranges: &[Range<u64>]) -> Option<Vec<Bytes>> {
    file_ranges(&std::fs::File::open(path).ok()?, ranges)
}

/// The requested ranges as slices of one mapping of `file`, or `None` where the file is empty,
/// cannot be mapped, or does not hold every range whole.
fn file_ranges(file: &std::fs::File, ranges: &[Range<u64>]) -> Option<Vec<Bytes>> {
    let len = file.metadata().ok()?.len();
    if len == 0 || ranges.iter().any(|r| r.start > r.end || r.end > len) {
        return None;
    }
    let map = map_file(file)?;
    let mut within = Vec::with_capacity(ranges.len());
    for r in ranges {
        let (start, end) = (usize::try_from(r.start).ok()?, usize::try_from(r.end).ok()?);
        // Advice only: a kernel without MADV_POPULATE_READ (Linux before 5.14, other systems)
        // faults the pages in as the decoder reads them instead.
        #[cfg(target_os = "linux")]
        let _ = map.advise_range(memmap2::Advice::PopulateRead, start, end - start);
        within.push(start..end);
    }
    let whole = Bytes::from_owner(map);
    Some(within.into_iter().map(|r| whole.slice(r)).collect())
}

/// A read-only mapping of all of `file`.
#[allow(unsafe_code)]
fn map_file(file: &std::fs::File) -> Option<memmap2::Mmap> {
    // SAFETY: the mapping is read-only and private to this process, and its bytes are only
    // read through the `Bytes` that own it. What the compiler cannot see is the file changing
    // under it: Kask never writes into a file in place (it renames new files over old ones,
    // which keeps the mapped inode whole), and the module's documentation states what a user
    // truncating an input during a job risks.
    unsafe { memmap2::Mmap::map(file) }.ok()
}

#[async_trait::async_trait]
impl ObjectStore for Mapped {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.local.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.local.put_multipart_opts(location, opts).await
    }

    /// The local store's answer (its checks of the options, the range resolved, the metadata),
    /// with the file it opened read from a mapping: whole reads of shuffle objects and markers,
    /// footers, ranged reads of one piece.
    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let head = options.head;
        let result = self.local.get_opts(location, options).await?;
        if head || result.range.is_empty() {
            return Ok(result);
        }
        let GetResultPayload::File(file, path) = result.payload else {
            return Ok(result);
        };
        let range = result.range.clone();
        let (mapped, file, path) = tokio::task::spawn_blocking(move || {
            let mapped = file_ranges(&file, std::slice::from_ref(&range));
            (mapped, file, path)
        })
        .await
        .map_err(|e| object_store::Error::Generic {
            store: "kask",
            source: format!("mapping {location}: {e}").into(),
        })?;
        let payload = match mapped.and_then(|mut m| m.pop()) {
            Some(bytes) => {
                GetResultPayload::Stream(futures::stream::once(async move { Ok(bytes) }).boxed())
            }
            None => GetResultPayload::File(file, path),
        };
        Ok(GetResult { payload, ..result })
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let path = self.local.path_to_filesystem(location)?;
        let wanted = ranges.to_vec();
        let mapped = tokio::task::spawn_blocking(move || mapped_ranges(&path, &wanted))
            .await
            .ok()
            .flatten();
        match mapped {
            Some(got) => Ok(got),
            None => self.local.get_ranges(location, ranges).await,
        }
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.local.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.local.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.local.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.local.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.local.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.local.rename_opts(from, to, options).await
    }
}
