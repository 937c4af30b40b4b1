//! Stepping back from a commit that failed part way in a process that is still alive (a local
//! run whose retries ran out), so that every output holds its previous result, whole, while
//! the journal, the lock and the scratch space stay for the run again to finish the commit.
//!
//! The cleanup of a cluster job ([`super::cleanup`]) removes a failed job's files and its
//! scratch space; a local run keeps its scratch space so that `kask run` again resumes where
//! it stopped. It moves its new files back there instead of removing them: the journal still
//! names them at their sources, and the commit run again moves them once more.

use object_store::ObjectStoreExt;
use tracing::info;

use super::job::{committed, finish_job};
use super::journal;
use super::manifest::{manifest_path, output_dir, read_manifest, to_json};
use crate::error::Result;
use crate::plan::Plan;
use crate::store::Store;

/// What stepping back did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SteppedBack {
    /// The main output's manifest was this job's already: the job is committed, and its
    /// tidying (the previous result's files, the lock, the scratch space) was finished instead.
    pub finished: bool,
    /// Outputs whose previous manifest was put back.
    pub withdrawn: usize,
    /// Files moved back into the scratch space.
    pub moved_back: usize,
}

/// Steps back from job `plan`'s interrupted commit. Safe to repeat. An array whose chunks
/// were being replaced in place has no previous result to go back to: it is left for the
/// run again to roll forward (its manifest is withdrawn, so no reader takes it for whole).
pub async fn step_back(store: &Store, plan: &Plan) -> Result<SteppedBack> {
    let me = plan.job_id.as_str();
    let mut done = SteppedBack::default();
    let targets = plan.targets();
    let Some(main) = targets.first() else {
        return Ok(done);
    };
    if committed(store, &output_dir(&main.output.path), me)
        .await?
        .is_some()
    {
        finish_job(store, &plan.spec, me).await?;
        done.finished = true;
        return Ok(done);
    }
    for t in &targets {
        let out = output_dir(&t.output.path);
        let Some(j) = journal::read(store, &out, me).await? else {
            continue;
        };
        let in_place = j.manifest.array.is_some() && j.previous.is_some();
        if in_place {
            continue;
        }
        if read_manifest(store, &out)
            .await?
            .is_some_and(|m| m.job_id == me)
        {
            match &j.previous {
                Some(p) => store.put(&manifest_path(&out), to_json(p)?).await?,
                None => store.delete(&manifest_path(&out)).await?,
            }
            done.withdrawn += 1;
        }
        for mv in &j.moves {
            if j.previous.as_ref().is_some_and(|p| p.names(&mv.to)) {
                continue;
            }
            let to = format!("{out}/{}", mv.to);
            match store
                .inner
                .rename(&store.path(&to), &store.path(&mv.from))
                .await
            {
                Ok(()) => done.moved_back += 1,
                // Not moved yet, or moved back by an earlier attempt.
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(store.err(format!("moving {to} back to {}", mv.from), e)),
            }
        }
        store.prune_empty_dirs(&out);
    }
    if done != SteppedBack::default() {
        info!(job = %me, withdrawn = done.withdrawn, moved_back = done.moved_back, finished = done.finished,
            "stepped back from a commit that failed part way; running the job again finishes it");
    }
    Ok(done)
}
