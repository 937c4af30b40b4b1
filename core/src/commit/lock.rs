//! The output's commit lock: one job at a time moves files into an output and replaces its
//! manifest. It is an object (`<output>/_kask/lock.json`) changed only by compare-and-swap
//! ([`crate::store::cas`]), so two jobs, two pods of one job, or two operator leaders cannot
//! both hold it; it is released by swapping it back to free, never by deleting it, so a slow
//! holder can never release somebody else's lock.
//!
//! A holder that died keeps the lock until its own rerun finishes (re-entrant: the holder is
//! the job id) or its cleanup undoes what it started. Another job may take over a lock whose
//! holder is gone: its result is published (it died while tidying up), or its scratch space
//! is gone (it was cleaned up).

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::manifest::{Manifest, describe_job, output_dir, read_manifest, read_record};
use crate::error::{Error, Result};
use crate::store::Store;
use kask_api::paths::SCRATCH_DIR;

/// The lock's path under an output.
pub fn lock_path(output: &str) -> String {
    format!("{}/{SCRATCH_DIR}/lock.json", output_dir(output))
}

/// Who holds the lock.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Holder {
    /// The job id.
    pub job_id: String,
    /// The job's name, for messages.
    #[serde(default)]
    pub job: String,
    /// Since when (RFC 3339).
    pub since: String,
}

impl Holder {
    /// A holder for job `job_id` named `job`, from now.
    pub fn new(job_id: &str, job: &str) -> Holder {
        Holder {
            job_id: job_id.to_string(),
            job: job.to_string(),
            since: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        }
    }

    /// The holder for messages.
    pub fn describe(&self) -> String {
        describe_job(&self.job_id, &self.job)
    }
}

#[derive(Serialize, Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
struct LockState {
    holder: Option<Holder>,
}

/// The outcome of trying to take the lock.
#[derive(Debug)]
pub enum Acquired {
    /// This job holds it (perhaps since an earlier, interrupted attempt); `took_over` is the
    /// holder it was taken from, whose leftovers the new holder tidies.
    Held {
        /// The gone holder, when the lock was taken over.
        took_over: Option<Holder>,
    },
    /// Another job holds it and is alive, or may be resumed.
    Busy(Holder),
}

/// How often a lost race for the lock is retried before giving up (each retry re-reads it).
const RACE_RETRIES: usize = 8;

fn encode(state: &LockState) -> Result<Bytes> {
    serde_json::to_vec_pretty(state)
        .map(Bytes::from)
        .map_err(|e| Error::internal(format!("serializing the commit lock: {e}")))
}

fn decode(output: &str, body: &[u8]) -> Result<LockState> {
    serde_json::from_slice(body).map_err(|e| Error::Output {
        path: output.to_string(),
        message: format!(
            "{} is not a kask commit lock ({e}); remove it if no job is committing here",
            lock_path(output)
        ),
    })
}

/// Takes the lock for `me`, taking it over from a holder that is gone.
pub async fn acquire(store: &Store, output: &str, me: &Holder) -> Result<Acquired> {
    let path = lock_path(output);
    for _ in 0..RACE_RETRIES {
        let current = store.get_versioned(&path).await?;
        let state = match &current {
            Some(v) => decode(output, &v.body)?,
            None => LockState::default(),
        };
        match state.holder.clone() {
            Some(h) if h.job_id == me.job_id => return Ok(Acquired::Held { took_over: None }),
            Some(h) if !gone(store, output, &h).await? => return Ok(Acquired::Busy(h)),
            _ => {}
        }
        let mine = encode(&LockState {
            holder: Some(me.clone()),
        })?;
        if store.put_if(&path, mine, current.as_ref()).await? {
            return Ok(Acquired::Held {
                took_over: state.holder,
            });
        }
    }
    Err(Error::Storage {
        url: store.url.clone(),
        message: format!("{path}: the commit lock kept changing under this job; try again"),
    })
}

/// Releases the lock if `job_id` holds it; a lock taken over by another job stays theirs.
pub async fn release(store: &Store, output: &str, job_id: &str) -> Result<()> {
    let path = lock_path(output);
    for _ in 0..RACE_RETRIES {
        let Some(current) = store.get_versioned(&path).await? else {
            return Ok(());
        };
        let state = decode(output, &current.body)?;
        if state.holder.as_ref().is_none_or(|h| h.job_id != job_id) {
            return Ok(());
        }
        if store
            .put_if(&path, encode(&LockState::default())?, Some(&current))
            .await?
        {
            return Ok(());
        }
    }
    Err(Error::Storage {
        url: store.url.clone(),
        message: format!("{path}: could not release the commit lock; it kept changing"),
    })
}

/// The lock's holder, if any.
pub async fn holder(store: &Store, output: &str) -> Result<Option<Holder>> {
    match store.get_opt(&lock_path(output)).await? {
        None => Ok(None),
        Some(b) => Ok(decode(output, &b)?.holder),
    }
}

/// Whether a holder is gone: its result is published (it died while tidying up, which the
/// next commit does for it), or its scratch space no longer has a plan (its job was cleaned
/// up, or never got that far).
async fn gone(store: &Store, output: &str, h: &Holder) -> Result<bool> {
    let published = |m: &Option<Manifest>| m.as_ref().is_some_and(|m| m.job_id == h.job_id);
    if published(&read_manifest(store, output).await?)
        || read_record(store, output, &h.job_id).await?.is_some()
    {
        return Ok(true);
    }
    let plan = format!(
        "{}/{SCRATCH_DIR}/{}/plan.json",
        output_dir(output),
        h.job_id
    );
    Ok(store.get_opt(&plan).await?.is_none())
}
