//! The job commit: from the last stage's committed files to a published result.
//!
//! 1. A commit that finds its own manifest (or the record of it, when a later job has since
//!    replaced it) reports success with it: committing is idempotent.
//! 2. It takes the output's lock ([`super::lock`]); a job that finds another one committing
//!    there fails and names it.
//! 3. It writes its journal ([`super::journal`]): the new manifest, where each file comes
//!    from, and the manifest it replaces. With `mode: error`, an existing result stops it here.
//! 4. It moves the files in under names unique to the job (`part-00000-<job id>.parquet`), so
//!    they never touch another result's files; then it replaces `_SUCCESS`. Until that
//!    moment readers of the manifest see the previous result, whole.
//! 5. It removes the previous result's files (only those its manifest names, never by
//!    listing), releases the lock, and removes the job's scratch space, last.
//!
//! A Zarr array's chunk keys are fixed by the format, so a new array cannot land beside the old
//! one: its commit withdraws the old manifest first and replaces the chunks in place, and a
//! crash in between is rolled forward by the commit run again or by the job's cleanup.
//!
//! A crash at any point leaves the journal, the lock and the scratch space, from which the
//! commit run again finishes the work.

use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use tracing::{info, warn};

use super::journal::{self, Journal, Move};
use super::lock::{self, Acquired, Holder};
use super::manifest::{
    MANIFEST_VERSION, Manifest, ManifestColumn, ManifestFile, manifest_path, output_dir,
    read_manifest, read_record, record_path, records_dir, to_json,
};
use crate::error::{Error, Result};
use crate::lineage::{MAX_RECOVERIES, Recover};
use crate::marker::latest_markers;
use crate::output;
use crate::parts::{OutputParts, written};
use crate::plan::{Plan, Target};
use crate::store::Store;
use kask_api::{DaskJobSpec, OutputMode};

/// How many files move at once.
const MOVE_CONCURRENCY: usize = 16;

/// Commits the job; safe to run again after a crash at any point, and after it succeeded.
/// Returns the main output's manifest.
pub async fn commit_job(store: &Store, plan: &Plan, lineage: &dyn Recover) -> Result<Manifest> {
    let mut all = commit_all(store, plan, lineage).await?;
    if all.is_empty() {
        return Err(Error::internal("a job without outputs"));
    }
    Ok(all.swap_remove(0).1)
}

/// Commits every output of the job, together: each output's lock is taken and its journal
/// written before any of them is published, and the main output (which holds the scratch
/// space and the plan) is published last, so that its manifest means the whole job is
/// committed. A crash in between is rolled forward by the commit run again. Returns each
/// output with its manifest, in the spec's order.
pub async fn commit_all(
    store: &Store,
    plan: &Plan,
    lineage: &dyn Recover,
) -> Result<Vec<(Target, Manifest)>> {
    let me = plan.job_id.as_str();
    crate::failpoint::pause(
        crate::failpoint::SLOW_COMMIT,
        crate::failpoint::SLOW_COMMIT_PAUSE,
    )
    .await;
    let targets = plan.targets();
    let main = targets
        .first()
        .ok_or_else(|| Error::internal("a job without outputs"))?;
    if let Some(m) = committed(store, &output_dir(&main.output.path), me).await? {
        // The main output is published last: this job has committed every output.
        finish_job(store, &plan.spec, me).await?;
        let mut all = vec![];
        for t in &targets[1..] {
            let dir = output_dir(&t.output.path);
            let m = committed(store, &dir, me)
                .await?
                .ok_or_else(|| Error::internal(format!("{dir}: no manifest of this job")))?;
            all.push((t.clone(), m));
        }
        all.insert(0, (main.clone(), m));
        return Ok(all);
    }
    // Every lock first, in path order (two jobs that want the same outputs meet at the
    // first one, and one of them stops before it holds any other).
    let mut order: Vec<&Target> = targets.iter().collect();
    order.sort_by(|a, b| a.output.path.cmp(&b.output.path));
    let mut taken = vec![];
    for t in order {
        let dir = output_dir(&t.output.path);
        if committed(store, &dir, me).await?.is_some() {
            continue;
        }
        match lock::acquire(store, &dir, &Holder::new(me, &plan.job_name)).await? {
            Acquired::Busy(h) => {
                release_unjournaled(store, &taken, me).await?;
                return Err(busy(&dir, &h));
            }
            Acquired::Held { took_over } => {
                if let Some(h) = took_over {
                    warn!(output = dir, holder = %h.describe(), "took over the commit lock of a job that is gone");
                    tidy_after(store, &dir, &h.job_id).await?;
                }
                taken.push(dir);
            }
        }
    }
    // Then every journal: what each output replaces is known, and `mode: error` checked,
    // before any output changes.
    let mut states = Vec::new();
    for t in &targets {
        let dir = output_dir(&t.output.path);
        let state = if let Some(m) = committed(store, &dir, me).await? {
            State::Published(m)
        } else if let Some(j) = journal::read(store, &dir, me).await? {
            State::Journaled(Box::new(j))
        } else {
            let previous = read_manifest(store, &dir).await?;
            if let Some(p) = &previous
                && t.output.mode == OutputMode::Error
            {
                release_unjournaled(store, &taken, me).await?;
                return Err(already_there(&dir, p));
            }
            State::New(previous)
        };
        states.push(state);
    }
    for (t, state) in targets.iter().zip(states.iter_mut()) {
        if let State::New(previous) = state {
            let j = prepare(store, plan, t, previous.take()).await?;
            journal::write(store, &output_dir(&t.output.path), me, &j).await?;
            *state = State::Journaled(Box::new(j));
        }
    }
    // Publish the other outputs first and the main one last.
    let mut all = Vec::new();
    for (i, (t, state)) in targets.iter().zip(states).enumerate().rev() {
        let manifest = match state {
            State::Published(m) => m,
            State::Journaled(j) => publish_target(store, plan, t, *j, lineage).await?,
            State::New(_) => return Err(Error::internal("an output without a journal")),
        };
        all.push((i, t.clone(), manifest));
    }
    finish_job(store, &plan.spec, me).await?;
    all.sort_by_key(|(i, _, _)| *i);
    let all: Vec<(Target, Manifest)> = all.into_iter().map(|(_, t, m)| (t, m)).collect();
    for (t, m) in &all {
        info!(job = %me, output = %t.output.path, files = m.files.len(), rows = m.rows, "committed");
    }
    Ok(all)
}

