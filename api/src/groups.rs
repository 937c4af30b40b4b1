//! Task groups: which tasks each pod of a stage runs. A stage's Indexed Job has one completion
//! per group. The operator (which knows only the task and group counts from the plan pod's
//! report) and every stage pod must agree on the grouping, so it is this pure function of the
//! two counts: contiguous runs of tasks, group sizes differing by at most one. The planner
//! already cuts tasks to about `targetTaskBytes` each, so equal counts are about equal bytes.

use std::ops::Range;

/// How many groups a stage of `tasks` tasks gets: one pod per worker, never more than tasks.
pub fn group_count(tasks: u32, workers: u32) -> u32 {
    workers.max(1).min(tasks)
}

/// The tasks of group `g` of `groups`.
pub fn group_tasks(tasks: u32, groups: u32, g: u32) -> Range<u32> {
    if groups == 0 || g >= groups {
        return 0..0;
    }
    let (t, n, g) = (u64::from(tasks), u64::from(groups), u64::from(g));
    // Both ends fit in u32: they are at most `tasks`.
    (t * g / n) as u32..(t * (g + 1) / n) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_cover_every_task_once_and_differ_by_at_most_one() {
        for tasks in 0..40 {
            for workers in 1..9 {
                let n = group_count(tasks, workers);
                assert_eq!(n, workers.min(tasks));
                let ranges: Vec<Range<u32>> = (0..n).map(|g| group_tasks(tasks, n, g)).collect();
                let all: Vec<u32> = ranges.iter().cloned().flatten().collect();
                assert_eq!(all, (0..tasks).collect::<Vec<_>>());
                let sizes: Vec<usize> = ranges.iter().map(|r| r.len()).collect();
                if let (Some(min), Some(max)) = (sizes.iter().min(), sizes.iter().max()) {
                    assert!(max - min <= 1, "{sizes:?}");
                    assert!(*min >= 1);
                }
            }
        }
    }
}
