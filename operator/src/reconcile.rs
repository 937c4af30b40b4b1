//! The reconcile: from a DaskJob and what it has created so far, the next step. Level-based and
//! idempotent: every decision is made from the DaskJob's status and its children as they are
//! now (children have fixed names, so creating one that exists is a no-op), and an operator
//! restarted at any point picks the job up where it stands.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use crate::children::{Children, JobState, job_state};
use crate::conditions;
use crate::error::{Error, Result};
use crate::jobs::{JobFactory, Step, WorkerDefaults};
use crate::metrics::Metrics;
use crate::names::{self, FINALIZER};
use kask_api::report::{PlanReport, TaskReport};
use kask_api::{DaskJob, DaskJobStatus, Phase, StageStatus};

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
}

/// While a job runs, a reconcile at least this often (deadlines are checked then too; every
/// Job and pod change also triggers one).
const RESYNC: Duration = Duration::from_secs(30);

/// Reconciles one DaskJob.
pub async fn reconcile(dj: Arc<DaskJob>, ctx: Arc<Ctx>) -> Result<Action> {
    let started = Instant::now();
    ctx.metrics.reconciles.inc();
    let result = Reconcile::new(&dj, &ctx)?.run().await;
    ctx.metrics
        .reconcile_seconds
        .observe(started.elapsed().as_secs_f64());
    if result.is_err() {
        ctx.metrics.reconcile_errors.inc();
    }
    result
}

