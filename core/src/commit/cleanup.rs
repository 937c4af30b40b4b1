//! The cleanup of a job that failed or was deleted: what it left is finished or undone, and
//! nothing else is touched.
//!
//! - It had published its result (it failed while tidying up): the tidying is finished.
//! - It was committing: a table's new files, which no manifest names yet, are removed and the
//!   previous result stays as it was. An array whose chunks were being replaced in place has
//!   no whole previous result any more, so its commit is finished instead (rolled forward).
//! - Then its unfinished uploads are aborted and its scratch space removed.

use tracing::{info, warn};

use super::job::{commit_all, commit_job, committed, finish, finish_job, remove_scratch};
use super::journal;
use super::lock;
use super::manifest::{manifest_path, output_dir, to_json};
use crate::error::Result;
use crate::lineage::Recover;
use crate::plan::Plan;
use crate::store::Store;
use kask_api::DaskJobSpec;

/// What the cleanup did, for the job's report.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cleaned {
    /// The job's result had been published; its tidying was finished.
    pub was_committed: bool,
    /// Files of an interrupted commit removed.
    pub rolled_back: usize,
    /// An interrupted array commit was finished, so that the output holds a whole array.
    pub rolled_forward: bool,
}

/// Cleans up after job `job_id` at each of its outputs. A job graph that had published some
/// of its outputs but not all is finished (rolled forward) when its plan is there; without
/// it, those outputs get their previous results back.
pub async fn abandon_job(
    store: &Store,
    spec: &DaskJobSpec,
    job_id: &str,
    plan: Option<(&Plan, &dyn Recover)>,
) -> Result<Cleaned> {
    let outputs = spec.outputs();
    let Some(main) = outputs.first() else {
        return Ok(Cleaned::default());
    };
    if outputs.len() == 1 {
        return abandon(store, &main.output.path, job_id, plan).await;
    }
    let main_dir = output_dir(&main.output.path);
    let mut done = Cleaned::default();
    if committed(store, &main_dir, job_id).await?.is_some() {
        finish_job(store, spec, job_id).await?;
        done.was_committed = true;
        return Ok(done);
    }
    let mut partly = false;
    for out in &outputs[1..] {
        partly |= committed(store, &output_dir(&out.output.path), job_id)
            .await?
            .is_some();
    }
    if partly && let Some((plan, lineage)) = plan {
        commit_all(store, plan, lineage).await?;
        info!(job = %job_id, "finished an interrupted commit of a job graph, so that its outputs hold one job's results");
        done.rolled_forward = true;
        return Ok(done);
    }
    // The main output last: its scratch space holds the plan.
    for out in outputs.iter().rev() {
        let dir = output_dir(&out.output.path);
        if committed(store, &dir, job_id).await?.is_some() {
            withdraw(store, &dir, job_id).await?;
        }
        let d = abandon(store, &dir, job_id, None).await?;
        done.rolled_back += d.rolled_back;
    }
    Ok(done)
}

/// Gives an output whose new result was published without the rest of its job graph its
/// previous result back (or none), from the journal; the new files are removed after.
async fn withdraw(store: &Store, output: &str, job_id: &str) -> Result<()> {
    let Some(j) = journal::read(store, output, job_id).await? else {
        warn!(job = %job_id, output, "a result of an unfinished job graph has no journal; it stays");
        return Ok(());
    };
    match &j.previous {
        Some(p) => store.put(&manifest_path(output), to_json(p)?).await?,
        None => store.delete(&manifest_path(output)).await?,
    }
    warn!(job = %job_id, output, "withdrew a result of a job graph that did not commit all its outputs");
    Ok(())
}

/// Cleans up after job `job_id` at `output`. `plan` (with a way to re-run lost tasks) lets an
/// interrupted array commit be finished; without it, its files are removed.
pub async fn abandon(
    store: &Store,
    output: &str,
    job_id: &str,
    plan: Option<(&Plan, &dyn Recover)>,
) -> Result<Cleaned> {
    let output = output_dir(output);
    let mut done = Cleaned::default();
    if committed(store, &output, job_id).await?.is_some() {
        finish(store, &output, job_id).await?;
        done.was_committed = true;
        return Ok(done);
    }
    let holds_lock = lock::holder(store, &output)
        .await?
        .is_some_and(|h| h.job_id == job_id);
    if holds_lock {
        if let Some(j) = journal::read(store, &output, job_id).await? {
            let replacing_array = j.manifest.array.is_some() && j.previous.is_some();
            match plan {
                Some((plan, lineage)) if replacing_array => {
                    commit_job(store, plan, lineage).await?;
                    info!(job = %job_id, output, "finished an interrupted array commit, so that the output holds a whole array");
                    done.rolled_forward = true;
                    return Ok(done);
                }
                _ => {
                    if replacing_array {
                        warn!(job = %job_id, output, "an array commit was interrupted and its plan is gone: the output holds no whole array");
                    }
                    for mv in &j.moves {
                        let theirs = j.previous.as_ref().is_some_and(|p| p.names(&mv.to));
                        if !theirs {
                            store.delete(&format!("{output}/{}", mv.to)).await?;
                            done.rolled_back += 1;
                        }
                    }
                    store.prune_empty_dirs(&output);
                }
            }
        }
        lock::release(store, &output, job_id).await?;
    }
    remove_scratch(store, &output, job_id).await?;
    Ok(done)
}
