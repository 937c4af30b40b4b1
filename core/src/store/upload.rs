//! Streaming an object into the store: one PUT when it is small, a multipart upload when it is
//! large, and a CRC-32C of every byte on the way. A multipart upload that fails (a part, or its
//! completion) is aborted at once, and one dropped before it finished (its task failed or was
//! cancelled) is aborted on the runtime, so that no invisible parts are left behind to be
//! billed. A process that dies mid-upload leaves them to the job's cleanup, which finds them
//! through the record each multipart upload first writes beside its object
//! ([`super::uploads`]).

use bytes::Bytes;
use datafusion::parquet::arrow::async_writer::AsyncFileWriter;
use datafusion::parquet::errors::ParquetError;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use object_store::{MultipartUpload, ObjectStoreExt, PutPayload};

use super::Store;
use super::checksum::crc32c_append;

/// Bytes per part: above S3's 5 MiB minimum, small enough to keep a few in flight.
const PART_BYTES: usize = 10 << 20;

/// Parts uploading at once.
const PARTS_IN_FLIGHT: usize = 4;

/// An object being written.
pub struct Upload {
    store: Store,
    path: String,
    buffer: Vec<Bytes>,
    buffered: usize,
    multipart: Option<Multipart>,
    crc: u32,
    bytes: u64,
    done: bool,
}

struct Multipart {
    upload: Box<dyn MultipartUpload>,
    parts: FuturesUnordered<BoxFuture<'static, object_store::Result<()>>>,
}

impl Upload {
    /// Starts writing `rel`; nothing is visible there until [`Upload::finish`].
    pub fn new(store: &Store, rel: &str) -> Upload {
        Upload {
            store: store.clone(),
            path: rel.to_string(),
            buffer: Vec::new(),
            buffered: 0,
            multipart: None,
            crc: 0,
            bytes: 0,
            done: false,
        }
    }

    /// Appends bytes; a failure aborts the upload.
    pub async fn put(&mut self, data: Bytes) -> object_store::Result<()> {
        if self.done {
            return Err(closed(&self.path));
        }
        self.crc = crc32c_append(self.crc, &data);
        self.bytes += data.len() as u64;
        self.buffered += data.len();
        self.buffer.push(data);
        if self.buffered < PART_BYTES {
            return Ok(());
        }
        let sent = self.send_part().await;
        self.or_abort(sent).await
    }

    /// Completes the object; a failure aborts the upload.
    pub async fn finish(&mut self) -> object_store::Result<()> {
        if self.done {
            return Err(closed(&self.path));
        }
        let finished = self.complete().await;
        let r = self.or_abort(finished).await;
        self.done = true;
        r
    }

    async fn complete(&mut self) -> object_store::Result<()> {
        if self.multipart.is_none() {
            let payload: PutPayload = std::mem::take(&mut self.buffer).into_iter().collect();
            self.store
                .inner
                .put(&self.store.path(&self.path), payload)
                .await?;
            return Ok(());
        }
        if self.buffered > 0 {
            self.send_part().await?;
        }
        let Some(mp) = self.multipart.as_mut() else {
            return Err(closed(&self.path));
        };
        while let Some(r) = mp.parts.next().await {
            r?;
        }
        mp.upload.complete().await?;
        self.multipart = None;
        Ok(())
    }

    /// Sends the buffer as the next part, starting the multipart upload first if need be.
    async fn send_part(&mut self) -> object_store::Result<()> {
        if self.multipart.is_none() {
            // Before any part exists: some stores (MinIO) list unfinished uploads only by
            // their exact key, so the cleanup needs the key written down.
            let record = self.store.path(&super::uploads::record_of(&self.path));
            self.store.inner.put(&record, Bytes::new().into()).await?;
            let upload = self
                .store
                .inner
                .put_multipart(&self.store.path(&self.path))
                .await?;
            self.multipart = Some(Multipart {
                upload,
                parts: FuturesUnordered::new(),
            });
        }
        let Some(mp) = self.multipart.as_mut() else {
            return Err(closed(&self.path));
        };
        let payload: PutPayload = std::mem::take(&mut self.buffer).into_iter().collect();
        self.buffered = 0;
        mp.parts.push(mp.upload.put_part(payload));
        while mp.parts.len() >= PARTS_IN_FLIGHT {
            if let Some(r) = mp.parts.next().await {
                r?;
            }
        }
        Ok(())
    }

    /// On an error, aborts the multipart upload (if one started) before passing the error on.
    async fn or_abort(&mut self, r: object_store::Result<()>) -> object_store::Result<()> {
        if r.is_err() {
            self.done = true;
            if let Some(mut mp) = self.multipart.take() {
                drop(std::mem::take(&mut mp.parts));
                if let Err(e) = mp.upload.abort().await {
                    tracing::warn!(path = %self.path, error = %e, "could not abort a failed upload; the job's cleanup will");
                }
            }
        }
        r
    }

    /// The CRC-32C of everything written.
    pub fn crc32c(&self) -> u32 {
        self.crc
    }

    /// Bytes written.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

fn closed(path: &str) -> object_store::Error {
    object_store::Error::Generic {
        store: "kask",
        source: format!("the upload of {path} is closed").into(),
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        let (Some(mut mp), Ok(rt)) = (self.multipart.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let path = std::mem::take(&mut self.path);
        rt.spawn(async move {
            drop(std::mem::take(&mut mp.parts));
            if let Err(e) = mp.upload.abort().await {
                tracing::warn!(path, error = %e, "could not abort an unfinished upload; the job's cleanup will");
            }
        });
    }
}

impl AsyncFileWriter for Upload {
    fn write(&mut self, bs: Bytes) -> BoxFuture<'_, datafusion::parquet::errors::Result<()>> {
        async move {
            self.put(bs)
                .await
                .map_err(|e| ParquetError::External(Box::new(e)))
        }
        .boxed()
    }

    fn complete(&mut self) -> BoxFuture<'_, datafusion::parquet::errors::Result<()>> {
        async move {
            self.finish()
                .await
                .map_err(|e| ParquetError::External(Box::new(e)))
        }
        .boxed()
    }
}
