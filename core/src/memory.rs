//! A worker's memory budget: the container's limit (cgroup v2 `memory.max`, v1
//! `memory.limit_in_bytes`), `kask run --memory`, or the machine's memory, less a reserve for
//! what DataFusion does not account for (batches in flight, decoders, the object store's
//! buffers, growing hash tables). DataFusion's operators share the rest through a spilling pool: a sort or an
//! aggregation that needs more spills to the spill directory instead of growing until the
//! kernel kills the pod.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};

use crate::error::{Error, Result};

/// The pool: half the limit less 64 MiB, and at least half of a limit of 64 MiB or less (32
/// MiB of larger ones). What operators reserve is not all they hold: a hash table that grows
/// allocates its new table before the old one is freed and before the reservation follows,
/// an aggregation's emitted groups and a shuffle writer's slices are copies of what is still
/// reserved, and outside the pool each task holds the column chunks of the Parquet row group
/// it decodes (tens of MiB for a row group of a million rows) besides the runtime's own
/// memory. Measured with 40-million-row tables (2 tasks at once, `bench/memory-bed`) under a
/// 256 MiB cgroup: with a pool of 144 MiB or more a groupby, a merge and a bag word count were
/// killed within seconds; with 96 MiB the merge still was; with 64 MiB all of them and a sort
/// finished.
pub fn pool_bytes(limit: u64) -> u64 {
    const RESERVE: u64 = 64 << 20;
    const SMALL: u64 = 32 << 20;
    (limit / 2)
        .saturating_sub(RESERVE)
        .max((limit / 2).min(SMALL))
}

/// The least of a memory limit each task that runs at once needs: its share of the pool,
/// and outside it the Parquet row group it decodes, its batches in flight and its part of the
/// runtime. Two tasks at once in 256 MiB were killed now and then over 40-million-row
/// tables (a sort, a bag word count); one at a time never was.
pub const TASK_MEMORY: u64 = 192 << 20;

/// How many of `wanted` tasks run at once within a limit of `limit` bytes: at least one, and
/// one per [`TASK_MEMORY`] of the limit.
pub fn tasks_at_once(limit: u64, wanted: usize) -> usize {
    let fit = usize::try_from(limit / TASK_MEMORY).unwrap_or(usize::MAX);
    wanted.min(fit).max(1)
}

/// Where a worker's memory limit comes from, for its log.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// `kask run --memory` or `KASK_MEMORY`.
    Given,
    /// The container's cgroup.
    Cgroup,
    /// The machine's total memory (no limit was set).
    Machine,
}

/// What the binary does when its memory is limited: its allocator's memory policy is the
/// binary's to choose ([`when_limited`]).
static WHEN_LIMITED: OnceLock<fn()> = OnceLock::new();

/// Has `hook` run once a budget is detected under a real limit (`--memory`, `KASK_MEMORY` or a
/// cgroup): freed memory that an allocator keeps for reuse still counts against a cgroup's
/// limit, so a limited process should hand it back promptly.
pub fn when_limited(hook: fn()) {
    let _ = WHEN_LIMITED.set(hook);
}

/// Whether [`when_limited`]'s hook has run: the allocator may since be freeing memory lazily
/// (`MADV_FREE`), which the resident set still counts until the kernel takes it back.
static LIMITED: AtomicBool = AtomicBool::new(false);

/// Whether this process's memory is limited and its allocator told so (see [`LIMITED`]).
pub fn limited() -> bool {
    LIMITED.load(Ordering::Relaxed)
}

/// A worker's memory limit and the pool that DataFusion's operators share.
#[derive(Clone, Debug, PartialEq)]
pub struct Budget {
    /// The whole limit.
    pub limit: u64,
    /// What the spilling pool may hand out.
    pub pool: u64,
    /// Where the limit came from.
    pub source: Source,
    /// Where operators spill.
    pub spill_dir: PathBuf,
    /// The most the spill directory may hold (`KASK_SPILL_LIMIT`: on a cluster, the size
    /// limit of the pod's `/tmp` volume), so that a task past it fails saying so instead of
    /// having its pod evicted.
    pub spill_limit: Option<u64>,
}

impl Budget {
    /// The budget for a limit of `limit` bytes.
    pub fn new(limit: u64, source: Source, spill_dir: PathBuf) -> Budget {
        Budget {
            limit,
            pool: pool_bytes(limit),
            source,
            spill_dir,
            spill_limit: None,
        }
    }

