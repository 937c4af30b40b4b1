//! Reads a job's history back from its storage (`kask report`, `kask logs`).

use futures::{StreamExt, TryStreamExt};
use serde::de::DeserializeOwned;

use crate::commit::manifest::read_manifest;
use crate::error::{Error, Result};
use crate::store::Store;
use kask_api::history::{AttemptRecord, JobHistory, JobRecord, RunnerRecord, histories_dir};

/// How many records are read at once.
const CONCURRENCY: usize = 16;

/// The history folder of the result in `output`: the one its manifest names, else (a failed
/// job, or a result committed before histories existed) the newest under the output, or the
/// one of job `job_id` when given.
pub async fn locate(store: &Store, output: &str, job_id: Option<&str>) -> Result<String> {
    let root = histories_dir(output);
    if let Some(id) = job_id {
        return Ok(format!("{root}/{id}"));
    }
    if let Some(m) = read_manifest(store, output).await?
        && let Some(h) = &m.history
    {
        return Ok(kask_api::history::resolve(output, h));
    }
    let mut newest: Option<(std::time::SystemTime, String)> = None;
    for (path, when) in store.list_by_age(&root).await? {
        let Some(rest) = path.strip_prefix(&format!("{root}/")) else {
            continue;
        };
        if let Some((id, "job.json")) = rest.split_once('/')
            && newest.as_ref().is_none_or(|(t, _)| when > *t)
        {
            newest = Some((when, format!("{root}/{id}")));
        }
    }
    newest.map(|(_, dir)| dir).ok_or_else(|| {
        Error::spec(
            "PATH",
            format!(
                "{}/{output} holds no job history (a result of a Kask run keeps one under \
                 {root})",
                store.url
            ),
        )
    })
}

fn parse<T: DeserializeOwned>(path: &str, body: &[u8]) -> Result<T> {
    serde_json::from_slice(body)
        .map_err(|e| Error::internal(format!("history record {path} is not valid: {e}")))
}

/// Reads the history in folder `dir`.
pub async fn read(store: &Store, dir: &str) -> Result<JobHistory> {
    let listed = store.list(dir).await?;
    if listed.is_empty() {
        return Err(Error::spec(
            "PATH",
            format!("{}/{dir} holds no job history", store.url),
        ));
    }
    let mut history = JobHistory {
        location: format!("{}/{dir}", store.url),
        ..JobHistory::default()
    };
    let bodies: Vec<(String, bytes::Bytes)> = futures::stream::iter(listed)
        .map(|(path, _)| async move {
            let body = store.get(&path).await?;
            Ok::<_, Error>((path, body))
        })
        .buffered(CONCURRENCY)
        .try_collect()
        .await?;
    for (path, body) in bodies {
        let rel = path.strip_prefix(&format!("{dir}/")).unwrap_or(&path);
        if rel == "job.json" {
            history.job = Some(parse::<JobRecord>(&path, &body)?);
        } else if rel.starts_with("attempts/") && rel.ends_with(".json") {
            history.attempts.push(parse::<AttemptRecord>(&path, &body)?);
        } else if rel.starts_with("runners/") && rel.ends_with(".json") {
            history.runners.push(parse::<RunnerRecord>(&path, &body)?);
        } else if let Some(name) = rel
            .strip_prefix("logs/")
            .and_then(|n| n.strip_suffix(".log"))
        {
            history.logs.push((
                name.to_string(),
                String::from_utf8_lossy(&body).into_owned(),
            ));
        }
    }
    history
        .attempts
        .sort_by_key(|a| (a.started_ms, a.stage, a.task));
    history.runners.sort_by_key(|r| r.started_ms);
    history.logs.sort();
    Ok(history)
}
