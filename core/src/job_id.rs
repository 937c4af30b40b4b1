//! A job's id, which names its scratch prefix: the DaskJob's UID on a cluster; for a local run,
//! one made from the spec and what identifies the inputs' contents, so that a rerun of a failed
//! run finds its scratch space and resumes it.

use async_trait::async_trait;
use kask_api::{DaskJob, DaskJobSpec};

use crate::error::Result;
use crate::kind::JobIds;
use crate::store::Store;

/// The id given on a cluster (the DaskJob's UID), else a local run's id from the spec and what
/// identifies the inputs, so that a rerun resumes.
pub struct GivenOrLocal<'a> {
    /// The job file.
    pub job: &'a DaskJob,
    /// The job's spec, with storage resolved.
    pub spec: &'a DaskJobSpec,
    /// The id given by the caller, if any.
    pub given: Option<&'a str>,
}

#[async_trait]
impl JobIds for GivenOrLocal<'_> {
    async fn id(&self, store: &Store, inputs: &[String]) -> Result<String> {
        match self.given {
            Some(id) => Ok(id.to_string()),
            None => {
                let base = job_id_of(self.job, inputs);
                local_run_id(store, self.spec, &base).await
            }
        }
    }
}

/// A stable 64-bit FNV-1a hash, so a local job's id survives restarts of kask.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.iter().chain(b"\x1f") {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// A local job's id from its spec and what identifies its inputs' contents.
pub fn job_id_of(job: &DaskJob, inputs: &[String]) -> String {
    let spec = serde_json::to_vec(&job.spec).unwrap_or_default();
    let mut parts: Vec<&[u8]> = vec![&spec];
    parts.extend(inputs.iter().map(|s| s.as_bytes()));
    format!("local-{:016x}", fnv1a(&parts))
}

/// The id of a local run of the job whose id base is `base`: the id of an unfinished earlier
/// run of it (its scratch space is still there and it has not committed), to resume that one
/// and tidy what it left; else a new id, so that two runs that commit are two jobs, each with
/// its own part names and commit record.
pub async fn local_run_id(
    store: &Store,
    spec: &kask_api::DaskJobSpec,
    base: &str,
) -> Result<String> {
    let main = spec.main_output();
    let output = main.path.trim_matches('/');
    let scratch_root = format!("{output}/{}", kask_api::paths::SCRATCH_DIR);
    for dir in store.list_dirs(&scratch_root).await? {
        if !dir.starts_with(&format!("{base}-")) {
            continue;
        }
        if crate::commit::committed(store, output, &dir)
            .await?
            .is_none()
        {
            return Ok(dir);
        }
        // A run that committed but died tidying up: finish that first.
        crate::commit::job::finish_job(store, spec, &dir).await?;
    }
    Ok(format!("{base}-{:08x}", rand::random::<u32>()))
}
