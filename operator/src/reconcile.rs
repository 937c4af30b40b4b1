//! The reconcile: reads a DaskJob's children from the caches, lets [`decide`] choose, and
//! applies its actions. Everything it decides is in `decide`; here are only the API calls,
//! the errors they can meet, and the backoff after them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event as CoreEvent, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::Store;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tracing::{Instrument, info, warn};

use crate::children::Children;
use crate::conditions;
use crate::decide::{Act, Decision, Note, Observed, PODLESS_RECHECK, decide, worker_image};
use crate::error::{Error, Result};
use crate::jobs::{JobFactory, Step, WorkerDefaults};
use crate::metrics::Metrics;
use crate::names::FINALIZER;
use kask_api::DaskJob;

/// What every reconcile shares.
pub struct Ctx {
    /// The API client.
    pub client: Client,
    /// Publishes Kubernetes Events on DaskJobs.
    pub recorder: Recorder,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// The worker image and resources for jobs that do not name them.
    pub worker: WorkerDefaults,
    /// The Jobs the operator created, as last seen.
    pub jobs: Store<Job>,
    /// Their pods, as last seen.
    pub pods: Store<Pod>,
    /// Failed reconciles in a row, per DaskJob UID, for the backoff.
    pub failures: Mutex<HashMap<String, u32>>,
    /// The status last written, per DaskJob UID, and when: to tell a stale cache.
    pub written: Mutex<HashMap<String, (kask_api::DaskJobStatus, Instant)>>,
}

/// How long a cached DaskJob may lag the status written before it is trusted anyway (the
/// watch has stalled, or someone else wrote the status).
const STALE_LIMIT: Duration = Duration::from_secs(5);

/// The first pause after a failed reconcile; it doubles with each failure in a row.
const BACKOFF_FIRST: Duration = Duration::from_secs(2);
/// The longest pause after failed reconciles.
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Reconciles one DaskJob.
pub async fn reconcile(dj: Arc<DaskJob>, ctx: Arc<Ctx>) -> Result<Action> {
    let started = Instant::now();
    ctx.metrics.reconciles.inc();
    let span = tracing::info_span!("reconcile", job = %dj.name_any(), namespace = %dj.namespace().unwrap_or_default());
    let result = Reconcile::new(&dj, &ctx)?.run().instrument(span).await;
    ctx.metrics
        .reconcile_seconds
        .observe(started.elapsed().as_secs_f64());
    let uid = dj.uid().unwrap_or_default();
    if let Ok(mut failures) = ctx.failures.lock() {
        match &result {
            Ok(_) => failures.remove(&uid),
            Err(_) => Some(*failures.entry(uid).and_modify(|n| *n += 1).or_insert(1)),
        };
    }
    if result.is_err() {
        ctx.metrics.reconcile_errors.inc();
    }
    result
}

/// Retries a failed reconcile after a pause that doubles with each failure in a row.
pub fn error_policy(dj: Arc<DaskJob>, error: &Error, ctx: Arc<Ctx>) -> Action {
    let uid = dj.uid().unwrap_or_default();
    let n = ctx
        .failures
        .lock()
        .ok()
        .and_then(|f| f.get(&uid).copied())
        .unwrap_or(1);
    let pause = backoff(n);
    warn!(job = %dj.name_any(), namespace = %dj.namespace().unwrap_or_default(), %error, failures = n, retry_in = ?pause, "reconcile failed");
    Action::requeue(pause)
}

/// The pause after `n` failed reconciles in a row.
pub fn backoff(n: u32) -> Duration {
    BACKOFF_FIRST
        .saturating_mul(1 << n.saturating_sub(1).min(16))
        .min(BACKOFF_MAX)
}

struct Reconcile<'a> {
    dj: &'a DaskJob,
    ctx: &'a Ctx,
    api: Api<DaskJob>,
    jobs: Api<Job>,
    namespace: String,
    uid: String,
}

