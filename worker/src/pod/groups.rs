//! A stage pod's share of its stage: the tasks of its group, as the operator counts them.

use crate::plan::Stage;
use kask_api::groups::{group_count, group_tasks};

/// The task groups of `stage`, each a list of task indexes.
pub fn task_groups(stage: &Stage, workers: usize) -> Vec<Vec<usize>> {
    let tasks = u32::try_from(stage.tasks).unwrap_or(u32::MAX);
    let workers = u32::try_from(workers).unwrap_or(u32::MAX);
    let n = group_count(tasks, workers);
    (0..n)
        .map(|g| group_tasks(tasks, n, g).map(|t| t as usize).collect())
        .collect()
}