/// Where one output's commit stands.
enum State {
    /// This job's manifest is there.
    Published(Manifest),
    /// Its journal is written; publishing it is next.
    Journaled(Box<Journal>),
    /// Nothing yet, with the result it replaces.
    New(Option<Manifest>),
}

/// Publishes one output's journal, making lost files again from lineage.
async fn publish_target(
    store: &Store,
    plan: &Plan,
    t: &Target,
    mut journal: Journal,
    lineage: &dyn Recover,
) -> Result<Manifest> {
    let me = plan.job_id.as_str();
    let output = output_dir(&t.output.path);
    let mut rebuilds = 0;
    loop {
        match publish(store, t, &journal).await {
            Ok(()) => return Ok(journal.manifest),
            Err(Publish::Lost { part, why }) if rebuilds < MAX_RECOVERIES => {
                // A last-stage file vanished before it moved: make it again and write the
                // journal anew (nothing is published yet; the files already moved keep their
                // names, which the new journal names too).
                let Some((stage, task, epoch)) = part else {
                    return Err(Error::internal(format!("commit: {why}")));
                };
                warn!(job = %me, stage, task, why, "a committed output file is lost; running its task again");
                lineage.recover(stage, task, epoch, &why).await?;
                journal = prepare(store, plan, t, journal.previous.clone()).await?;
                journal::write(store, &output, me, &journal).await?;
                rebuilds += 1;
            }
            Err(Publish::Lost { why, .. }) => {
                return Err(Error::DataLost(format!("commit of {output}: {why}")));
            }
            Err(Publish::Failed(e)) => return Err(e),
        }
    }
}

/// Releases the locks this commit took on outputs it has not started to change.
async fn release_unjournaled(store: &Store, taken: &[String], me: &str) -> Result<()> {
    for dir in taken {
        if journal::read(store, dir, me).await?.is_none() {
            lock::release(store, dir, me).await?;
        }
    }
    Ok(())
}

/// Finishes every output of job `me` after its commit (see [`finish`]): the other outputs
/// first, the main one, whose scratch space holds the plan, last.
pub async fn finish_job(store: &Store, spec: &DaskJobSpec, me: &str) -> Result<()> {
    for out in spec.outputs().iter().rev() {
        finish(store, &output_dir(&out.output.path), me).await?;
    }
    Ok(())
}

/// The manifest of job `me`'s result at `output`, when it has committed there: the current
/// `_SUCCESS`, or the record kept after a later job replaced it.
pub async fn committed(store: &Store, output: &str, me: &str) -> Result<Option<Manifest>> {
    if let Some(m) = read_manifest(store, output).await?
        && m.job_id == me
    {
        return Ok(Some(m));
    }
    let record = read_record(store, output, me).await?;
    if record.is_some() {
        info!(job = %me, output, "this job's result was committed and has since been replaced by a later job's");
    }
    Ok(record)
}

