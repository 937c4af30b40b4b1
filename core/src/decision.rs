//! Decisions the tasks of a stage must share, made once the stages before it are done (which
//! adjacent partitions each task reads, how a skewed join's partitions are shared out): the
//! first task to ask decides from the markers and stores its decision with a create-only
//! write; every other task, and every retry, reads the stored one. Two tasks deciding at once
//! both decide alike from the same markers, and the second's write is refused.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::store::Store;

/// The decision stored at `path`, or the one `decide` makes, stored there unless another task's
/// came first (then that one). `check` refuses a stored decision that does not fit the stage
/// (the wrong number of tasks, say). The flag says whether this call's decision was stored.
pub async fn agree<T, F, Fut>(
    store: &Store,
    path: &str,
    check: impl Fn(&T) -> Result<()>,
    decide: F,
) -> Result<(T, bool)>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let parse = |bytes: &[u8]| -> Result<T> {
        let decided: T = serde_json::from_slice(bytes)
            .map_err(|e| Error::internal(format!("{path} is not valid: {e}")))?;
        check(&decided)?;
        Ok(decided)
    };
    if let Some(stored) = store.get_opt(path).await? {
        return Ok((parse(&stored)?, false));
    }
    let decided = decide().await?;
    let body = serde_json::to_vec(&decided)
        .map_err(|e| Error::internal(format!("writing {path}: {e}")))?;
    if !store.put_create(path, body.into()).await? {
        return Ok((parse(&store.get(path).await?)?, false));
    }
    Ok((decided, true))
}

/// Refuses a decision stored at `path` that gives work to `tasks` tasks where the stage has
/// `partitions`.
pub fn check_tasks(path: &str, tasks: usize, partitions: usize) -> Result<()> {
    if tasks == partitions {
        Ok(())
    } else {
        Err(Error::internal(format!(
            "{path} gives work to {tasks} tasks, not {partitions}"
        )))
    }
}

/// The runs of adjacent partitions that the `partitions` tasks of a stage reading the shuffles
/// of `stages` read, decided from the map tasks' markers ([`crate::shuffle::runs::decide`]):
/// their bytes per partition, the job's workers, the memory pool of this process.
pub async fn runs_from_markers(
    store: &Store,
    plan: &crate::plan::Plan,
    stages: &[usize],
    partitions: usize,
) -> Result<crate::shuffle::runs::Runs> {
    let mut bytes = vec![0u64; partitions];
    for &stage in stages {
        let maps = crate::marker::latest_markers(store, plan, stage).await?;
        let of_stage = crate::shuffle::runs::partition_bytes(&maps, partitions);
        for (all, b) in bytes.iter_mut().zip(of_stage) {
            *all += b;
        }
    }
    let workers = plan.spec.workers() as usize;
    let pool = crate::memory::pool_limit(&store.runtime);
    Ok(crate::shuffle::runs::decide(&bytes, workers, pool))
}

/// The name of the decision of which partitions the tasks reading `stages` take together.
pub fn runs_name(stages: &[usize]) -> String {
    let names: Vec<String> = stages.iter().map(ToString::to_string).collect();
    format!("coalesce-{}", names.join("-"))
}
