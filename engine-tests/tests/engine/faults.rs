//! A fault-injecting object store: a wrapper, seeded and reproducible, around a real store
//! (a local directory or MinIO) that injects what object stores do to jobs.
//!
//! - `503`: a request fails with "503 Slow Down" before reaching the store;
//! - `timeout`: a request hangs for a while, then fails;
//! - `slow`: a request is delayed;
//! - `short read`: a ranged read returns fewer bytes than asked for;
//! - `lost`: a file a task just committed disappears (deleted right after its marker);
//! - `bit flip`: one bit of a committed shuffle or partials file flips in storage;
//! - `multipart`: a part of a multipart upload fails, or its completion fails;
//! - `crash`: from the n-th write on, every request fails, as if the process died there.
//!
//! Every injected fault is counted by kind, for the chaos runs' tally.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult,
    RenameOptions, Result, UploadPart,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How often each fault happens (probabilities per eligible request or file).
#[derive(Clone, Debug, Default)]
pub struct FaultRates {
    pub unavailable: f64,
    pub timeout: f64,
    pub slow: f64,
    pub short_read: f64,
    pub lose: f64,
    pub flip: f64,
    pub multipart: f64,
}

impl FaultRates {
    /// A mix of every kind, at rates that let most runs finish.
    pub fn mixed(scale: f64) -> FaultRates {
        FaultRates {
            unavailable: 0.01 * scale,
            timeout: 0.002 * scale,
            slow: 0.02 * scale,
            short_read: 0.01 * scale,
            lose: 0.05 * scale,
            flip: 0.05 * scale,
            multipart: 0.2 * scale,
        }
    }
}

/// What was injected, by kind.
pub type Tally = BTreeMap<&'static str, u64>;

/// The shared state of a fault store: rates, the seeded generator, the tally.
#[derive(Debug)]
pub struct Faults {
    rates: FaultRates,
    rng: Mutex<StdRng>,
    tally: Mutex<Tally>,
    writes: AtomicUsize,
    crash_after: Option<usize>,
    crashed: AtomicBool,
    enabled: AtomicBool,
    /// Ranged reads of shuffle objects, faulty or not: what a reader costs in requests.
    shuffle_reads: AtomicUsize,
}

impl Faults {
    pub fn new(seed: u64, rates: FaultRates) -> Arc<Faults> {
        Arc::new(Faults {
            rates,
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            tally: Mutex::new(Tally::new()),
            writes: AtomicUsize::new(0),
            crash_after: None,
            crashed: AtomicBool::new(false),
            enabled: AtomicBool::new(true),
            shuffle_reads: AtomicUsize::new(0),
        })
    }

    /// No random faults; every request from the `n`-th write on fails (a crash there).
    pub fn crash_after(n: usize) -> Arc<Faults> {
        Arc::new(Faults {
            rates: FaultRates::default(),
            rng: Mutex::new(StdRng::seed_from_u64(0)),
            tally: Mutex::new(Tally::new()),
            writes: AtomicUsize::new(0),
            crash_after: Some(n),
            crashed: AtomicBool::new(false),
            enabled: AtomicBool::new(true),
            shuffle_reads: AtomicUsize::new(0),
        })
    }

    /// Stops injecting (the test's own reads and writes go through untouched).
    pub fn disable(&self) {
        self.enabled.store(false, Ordering::SeqCst);
    }

    /// How many ranged reads of shuffle objects went through.
    pub fn shuffle_reads(&self) -> usize {
        self.shuffle_reads.load(Ordering::SeqCst)
    }

    pub fn tally(&self) -> Tally {
        self.tally.lock().expect("tally").clone()
    }

    /// Whether the simulated crash happened.
    pub fn crashed(&self) -> bool {
        self.crashed.load(Ordering::SeqCst)
    }

    fn roll(&self, p: f64) -> bool {
        p > 0.0
            && self.enabled.load(Ordering::SeqCst)
            && self.rng.lock().expect("rng").random_bool(p.min(1.0))
    }

    fn pick(&self, n: usize) -> usize {
        self.rng.lock().expect("rng").random_range(0..n.max(1))
    }

