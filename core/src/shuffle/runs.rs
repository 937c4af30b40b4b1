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

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    /// Every partition read by exactly one task, in order, and how many tasks read any.
    fn check(runs: &Runs, partitions: usize) -> usize {
        assert_eq!(runs.tasks.len(), partitions);
        let read: Vec<usize> = (0..partitions).flat_map(|t| runs.of(t)).collect();
        assert_eq!(read, (0..partitions).collect::<Vec<_>>());
        runs.busy()
    }

    #[test]
    fn small_partitions_go_to_one_task() {
        // db-benchmark groupby q1: ten partitions of 180 partial groups.
        let runs = decide(&[4_000; 10], 2, Some(1 << 30));
        assert_eq!(check(&runs, 10), 1);
        assert_eq!(runs.of(0), 0..10);
        assert!(runs.of(1).is_empty() && runs.of(9).is_empty());
        // Nothing at all: still every partition read, by the first task.
        assert_eq!(check(&decide(&[0; 4], 2, None), 4), 1);
    }

    #[test]
    fn large_partitions_keep_a_task_each_and_the_workers_stay_busy() {
        // Each partition a task's whole budget: unchanged.
        let runs = decide(&[256 * MIB; 8], 2, Some(1 << 30));
        assert_eq!(runs, Runs::own(8));
        // 64 MiB in 8 partitions over 2 workers: two tasks of 32 MiB, tasks 0 and 4.
        let runs = decide(&[8 * MIB; 8], 2, None);
        assert_eq!(check(&runs, 8), 2);
        assert_eq!((runs.of(0), runs.of(4)), (0..4, 4..8));
        // One huge partition among small ones is a run of its own; the small ones around
        // it go together.
        let runs = decide(&[MIB, MIB, 900 * MIB, MIB, MIB], 2, Some(1 << 30));
        assert_eq!(check(&runs, 5), 3);
        assert_eq!((runs.of(0), runs.of(1), runs.of(3)), (0..2, 2..3, 3..5));
    }

    #[test]
    fn on_a_cluster_the_runs_go_to_different_pods() {
        use kask_api::groups::{group_count, group_tasks};
        for partitions in 1..80usize {
            for workers in 1..9usize {
                for each in [MIB, 16 * MIB, 40 * MIB] {
                    let runs = decide(&vec![each; partitions], workers, None);
                    check(&runs, partitions);
                    let (t, w) = (partitions as u32, workers as u32);
                    let groups = group_count(t, w);
                    // How many runs each pod's group of tasks holds.
                    let per_pod: Vec<usize> = (0..groups)
                        .map(|g| {
                            group_tasks(t, groups, g)
                                .filter(|&task| !runs.of(task as usize).is_empty())
                                .count()
                        })
                        .collect();
                    let most = runs.busy().div_ceil(groups as usize);
                    assert!(
                        per_pod.iter().all(|&n| n <= most),
                        "{partitions} partitions of {each} bytes, {workers} workers: \
                         runs per pod {per_pod:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_task_never_takes_more_than_its_share_of_the_pool_unless_one_partition_is() {
        let bytes: Vec<u64> = (0..40).map(|i| (i % 7 + 1) * 3 * MIB).collect();
        let pool = 64 * MIB;
        let runs = decide(&bytes, 1, Some(pool));
        check(&runs, bytes.len());
        for t in 0..bytes.len() {
            let r = runs.of(t);
            let held: u64 = bytes[r.clone()].iter().sum();
            assert!(held <= pool / 4 || r.len() == 1, "task {t} holds {held}");
        }
    }
}