fn busy(output: &str, h: &Holder) -> Error {
    Error::Output {
        path: output.to_string(),
        message: format!(
            "{} is committing a result to this folder (since {}); this job's result was not \
             committed. Two jobs must not write one output at once: wait for it and rerun, or \
             choose another output.path",
            h.describe(),
            h.since
        ),
    }
}

/// The error of a `mode: error` job whose output already holds a result.
pub fn already_there(output: &str, m: &Manifest) -> Error {
    Error::Output {
        path: output.to_string(),
        message: format!(
            "already holds the result of {} (committed {}); set output.mode: overwrite to \
             replace it, or choose another path",
            m.writer(),
            m.created_at
        ),
    }
}

/// The new manifest and the moves that land it, from the last stage's newest markers.
async fn prepare(
    store: &Store,
    plan: &Plan,
    t: &Target,
    previous: Option<Manifest>,
) -> Result<Journal> {
    let last = plan
        .stages
        .get(t.stage)
        .ok_or_else(|| Error::internal(format!("output {} has no stage {}", t.name, t.stage)))?;
    let markers = latest_markers(store, plan, last.id).await?;
    let format = t.format;
    let OutputParts {
        mut parts,
        schema,
        array,
        skipped_records,
    } = crate::kind::of_plan(plan)?
        .output_parts(store, plan, t, &markers)
        .await?;
    if parts.is_empty() {
        // An empty result is still one file, so that readers see its columns.
        let ext = format.extension();
        let from = format!("{}/empty/{}/part.{ext}", plan.scratch(), t.name);
        let body = output::empty_file(&from, format, schema.clone())?;
        let name = format!("part-00000-{}.{ext}", plan.job_id);
        parts.push(written(store, from, name, 0, body).await?);
    }
    let files: Vec<ManifestFile> = parts
        .iter()
        .map(|p| ManifestFile {
            path: p.name.clone(),
            rows: p.rows,
            bytes: p.bytes,
            crc32c: p.crc32c,
        })
        .collect();
    let manifest = Manifest {
        version: MANIFEST_VERSION,
        job_id: plan.job_id.clone(),
        job: plan.job_name.clone(),
        format,
        rows: files.iter().map(|f| f.rows).sum(),
        files,
        schema: schema
            .fields()
            .iter()
            .map(|f| ManifestColumn {
                name: f.name().clone(),
                type_: f.data_type().to_string(),
                nullable: f.is_nullable(),
            })
            .collect(),
        skipped_records,
        array,
        created_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        history: Some(kask_api::history::relative(
            &t.output.path,
            &kask_api::history::history_dir(&plan.spec.main_output().path, &plan.job_id),
        )),
    };
    let epochs: std::collections::BTreeMap<usize, u32> =
        markers.iter().map(|m| (m.task, m.epoch)).collect();
    let moves = parts
        .into_iter()
        .map(|p| Move {
            from: p.from,
            to: p.name,
            bytes: p.bytes,
            crc32c: p.crc32c,
            task: p
                .task
                .map(|t| (last.id, t, epochs.get(&t).copied().unwrap_or(0))),
        })
        .collect();
    Ok(Journal {
        manifest,
        moves,
        previous,
    })
}

/// Why publishing stopped.
enum Publish {
    /// A file to move is gone: `part` says which task (stage, task, epoch) made it.
    Lost {
        part: Option<(usize, usize, u32)>,
        why: String,
    },
    Failed(Error),
}

impl From<Error> for Publish {
    fn from(e: Error) -> Publish {
        Publish::Failed(e)
    }
}

