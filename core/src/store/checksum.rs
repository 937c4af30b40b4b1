//! CRC-32C checksums of the files a job writes, so that readers detect lost or flipped bits.
//! CRC-32C is what S3, GCS and Parquet's page checksums use, and modern CPUs compute it in
//! hardware.

/// The CRC-32C of some bytes.
pub fn crc32c(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}

/// Extends a CRC-32C with more bytes.
pub fn crc32c_append(crc: u32, bytes: &[u8]) -> u32 {
    crc32c::crc32c_append(crc, bytes)
}

/// A checksum as it is written in markers and manifests: eight hex digits, as `crc32c`
/// prints it, so that a reader can compare it by eye.
pub mod hex {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes `Some(crc)` as `"1a2b3c4d"`.
    pub fn serialize<S: Serializer>(crc: &Option<u32>, s: S) -> Result<S::Ok, S::Error> {
        match crc {
            Some(c) => s.serialize_str(&format!("{c:08x}")),
            None => s.serialize_none(),
        }
    }

    /// Reads `"1a2b3c4d"` back.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| u32::from_str_radix(&t, 16).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// A store wrapper that records the size and CRC-32C of every object written whole through it,
/// for writers that put objects themselves (zarrs writing an array's chunks).
#[derive(Debug)]
pub struct Recorder {
    inner: std::sync::Arc<dyn object_store::ObjectStore>,
    written: std::sync::Mutex<std::collections::HashMap<object_store::path::Path, (u64, u32)>>,
}

impl Recorder {
    /// Records what is written through `inner`.
    pub fn new(inner: std::sync::Arc<dyn object_store::ObjectStore>) -> Recorder {
        Recorder {
            inner,
            written: Default::default(),
        }
    }

    /// The size and CRC-32C of the last object written at `path`, if one was.
    pub fn written(&self, path: &object_store::path::Path) -> Option<(u64, u32)> {
        self.written
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(path)
            .copied()
    }
}

impl std::fmt::Display for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Recorder({})", self.inner)
    }
}

mod recorder {
    use futures::stream::BoxStream;
    use object_store::path::Path;
    use object_store::{
        CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
        PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
    };

    use super::{Recorder, crc32c_append};

    #[async_trait::async_trait]
    impl ObjectStore for Recorder {
        async fn put_opts(
            &self,
            location: &Path,
            payload: PutPayload,
            opts: PutOptions,
        ) -> Result<PutResult> {
            let len = payload.content_length() as u64;
            let crc = payload.iter().fold(0, |c, b| crc32c_append(c, b));
            let r = self.inner.put_opts(location, payload, opts).await?;
            self.written
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(location.clone(), (len, crc));
            Ok(r)
        }

        async fn put_multipart_opts(
            &self,
            location: &Path,
            opts: PutMultipartOptions,
        ) -> Result<Box<dyn MultipartUpload>> {
            self.inner.put_multipart_opts(location, opts).await
        }

        async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
            self.inner.get_opts(location, options).await
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
}
