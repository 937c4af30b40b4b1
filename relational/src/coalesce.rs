//! Small shuffle partitions taken together, as Spark's adaptive execution coalesces them.
//!
//! The planner chooses a job's reduce partitions before any data moves, from the input's
//! bytes; after a partial aggregation or a selective filter the shuffled rows are often far
//! fewer (db-benchmark's groupby q1 reduces 1e8 rows to 1,800, which ten reducers then wrote
//! as ten files of ten rows). Once the map tasks have written their shuffles, the first task
//! of a reduce stage decides from their markers which adjacent partitions each task reads
//! ([`decide`], shared with bag jobs' reduce stages), stores the decision for the others, and
//! a task given none has nothing to do. Whole hash partitions only: a union of them keeps
//! every key's rows in one task. The planner marks the readers ([`coalesce_readers`]) unless
//! the spec names `shufflePartitions`.

use std::sync::Arc;

use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};

use crate::cut::renew;
use crate::exchange::{ReadMode, ShuffleReaderExec};
use kask_core::error::Result;
pub use kask_core::shuffle::runs::{Runs, decide};

/// A stage's sub-plan `root` with its readers marked to take small partitions together, when
/// every row it reads comes through readers of whole hash partitions (after a hash exchange,
/// none of them sharing out a skewed join's partitions) and every operator's partition `t` is
/// their partition `t`. The build side of a join that collects it is read whole by every
/// task, whatever its partition, and is left as it is.
pub fn coalesce_readers(root: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    let partitions = root.output_partitioning().partition_count();
    let mut stages = Vec::new();
    if partitions < 2 || !whole_partitions(&root, partitions, &mut stages) {
        return Ok(root);
    }
    stages.sort_unstable();
    stages.dedup();
    mark(root, &stages)
}

/// Whether every leaf `plan` takes partition-dependent rows from is a reader of whole hash
/// partitions, through operators of `partitions` partitions; adds the stages they read.
fn whole_partitions(
    plan: &Arc<dyn ExecutionPlan>,
    partitions: usize,
    stages: &mut Vec<usize>,
) -> bool {
    if plan.output_partitioning().partition_count() != partitions || plan.is::<UnionExec>() {
        return false;
    }
    if let Some(r) = plan.downcast_ref::<ShuffleReaderExec>() {
        stages.push(r.stage());
        return r.mode() == ReadMode::Partition && r.shared().is_none();
    }
    if let Some(j) = plan.downcast_ref::<HashJoinExec>()
        && *j.partition_mode() == PartitionMode::CollectLeft
    {
        return whole_partitions(j.right(), partitions, stages);
    }
    let children = plan.children();
    !children.is_empty()
        && children
            .into_iter()
            .all(|c| whole_partitions(c, partitions, stages))
}

fn mark(plan: Arc<dyn ExecutionPlan>, stages: &[usize]) -> Result<Arc<dyn ExecutionPlan>> {
    if let Some(r) = plan.downcast_ref::<ShuffleReaderExec>() {
        return Ok(Arc::new(r.coalescing(stages)));
    }
    let mut children: Vec<Arc<dyn ExecutionPlan>> = plan.children().into_iter().cloned().collect();
    let collected = plan
        .downcast_ref::<HashJoinExec>()
        .is_some_and(|j| *j.partition_mode() == PartitionMode::CollectLeft);
    for (i, c) in children.iter_mut().enumerate() {
        if !(collected && i == 0) {
            *c = mark(Arc::clone(c), stages)?;
        }
    }
    renew(plan, children)
}
