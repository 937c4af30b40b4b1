//! Keeps an output's histories from growing without end: every run of a job into the same
//! output leaves one, with its pods' logs.

use crate::error::Result;
use crate::store::Store;
use kask_api::history::histories_dir;

/// How many job histories an output keeps after a commit: the newest, by when their job
/// record was last written.
pub const KEPT_HISTORIES: usize = 20;

/// Removes all but the newest `keep` histories under `output`, never job `me`'s (the one that
/// just committed there). Returns how many it removed.
pub async fn prune(store: &Store, output: &str, keep: usize, me: &str) -> Result<usize> {
    let root = histories_dir(output);
    let ids = store.list_dirs(&root).await?;
    if ids.len() <= keep {
        return Ok(0);
    }
    // A history's age is its job record's; one without a record (its planner died before
    // writing it) counts as the oldest.
    let mut aged = Vec::with_capacity(ids.len());
    for id in ids {
        let when = store
            .list_by_age(&format!("{root}/{id}/job.json"))
            .await?
            .into_iter()
            .map(|(_, t)| t)
            .max()
            .unwrap_or(std::time::UNIX_EPOCH);
        aged.push((when, id));
    }
    aged.sort();
    let old = aged.len().saturating_sub(keep);
    let mut removed = 0;
    for (_, id) in aged.into_iter().take(old) {
        if id != me {
            store.delete_prefix(&format!("{root}/{id}")).await?;
            removed += 1;
        }
    }
    Ok(removed)
}
