//! Small shuffle partitions taken together, as Spark's adaptive execution coalesces them: the
//! pure decision of which adjacent partitions each task of a reduce stage reads, once the map
//! tasks have written their shuffles and their markers say how large each partition came out.
//! Relational stages (`kask_relational::coalesce`) and bag reduce stages share it; the first
//! task to decide stores the decision ([`crate::decision::agree`]) and the others read it.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::marker::TaskMarker;

/// Partitions are taken together up to this many bytes a task at least, however many
/// workers there are: below it, a task of its own costs more than it saves.
pub const MIN_RUN_BYTES: u64 = 16 << 20;

/// A task takes at most a quarter of its memory pool in shuffled bytes, as the planner
/// sizes reduce partitions (`kask_core::plan::tasks::reduce_partitions`).
const POOL_PARTS_PER_TASK: u64 = 4;

/// Which partitions each task of a stage reads; the same for every task (the first task to
/// decide stores it, the others read it).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Runs {
    /// Per task, its partitions `from..to` (`from == to`: none).
    pub tasks: Vec<(usize, usize)>,
}

impl Runs {
    /// Each task reads its own partition.
    pub fn own(partitions: usize) -> Runs {
        Runs {
            tasks: (0..partitions).map(|p| (p, p + 1)).collect(),
        }
    }

    /// The partitions task `task` reads.
    pub fn of(&self, task: usize) -> Range<usize> {
        self.tasks.get(task).map_or(0..0, |&(from, to)| from..to)
    }

    /// How many tasks read any partition.
    pub fn busy(&self) -> usize {
        self.tasks.iter().filter(|(from, to)| from < to).count()
    }
}

/// The runs of adjacent partitions, of `bytes` each (summed over every shuffle the stage
/// reads), that the stage's tasks read: about an equal share of the bytes for each of
/// `workers`, but at least [`MIN_RUN_BYTES`] and at most a task's share of a memory pool of
/// `pool` bytes (a partition larger than that alone is a run of its own). The runs go to tasks
/// spread evenly over the stage's task indexes, the first to task 0; the others read nothing.
/// A pod on a cluster runs a contiguous group of a stage's tasks (`kask_api::groups`): runs
/// given to the first tasks would crowd into the first pods and leave the others idle.
pub fn decide(bytes: &[u64], workers: usize, pool: Option<u64>) -> Runs {
    let n = bytes.len();
    let total: u64 = bytes.iter().sum();
    let budget = pool.map_or(u64::MAX, |p| (p / POOL_PARTS_PER_TASK).max(1));
    let target = total
        .div_ceil(workers.max(1) as u64)
        .max(MIN_RUN_BYTES)
        .min(budget);
    let mut runs = Vec::with_capacity(n);
    let (mut from, mut held) = (0, 0u64);
    for (p, &b) in bytes.iter().enumerate() {
        if p > from && held.saturating_add(b) > target {
            runs.push((from, p));
            (from, held) = (p, 0);
        }
        held = held.saturating_add(b);
    }
    if from < n {
        runs.push((from, n));
    }
    // At most one run per partition, so `j * n / runs` grows with `j`: each run its own task.
    let mut tasks = vec![(n, n); n];
    let k = runs.len();
    for (j, run) in runs.into_iter().enumerate() {
        tasks[j * n / k] = run;
    }
    Runs { tasks }
}

/// The bytes of each of `partitions` partitions over the map tasks `maps` (decoded, where the
/// marker says; a compressed slice is larger in memory).
pub fn partition_bytes(maps: &[TaskMarker], partitions: usize) -> Vec<u64> {
    let mut bytes = vec![0u64; partitions];
    for m in maps {
        for f in &m.files {
            for (p, range) in f.partitions.iter().enumerate().take(partitions) {
                bytes[p] += range.decoded.max(range.len);
            }
        }
    }
    bytes
}