/// Retries a failed reconcile after a pause.
pub fn error_policy(dj: Arc<DaskJob>, error: &Error, _ctx: Arc<Ctx>) -> Action {
    warn!(job = %dj.name_any(), namespace = %dj.namespace().unwrap_or_default(), %error, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

struct Reconcile<'a> {
    dj: &'a DaskJob,
    ctx: &'a Ctx,
    api: Api<DaskJob>,
    jobs: Api<Job>,
    factory: JobFactory<'a>,
    namespace: String,
    uid: String,
    status: DaskJobStatus,
    now: Timestamp,
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
            factory: JobFactory::new(dj, &ctx.worker)?,
            namespace,
            uid,
            status: dj.status.clone().unwrap_or_default(),
            now: Timestamp::now(),
        })
    }

    fn now(&self) -> String {
        self.now.to_string()
    }

    /// Sets a status condition, at this reconcile's time and for the spec's generation.
    fn condition(&mut self, type_: &str, value: bool, reason: &str, message: &str) {
        let now = self.now();
        let generation = self.dj.metadata.generation;
        conditions::set(
            &mut self.status,
            type_,
            value,
            reason,
            message,
            generation,
            &now,
        );
    }

    /// A status timestamp, or now when it is not set (yet) or unreadable.
    fn time_or_now(&self, time: Option<&str>) -> Timestamp {
        time.and_then(|s| s.parse().ok()).unwrap_or(self.now)
    }

    /// When `activeDeadlineSeconds` runs out, counted from the job's start.
    fn deadline(&self) -> Option<Timestamp> {
        let limit = self.dj.spec.active_deadline_seconds?;
        let start = self.time_or_now(self.status.start_time.as_deref());
        Some(start + SignedDuration::from_secs(limit))
    }

    async fn set_finalizers(&self, finalizers: Vec<String>) -> Result<()> {
        let patch = Patch::Merge(json!({"metadata": {"finalizers": finalizers}}));
        tolerate(
            self.api
                .patch(&self.dj.name_any(), &PatchParams::default(), &patch)
                .await,
            &[404],
        )
    }

    fn suspended(&self) -> bool {
        self.dj.spec.suspend.unwrap_or(false)
    }

    async fn run(mut self) -> Result<Action> {
        let name = self.dj.name_any();
        let span = tracing::info_span!("reconcile", job = %name, namespace = %self.namespace);
        let _enter = span.enter();
        if self.dj.meta().deletion_timestamp.is_some() {
            return self.finalize().await;
        }
        if self.status.phase.is_none()
            && let Err(errors) = kask_api::validate(&self.dj.spec)
        {
            // The same validation as `kask validate` and every worker pod: an invalid spec
            // gets no pod, and its field paths in the status.
            let fields: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
            return self
                .fail(
                    "InvalidSpec",
                    format!("the spec is invalid: {}", fields.join("; ")),
                )
                .await;
        }
        if !self.dj.finalizers().iter().any(|f| f == FINALIZER) {
            // The finalizer first: a job deleted from now on gets its scratch removed.
            let mut finalizers = self.dj.finalizers().to_vec();
            finalizers.push(FINALIZER.into());
            self.set_finalizers(finalizers).await?;
            return Ok(Action::await_change());
        }
        let phase = self.status.phase;
        self.ctx.metrics.phase(&self.uid, phase);
        if matches!(phase, Some(Phase::Succeeded | Phase::Failed)) {
            return self.after_end().await;
        }
        if self.status.start_time.is_none() {
            self.status.start_time = Some(self.now());
        }
        if let Some(deadline) = self.deadline()
            && self.now >= deadline
        {
            self.stop_children().await?;
            let limit = self.dj.spec.active_deadline_seconds.unwrap_or_default();
            let msg = format!("the job ran longer than activeDeadlineSeconds ({limit}s)");
            return self.fail("DeadlineExceeded", msg).await;
        }

        let children = Children::load(&self.ctx.client, &self.namespace, &self.uid).await?;
        let action = self.advance(&children).await?;
        let running = !matches!(self.status.phase, Some(Phase::Succeeded | Phase::Failed));
        match self.deadline() {
            // Wake up at the deadline even if nothing else happens.
            Some(deadline) if running => {
                let left =
                    Duration::try_from(deadline.duration_since(self.now)).unwrap_or_default();
                Ok(Action::requeue(
                    (left + Duration::from_millis(200)).min(RESYNC),
                ))
            }
            _ => Ok(action),
        }
    }

    /// The next step from the current children: plan, the stages in order, commit.
    async fn advance(&mut self, children: &Children) -> Result<Action> {
        let base = self.factory.base().to_string();

        // --- plan ----------------------------------------------------------------------------
        if self.status.plan.is_none() {
            let job_name = names::plan_job(&base);
            match children.job(&job_name).map(job_state) {
                None => {
                    self.create(&Step::Plan).await?;
                    if self.suspended() {
                        return self.set_suspended().await;
                    }
                    self.event(
                        EventType::Normal,
                        "Planning",
                        "listing the inputs and planning the job",
                    )
                    .await;
                    return self.set_running(Phase::Pending, "Planning").await;
                }
                Some(JobState::Complete) => {
                    let Some(report) = children.reports::<PlanReport>(&job_name).into_iter().next()
                    else {
                        return self
                            .fail(
                                "PlanLost",
                                format!(
                                    "plan Job {job_name} completed but its pod's report is gone"
                                ),
                            )
                            .await;
                    };
                    self.status.stages = report
                        .stages
                        .iter()
                        .map(|s| StageStatus {
                            name: s.name.clone(),
                            tasks: s.tasks,
                            groups: s.groups,
                            ..StageStatus::default()
                        })
                        .collect();
                    self.status.plan = Some(report.plan.clone());
                    let tasks: u32 = report.stages.iter().map(|s| s.tasks).sum();
                    self.event(
                        EventType::Normal,
                        "Planned",
                        &format!("{} stages, {tasks} tasks", report.stages.len()),
                    )
                    .await;
                }
                Some(JobState::Failed(why)) => {
                    let msg = self.failure_message(children, &job_name, "plan", &why);
                    return self.fail("PlanFailed", msg).await;
                }
                Some(state) => {
                    self.sync_suspend(children, &job_name, &state).await?;
                    if self.suspended() {
                        return self.set_suspended().await;
                    }
                    return self.set_running(Phase::Pending, "Planning").await;
                }
            }
        }
        let plan = self.status.plan.clone().unwrap_or_default();

        // --- stages --------------------------------------------------------------------------
        for i in 0..self.status.stages.len() {
            if self.status.stages[i].seconds.is_some() {
                continue; // finished earlier
            }
            let job_name = names::stage_job(&base, i);
            let stage = self.status.stages[i].clone();
            match children.job(&job_name) {
                None => {
                    if self.suspended() {
                        return self.set_suspended().await;
                    }
                    self.create(&Step::Stage {
                        index: i,
                        name: &stage.name,
                        groups: stage.groups,
                        plan: &plan,
                    })
                    .await?;
                    self.event(
                        EventType::Normal,
                        "StageStarted",
                        &format!(
                            "stage {}: {} tasks in {} pods",
                            stage.name, stage.tasks, stage.groups
                        ),
                    )
                    .await;
                    return self.set_running(Phase::Running, "Running").await;
                }
                Some(job) => {
                    let state = job_state(job);
                    self.count(children, i, &job_name, &state);
                    match state {
                        JobState::Complete => {
                            self.finish_stage(i, job).await;
                        }
                        JobState::Failed(why) => {
                            let msg = self.failure_message(children, &job_name, &stage.name, &why);
                            return self.fail("StageFailed", msg).await;
                        }
                        state => {
                            self.sync_suspend(children, &job_name, &state).await?;
                            if self.suspended() {
                                return self.set_suspended().await;
                            }
                            return self.set_running(Phase::Running, "Running").await;
                        }
                    }
                }
            }
        }

        // --- commit --------------------------------------------------------------------------
        let job_name = names::commit_job(&base);
        match children.job(&job_name).map(job_state) {
            None => {
                if self.suspended() {
                    return self.set_suspended().await;
                }
                self.create(&Step::Commit { plan: &plan }).await?;
                self.set_running(Phase::Running, "Committing").await
            }
            Some(JobState::Complete) => {
                let report = children.reports::<TaskReport>(&job_name).into_iter().next();
                self.status.output = report.as_ref().and_then(|r| r.output.clone());
                self.status.output_rows = report.as_ref().map(|r| r.rows_out);
                self.succeed().await
            }
            Some(JobState::Failed(why)) => {
                let msg = self.failure_message(children, &job_name, "commit", &why);
                self.fail("CommitFailed", msg).await
            }
            Some(state) => {
                self.sync_suspend(children, &job_name, &state).await?;
                if self.suspended() {
                    return self.set_suspended().await;
                }
                self.set_running(Phase::Running, "Committing").await
            }
        }
    }

    /// Task counts of stage `i` from its Job: completions are groups, whose sizes the
    /// operator knows from the task and group counts alone.
    fn count(&mut self, children: &Children, i: usize, job_name: &str, state: &JobState) {
        let stage = &mut self.status.stages[i];
        let size =
            |g: u32| kask_api::groups::group_tasks(stage.tasks, stage.groups, g).len() as u32;
        let reports = children.reports::<TaskReport>(job_name);
        stage.succeeded = reports
            .iter()
            .map(|r| r.tasks)
            .sum::<u32>()
            .min(stage.tasks);
        match state {
            JobState::Running { active, failed, .. } => {
                // Groups are about equal; the first group is the largest.
                stage.running = (*active * size(0)).min(stage.tasks - stage.succeeded);
                stage.failed = *failed;
            }
            _ => stage.running = 0,
        }
        stage.rows_read = reports.iter().map(|r| r.rows_in).sum();
        stage.bytes_read = reports.iter().map(|r| r.bytes_in).sum();
        stage.rows_written = reports.iter().map(|r| r.rows_out).sum();
        stage.bytes_written = reports.iter().map(|r| r.bytes_out).sum();
        stage.cpu_seconds = reports.iter().map(|r| r.cpu_seconds).sum();
        stage.peak_memory_bytes = reports
            .iter()
            .map(|r| r.peak_memory_bytes)
            .max()
            .unwrap_or(0);
    }

    async fn finish_stage(&mut self, i: usize, job: &Job) {
        let status = job.status.clone().unwrap_or_default();
        let seconds = match (status.start_time, status.completion_time) {
            (Some(a), Some(b)) => b.0.duration_since(a.0).as_secs_f64().max(0.0),
            _ => 0.0,
        };
        let stage = &mut self.status.stages[i];
        stage.succeeded = stage.tasks;
        stage.running = 0;
        stage.seconds = Some(seconds);
        stage.failed = u32::try_from(status.failed.unwrap_or(0)).unwrap_or(0);
        let (name, tasks, failed) = (stage.name.clone(), stage.tasks, stage.failed);
        self.ctx.metrics.tasks_succeeded.inc_by(u64::from(tasks));
        self.ctx.metrics.tasks_failed.inc_by(u64::from(failed));
        self.ctx.metrics.stage_seconds.observe(seconds);
        info!(job = %self.dj.name_any(), stage = %name, seconds, "stage finished");
        self.event(
            EventType::Normal,
            "StageSucceeded",
            &format!("stage {name}: {tasks} tasks in {seconds:.1}s"),
        )
        .await;
    }

    /// A failure message naming the step, the task group, the pod and the error line.
    fn failure_message(
        &self,
        children: &Children,
        job_name: &str,
        step: &str,
        why: &str,
    ) -> String {
        match children.failure(job_name) {
            Some((pod, index, error)) if step != "plan" && step != "commit" => {
                format!("stage {step}, task group {index} (pod {pod}): {error}")
            }
            Some((pod, _, error)) => format!("{step} (pod {pod}): {error}"),
            None => format!("{step} (Job {job_name}): {why}"),
        }
    }

    /// Suspends or resumes a running child Job to match `spec.suspend`.
    async fn sync_suspend(
        &self,
        children: &Children,
        job_name: &str,
        state: &JobState,
    ) -> Result<()> {
        let want = self.suspended();
        let has = children
            .job(job_name)
            .and_then(|j| j.spec.as_ref())
            .and_then(|s| s.suspend)
            .unwrap_or(false);
        if want != has && !matches!(state, JobState::Complete | JobState::Failed(_)) {
            self.jobs
                .patch(
                    job_name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"suspend": want}})),
                )
                .await?;
            let (reason, note) = if want {
                (
                    "Suspended",
                    format!("suspended {job_name}; resuming continues from here"),
                )
            } else {
                ("Resumed", format!("resumed {job_name}"))
            };
            self.event(EventType::Normal, reason, &note).await;
        }
        Ok(())
    }

    async fn create(&self, step: &Step<'_>) -> Result<()> {
        let job = self.factory.job(step, self.suspended())?;
        // 409: created by an earlier reconcile whose status write was lost; the same Job.
        tolerate(self.jobs.create(&PostParams::default(), &job).await, &[409])
    }

    /// Deletes the DaskJob's unfinished Jobs, which stops their pods.
    async fn stop_children(&self) -> Result<()> {
        let children = Children::load(&self.ctx.client, &self.namespace, &self.uid).await?;
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        for job in children.jobs() {
            if matches!(job_state(job), JobState::Complete | JobState::Failed(_)) {
                continue;
            }
            tolerate(self.jobs.delete(&job.name_any(), &dp).await, &[404])?;
        }
        Ok(())
    }

    fn progress(&self) -> String {
        let done: u32 = self.status.stages.iter().map(|s| s.succeeded).sum();
        let all: u32 = self.status.stages.iter().map(|s| s.tasks).sum();
        format!("{done}/{all}")
    }

    async fn set_running(&mut self, phase: Phase, reason: &str) -> Result<Action> {
        self.status.phase = Some(phase);
        self.status.progress = Some(self.progress());
        self.condition("Suspended", false, reason, "");
        self.condition("Complete", false, reason, "");
        self.save().await?;
        Ok(Action::requeue(RESYNC))
    }

    async fn set_suspended(&mut self) -> Result<Action> {
        if self.status.phase != Some(Phase::Suspended) {
            self.event(
                EventType::Normal,
                "Suspended",
                "spec.suspend is true: no pods run",
            )
            .await;
        }
        self.status.phase = Some(Phase::Suspended);
        for s in &mut self.status.stages {
            s.running = 0;
        }
        self.status.progress = Some(self.progress());
        self.condition("Suspended", true, "Suspended", "spec.suspend is true");
        self.save().await?;
        Ok(Action::await_change())
    }

    async fn succeed(&mut self) -> Result<Action> {
        self.status.phase = Some(Phase::Succeeded);
        self.status.completion_time = Some(self.now());
        self.status.progress = Some(self.progress());
        let msg = format!(
            "wrote {} rows to {}",
            self.status.output_rows.unwrap_or(0),
            self.status.output.clone().unwrap_or_default()
        );
        self.condition("Complete", true, "Succeeded", &msg);
        self.condition("Suspended", false, "Succeeded", "");
        self.save().await?;
        self.event(EventType::Normal, "Succeeded", &msg).await;
        self.ctx.metrics.phase(&self.uid, Some(Phase::Succeeded));
        Ok(self.ttl_action())
    }

    async fn fail(&mut self, reason: &str, message: String) -> Result<Action> {
        warn!(job = %self.dj.name_any(), reason, message = %message, "job failed");
        self.status.phase = Some(Phase::Failed);
        self.status.completion_time = Some(self.now());
        self.status.message = Some(message.clone());
        for s in &mut self.status.stages {
            s.running = 0;
        }
        self.status.progress = Some(self.progress());
        self.condition("Failed", true, reason, &message);
        self.condition("Complete", false, reason, "");
        self.save().await?;
        self.event(EventType::Warning, reason, &message).await;
        self.ctx.metrics.phase(&self.uid, Some(Phase::Failed));
        Ok(self.ttl_action())
    }

    /// A finished job: deleted once its TTL has passed.
    async fn after_end(&mut self) -> Result<Action> {
        let Some(ttl) = self.dj.spec.ttl_seconds_after_finished else {
            return Ok(Action::await_change());
        };
        let end = self.time_or_now(self.status.completion_time.as_deref());
        let expiry = end + SignedDuration::from_secs(ttl);
        if self.now >= expiry {
            info!(job = %self.dj.name_any(), ttl, "deleting the job: its TTL after finishing has passed");
            let dp = DeleteParams {
                propagation_policy: Some(PropagationPolicy::Background),
                ..DeleteParams::default()
            };
            tolerate(self.api.delete(&self.dj.name_any(), &dp).await, &[404])?;
            return Ok(Action::await_change());
        }
        let left = Duration::try_from(expiry.duration_since(self.now)).unwrap_or_default();
        Ok(Action::requeue(left + Duration::from_millis(200)))
    }

    fn ttl_action(&self) -> Action {
        match self.dj.spec.ttl_seconds_after_finished {
            Some(ttl) => Action::requeue(
                Duration::from_secs(u64::try_from(ttl).unwrap_or(0)) + Duration::from_millis(200),
            ),
            None => Action::await_change(),
        }
    }

    /// A deleted job: stop its pods, remove its scratch prefix with a cleanup pod (unless the
    /// commit already did), then let it go.
    async fn finalize(&mut self) -> Result<Action> {
        if !self.dj.finalizers().iter().any(|f| f == FINALIZER) {
            return Ok(Action::await_change());
        }
        self.ctx.metrics.phase(&self.uid, None);
        let needs_cleanup = self.status.phase != Some(Phase::Succeeded)
            && self.dj.spec.storage.is_some()
            && self.status.start_time.is_some();
        if needs_cleanup {
            let children = Children::load(&self.ctx.client, &self.namespace, &self.uid).await?;
            let job_name = names::cleanup_job(self.factory.base());
            match children.job(&job_name).map(job_state) {
                None => {
                    self.stop_children().await?;
                    let job = self.factory.job(&Step::Cleanup, false)?;
                    match self.jobs.create(&PostParams::default(), &job).await {
                        Ok(_) => return Ok(Action::requeue(RESYNC)),
                        Err(kube::Error::Api(e)) if e.code == 409 => {
                            return Ok(Action::requeue(RESYNC));
                        }
                        // The namespace is being deleted, so no pod can run in it any more:
                        // waiting would block the namespace's deletion for good.
                        Err(kube::Error::Api(e)) if e.code == 403 => {
                            warn!(job = %self.dj.name_any(), error = %e.message, "cannot run the cleanup pod; the scratch prefix stays");
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                Some(JobState::Complete) => {}
                Some(JobState::Failed(why)) => {
                    // Deletion is not held hostage by a store that cannot be reached.
                    let msg = self.failure_message(&children, &job_name, "cleanup", &why);
                    self.event(
                        EventType::Warning,
                        "CleanupFailed",
                        &format!("scratch data may remain: {msg}"),
                    )
                    .await;
                }
                Some(_) => return Ok(Action::requeue(RESYNC)),
            }
        }
        let finalizers = self
            .dj
            .finalizers()
            .iter()
            .filter(|f| *f != FINALIZER)
            .cloned()
            .collect();
        self.set_finalizers(finalizers).await?;
        Ok(Action::await_change())
    }

    async fn save(&mut self) -> Result<()> {
        self.status.observed_generation = self.dj.metadata.generation;
        if self.dj.status.as_ref() == Some(&self.status) {
            return Ok(());
        }
        self.api
            .patch_status(
                &self.dj.name_any(),
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": self.status })),
            )
            .await?;
        Ok(())
    }

    async fn event(&self, type_: EventType, reason: &str, note: &str) {
        let ev = Event {
            type_,
            reason: reason.into(),
            note: Some(note.chars().take(1000).collect()),
            action: reason.into(),
            secondary: None,
        };
        if let Err(e) = self
            .ctx
            .recorder
            .publish(&ev, &self.dj.object_ref(&()))
            .await
        {
            warn!(error = %e, reason, "could not publish an event");
        }
    }
}

/// An API call's result, with the status codes that mean "already so" (404 on a delete, 409 on
/// a create) counted as success.
fn tolerate<T>(result: kube::Result<T>, codes: &[u16]) -> Result<()> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if codes.contains(&e.code) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
