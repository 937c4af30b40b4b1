//! Writes a job's history ([`kask_api::history`]) to its storage as it runs: the job when it is
//! planned and when it ends, every task attempt when it starts and when it ends (so that an
//! attempt whose process was killed still shows, as never ended), and each process's memory
//! and CPU over time and its log when it is done.
//!
//! A history is for people; a write that fails is logged and the job goes on.

pub mod logs;
pub mod prune;
pub mod read;
pub mod sampler;

use std::sync::{Mutex, OnceLock};

use bytes::Bytes;
use serde::Serialize;
use tracing::warn;

use crate::plan::Plan;
use crate::store::Store;
use kask_api::DaskJobSpec;
use kask_api::history::{
    AttemptRecord, HISTORY_VERSION, JobOutcome, JobRecord, RunnerRecord, StageRecord, attempt_file,
    history_dir, runner_file,
};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

static RUNNER: OnceLock<(String, String)> = OnceLock::new();

/// Names this process in the history: a pod's name and what it runs (`plan`, a stage, ...).
/// Without it, the process is `local`.
pub fn set_runner(name: &str, role: &str) {
    let _ = RUNNER.set((name.to_string(), role.to_string()));
}

/// This process's name in the history.
pub fn runner() -> String {
    RUNNER
        .get()
        .map_or_else(|| "local".to_string(), |(n, _)| n.clone())
}

fn role() -> String {
    RUNNER
        .get()
        .map_or_else(|| "local".to_string(), |(_, r)| r.clone())
}

/// Writes one job's history.
#[derive(Clone, Debug)]
pub struct Recorder {
    store: Store,
    dir: String,
}

/// The recorder of the job this process last worked on, for [`finish_process`].
static LAST: Mutex<Option<Recorder>> = Mutex::new(None);

impl Recorder {
    /// The recorder of job `job_id` with spec `spec`, in `store`.
    pub fn new(store: &Store, spec: &DaskJobSpec, job_id: &str) -> Recorder {
        let r = Recorder {
            store: store.clone(),
            dir: history_dir(&spec.main_output().path, job_id),
        };
        sampler::sampler();
        if let Ok(mut last) = LAST.lock() {
            *last = Some(r.clone());
        }
        r
    }

    /// The recorder of `plan`'s job.
    pub fn of(store: &Store, plan: &Plan) -> Recorder {
        Recorder::new(store, &plan.spec, &plan.job_id)
    }

    /// The history's folder, relative to the storage.
    pub fn dir(&self) -> &str {
        &self.dir
    }

    async fn put<T: Serialize>(&self, name: &str, value: &T) {
        let path = format!("{}/{name}", self.dir);
        let body = match serde_json::to_vec(value) {
            Ok(b) => b,
            Err(e) => {
                warn!(path = %path, error = %e, "cannot encode a history record");
                return;
            }
        };
        if let Err(e) = self.store.put(&path, Bytes::from(body)).await {
            warn!(path = %path, error = %e, "cannot write a history record");
        }
    }

    /// Records the planned job. With `keep_first`, an earlier record stays (a
    /// retried plan pod keeps the first record; a resumed local run starts a new one).
    pub async fn planned(&self, plan: &Plan, kind: &str, mode: &str, keep_first: bool) {
        let record = JobRecord {
            version: HISTORY_VERSION,
            job_id: plan.job_id.clone(),
            job: plan.job_name.clone(),
            kind: kind.to_string(),
            mode: mode.to_string(),
            started_ms: now_ms(),
            stages: plan
                .stages
                .iter()
                .map(|s| StageRecord {
                    id: s.id,
                    name: s.name.clone(),
                    tasks: s.tasks,
                    after: plan.after(s.id),
                    feeds: s.feeds.clone(),
                })
                .collect(),
            storage: self.store.url.clone(),
            ..JobRecord::default()
        };
        if keep_first {
            let path = format!("{}/job.json", self.dir);
            let body = serde_json::to_vec(&record).unwrap_or_default();
            if let Err(e) = self.store.put_create(&path, Bytes::from(body)).await {
                warn!(path = %path, error = %e, "cannot write a history record");
            }
        } else {
            self.put("job.json", &record).await;
        }
    }