    fn count(&self, kind: &'static str) {
        *self.tally.lock().expect("tally").entry(kind).or_default() += 1;
    }

    fn failure(kind: &'static str, what: &str) -> object_store::Error {
        object_store::Error::Generic {
            store: "faults",
            source: format!("{kind} (injected) on {what}").into(),
        }
    }

    /// Faults that can hit any request: a crash, 503, a timeout, slowness.
    async fn request(&self, what: &str, write: bool) -> Result<()> {
        // A job's history is for people, and its writes are best effort: sparing them keeps
        // the faults each seed injects into the job's own requests as they were, and lets a
        // test read the history whole.
        if what.contains("_kask/history/") {
            return Ok(());
        }
        if let Some(n) = self.crash_after {
            if write && self.writes.fetch_add(1, Ordering::SeqCst) >= n {
                self.crashed.store(true, Ordering::SeqCst);
            }
            if self.crashed.load(Ordering::SeqCst) {
                return Err(Self::failure("the process crashed", what));
            }
        }
        if self.roll(self.rates.unavailable) {
            self.count("503");
            return Err(Self::failure("HTTP 503 Slow Down", what));
        }
        if self.roll(self.rates.timeout) {
            self.count("timeout");
            tokio::time::sleep(Duration::from_millis(30)).await;
            return Err(Self::failure("operation timed out", what));
        }
        if self.roll(self.rates.slow) {
            self.count("slow");
            let ms = 1 + self.pick(20) as u64;
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        Ok(())
    }
}

/// The store wrapper.
#[derive(Debug)]
pub struct FaultStore {
    inner: Arc<dyn ObjectStore>,
    faults: Arc<Faults>,
    /// The job storage's root inside the store: marker files name paths relative to it.
    root: String,
}

impl FaultStore {
    pub fn new(inner: Arc<dyn ObjectStore>, faults: Arc<Faults>, root: &str) -> FaultStore {
        FaultStore {
            inner,
            faults,
            root: root.to_string(),
        }
    }

    /// `store` with its object store behind a FaultStore injecting `faults`.
    pub fn around(
        store: &kask_worker::store::Store,
        faults: &Arc<Faults>,
    ) -> kask_worker::store::Store {
        let root = store.root.as_ref().to_string();
        let faults = Arc::clone(faults);
        store
            .wrapped(|inner| Arc::new(FaultStore::new(inner, faults, &root)))
            .expect("a local or S3 store can be wrapped")
    }

