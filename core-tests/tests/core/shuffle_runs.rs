use kask_core::shuffle::runs::*;

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
