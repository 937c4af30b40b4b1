//! Object stores from a job's `storage` section: S3 (and S3-compatible servers such as MinIO),
//! GCS, Azure and local directories, all behind `object_store`.
//!
//! A [`Store`] is a store plus the prefix that `storage.url` names; every path in a spec is
//! relative to that prefix.

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::error::{Error, Result};
use kask_api::Storage;

/// The URL under which a task's DataFusion session knows the job's object store.
pub const STORE_URL: &str = "kask://store";

pub mod cas;
pub mod checksum;
pub mod lines;
pub mod mapped;
pub mod upload;
pub mod uploads;
pub mod verified;

/// The `storage` section of a local directory, as an absolute `file://` URL.
pub fn local_storage(dir: &std::path::Path) -> Result<Storage> {
    let abs = std::path::absolute(dir).map_err(|e| Error::Storage {
        url: dir.display().to_string(),
        message: e.to_string(),
    })?;
    Ok(Storage {
        url: format!("file://{}", abs.display()),
        endpoint: None,
        region: None,
        allow_http: None,
        secret_ref: None,
    })
}

/// An object store and the root prefix the job's paths are relative to.
#[derive(Clone, Debug)]
pub struct Store {
    /// The URL the user gave, for messages (never carries credentials).
    pub url: String,
    /// The store, with reads checked.
    pub inner: Arc<dyn ObjectStore>,
    /// The store as built, beneath the checks.
    raw: Arc<dyn ObjectStore>,
    /// The prefix inside the store that `url` points at.
    pub root: Path,
    /// DataFusion's runtime for this store: the store registered under
    /// [`STORE_URL`], and caches (Parquet footers) that every task of the
    /// process shares instead of each reading the footers again.
    pub runtime: Arc<datafusion::execution::runtime_env::RuntimeEnv>,
    /// For S3 stores, what listing unfinished multipart uploads needs (object_store has no
    /// call for it).
    s3: Option<Arc<uploads::S3Access>>,
    /// Whether this process runs every task of its job ([`Store::running_every_task`]).
    every_task_here: bool,
}

impl Store {
    /// Builds the store for a `storage` section. Credentials come from the environment
    /// (object_store's standard variables, e.g. `AWS_ACCESS_KEY_ID`), which is how the
    /// operator passes a Secret's keys to worker pods.
    pub fn from_storage(storage: &Storage) -> Result<Store> {
        let url = storage.url.trim_end_matches('/').to_string();
        let parsed = url::Url::parse(&url).map_err(|e| Error::Storage {
            url: url.clone(),
            message: format!("not a valid URL: {e}"),
        })?;
        let fail = |e: object_store::Error| Error::Storage {
            url: url.clone(),
            message: e.to_string(),
        };
        let prefix = parsed.path().trim_matches('/').to_string();
        let mut s3 = None;
        let inner: Arc<dyn ObjectStore> = match parsed.scheme() {
            "file" => {
                let dir = std::path::Path::new(parsed.path());
                std::fs::create_dir_all(dir).map_err(|e| Error::Storage {
                    url: url.clone(),
                    message: format!("cannot create directory {}: {e}", dir.display()),
                })?;
                Arc::new(mapped::Mapped::new())
            }
            "s3" | "s3a" => {
                let mut b = object_store::aws::AmazonS3Builder::from_env()
                    .with_url(url.as_str())
                    .with_conditional_put(object_store::aws::S3ConditionalPut::ETagMatch);
                if let Some(ep) = &storage.endpoint {
                    b = b.with_endpoint(ep);
                }
                if let Some(r) = &storage.region {
                    b = b.with_region(r);
                }
                if let Some(h) = storage.allow_http {
                    b = b.with_allow_http(h);
                }
                let s3_store = Arc::new(b.clone().build().map_err(fail)?);
                let bucket = parsed.host_str().unwrap_or_default();
                s3 = Some(Arc::new(uploads::S3Access::new(
                    Arc::clone(&s3_store),
                    &b,
                    bucket,
                )));
                s3_store
            }
            "gs" => {
                let b =
                    object_store::gcp::GoogleCloudStorageBuilder::from_env().with_url(url.as_str());
                Arc::new(b.build().map_err(fail)?)
            }
            "az" | "abfs" | "abfss" => {
                let mut b =
                    object_store::azure::MicrosoftAzureBuilder::from_env().with_url(url.as_str());
                if let Some(h) = storage.allow_http {
                    b = b.with_allow_http(h);
                }
                Arc::new(b.build().map_err(fail)?)
            }
            other => {
                return Err(Error::Storage {
                    url,
                    message: format!("unsupported scheme {other:?}; expected s3, gs, az or file"),
                });
            }
        };
        // Bucket-style URLs carry the bucket in the host, so the path is the prefix; for
        // file:// the whole path is the prefix inside the root file system.
        Store::new(url, inner, Path::from(prefix), s3)
    }

