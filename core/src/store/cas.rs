//! Compare-and-swap on one object: replace it only if it still holds what was read. The commit
//! protocol's lock is built on it, so that two jobs committing to one output are serialized by
//! the store itself, whoever runs them.
//!
//! Object stores give this with conditional puts (S3 `If-Match`, GCS generations, Azure
//! ETags). A local directory has no such call: there, the object's folder is locked with
//! `flock` around a compare and an atomic rename, which serializes every process on the
//! machine.

use bytes::Bytes;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};

use super::Store;
use crate::error::{Error, Result};

/// An object's content and the version it was read at.
#[derive(Clone, Debug)]
pub struct Versioned {
    /// The bytes read.
    pub body: Bytes,
    version: UpdateVersion,
}

impl Store {
    /// Reads an object with its version, or `None` when it does not exist.
    pub async fn get_versioned(&self, rel: &str) -> Result<Option<Versioned>> {
        match self.inner.get(&self.path(rel)).await {
            Ok(r) => {
                let version = UpdateVersion {
                    e_tag: r.meta.e_tag.clone(),
                    version: r.meta.version.clone(),
                };
                let body = r
                    .bytes()
                    .await
                    .map_err(|e| self.err(format!("reading {rel}"), e))?;
                Ok(Some(Versioned { body, version }))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(format!("reading {rel}"), e)),
        }
    }

    /// Writes `data` at `rel` if the object is still as `expected` (read by
    /// [`Store::get_versioned`]; `None`: if it does not exist). `Ok(false)` when another
    /// writer changed it first.
    pub async fn put_if(
        &self,
        rel: &str,
        data: Bytes,
        expected: Option<&Versioned>,
    ) -> Result<bool> {
        if let Some(dir) = self
            .local_path(rel)
            .and_then(|p| p.parent().map(|d| d.to_path_buf()))
        {
            return self.local_put_if(&dir, rel, data, expected).await;
        }
        let mode = match expected {
            None => PutMode::Create,
            Some(v) => PutMode::Update(v.version.clone()),
        };
        let opts = PutOptions {
            mode,
            ..Default::default()
        };
        match self
            .inner
            .put_opts(&self.path(rel), PutPayload::from(data), opts)
            .await
        {
            Ok(_) => Ok(true),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(false),
            Err(e) => Err(self.err(format!("replacing {rel}"), e)),
        }
    }

    async fn local_put_if(
        &self,
        dir: &std::path::Path,
        rel: &str,
        data: Bytes,
        expected: Option<&Versioned>,
    ) -> Result<bool> {
        let lock = lock_dir(dir.to_path_buf())
            .await
            .map_err(|e| Error::Storage {
                url: self.url.clone(),
                message: format!("locking {} to replace {rel}: {e}", dir.display()),
            })?;
        let current = self.get_opt(rel).await?;
        let same = match (&current, expected) {
            (None, None) => true,
            (Some(now), Some(then)) => *now == then.body,
            _ => false,
        };
        if same {
            // LocalFileSystem writes a temporary file and renames it over the target.
            self.put(rel, data).await?;
        }
        drop(lock);
        Ok(same)
    }

    /// Whether the store honours create-only and compare-and-swap puts, on which the
    /// exactly-once protocol depends: without them two task attempts, or two jobs, could both
    /// win. Probed under `scratch`, and cleaned up.
    pub async fn check_conditional_puts(&self, scratch: &str) -> Result<()> {
        let probe = format!(
            "{}/probe-conditional-{:016x}",
            scratch.trim_end_matches('/'),
            rand::random::<u64>()
        );
        let probed = self.probe_conditional_puts(&probe).await;
        // The probe is removed whatever happened, so that a failed check leaves nothing.
        let removed = self.delete(&probe).await;
        let (created, recreated, swapped, stale) = probed?;
        removed?;
        // A request that failed says nothing about the store's semantics.
        let (recreated, swapped, stale) = (recreated?, swapped?, stale?);
        let (what, does) = match (created, recreated, swapped, stale) {
            (true, false, true, false) => return Ok(()),
            (true, false, _, _) => ("conditional (If-Match)", "serialize commits to one output"),
            _ => (
                "create-only (If-None-Match)",
                "commit each task exactly once",
            ),
        };
        Err(Error::Storage {
            url: self.url.clone(),
            message: format!("this store does not honour {what} puts, which kask needs to {does}"),
        })
    }
}

impl Store {
    async fn probe_conditional_puts(
        &self,
        probe: &str,
    ) -> Result<(bool, Result<bool>, Result<bool>, Result<bool>)> {
        let created = self.put_create(probe, Bytes::from_static(b"1")).await?;
        let recreated = self.put_create(probe, Bytes::from_static(b"2")).await;
        let read = self.get_versioned(probe).await?;
        let swapped = match &read {
            Some(v) => self.put_if(probe, Bytes::from_static(b"3"), Some(v)).await,
            None => Ok(false),
        };
        let stale = match &read {
            Some(v) => self.put_if(probe, Bytes::from_static(b"4"), Some(v)).await,
            None => Ok(true),
        };
        Ok((created, recreated, swapped, stale))
    }
}

/// Takes an exclusive `flock` on a directory (created if missing); released when the returned
/// handle is dropped. Blocking, so it waits on a blocking thread.
async fn lock_dir(dir: std::path::PathBuf) -> std::io::Result<std::fs::File> {
    tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&dir)?;
        let f = std::fs::File::open(&dir)?;
        f.lock()?;
        Ok(f)
    })
    .await
    .map_err(std::io::Error::other)?
}
