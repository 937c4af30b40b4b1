//! What a DaskJob has created, read back from the API: its Jobs (by deterministic name) and
//! their pods' termination messages, the operator's only source of what a task did.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use serde::de::DeserializeOwned;

use crate::error::Result;
use crate::names::LABEL_JOB_UID;
use kask_api::report::FailureReport;

/// Where a child Job stands.
#[derive(Clone, Debug, PartialEq)]
pub enum JobState {
    /// Pods are pending or running (or none yet).
    Running {
        /// Pods running now.
        active: u32,
        /// Completions done.
        succeeded: u32,
        /// Pods that failed.
        failed: u32,
    },
    /// Suspended: its pods were stopped and none start.
    Suspended,
    /// Every completion succeeded.
    Complete,
    /// Out of retries or past its deadline; the reason and message of its condition.
    Failed(String),
}

/// A DaskJob's Jobs and their pods.
pub struct Children {
    jobs: BTreeMap<String, Job>,
    pods: Vec<Pod>,
}

impl Children {
    /// Lists the Jobs and pods labelled with the DaskJob's UID in its namespace.
    pub async fn load(client: &Client, namespace: &str, uid: &str) -> Result<Children> {
        let lp = ListParams::default().labels(&format!("{LABEL_JOB_UID}={uid}"));
        let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let jobs = jobs
            .list(&lp)
            .await?
            .items
            .into_iter()
            .map(|j| (j.name_any(), j))
            .collect();
        let pods = pods.list(&lp).await?.items;
        Ok(Children { jobs, pods })
    }

    /// The Job named `name`, if it exists.
    pub fn job(&self, name: &str) -> Option<&Job> {
        self.jobs.get(name)
    }

    /// Every Job, by name.
    pub fn jobs(&self) -> impl Iterator<Item = &Job> {
        self.jobs.values()
    }

    fn pods_of<'a>(&'a self, job: &'a str) -> impl Iterator<Item = &'a Pod> + 'a {
        self.pods.iter().filter(move |p| {
            p.labels()
                .get("batch.kubernetes.io/job-name")
                .map(String::as_str)
                == Some(job)
        })
    }

    /// The reports of the Job's succeeded pods, one per completion index (a replacement pod
    /// of an index that also succeeded is counted once).
    pub fn reports<T: DeserializeOwned>(&self, job: &str) -> Vec<T> {
        let mut by_index: BTreeMap<String, T> = BTreeMap::new();
        for pod in self.pods_of(job) {
            if pod.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Succeeded") {
                continue;
            }
            let index = completion_index(pod);
            if let Some(report) = message(pod).and_then(|m| serde_json::from_str(&m).ok()) {
                by_index.entry(index).or_insert(report);
            }
        }
        by_index.into_values().collect()
    }

    /// The first failed pod of the Job: its name, completion index and error line.
    pub fn failure(&self, job: &str) -> Option<(String, String, String)> {
        let mut failed: Vec<&Pod> = self
            .pods_of(job)
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed"))
            .collect();
        failed.sort_by_key(|p| p.metadata.creation_timestamp.clone());
        let pod = failed.last()?;
        let raw = message(pod).unwrap_or_else(|| reason(pod));
        let error = match serde_json::from_str::<FailureReport>(&raw) {
            Ok(r) => r.error,
            // A pod that died before writing its report (OOM-killed, evicted): the kubelet's
            // reason, or the tail of its log (FallbackToLogsOnError).
            Err(_) => raw.lines().last().unwrap_or_default().to_string(),
        };
        Some((pod.name_any(), completion_index(pod), error))
    }
}

fn completion_index(pod: &Pod) -> String {
    pod.annotations()
        .get("batch.kubernetes.io/job-completion-index")
        .cloned()
        .unwrap_or_else(|| "0".into())
}

/// The main container's termination message.
fn message(pod: &Pod) -> Option<String> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find_map(|c| c.state.as_ref()?.terminated.as_ref()?.message.clone())
        .filter(|m| !m.trim().is_empty())
}

/// Why a pod failed, when it left no message.
fn reason(pod: &Pod) -> String {
    let status = pod.status.as_ref();
    let terminated = status
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find_map(|c| c.state.as_ref()?.terminated.clone()));
    match terminated {
        Some(t) => format!(
            "container exited with code {}{}",
            t.exit_code,
            t.reason.map(|r| format!(" ({r})")).unwrap_or_default()
        ),
        None => status
            .and_then(|s| s.message.clone().or_else(|| s.reason.clone()))
            .unwrap_or_else(|| "the pod failed without a message".into()),
    }
}

/// Reads a Job's state from its status and conditions.
pub fn job_state(job: &Job) -> JobState {
    let status = job.status.clone().unwrap_or_default();
    let conditions = status.conditions.unwrap_or_default();
    let is = |t: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == t && c.status == "True")
    };
    if is("Complete").is_some() {
        return JobState::Complete;
    }
    if let Some(c) = is("Failed").or_else(|| is("FailureTarget")) {
        return JobState::Failed(format!(
            "{}: {}",
            c.reason.clone().unwrap_or_default(),
            c.message.clone().unwrap_or_default()
        ));
    }
    if is("Suspended").is_some() {
        return JobState::Suspended;
    }
    let n = |v: Option<i32>| u32::try_from(v.unwrap_or(0)).unwrap_or(0);
    JobState::Running {
        active: n(status.active),
        succeeded: n(status.succeeded),
        failed: n(status.failed),
    }
}