    /// A store over `raw`, with reads checked ([`verified`]) and DataFusion's runtime reading
    /// through it.
    fn new(
        url: String,
        raw: Arc<dyn ObjectStore>,
        root: Path,
        s3: Option<Arc<uploads::S3Access>>,
    ) -> Result<Store> {
        let inner: Arc<dyn ObjectStore> = Arc::new(verified::Verified::new(Arc::clone(&raw)));
        let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
            .build_arc()
            .map_err(|e| Error::internal(format!("starting DataFusion's runtime: {e}")))?;
        let registry_url =
            url::Url::parse(STORE_URL).map_err(|e| Error::internal(e.to_string()))?;
        runtime.register_object_store(&registry_url, Arc::clone(&inner));
        Ok(Store {
            url,
            inner,
            raw,
            root,
            runtime,
            s3,
            every_task_here: false,
        })
    }

    /// The same store, with DataFusion's operators held to `budget`: they share its spilling
    /// pool and spill to its directory.
    pub fn with_budget(&self, budget: &crate::memory::Budget) -> Result<Store> {
        let runtime = budget.runtime()?;
        let registry_url =
            url::Url::parse(STORE_URL).map_err(|e| Error::internal(e.to_string()))?;
        runtime.register_object_store(&registry_url, Arc::clone(&self.inner));
        Ok(Store {
            runtime,
            ..self.clone()
        })
    }

    /// The same store seen through a wrapper (fault injection in tests, limits): every read
    /// and write, DataFusion's included, goes through `wrap(store)`, beneath the checks of
    /// [`verified`].
    pub fn wrapped(
        &self,
        wrap: impl FnOnce(Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore>,
    ) -> Result<Store> {
        Store::new(
            self.url.clone(),
            wrap(Arc::clone(&self.raw)),
            self.root.clone(),
            self.s3.clone(),
        )
    }

    /// The same store, in a process that runs every task of its job (`kask run`): what tasks
    /// in one process compute once (a join's build side and its hash table) is then computed
    /// once for the whole job, which the planner weighs against shuffling.
    pub fn running_every_task(self) -> Store {
        Store {
            every_task_here: true,
            ..self
        }
    }

    /// Whether this process runs every task of its job ([`Store::running_every_task`]).
    pub fn runs_every_task(&self) -> bool {
        self.every_task_here
    }

    /// Whether this is a local directory (`file://`), where some guarantees come from the
    /// file system rather than the store's API.
    pub fn is_local(&self) -> bool {
        self.url.starts_with("file://")
    }

    /// The local file system path of a relative path (a `file://` store only).
    pub fn local_path(&self, rel: &str) -> Option<std::path::PathBuf> {
        self.is_local()
            .then(|| std::path::PathBuf::from(format!("/{}", self.path(rel).as_ref())))
    }

    /// A local directory as a store.
    pub fn local_dir(dir: &std::path::Path) -> Result<Store> {
        Store::from_storage(&local_storage(dir)?)
    }

    /// The full store path of a path relative to the root. The path is the object's key as
    /// written (as a listing gives it back): `%` and the other characters that `Path::from`
    /// would escape are kept, so that a key such as Spark's `city=S%C3%A3o%20Paulo/` is found,
    /// and a key written here is listed back unchanged.
    pub fn path(&self, rel: &str) -> Path {
        let rel = rel.trim_matches('/');
        let full = if self.root.as_ref().is_empty() {
            rel.to_string()
        } else if rel.is_empty() {
            return self.root.clone();
        } else {
            format!("{}/{rel}", self.root.as_ref())
        };
        // A key that is not a valid path (`a//b`, `..`) is escaped as before.
        Path::parse(&full).unwrap_or_else(|_| Path::from(full))
    }

    /// The path relative to the root, for messages and plans.
    pub fn rel(&self, full: &Path) -> String {
        let root = self.root.as_ref();
        let s = full.as_ref();
        if root.is_empty() {
            s.to_string()
        } else {
            s.strip_prefix(root)
                .map(|r| r.trim_start_matches('/').to_string())
                .unwrap_or_else(|| s.to_string())
        }
    }

    /// On a `file://` store, removes the empty directories under `rel` that deleting files
    /// leaves behind (object stores have no directories; a local one keeps them, and an
    /// empty directory blocks a file of the same name).
    pub fn prune_empty_dirs(&self, rel: &str) {
        let Some(root) = self.url.strip_prefix("file://") else {
            return;
        };
        fn prune(dir: &std::path::Path) -> bool {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return false;
            };
            let mut empty = true;
            for e in entries.flatten() {
                let p = e.path();
                if !(p.is_dir() && prune(&p) && std::fs::remove_dir(&p).is_ok()) {
                    empty = false;
                }
            }
            empty
        }
        let _ = prune(&std::path::Path::new(root).join(rel.trim_matches('/')));
    }