    /// Records how the job ended: its committed outputs, or its error. A job that ended
    /// before it was planned gets a record of its own.
    pub async fn ended(
        &self,
        job_id: &str,
        outcome: JobOutcome,
        error: Option<String>,
        outputs: Vec<String>,
    ) {
        let path = format!("{}/job.json", self.dir);
        let mut record = match self.store.get_opt(&path).await {
            Ok(Some(body)) => serde_json::from_slice::<JobRecord>(&body).unwrap_or_default(),
            _ => JobRecord::default(),
        };
        if record.job_id.is_empty() {
            record.version = HISTORY_VERSION;
            record.job_id = job_id.to_string();
            record.started_ms = now_ms();
            record.storage = self.store.url.clone();
        }
        if record.outcome == JobOutcome::Failed && outcome == JobOutcome::Failed {
            // The first to say why the job failed (the pod that failed) knows best.
            return;
        }
        record.ended_ms = Some(now_ms());
        record.outcome = outcome;
        record.error = error;
        if !outputs.is_empty() {
            record.outputs = outputs;
        }
        self.put("job.json", &record).await;
    }

    /// Records an attempt as it is now.
    pub async fn attempt(&self, record: &AttemptRecord) {
        let name = attempt_file(record.stage, record.task, &record.attempt);
        self.put(&name, record).await;
    }

    /// Records this process: its memory and CPU since `since_ms`, and its log when one is
    /// kept ([`logs::keep`]).
    pub async fn process_done(&self, since_ms: u64) {
        let s = sampler::sampler();
        let since = since_ms.max(s.started_ms());
        let samples = s.since(since);
        let usage = crate::usage::Usage::now();
        let runner = runner();
        let record = RunnerRecord {
            runner: runner.clone(),
            role: role(),
            started_ms: since,
            ended_ms: now_ms(),
            cpu_seconds: match (samples.first(), samples.last()) {
                (Some(a), Some(b)) if since_ms > s.started_ms() => b.cpu_seconds - a.cpu_seconds,
                _ => usage.cpu_seconds,
            },
            peak_memory_bytes: samples.iter().map(|x| x.rss).max().unwrap_or(0),
            memory_limit_bytes: crate::memory::cgroup_limit(std::path::Path::new("/sys/fs/cgroup")),
            samples,
        };
        self.put(&runner_file(&runner, "json"), &record).await;
        if let Some(log) = logs::kept() {
            let path = format!("{}/{}", self.dir, runner_file(&runner, "log"));
            if let Err(e) = self.store.put(&path, Bytes::from(log)).await {
                warn!(path = %path, error = %e, "cannot upload the log to the history");
            }
        }
    }
}

/// Records this process in the history of the job it last worked on (a worker pod, as it
/// ends, whether it succeeded or not). `failed` is an error that fails the job at once (not
/// worth a retry), which the job's record then keeps.
pub async fn finish_process(failed: Option<String>) {
    let last = LAST.lock().ok().and_then(|mut l| l.take());
    if let Some(r) = last {
        if let Some(error) = failed {
            let job_id = r.dir.rsplit('/').next().unwrap_or_default().to_string();
            r.ended(&job_id, JobOutcome::Failed, Some(error), Vec::new())
                .await;
        }
        r.process_done(0).await;
    }
}

/// Forgets the recorder of the job this process last worked on. A static is never dropped, and
/// the recorder's store holds DataFusion's runtime, whose spill directory is removed only when
/// it is dropped: a run that ends must let it go, or every run leaves a directory behind.
pub fn release() {
    if let Ok(mut last) = LAST.lock() {
        last.take();
    }
}

/// The record of an attempt of task `task` of `plan`'s stage `stage`, started now.
pub fn attempt_started(plan: &Plan, stage: usize, task: usize, attempt: &str) -> AttemptRecord {
    AttemptRecord {
        stage,
        stage_name: plan.stages[stage].name.clone(),
        task,
        attempt: attempt.to_string(),
        runner: runner(),
        started_ms: now_ms(),
        ..AttemptRecord::default()
    }
}
