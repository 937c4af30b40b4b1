//! Before a job runs: its output folder must be empty or hold a Kask result, so that a job
//! never deletes or shadows files it did not write. What Kask owns under an output: the
//! `_SUCCESS` manifest and the files it names, the `_kask/` folder (scratch spaces, journals,
//! the lock, commit records), and the files named by an unfinished commit's journal.

use std::collections::BTreeSet;

use super::job::already_there;
use super::journal;
use super::manifest::{MANIFEST, output_dir, read_manifest};
use crate::error::{Error, Result};
use crate::store::Store;
use kask_api::paths::SCRATCH_DIR;
use kask_api::{DaskJobSpec, Output, OutputMode};

/// How many foreign objects an error names.
const SHOWN: usize = 5;

/// Checks that job `job_id` may write to each of its outputs: nothing there that Kask did
/// not write, and with `mode: error`, no result of another job.
pub async fn check_output(store: &Store, spec: &DaskJobSpec, job_id: &str) -> Result<()> {
    for out in spec.outputs() {
        check_one(store, &out.output, job_id).await?;
    }
    Ok(())
}

async fn check_one(store: &Store, output: &Output, job_id: &str) -> Result<()> {
    let out = output_dir(&output.path);
    let listed = store.list(&out).await?;
    let manifest = read_manifest(store, &out).await?;
    let scratch = format!("{out}/{SCRATCH_DIR}/");
    let mut known: BTreeSet<String> = BTreeSet::new();
    known.insert(format!("{out}/{MANIFEST}"));
    if let Some(m) = &manifest {
        known.extend(m.files.iter().map(|f| format!("{out}/{}", f.path)));
    }
    for (path, _) in &listed {
        let Some(rest) = path.strip_prefix(&scratch) else {
            continue;
        };
        if let Some((id, "commit.json")) = rest.split_once('/')
            && let Some(j) = journal::read(store, &out, id).await?
        {
            let named = j
                .manifest
                .files
                .iter()
                .chain(j.previous.iter().flat_map(|p| &p.files));
            known.extend(named.map(|f| format!("{out}/{}", f.path)));
        }
    }
    let foreign: Vec<&str> = listed
        .iter()
        .map(|(p, _)| p.as_str())
        .filter(|p| !p.starts_with(&scratch) && !known.contains(*p))
        .collect();
    if !foreign.is_empty() {
        let shown: Vec<&str> = foreign.iter().take(SHOWN).copied().collect();
        let more = match foreign.len() - shown.len() {
            0 => String::new(),
            n => format!(" and {n} more"),
        };
        return Err(Error::Output {
            path: out,
            message: format!(
                "holds {} that no Kask result names ({}{more}); a job writes only into an empty \
                 folder or over an earlier Kask result, so that it never deletes or mixes with \
                 files it did not write. Choose another output.path, or move those files away",
                plural(foreign.len()),
                shown.join(", ")
            ),
        });
    }
    if let Some(m) = manifest
        && m.job_id != job_id
        && output.mode == OutputMode::Error
    {
        return Err(already_there(&out, &m));
    }
    Ok(())
}

fn plural(n: usize) -> String {
    if n == 1 {
        "1 file".into()
    } else {
        format!("{n} files")
    }
}