    /// A storage error of this store, from a failure's text.
    pub fn err_text(&self, what: impl std::fmt::Display, why: impl std::fmt::Display) -> Error {
        Error::Storage {
            url: self.url.clone(),
            message: format!("{what}: {why}"),
        }
    }

    /// Wraps an object_store error with this store's URL.
    pub fn err(&self, what: impl std::fmt::Display, e: object_store::Error) -> Error {
        Error::Storage {
            url: self.url.clone(),
            message: format!("{what}: {e}"),
        }
    }

    /// Reads a whole object, or `None` when it does not exist.
    pub async fn get_opt(&self, rel: &str) -> Result<Option<Bytes>> {
        match self.inner.get(&self.path(rel)).await {
            Ok(r) => Ok(Some(
                r.bytes()
                    .await
                    .map_err(|e| self.err(format!("reading {rel}"), e))?,
            )),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(format!("reading {rel}"), e)),
        }
    }

    /// Reads a whole object that must exist.
    pub async fn get(&self, rel: &str) -> Result<Bytes> {
        self.get_opt(rel).await?.ok_or_else(|| Error::Storage {
            url: self.url.clone(),
            message: format!("{rel} does not exist"),
        })
    }

    /// Reads a byte range of an object.
    pub async fn get_range(&self, rel: &str, range: std::ops::Range<u64>) -> Result<Bytes> {
        self.inner
            .get_range(&self.path(rel), range)
            .await
            .map_err(|e| self.err(format!("reading {rel}"), e))
    }

    /// Reads several byte ranges of an object in one call.
    pub async fn get_ranges(
        &self,
        rel: &str,
        ranges: &[std::ops::Range<u64>],
    ) -> Result<Vec<Bytes>> {
        self.inner
            .get_ranges(&self.path(rel), ranges)
            .await
            .map_err(|e| self.err(format!("reading {rel}"), e))
    }

    /// Reads a byte range of an object, or `None` when the object does not exist.
    pub async fn get_range_opt(
        &self,
        rel: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Option<Bytes>> {
        match self.inner.get_range(&self.path(rel), range).await {
            Ok(b) => Ok(Some(b)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(format!("reading {rel}"), e)),
        }
    }

    /// Size of an object, or `None` when it does not exist.
    pub async fn size_opt(&self, rel: &str) -> Result<Option<u64>> {
        match self.inner.head(&self.path(rel)).await {
            Ok(m) => Ok(Some(m.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(format!("reading {rel}"), e)),
        }
    }

    /// Writes an object, replacing any previous one.
    pub async fn put(&self, rel: &str, data: Bytes) -> Result<()> {
        self.inner
            .put(&self.path(rel), PutPayload::from(data))
            .await
            .map_err(|e| self.err(format!("writing {rel}"), e))?;
        Ok(())
    }

    /// Creates an object only if none exists: `Ok(true)` when this call created it,
    /// `Ok(false)` when another writer got there first.
    pub async fn put_create(&self, rel: &str, data: Bytes) -> Result<bool> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .inner
            .put_opts(&self.path(rel), PutPayload::from(data), opts)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(self.err(format!("creating {rel}"), e)),
        }
    }

    /// Deletes an object; a missing object is not an error. On a local directory, a folder of
    /// that name is not an object either (a 2-d array's `c/0/` where a 1-d one had `c/0`).
    pub async fn delete(&self, rel: &str) -> Result<()> {
        match self.inner.delete(&self.path(rel)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(_) if self.local_path(rel).is_some_and(|p| p.is_dir()) => Ok(()),
            Err(e) => Err(self.err(format!("deleting {rel}"), e)),
        }
    }

    /// Copies an object within the store.
    pub async fn copy(&self, from: &str, to: &str) -> Result<()> {
        self.inner
            .copy(&self.path(from), &self.path(to))
            .await
            .map_err(|e| self.err(format!("copying {from} to {to}"), e))
    }

    /// Lists every object under a relative prefix, recursively, as (relative path, size).
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        Ok(self
            .list_versions(prefix)
            .await?
            .into_iter()
            .map(|(p, s, _)| (p, s))
            .collect())
    }

    /// Like [`Store::list`], with each object's version (ETag, else modification time).
    pub async fn list_versions(&self, prefix: &str) -> Result<Vec<(String, u64, String)>> {
        let full = self.path(prefix);
        let metas: Vec<_> = self
            .inner
            .list(Some(&full))
            .try_collect()
            .await
            .map_err(|e| self.err(format!("listing {prefix}"), e))?;
        let mut out: Vec<(String, u64, String)> = metas
            .into_iter()
            .map(|m| {
                let version = m
                    .e_tag
                    .clone()
                    .unwrap_or_else(|| m.last_modified.to_rfc3339());
                (self.rel(&m.location), m.size, version)
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// Every object under a relative prefix with when it was last written, oldest first.
    pub async fn list_by_age(&self, prefix: &str) -> Result<Vec<(String, std::time::SystemTime)>> {
        let full = self.path(prefix);
        let metas: Vec<_> = self
            .inner
            .list(Some(&full))
            .try_collect()
            .await
            .map_err(|e| self.err(format!("listing {prefix}"), e))?;
        let mut out: Vec<(String, std::time::SystemTime)> = metas
            .into_iter()
            .map(|m| {
                (
                    self.rel(&m.location),
                    std::time::SystemTime::from(m.last_modified),
                )
            })
            .collect();
        out.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        Ok(out)
    }

    /// The names of the "folders" directly under a relative prefix.
    pub async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>> {
        let full = self.path(prefix);
        let listed = match self.inner.list_with_delimiter(Some(&full)).await {
            Ok(l) => l,
            Err(object_store::Error::NotFound { .. }) => return Ok(vec![]),
            Err(e) => return Err(self.err(format!("listing {prefix}"), e)),
        };
        let mut dirs: Vec<String> = listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        dirs.sort();
        Ok(dirs)
    }

    /// One level under a relative prefix: the names of the "folders" and of the objects
    /// directly in it, each sorted.
    pub async fn list_level(&self, prefix: &str) -> Result<(Vec<String>, Vec<String>)> {
        let full = self.path(prefix);
        let listed = match self.inner.list_with_delimiter(Some(&full)).await {
            Ok(l) => l,
            Err(object_store::Error::NotFound { .. }) => return Ok((vec![], vec![])),
            Err(e) => return Err(self.err(format!("listing {prefix}"), e)),
        };
        let names = |paths: Vec<&Path>| {
            let mut names: Vec<String> = paths
                .into_iter()
                .filter_map(|p| p.filename().map(str::to_string))
                .collect();
            names.sort();
            names
        };
        Ok((
            names(listed.common_prefixes.iter().collect()),
            names(listed.objects.iter().map(|o| &o.location).collect()),
        ))
    }

    /// Deletes every object under a relative prefix.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<()> {
        for (rel, _) in self.list(prefix).await? {
            self.delete(&rel).await?;
        }
        if let Some(dir) = self.local_path(prefix) {
            // LocalFileSystem leaves empty directories behind; they are only clutter.
            let _ = std::fs::remove_dir_all(dir);
        }
        Ok(())
    }
}
