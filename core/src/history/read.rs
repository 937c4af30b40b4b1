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
    Reader::default().read(store, dir).await
}

/// Reads a history again and again as it grows (the dashboard, while a job runs): each read
/// lists the folder and fetches only the records that are new or have changed since the last.
#[derive(Default)]
pub struct Reader {
    /// Each record's version (size and entity tag) and body, by path.
    bodies: std::collections::HashMap<String, ((u64, String), bytes::Bytes)>,
}

impl Reader {
    /// The history in folder `dir` as it is now.
    pub async fn read(&mut self, store: &Store, dir: &str) -> Result<JobHistory> {
        let listed = store.list_versions(dir).await?;
        if listed.is_empty() {
            return Err(Error::spec(
                "PATH",
                format!("{}/{dir} holds no job history", store.url),
            ));
        }
        let stale: Vec<(String, (u64, String))> = listed
            .iter()
            .filter(|(path, size, tag)| {
                self.bodies
                    .get(path)
                    .is_none_or(|((s, t), _)| s != size || t != tag)
            })
            .map(|(path, size, tag)| (path.clone(), (*size, tag.clone())))
            .collect();
        let fetched: Vec<(String, (u64, String), bytes::Bytes)> = futures::stream::iter(stale)
            .map(|(path, version)| async move {
                let body = store.get(&path).await?;
                Ok::<_, Error>((path, version, body))
            })
            .buffered(CONCURRENCY)
            .try_collect()
            .await?;
        for (path, version, body) in fetched {
            self.bodies.insert(path, (version, body));
        }
        let present: std::collections::HashSet<&String> =
            listed.iter().map(|(p, _, _)| p).collect();
        self.bodies.retain(|p, _| present.contains(p));
        let mut paths: Vec<&String> = self.bodies.keys().collect();
        paths.sort();
        let mut history = JobHistory {
            location: format!("{}/{dir}", store.url),
            ..JobHistory::default()
        };
        for path in paths {
            let body = &self.bodies[path].1;
            let rel = path.strip_prefix(&format!("{dir}/")).unwrap_or(path);
            if rel == "job.json" {
                history.job = Some(parse::<JobRecord>(path, body)?);
            } else if rel.starts_with("attempts/") && rel.ends_with(".json") {
                history.attempts.push(parse::<AttemptRecord>(path, body)?);
            } else if rel.starts_with("runners/") && rel.ends_with(".json") {
                history.runners.push(parse::<RunnerRecord>(path, body)?);
            } else if let Some(name) = rel
                .strip_prefix("logs/")
                .and_then(|n| n.strip_suffix(".log"))
            {
                history
                    .logs
                    .push((name.to_string(), String::from_utf8_lossy(body).into_owned()));
            }
        }
        history
            .attempts
            .sort_by_key(|a| (a.started_ms, a.stage, a.task));
        history.runners.sort_by_key(|r| r.started_ms);
        history.logs.sort();
        Ok(history)
    }
}
