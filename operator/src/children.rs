//! What a DaskJob has created, as the operator last saw it: its Jobs (by deterministic name),
//! their pods (whose termination messages are the operator's only source of what a task did),
//! and, for Jobs that created no pod, why. A plain snapshot, read from the reflector caches, so
//! that deciding is a pure function of it.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::reflector::Store;
use serde::de::DeserializeOwned;

use crate::names::LABEL_JOB_UID;
use crate::pods::{self, Stuck};

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

impl JobState {
    /// Complete or Failed.
    pub fn finished(&self) -> bool {
        matches!(self, JobState::Complete | JobState::Failed(_))
    }
}

/// The reports of a Job's succeeded pods.
#[derive(Debug)]
pub struct Reports<T> {
    /// One per completion index (a replacement pod of an index that also succeeded is counted
    /// once).
    pub read: Vec<T>,
    /// Succeeded pods whose report is missing or unreadable: the pod and what is wrong.
    pub lost: Vec<(String, String)>,
}

/// A DaskJob's Jobs and their pods.
#[derive(Clone, Debug, Default)]
pub struct Children {
    jobs: BTreeMap<String, Job>,
    pods: Vec<Pod>,
    /// Why the Job controller could not create a Job's pods (its `FailedCreate` Event).
    create_failures: BTreeMap<String, String>,
}

impl Children {
    /// A snapshot of these Jobs and pods.
    pub fn new(jobs: impl IntoIterator<Item = Job>, pods: impl IntoIterator<Item = Pod>) -> Self {
        Children {
            jobs: jobs.into_iter().map(|j| (j.name_any(), j)).collect(),
            pods: pods.into_iter().collect(),
            create_failures: BTreeMap::new(),
        }
    }

    /// The Jobs and pods labelled with the DaskJob's UID in its namespace, from the caches.
    pub fn from_stores(jobs: &Store<Job>, pods: &Store<Pod>, namespace: &str, uid: &str) -> Self {
        let mine = |labels: &BTreeMap<String, String>, ns: Option<String>| {
            ns.as_deref() == Some(namespace)
                && labels.get(LABEL_JOB_UID).map(String::as_str) == Some(uid)
        };
        Children::new(
            jobs.state_filter(|j| mine(j.labels(), j.namespace()))
                .into_iter()
                .map(|j| (*j).clone()),
            pods.state_filter(|p| mine(p.labels(), p.namespace()))
                .into_iter()
                .map(|p| (*p).clone()),
        )
    }

    /// Records why the Job controller could not create `job`'s pods.
    pub fn set_create_failure(&mut self, job: &str, message: String) {
        self.create_failures.insert(job.to_string(), message);
    }

    /// The Job named `name`, if it exists.
    pub fn job(&self, name: &str) -> Option<&Job> {
        self.jobs.get(name)
    }

    /// Every Job, by name.
    pub fn jobs(&self) -> impl Iterator<Item = &Job> {
        self.jobs.values()
    }

    /// Every pod, of every Job.
    pub fn pods(&self) -> impl Iterator<Item = &Pod> {
        self.pods.iter()
    }

    fn pods_of<'a>(&'a self, job: &'a str) -> impl Iterator<Item = &'a Pod> + 'a {
        self.pods
            .iter()
            .filter(move |p| pods::job_name(p) == Some(job))
    }

    /// Unfinished, unsuspended Jobs that have no pod at all: where to look for a refusal
    /// (a ResourceQuota, a LimitRange, an admission webhook).
    pub fn podless(&self) -> Vec<String> {
        self.jobs
            .values()
            .filter(|j| matches!(job_state(j), JobState::Running { .. }))
            .map(ResourceExt::name_any)
            .filter(|name| self.pods_of(name).next().is_none())
            .collect()
    }

    /// Pods not yet ended (pending, running, or terminating) of Jobs other than `except`: a
    /// worker that may still write.
    pub fn live_pods(&self, except: &str) -> usize {
        self.pods
            .iter()
            .filter(|p| pods::job_name(p) != Some(except))
            .filter(|p| !matches!(pods::phase(p), "Succeeded" | "Failed"))
            .count()
    }

    /// The reports of the Job's succeeded pods.
    pub fn reports<T: DeserializeOwned>(&self, job: &str) -> Reports<T> {
        let mut by_index: BTreeMap<String, T> = BTreeMap::new();
        let mut lost = Vec::new();
        for pod in self.pods_of(job) {
            if pods::phase(pod) != "Succeeded" {
                continue;
            }
            let index = pods::completion_index(pod);
            match pods::message(pod).map(serde_json::from_str::<T>) {
                Some(Ok(report)) => {
                    by_index.entry(index).or_insert(report);
                }
                Some(Err(e)) => lost.push((pod.name_any(), format!("unreadable report: {e}"))),
                None => lost.push((pod.name_any(), "no report".into())),
            }
        }
        Reports {
            read: by_index.into_values().collect(),
            lost,
        }
    }

    /// The last failed pod of the Job that was not stopped from outside: its name,
    /// completion index and error line.
    pub fn failure(&self, job: &str) -> Option<(String, String, String)> {
        let mut failed: Vec<&Pod> = self
            .pods_of(job)
            .filter(|p| pods::phase(p) == "Failed")
            .collect();
        failed.sort_by_key(|p| (!pods::disrupted(p), p.metadata.creation_timestamp.clone()));
        let pod = failed.last()?;
        let limit = memory_limit(pod);
        Some((
            pod.name_any(),
            pods::completion_index(pod),
            pods::failure(pod, limit.as_deref()),
        ))
    }

    /// Why the Job's pods cannot start, if one cannot: the longest-stuck pod, or the Job
    /// controller's refusal to create any.
    pub fn stuck(&self, job: &str) -> Option<Stuck> {
        let pod = self
            .pods_of(job)
            .filter_map(pods::stuck)
            .min_by_key(|s| s.since);
        pod.or_else(|| {
            let message = self.create_failures.get(job)?;
            Some(Stuck {
                reason: "FailedCreate".into(),
                message: message.clone(),
                since: self.job(job)?.metadata.creation_timestamp.as_ref()?.0,
            })
        })
    }

    /// When the Job was created.
    pub fn created(&self, job: &str) -> Option<Timestamp> {
        Some(self.job(job)?.metadata.creation_timestamp.as_ref()?.0)
    }
}

/// The pod's memory limit, as written in its spec.
fn memory_limit(pod: &Pod) -> Option<String> {
    pod.spec
        .as_ref()?
        .containers
        .first()?
        .resources
        .as_ref()?
        .limits
        .as_ref()?
        .get("memory")
        .map(|q| q.0.clone())
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
