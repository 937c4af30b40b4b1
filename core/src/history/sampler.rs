//! This process's memory in use and CPU time, read five times a second by a thread of its own,
//! so that a history can show memory over time, each task attempt the peak it ran under, and
//! a pod its peak ([`peak`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use kask_api::history::Sample;

use crate::usage::Usage;

/// How often the memory is read.
const EVERY: Duration = Duration::from_millis(200);

/// Most samples kept: beyond it every other one is dropped, so a long run keeps its whole
/// span at a coarser step (8,192 samples are 27 minutes at 200 ms, then 54 at 400 ms, ...).
pub const KEEP: usize = 8192;

/// The process's samples.
pub struct Sampler {
    samples: Mutex<Vec<Sample>>,
    started_ms: u64,
    /// The highest memory of every sample, thinned or not.
    highest: AtomicU64,
}

static SAMPLER: OnceLock<Sampler> = OnceLock::new();

/// The highest memory in use seen since the sampler started, now included; `None` when it
/// never started.
pub fn peak() -> Option<u64> {
    SAMPLER
        .get()
        .map(|s| s.highest.load(Ordering::Relaxed).max(read().rss))
}

/// The process's sampler, started on first use.
pub fn sampler() -> &'static Sampler {
    SAMPLER.get_or_init(|| {
        let spawned = std::thread::Builder::new()
            .name("kask-sampler".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(EVERY);
                    if let Some(s) = SAMPLER.get() {
                        s.record();
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the memory sampler: the history shows no memory over time");
        }
        let first = read();
        Sampler {
            samples: Mutex::new(vec![first]),
            started_ms: first.ms,
            highest: AtomicU64::new(first.rss),
        }
    })
}

fn read() -> Sample {
    let u = Usage::now();
    Sample {
        ms: super::now_ms(),
        rss: u.memory_bytes,
        cpu_seconds: u.cpu_seconds,
    }
}

/// Appends `s`, thinning the samples to every other one when `KEEP` are held.
pub fn push(samples: &mut Vec<Sample>, s: Sample) {
    if samples.len() >= KEEP {
        let mut i = 0;
        samples.retain(|_| {
            i += 1;
            i % 2 == 1
        });
    }
    samples.push(s);
}

impl Sampler {
    fn record(&self) {
        let s = read();
        self.highest.fetch_max(s.rss, Ordering::Relaxed);
        if let Ok(mut samples) = self.samples.lock() {
            push(&mut samples, s);
        }
    }

    /// When the process started sampling.
    pub fn started_ms(&self) -> u64 {
        self.started_ms
    }

    /// The highest memory in use seen from `from_ms` on, with a reading no older than the
    /// sampler's period: a task that ends within it of the last sample counts that sample
    /// instead of reading again. Under a memory limit a reading walks the process's page
    /// tables (`smaps_rollup`): one per task was 6% of the CPU samples of db-benchmark
    /// groupby q1 at 1e8 rows (28 tasks in 0.7 s).
    pub fn peak_since(&self, from_ms: u64) -> u64 {
        let last_ms = self
            .samples
            .lock()
            .ok()
            .and_then(|s| s.last().map(|s| s.ms));
        if last_ms.is_none_or(|ms| super::now_ms().saturating_sub(ms) >= EVERY.as_millis() as u64) {
            self.record();
        }
        let Ok(samples) = self.samples.lock() else {
            return read().rss;
        };
        let latest = samples.last().map_or(0, |s| s.rss);
        samples
            .iter()
            .rev()
            .take_while(|s| s.ms >= from_ms)
            .map(|s| s.rss)
            .fold(latest, u64::max)
    }

    /// The samples from `from_ms` on, with one taken now.
    pub fn since(&self, from_ms: u64) -> Vec<Sample> {
        self.record();
        match self.samples.lock() {
            Ok(samples) => samples
                .iter()
                .filter(|s| s.ms >= from_ms)
                .copied()
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}
