use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryPool};
use kask_core::capped_pool::*;
use std::sync::Arc;

#[test]
fn every_consumer_stops_at_its_share() {
    let pool: Arc<dyn MemoryPool> = Arc::new(CappedPool::new(Arc::new(FairSpillPool::new(100)), 2));
    let sort = MemoryConsumer::new("sort")
        .with_can_spill(true)
        .register(&pool);
    sort.try_grow(50).expect("half the pool");
    assert!(sort.try_grow(1).is_err(), "past its share");
    let merge = MemoryConsumer::new("merge").register(&pool);
    merge
        .try_grow(40)
        .expect("an unspillable consumer is not capped");
    assert_eq!(pool.reserved(), 90);
}