    /// This process's budget: `given` (`--memory`), else `KASK_MEMORY`, else the cgroup's
    /// limit, else the machine's memory; spilling to `KASK_SPILL_DIR` or the temporary
    /// directory.
    pub fn detect(given: Option<u64>) -> Result<Budget> {
        let spill_dir = std::env::var_os("KASK_SPILL_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("kask-spill"));
        let from_env = match std::env::var("KASK_MEMORY") {
            Ok(v) => Some(parse_size(&v).map_err(|why| {
                Error::Environment(format!("KASK_MEMORY={v:?} is not a size: {why}"))
            })?),
            Err(_) => None,
        };
        let (limit, source) = match (
            given.or(from_env),
            cgroup_limit(Path::new("/sys/fs/cgroup")),
        ) {
            (Some(l), _) => (l, Source::Given),
            (None, Some(l)) => (l, Source::Cgroup),
            (None, None) => (machine_memory().unwrap_or(4 << 30), Source::Machine),
        };
        if source != Source::Machine
            && let Some(hook) = WHEN_LIMITED.get()
        {
            hook();
            LIMITED.store(true, Ordering::Relaxed);
        }
        let spill_limit = match std::env::var("KASK_SPILL_LIMIT") {
            Ok(v) => Some(parse_size(&v).map_err(|why| {
                Error::Environment(format!("KASK_SPILL_LIMIT={v:?} is not a size: {why}"))
            })?),
            Err(_) => None,
        };
        Ok(Budget {
            spill_limit,
            ..Budget::new(limit, source, spill_dir)
        })
    }

    /// Says in the log what the worker's operators may use, and why.
    pub fn log(&self) {
        tracing::info!(
            limit = self.limit,
            pool = self.pool,
            source = ?self.source,
            spill_dir = %self.spill_dir.display(),
            spill_limit = ?self.spill_limit,
            "memory budget"
        );
    }

    /// A DataFusion runtime whose operators share this budget's pool and spill to its
    /// directory.
    pub fn runtime(&self) -> Result<Arc<RuntimeEnv>> {
        std::fs::create_dir_all(&self.spill_dir).map_err(|e| {
            Error::Environment(format!(
                "cannot create the spill directory {}: {e}",
                self.spill_dir.display()
            ))
        })?;
        let pool = usize::try_from(self.pool).unwrap_or(usize::MAX);
        let mut disk = DiskManagerBuilder::default()
            .with_mode(DiskManagerMode::Directories(vec![self.spill_dir.clone()]));
        if let Some(limit) = self.spill_limit {
            disk = disk.with_max_temp_directory_size(spill_bytes(limit));
        }
        RuntimeEnvBuilder::new()
            // The error of a task out of budget names the largest consumers.
            .with_memory_pool(Arc::new(TrackConsumersPool::new(
                FairSpillPool::new(pool),
                NonZeroUsize::new(5).unwrap_or(NonZeroUsize::MIN),
            )))
            .with_disk_manager_builder(disk)
            .build_arc()
            .map_err(|e| Error::internal(format!("starting DataFusion's runtime: {e}")))
    }
}

/// The memory pool of `runtime`, when it has a limit: what the planners size reduce
/// partitions by.
pub fn pool_limit(runtime: &RuntimeEnv) -> Option<u64> {
    match runtime.memory_pool.memory_limit() {
        datafusion::execution::memory_pool::MemoryLimit::Finite(n) => u64::try_from(n).ok(),
        _ => None,
    }
}

/// What operators may spill within a spill volume of `limit` bytes: a tenth (at most 1 GiB) is
/// left for the shuffle writer's own spill file and the rest of `/tmp`.
pub fn spill_bytes(limit: u64) -> u64 {
    limit - (limit / 10).min(1 << 30)
}

/// The memory limit of the cgroup mounted at `root`, if it has one: v2's `memory.max`, else
/// v1's `memory/memory.limit_in_bytes` (whose "no limit" is a huge number, not `max`).
pub fn cgroup_limit(root: &Path) -> Option<u64> {
    if let Ok(v2) = std::fs::read_to_string(root.join("memory.max")) {
        return parse_cgroup_value(&v2);
    }
    let v1 = std::fs::read_to_string(root.join("memory/memory.limit_in_bytes")).ok()?;
    parse_cgroup_value(&v1)
}

/// A cgroup memory file's value: `max`, or a v1 "unlimited" near `i64::MAX`, means none.
pub fn parse_cgroup_value(text: &str) -> Option<u64> {
    let t = text.trim();
    if t == "max" {
        return None;
    }
    let n: u64 = t.parse().ok()?;
    (n > 0 && n < (1 << 60)).then_some(n)
}

fn machine_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_meminfo_total(&info)
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
pub fn parse_meminfo_total(info: &str) -> Option<u64> {
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// A size such as `512MiB`, `2G`, `1.5GiB` or `1048576` (bytes). Decimal units (`k`, `M`,
/// `G`, `T`, with or without `B`) are powers of 1000, binary ones (`Ki`, `Mi`, ...) of 1024,
/// as Kubernetes quantities are.
pub fn parse_size(text: &str) -> std::result::Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} does not start with a number"))?;
    let unit = unit.trim().trim_end_matches(['B', 'b']);
    let scale: f64 = match unit {
        "" => 1.0,
        "k" | "K" => 1e3,
        "M" | "m" => 1e6,
        "G" | "g" => 1e9,
        "T" | "t" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?}; use bytes, k, M, G, T, Ki, Mi, Gi or Ti"
            ));
        }
    };
    let bytes = value * scale;
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err(format!("{text:?} is not a size between 1 byte and 16 EiB"));
    }
    Ok(bytes as u64)
}