    /// After a task's marker is created: perhaps lose one of its files, or flip a bit in one
    /// of its shuffle or partials files.
    async fn after_marker(&self, body: &[u8]) {
        let Ok(marker) = serde_json::from_slice::<serde_json::Value>(body) else {
            return;
        };
        let files: Vec<String> = marker["files"]
            .as_array()
            .map(|fs| {
                fs.iter()
                    .filter_map(|f| f["path"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if files.is_empty() {
            return;
        }
        if self.faults.roll(self.faults.rates.lose) {
            let f = &files[self.faults.pick(files.len())];
            if self.inner.delete(&self.full_path(f)).await.is_ok() {
                self.faults.count("lost");
            }
        }
        let flippable: Vec<&String> = files
            .iter()
            .filter(|f| f.ends_with("shuffle.arrow") || f.ends_with("partial.bin"))
            .collect();
        if !flippable.is_empty() && self.faults.roll(self.faults.rates.flip) {
            let f = flippable[self.faults.pick(flippable.len())];
            let p = self.full_path(f);
            if let Ok(r) = self.inner.get(&p).await
                && let Ok(bytes) = r.bytes().await
                && !bytes.is_empty()
            {
                let mut data = bytes.to_vec();
                let bit = self.faults.pick(data.len() * 8);
                data[bit / 8] ^= 1 << (bit % 8);
                if self.inner.put(&p, data.into()).await.is_ok() {
                    self.faults.count("bit flip");
                }
            }
        }
    }

    /// The full path of a path relative to the job's storage root.
    fn full_path(&self, rel: &str) -> Path {
        if self.root.is_empty() {
            Path::from(rel)
        } else {
            Path::from(format!("{}/{rel}", self.root))
        }
    }
}

impl std::fmt::Display for FaultStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FaultStore({})", self.inner)
    }
}

fn is_marker(location: &Path) -> bool {
    let s = location.as_ref();
    s.contains("/tasks/") && s.ends_with(".json")
}

#[async_trait::async_trait]
impl ObjectStore for FaultStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.faults.request(location.as_ref(), true).await?;
        let marker = is_marker(location) && matches!(opts.mode, PutMode::Create);
        let body: Option<Bytes> = marker.then(|| {
            let mut b = Vec::with_capacity(payload.content_length());
            for chunk in payload.iter() {
                b.extend_from_slice(chunk);
            }
            Bytes::from(b)
        });
        let r = self.inner.put_opts(location, payload, opts).await?;
        if let Some(body) = body {
            self.after_marker(&body).await;
        }
        Ok(r)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.faults.request(location.as_ref(), true).await?;
        let upload = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(FaultUpload {
            upload,
            faults: Arc::clone(&self.faults),
            location: location.to_string(),
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.faults.request(location.as_ref(), false).await?;
        let ranged = options.range.is_some();
        if ranged && location.as_ref().ends_with("/shuffle.arrow") {
            self.faults.shuffle_reads.fetch_add(1, Ordering::SeqCst);
        }
        let result = self.inner.get_opts(location, options).await?;
        if !(ranged && self.faults.roll(self.faults.rates.short_read)) {
            return Ok(result);
        }
        self.faults.count("short read");
        let meta = result.meta.clone();
        let range = result.range.clone();
        let attributes = result.attributes.clone();
        let bytes = result.bytes().await?;
        let keep = bytes.len() / 2;
        let cut = bytes.slice(0..keep);
        Ok(GetResult {
            payload: GetResultPayload::Stream(
                futures::stream::once(async move { Ok(cut) }).boxed(),
            ),
            meta,
            range,
            attributes,
        })
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.faults.request(location.as_ref(), false).await?;
        let mut got = self.inner.get_ranges(location, ranges).await?;
        if !got.is_empty() && self.faults.roll(self.faults.rates.short_read) {
            self.faults.count("short read");
            let i = self.faults.pick(got.len());
            let keep = got[i].len() / 2;
            got[i] = got[i].slice(0..keep);
        }
        Ok(got)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let faults = Arc::clone(&self.faults);
        let inner = Arc::clone(&self.inner);
        let checked = locations
            .then(move |l| {
                let faults = Arc::clone(&faults);
                async move {
                    let l = l?;
                    faults.request(l.as_ref(), true).await?;
                    Ok(l)
                }
            })
            .boxed();
        inner.delete_stream(checked)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let faults = Arc::clone(&self.faults);
        let inner = Arc::clone(&self.inner);
        let prefix = prefix.cloned();
        futures::stream::once(async move {
            match faults.request("LIST", false).await {
                Ok(()) => inner.list(prefix.as_ref()),
                Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
            }
        })
        .flatten()
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.faults.request("LIST", false).await?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.faults.request(to.as_ref(), true).await?;
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.faults.request(to.as_ref(), true).await?;
        self.inner.rename_opts(from, to, options).await
    }
}

#[derive(Debug)]
struct FaultUpload {
    upload: Box<dyn MultipartUpload>,
    faults: Arc<Faults>,
    location: String,
}

#[async_trait::async_trait]
impl MultipartUpload for FaultUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        if self.faults.roll(self.faults.rates.multipart) {
            self.faults.count("multipart part failed");
            let e = Faults::failure("a part upload failed", &self.location);
            return Box::pin(async move { Err(e) });
        }
        self.upload.put_part(data)
    }

    async fn complete(&mut self) -> Result<PutResult> {
        if self.faults.roll(self.faults.rates.multipart) {
            self.faults.count("multipart completion failed");
            return Err(Faults::failure(
                "completing the upload failed",
                &self.location,
            ));
        }
        self.upload.complete().await
    }

    async fn abort(&mut self) -> Result<()> {
        self.upload.abort().await
    }
}
