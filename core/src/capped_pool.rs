//! A memory pool that lets no consumer take more than a share of the pool it wraps.
//!
//! DataFusion's fair pool divides among the spillable consumers registered *now*: in a plan
//! whose operators run one after another (the two sorts under a sort-merge join), the first
//! takes the whole pool while it is alone, and its merge of spilled runs then reserves what is
//! left to merge as many runs at once as it can, leaving the next sort nothing. Capped at a
//! share, the first spills sooner and merges fewer runs at a time (a merge, a sort-merge
//! join's buffered rows and an aggregation all take a refusal as a cue to spill or to merge in
//! more passes).

use std::sync::Arc;

use datafusion::error::{DataFusionError, Result};
use datafusion::execution::memory_pool::{
    MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation,
};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};

/// A pool in which a reservation grows to at most `cap` bytes.
#[derive(Debug)]
pub struct CappedPool {
    inner: Arc<dyn MemoryPool>,
    cap: usize,
}

impl CappedPool {
    /// `inner`, each consumer held to a `1/shares` part of its limit.
    pub fn new(inner: Arc<dyn MemoryPool>, shares: usize) -> CappedPool {
        let cap = match inner.memory_limit() {
            MemoryLimit::Finite(n) => n / shares.max(1),
            _ => usize::MAX,
        };
        CappedPool { inner, cap }
    }
}

impl std::fmt::Display for CappedPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "capped({}, {} bytes per operator)", self.inner, self.cap)
    }
}

impl MemoryPool for CappedPool {
    fn name(&self) -> &str {
        "capped"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.inner.register(consumer)
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.inner.unregister(consumer)
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.inner.grow(reservation, additional)
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.inner.shrink(reservation, shrink)
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        if reservation.size().saturating_add(additional) > self.cap {
            return Err(DataFusionError::ResourcesExhausted(format!(
                "{} may hold at most {} bytes, its share of the task's pool",
                reservation.consumer().name(),
                self.cap
            )));
        }
        self.inner.try_grow(reservation, additional)
    }

    fn reserved(&self) -> usize {
        self.inner.reserved()
    }

    fn memory_limit(&self) -> MemoryLimit {
        self.inner.memory_limit()
    }
}

/// `runtime` with each reservation held to a `1/shares` part of its pool, the same disk
/// manager and object stores.
pub fn runtime(runtime: &Arc<RuntimeEnv>, shares: usize) -> Result<Arc<RuntimeEnv>> {
    let pool = CappedPool::new(Arc::clone(&runtime.memory_pool), shares);
    RuntimeEnvBuilder::from_runtime_env(runtime)
        .with_memory_pool(Arc::new(pool))
        .build_arc()
}