/// Lands the journal's files and replaces the manifest.
async fn publish(store: &Store, t: &Target, j: &Journal) -> std::result::Result<(), Publish> {
    let out = output_dir(&t.output.path);
    let is_array = j.manifest.array.is_some();
    if is_array && let Some(prev) = &j.previous {
        // Chunks replace the previous array's in place: first withdraw its manifest, so that
        // no reader takes the mix for either array, and remove the chunks the new array does
        // not have (a 2-d array's `c/0/0` would block a 1-d array's `c/0` on a file system).
        if read_manifest(store, &out)
            .await?
            .is_some_and(|m| m.job_id == prev.job_id)
        {
            keep_record(store, &out, prev).await?;
            store.delete(&manifest_path(&out)).await?;
        }
        for f in j.retired() {
            store.delete(&format!("{out}/{f}")).await?;
        }
        store.prune_empty_dirs(&out);
    }
    futures::stream::iter(&j.moves)
        .map(|mv| move_file(store, &out, mv, is_array))
        .buffer_unordered(MOVE_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    if let Some(prev) = &j.previous {
        keep_record(store, &out, prev).await?;
    }
    store
        .put(&manifest_path(&out), to_json(&j.manifest)?)
        .await?;
    crate::failpoint::hit(crate::failpoint::AFTER_MANIFEST);
    Ok(())
}

/// Keeps the record of a result that is about to be replaced, unless its job kept it.
async fn keep_record(store: &Store, out: &str, m: &Manifest) -> Result<()> {
    let path = record_path(out, &m.job_id);
    if store.size_opt(&path).await?.is_none() {
        store.put(&path, to_json(m)?).await?;
    }
    Ok(())
}

/// Moves one file to its final name. A file already moved by an earlier, interrupted run of
/// this commit (its source gone, its target in place) counts as moved; for an array, whose
/// chunk keys the previous array used too, "in place" also means the committed checksum.
async fn move_file(
    store: &Store,
    out: &str,
    mv: &Move,
    check_bytes: bool,
) -> std::result::Result<(), Publish> {
    let to = format!("{out}/{}", mv.to);
    match store
        .inner
        .rename(&store.path(&mv.from), &store.path(&to))
        .await
    {
        Ok(()) => Ok(()),
        Err(object_store::Error::NotFound { .. }) => {
            let in_place = if check_bytes {
                match store.get_opt(&to).await? {
                    Some(b) => {
                        b.len() as u64 == mv.bytes
                            && mv
                                .crc32c
                                .is_none_or(|c| crate::store::checksum::crc32c(&b) == c)
                    }
                    None => false,
                }
            } else {
                store.size_opt(&to).await? == Some(mv.bytes)
            };
            if in_place {
                Ok(())
            } else {
                Err(Publish::Lost {
                    part: mv.task,
                    why: format!("{} is missing and {to} is not in place", mv.from),
                })
            }
        }
        Err(e) => Err(Publish::Failed(
            store.err(format!("moving {} to {to}", mv.from), e),
        )),
    }
}

/// After job `me`'s manifest is published: its record, the previous result's files removed,
/// the lock released, the job's uploads aborted and its scratch space removed, last. Each
/// step is safe to repeat.
pub async fn finish(store: &Store, output: &str, me: &str) -> Result<()> {
    let current = read_manifest(store, output).await?;
    let still_mine = current.as_ref().is_some_and(|m| m.job_id == me);
    if let Some(j) = journal::read(store, output, me).await? {
        keep_record(store, output, &j.manifest).await?;
        // Once a later job has replaced this result, the previous files are its business:
        // an array's chunk keys may be its files now.
        if still_mine {
            for f in j.retired() {
                store.delete(&format!("{output}/{f}")).await?;
            }
        }
    } else if let Some(m) = current.filter(|_| still_mine) {
        keep_record(store, output, &m).await?;
    }
    if still_mine {
        prune_records(store, output).await?;
        // Histories are for people: one that cannot be removed now is removed next time.
        match crate::history::prune::prune(store, output, crate::history::prune::KEPT_HISTORIES, me)
            .await
        {
            Ok(0) => {}
            Ok(n) => info!(job = %me, removed = n, "removed the oldest job histories"),
            Err(e) => warn!(job = %me, error = %e, "cannot remove old job histories"),
        }
    }
    lock::release(store, output, me).await?;
    remove_scratch(store, output, me).await
}

/// How many commit records an output keeps: enough for any job that could still run its
/// commit again (a cluster job reruns it only while it runs; a local run only while its
/// scratch space is there), without a record per commit forever.
const KEPT_RECORDS: usize = 20;

/// Removes all but the newest [`KEPT_RECORDS`] commit records.
async fn prune_records(store: &Store, output: &str) -> Result<()> {
    let records = store.list_by_age(&records_dir(output)).await?;
    let old = records.len().saturating_sub(KEPT_RECORDS);
    for (path, _) in records.into_iter().take(old) {
        store.delete(&path).await?;
    }
    Ok(())
}

/// Removes job `job_id`'s scratch space under `output`, after aborting its unfinished uploads.
pub async fn remove_scratch(store: &Store, output: &str, job_id: &str) -> Result<()> {
    let scratch = format!("{output}/{}/{job_id}", kask_api::paths::SCRATCH_DIR);
    let aborted = store.abort_uploads(&scratch).await?;
    if aborted > 0 {
        info!(job = %job_id, aborted, "aborted unfinished uploads");
    }
    store.delete_prefix(&scratch).await
}

/// Tidies after a lock holder that is gone: the previous result it replaced may still have
/// files its journal names, which no manifest names any more.
async fn tidy_after(store: &Store, output: &str, holder: &str) -> Result<()> {
    if read_manifest(store, output)
        .await?
        .is_some_and(|m| m.job_id == holder)
        && let Some(j) = journal::read(store, output, holder).await?
    {
        for f in j.retired() {
            store.delete(&format!("{output}/{f}")).await?;
        }
    }
    Ok(())
}