impl<'a> Reconcile<'a> {
    fn new(dj: &'a DaskJob, ctx: &'a Ctx) -> Result<Reconcile<'a>> {
        let namespace = dj
            .namespace()
            .ok_or_else(|| Error::Invariant("a DaskJob without a namespace".into()))?;
        let uid = dj
            .uid()
            .ok_or_else(|| Error::Invariant("a DaskJob without a UID".into()))?;
        Ok(Reconcile {
            dj,
            ctx,
            api: Api::namespaced(ctx.client.clone(), &namespace),
            jobs: Api::namespaced(ctx.client.clone(), &namespace),
            namespace,
            uid,
        })
    }

    async fn run(self) -> Result<Action> {
        // Until the caches hold every Job and pod, a missing one proves nothing: a report
        // would look lost, a Job not created.
        let ready = |r: Option<std::result::Result<(), _>>| matches!(r, Some(Ok(())));
        if !ready(self.ctx.jobs.wait_until_ready().now_or_never())
            || !ready(self.ctx.pods.wait_until_ready().now_or_never())
        {
            return Ok(Action::requeue(Duration::from_secs(1)));
        }
        if self.stale() {
            return Ok(Action::requeue(Duration::from_millis(200)));
        }
        let now = Timestamp::now();
        let mut children =
            Children::from_stores(&self.ctx.jobs, &self.ctx.pods, &self.namespace, &self.uid);
        // A Job without pods for a while: its Events say why (a quota refused them). Asked
        // only then, so rarely.
        for job in children.podless() {
            let created = children.created(&job).unwrap_or(now);
            if now.duration_since(created).as_secs() >= PODLESS_RECHECK.as_secs() as i64
                && let Some(msg) = self.failed_create(&job).await
            {
                children.set_create_failure(&job, msg);
            }
        }
        let decision = decide(&Observed {
            dj: self.dj,
            children: &children,
            now,
            default_image: &self.ctx.worker.image,
        });
        self.apply(decision).await
    }

    /// The latest `FailedCreate` Event of a Job: why the Job controller made no pod.
    async fn failed_create(&self, job: &str) -> Option<String> {
        let events: Api<CoreEvent> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
        let lp = ListParams::default().fields(&format!(
            "involvedObject.kind=Job,involvedObject.name={job},reason=FailedCreate"
        ));
        let list = events.list(&lp).await.ok()?;
        list.items
            .into_iter()
            .max_by_key(|e| e.last_timestamp.clone().map(|t| t.0))
            .and_then(|e| e.message)
    }

    async fn apply(&self, decision: Decision) -> Result<Action> {
        let Decision {
            status,
            actions,
            requeue,
        } = decision;
        let image = status
            .worker_image
            .clone()
            .unwrap_or_else(|| worker_image(self.dj, &self.ctx.worker.image));
        let factory = JobFactory::new(self.dj, &image, &self.ctx.worker)?;
        let mut notes: Vec<Note> = Vec::new();
        for act in actions {
            let done = match act {
                Act::Event(note) => {
                    notes.push(note);
                    Ok(Applied::Done)
                }
                other => self.act(&factory, other).await,
            };
            match done {
                Ok(Applied::Done) => {}
                // The object changed under a finalizer patch: decide again on the new one.
                Ok(Applied::Stale) => return Ok(Action::requeue(Duration::from_millis(500))),
                Err(e) => return Err(self.report_api_error(e, status.clone()).await),
            }
        }
        self.ctx.metrics.phase(
            &self.uid,
            status
                .phase
                .filter(|_| self.dj.meta().deletion_timestamp.is_none()),
        );
        if let Err(e) = self.save(status.clone()).await {
            return Err(self.report_api_error(e, status).await);
        }
        for note in notes {
            self.event(&note).await;
        }
        Ok(requeue.map_or_else(Action::await_change, Action::requeue))
    }

    async fn act(&self, factory: &JobFactory<'_>, act: Act) -> Result<Applied> {
        match act {
            Act::AddFinalizer => self.patch_finalizers(true).await,
            Act::RemoveFinalizer => {
                let r = self.patch_finalizers(false).await;
                self.ctx.metrics.phase(&self.uid, None);
                self.forget();
                r
            }
            Act::Create { step, suspend } => {
                let job = factory.job(&step, suspend)?;
                match self.jobs.create(&PostParams::default(), &job).await {
                    Ok(_) => Ok(Applied::Done),
                    // Created by an earlier reconcile (the cache had not caught up): the same Job.
                    Err(kube::Error::Api(e)) if e.code == 409 => Ok(Applied::Done),
                    // The namespace is being deleted, so no pod can run in it any more: the
                    // cleanup is given up rather than block the namespace's deletion for good.
                    Err(kube::Error::Api(e)) if e.code == 403 && step == Step::Cleanup => {
                        warn!(error = %e.message, "cannot run the cleanup pod; the scratch prefix stays");
                        self.event(&Note {
                            warning: true,
                            reason: "CleanupSkipped".into(),
                            text: format!("cannot create the cleanup pod: {}", e.message),
                        })
                        .await;
                        self.patch_finalizers(false).await
                    }
                    Err(e) => Err(Error::Api {
                        doing: format!("creating Job {}", job.name_any()),
                        source: e,
                    }),
                }
            }
            Act::Delete(name) => {
                let dp = DeleteParams {
                    propagation_policy: Some(PropagationPolicy::Background),
                    ..DeleteParams::default()
                };
                tolerate(self.jobs.delete(&name, &dp).await, &[404], || {
                    format!("deleting Job {name}")
                })
            }
            Act::Suspend { job, suspend } => {
                let patch = Patch::Merge(json!({"spec": {"suspend": suspend}}));
                tolerate(
                    self.jobs.patch(&job, &PatchParams::default(), &patch).await,
                    &[404],
                    || format!("suspending Job {job}"),
                )
            }
            Act::StageFinished {
                stage,
                tasks,
                failed,
                seconds,
            } => {
                self.ctx.metrics.tasks_succeeded.inc_by(u64::from(tasks));
                self.ctx.metrics.tasks_failed.inc_by(u64::from(failed));
                self.ctx.metrics.stage_seconds.observe(seconds);
                info!(job = %self.dj.name_any(), stage = %stage, seconds, "stage finished");
                Ok(Applied::Done)
            }
            Act::DeleteSelf => {
                self.forget();
                info!(job = %self.dj.name_any(), "deleting the job: its TTL after finishing has passed");
                let dp = DeleteParams {
                    propagation_policy: Some(PropagationPolicy::Background),
                    ..DeleteParams::default()
                };
                tolerate(
                    self.api.delete(&self.dj.name_any(), &dp).await,
                    &[404],
                    || "deleting the DaskJob after its TTL".into(),
                )
            }
            Act::ReleasePod(pod) => self.release_pod(&pod).await,
            Act::Event(note) => {
                self.event(&note).await;
                Ok(Applied::Done)
            }
        }
    }

    /// Marks a stranded pod Failed with a `DisruptionTarget` condition (so that its Job's
    /// failure policy spends no retry on it) and deletes it at once, as the pod garbage
    /// collector does for pods of an out-of-service node.
    async fn release_pod(&self, pod: &str) -> Result<Applied> {
        let pods: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
        let now = Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        let status = Patch::Strategic(json!({"status": {
            "phase": "Failed",
            "conditions": [{
                "type": "DisruptionTarget", "status": "True", "reason": "NodeLost",
                "message": "Kask: the pod's node never confirmed its deletion",
                "lastTransitionTime": now,
            }],
        }}));
        tolerate(
            pods.patch_status(pod, &PatchParams::default(), &status)
                .await,
            &[404],
            || format!("marking stranded pod {pod} failed"),
        )?;
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        };
        tolerate(pods.delete(pod, &dp).await, &[404], || {
            format!("deleting stranded pod {pod}")
        })
    }

    /// Adds or removes Kask's finalizer with a JSON patch that first tests the list it was
    /// computed from: another controller's finalizer, added meanwhile, is never dropped.
    async fn patch_finalizers(&self, add: bool) -> Result<Applied> {
        let current = self.dj.finalizers();
        let ops = if add {
            if current.is_empty() {
                json!([
                    {"op": "test", "path": "/metadata/finalizers", "value": null},
                    {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
                ])
            } else {
                json!([
                    {"op": "test", "path": "/metadata/finalizers", "value": current},
                    {"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER},
                ])
            }
        } else {
            let Some(i) = current.iter().position(|f| f == FINALIZER) else {
                return Ok(Applied::Done);
            };
            let path = format!("/metadata/finalizers/{i}");
            json!([
                {"op": "test", "path": path, "value": FINALIZER},
                {"op": "remove", "path": path},
            ])
        };
        let patch: json_patch::Patch = serde_json::from_value(ops)
            .map_err(|e| Error::Invariant(format!("a finalizer patch: {e}")))?;
        match self
            .api
            .patch(
                &self.dj.name_any(),
                &PatchParams::default(),
                &Patch::Json::<()>(patch),
            )
            .await
        {
            Ok(_) => Ok(Applied::Done),
            // Gone already (a removal), or changed since it was read (a failed test).
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(Applied::Done),
            Err(kube::Error::Api(e)) if e.code == 422 => Ok(Applied::Stale),
            Err(e) => Err(Error::Api {
                doing: "patching the finalizers".into(),
                source: e,
            }),
        }
    }

    async fn save(&self, mut status: kask_api::DaskJobStatus) -> Result<()> {
        status.observed_generation = self.dj.metadata.generation;
        if self.dj.status.as_ref() == Some(&status) {
            return Ok(());
        }
        let patch = Patch::Merge(json!({ "status": status }));
        match self
            .api
            .patch_status(&self.dj.name_any(), &PatchParams::default(), &patch)
            .await
        {
            Ok(stored) => {
                if let (Some(st), Ok(mut written)) = (stored.status, self.ctx.written.lock()) {
                    written.insert(self.uid.clone(), (st, Instant::now()));
                }
                Ok(())
            }
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(Error::Api {
                doing: "writing the status".into(),
                source: e,
            }),
        }
    }

    /// Whether the cached DaskJob is older than the status this operator last wrote: deciding
    /// from it could undo a step (a Job deleted on failure, seen gone before the failure is
    /// seen, would be created again). Only the operator writes the status, so a cached status
    /// other than the last one written is stale; after [`STALE_LIMIT`] it is trusted anyway.
    fn stale(&self) -> bool {
        let Ok(written) = self.ctx.written.lock() else {
            return false;
        };
        written.get(&self.uid).is_some_and(|(status, at)| {
            self.dj.status.as_ref() != Some(status) && at.elapsed() < STALE_LIMIT
        })
    }

    fn forget(&self) {
        if let Ok(mut written) = self.ctx.written.lock() {
            written.remove(&self.uid);
        }
    }

    /// An API call failed: a refusal that will not change by itself (a 4xx other than a
    /// conflict or throttling) goes into the status and an Event, so that it is never
    /// silent; the controller then backs off exponentially.
    async fn report_api_error(&self, e: Error, mut status: kask_api::DaskJobStatus) -> Error {
        let lasting = match &e {
            Error::Api {
                source: kube::Error::Api(r),
                ..
            } => (400..500).contains(&r.code) && ![404, 409, 429].contains(&r.code),
            Error::Invariant(_) => true,
            Error::Api { .. } => false,
        };
        if lasting {
            let msg = e.to_string();
            let now = Timestamp::now().to_string();
            conditions::set(
                &mut status,
                "ApiError",
                true,
                "ApiError",
                &msg,
                self.dj.metadata.generation,
                &now,
            );
            if let Err(write) = self.save(status).await {
                warn!(error = %write, "cannot write the API error into the status");
            }
            self.event(&Note {
                warning: true,
                reason: "ApiError".into(),
                text: msg,
            })
            .await;
        }
        e
    }

    async fn event(&self, note: &Note) {
        let ev = Event {
            type_: if note.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: note.reason.clone(),
            note: Some(note.text.chars().take(1000).collect()),
            action: note.reason.clone(),
            secondary: None,
        };
        if let Err(e) = self
            .ctx
            .recorder
            .publish(&ev, &self.dj.object_ref(&()))
            .await
        {
            warn!(error = %e, reason = %note.reason, "could not publish an event");
        }
    }
}

/// What applying an action came to.
enum Applied {
    Done,
    /// The DaskJob changed since it was read: decide again.
    Stale,
}

/// An API call's result, with the status codes that mean "already so" (404 on a delete)
/// counted as success.
fn tolerate<T>(
    result: kube::Result<T>,
    codes: &[u16],
    doing: impl FnOnce() -> String,
) -> Result<Applied> {
    match result {
        Ok(_) => Ok(Applied::Done),
        Err(kube::Error::Api(e)) if codes.contains(&e.code) => Ok(Applied::Done),
        Err(e) => Err(Error::Api {
            doing: doing(),
            source: e,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::backoff;
    use std::time::Duration;

    #[test]
    fn the_backoff_doubles_up_to_five_minutes() {
        let got: Vec<u64> = (1..=10).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(got, [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(backoff(0), Duration::from_secs(2));
        assert_eq!(backoff(u32::MAX), Duration::from_secs(300));
    }
}
