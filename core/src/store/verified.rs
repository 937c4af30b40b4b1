//! Every read checks that it got the bytes it asked for. A ranged read that comes back short (a
//! connection cut, a proxy that truncates) becomes a storage error, which is retried, instead
//! of bytes that a Parquet or IPC decoder would take for corrupt data.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

/// A store whose reads are checked for length.
#[derive(Debug)]
pub struct Verified {
    inner: Arc<dyn ObjectStore>,
}

impl Verified {
    /// Checks reads through `inner`.
    pub fn new(inner: Arc<dyn ObjectStore>) -> Verified {
        Verified { inner }
    }
}

impl std::fmt::Display for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.inner)
    }
}

fn short(location: &Path, got: u64, want: u64) -> object_store::Error {
    object_store::Error::Generic {
        store: "kask",
        source: format!("short read of {location}: got {got} of {want} bytes").into(),
    }
}

#[async_trait::async_trait]
impl ObjectStore for Verified {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let result = self.inner.get_opts(location, options).await?;
        let want = result.range.end - result.range.start;
        let GetResultPayload::Stream(stream) = result.payload else {
            // A local file is read by the caller itself, from the file.
            return Ok(result);
        };
        let location = location.clone();
        let mut got = 0u64;
        let checked = stream
            .map(Some)
            .chain(futures::stream::once(async { None }))
            .filter_map(move |item| {
                let out = match item {
                    Some(Ok(b)) => {
                        got += b.len() as u64;
                        if got > want {
                            Some(Err(short(&location, got, want)))
                        } else {
                            Some(Ok(b))
                        }
                    }
                    Some(Err(e)) => Some(Err(e)),
                    None if got < want => Some(Err(short(&location, got, want))),
                    None => None,
                };
                futures::future::ready(out)
            })
            .boxed();
        Ok(GetResult {
            payload: GetResultPayload::Stream(checked),
            ..result
        })
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let got = self.inner.get_ranges(location, ranges).await?;
        for (r, b) in ranges.iter().zip(&got) {
            if b.len() as u64 != r.end - r.start {
                return Err(short(location, b.len() as u64, r.end - r.start));
            }
        }
        Ok(got)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}
