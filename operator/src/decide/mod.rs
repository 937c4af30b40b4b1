//! The operator's state machine: from a DaskJob and its children as they are now, the job's
//! next status and the actions that get it there. A pure function (no API calls, no clock),
//! so that every transition is tested as a table row; [`crate::reconcile`] applies the actions.
//! Level-based: nothing depends on what an earlier call decided, only on what it left in the
//! status and the cluster, so a restarted operator picks a job up where it stands.

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;

use crate::children::{Children, JobState, job_state};
use crate::conditions;
use crate::jobs::Step;
use crate::names::{self, FINALIZER};
use crate::pods;
use kask_api::report::{PlanReport, TaskReport};
use kask_api::{DaskJob, DaskJobStatus, Phase, StageStatus};

#[cfg(test)]
mod tests;

/// While a job runs, a reconcile at least this often (every Job and pod change also triggers
/// one).
pub const RESYNC: Duration = Duration::from_secs(30);

/// A Job with no pod at all for this long is asked why (a quota may refuse its pods).
pub const NO_POD_GRACE: Duration = Duration::from_secs(20);

/// How often a Job without pods is looked at until it has some, or a reason why not.
pub const PODLESS_RECHECK: Duration = Duration::from_secs(5);

/// How long a deleted job waits for its cleanup pod before it lets go without it.
pub const CLEANUP_LIMIT: Duration = Duration::from_secs(300);

/// How long a deleted job waits for a cleanup pod that cannot start.
pub const CLEANUP_STUCK: Duration = Duration::from_secs(60);

/// How long a deleted job waits for its worker pods to end before its cleanup pod starts
/// anyway (a pod on a lost node may never report its end).
pub const WORKERS_GONE_LIMIT: Duration = Duration::from_secs(120);

/// What the decision is made from.
pub struct Observed<'a> {
    /// The DaskJob, with its status as last written.
    pub dj: &'a DaskJob,
    /// Its Jobs and pods.
    pub children: &'a Children,
    /// The time of this decision.
    pub now: Timestamp,
    /// The operator's worker image, for jobs that start now and name none.
    pub default_image: &'a str,
}

/// A Kubernetes Event to publish on the DaskJob.
#[derive(Clone, Debug, PartialEq)]
pub struct Note {
    /// Warning rather than Normal.
    pub warning: bool,
    /// A CamelCase reason.
    pub reason: String,
    /// What happened.
    pub text: String,
}

/// One side effect.
#[derive(Clone, Debug, PartialEq)]
pub enum Act {
    /// Add Kask's finalizer.
    AddFinalizer,
    /// Remove Kask's finalizer: the DaskJob may go.
    RemoveFinalizer,
    /// Create the Job that runs `step` (suspended or not).
    Create {
        /// The step.
        step: Step,
        /// Created suspended.
        suspend: bool,
    },
    /// Delete a child Job and its pods.
    Delete(String),
    /// Suspend or resume a child Job.
    Suspend {
        /// The Job.
        job: String,
        /// Suspend (true) or resume.
        suspend: bool,
    },
    /// A stage finished: for metrics and the log.
    StageFinished {
        /// The stage's name.
        stage: String,
        /// Its tasks.
        tasks: u32,
        /// Pod attempts that failed.
        failed: u32,
        /// How long it ran.
        seconds: f64,
    },
    /// Delete the DaskJob itself (its TTL after finishing has passed).
    DeleteSelf,
    /// A pod stranded on a lost node: mark it failed (a disruption, which uses no retry) and
    /// remove it, as the pod garbage collector does for an out-of-service node, so that its
    /// Job makes the task's pod again elsewhere.
    ReleasePod(String),
    /// Publish an Event.
    Event(Note),
}

/// The outcome of [`decide`].
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// The status to write (unchanged: nothing to write).
    pub status: DaskJobStatus,
    /// Side effects, in order; Events last.
    pub actions: Vec<Act>,
    /// When to look again though nothing changed (None: only on a change).
    pub requeue: Option<Duration>,
}

/// Decides a DaskJob's next step.
pub fn decide(o: &Observed<'_>) -> Decision {
    let mut d = Decider {
        o,
        base: names::base(&o.dj.name_any(), o.dj.uid().as_deref().unwrap_or_default()),
        status: o.dj.status.clone().unwrap_or_default(),
        actions: Vec::new(),
        events: Vec::new(),
        awaiting_admission: false,
    };
    let requeue = d.run();
    if !d.awaiting_admission {
        d.clear("Queued", "Admitted");
    }
    let mut actions = d.actions;
    actions.extend(d.events.into_iter().map(Act::Event));
    Decision {
        status: d.status,
        actions,
        requeue,
    }
}

/// The worker image a job runs: fixed in its status when it starts.
pub fn worker_image(dj: &DaskJob, default_image: &str) -> String {
    dj.status
        .as_ref()
        .and_then(|s| s.worker_image.clone())
        .or_else(|| dj.spec.image.clone())
        .unwrap_or_else(|| default_image.to_string())
}

type Next = Option<Duration>;

struct Decider<'a> {
    o: &'a Observed<'a>,
    base: String,
    status: DaskJobStatus,
    actions: Vec<Act>,
    events: Vec<Note>,
    /// A child Job waits for Kueue's admission (set while deciding).
    awaiting_admission: bool,
}

/// How long past its deletion deadline a pod must be before it counts as stranded on a lost
/// node: a live kubelet has ended it well before.
pub const STRANDED_AFTER: SignedDuration = SignedDuration::from_secs(30);

/// The sooner of two wake-ups.
fn earliest(a: Next, b: Next) -> Next {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn secs(d: SignedDuration) -> Duration {
    Duration::try_from(d).unwrap_or_default()
}

impl Decider<'_> {
    fn dj(&self) -> &DaskJob {
        self.o.dj
    }

    fn children(&self) -> &Children {
        self.o.children
    }

    fn now(&self) -> String {
        self.o.now.to_string()
    }

    fn act(&mut self, a: Act) {
        self.actions.push(a);
    }

    fn event(&mut self, warning: bool, reason: &str, text: impl Into<String>) {
        self.events.push(Note {
            warning,
            reason: reason.into(),
            text: text.into(),
        });
    }

    fn condition(&mut self, type_: &str, value: bool, reason: &str, message: &str) {
        let now = self.now();
        let generation = self.dj().metadata.generation;
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

    fn condition_is(&self, type_: &str) -> Option<&kask_api::Condition> {
        self.status
            .conditions
            .iter()
            .find(|c| c.type_ == type_ && c.status == "True")
    }

    /// Sets a condition to False only if it is there (True): absent means the same.
    fn clear(&mut self, type_: &str, reason: &str) {
        if self.condition_is(type_).is_some() {
            self.condition(type_, false, reason, "");
        }
    }

    fn suspended(&self) -> bool {
        self.dj().spec.suspend.unwrap_or(false)
    }

    fn time_or_now(&self, time: Option<&str>) -> Timestamp {
        time.and_then(|s| s.parse().ok()).unwrap_or(self.o.now)
    }

    /// When `activeDeadlineSeconds` runs out, counted from the job's start.
    fn deadline(&self) -> Option<Timestamp> {
        let limit = self.dj().spec.active_deadline_seconds?;
        let start = self.time_or_now(self.status.start_time.as_deref());
        Some(start + SignedDuration::from_secs(limit))
    }

    fn run(&mut self) -> Next {
        if self.dj().metadata.deletion_timestamp.is_some() {
            return self.finalize();
        }
        if self.status.phase.is_none()
            && let Err(errors) = kask_api::validate(&self.dj().spec)
        {
            // The same validation as `kask validate` and every worker pod: an invalid spec
            // gets no pod, and its field paths in the status.
            let fields: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
            let msg = format!("the spec is invalid: {}", fields.join("; "));
            return self.fail("InvalidSpec", msg);
        }
        if !self.dj().finalizers().iter().any(|f| f == FINALIZER) {
            // The finalizer first: a job deleted from now on gets its scratch removed.
            self.act(Act::AddFinalizer);
            return None;
        }
        if matches!(self.status.phase, Some(Phase::Succeeded | Phase::Failed)) {
            return self.after_end();
        }
        // An API error of an earlier reconcile: this one applies its actions afresh, and
        // the condition comes back if they fail again.
        self.clear("ApiError", "Applied");
        // A job starts when a pod may first run, as a Job's startTime does: a job created
        // suspended has not started, so its deadline does not run and its deletion needs no
        // cleanup pod.
        if self.status.start_time.is_none() && !self.suspended() {
            self.status.start_time = Some(self.now());
        }
        if self.status.worker_image.is_none() {
            self.status.worker_image = Some(worker_image(self.dj(), self.o.default_image));
        }
        if let Some(deadline) = self.deadline()
            && self.o.now >= deadline
        {
            self.stop_children();
            let limit = self.dj().spec.active_deadline_seconds.unwrap_or_default();
            let msg = format!("the job ran longer than activeDeadlineSeconds ({limit}s)");
            return self.fail("DeadlineExceeded", msg);
        }
        let released = self.release_stranded();
        let next = earliest(self.advance(), released);
        let running = !matches!(self.status.phase, Some(Phase::Succeeded | Phase::Failed));
        match self.deadline() {
            // Wake up at the deadline even if nothing else happens.
            Some(deadline) if running => {
                let left = secs(deadline.duration_since(self.o.now)) + Duration::from_millis(200);
                Some(next.map_or(left, |n| n.min(left)))
            }
            _ => next,
        }
    }

    /// Pods past their deletion deadline by [`STRANDED_AFTER`] are released: their node is
    /// lost, and their tasks would wait for it for ever (a Job replaces a pod only once it has
    /// failed). A task run twice is harmless, its commit being idempotent. Wakes up when the
    /// next terminating pod would become stranded, since no event will say so.
    fn release_stranded(&mut self) -> Next {
        let now = self.o.now;
        let mut wake: Next = None;
        let mut stranded = Vec::new();
        for pod in self.children().pods() {
            let Some(over) = pods::overdue(pod, now) else {
                continue;
            };
            if over >= STRANDED_AFTER {
                let node = pods::node(pod).unwrap_or("no node").to_string();
                stranded.push((pod.name_any(), node, over.as_secs()));
            } else {
                wake = earliest(wake, Some(secs(STRANDED_AFTER - over)));
            }
        }
        for (pod, node, over) in stranded {
            self.act(Act::ReleasePod(pod.clone()));
            self.event(
                true,
                "PodStranded",
                format!(
                    "pod {pod} on node {node} was to end {over}s ago and its node never \
                     confirmed it (the node is lost); released so that its task runs elsewhere"
                ),
            );
        }
        wake
    }

    /// The next step from the current children: plan, the stages, commit. A stage starts
    /// once the stages it waits for are done, so independent branches of a job graph run side
    /// by side, their Jobs' pods together within `spec.workers`.
    fn advance(&mut self) -> Next {
        if self.status.plan.is_none()
            && let Some(next) = self.plan_step()
        {
            return next;
        }
        let plan = self.status.plan.clone().unwrap_or_default();
        let workers = self.dj().spec.workers().max(1);
        let mut running: Vec<(usize, String)> = Vec::new();
        let mut in_use = 0u32;
        let mut waiting = false;
        for i in 0..self.status.stages.len() {
            if self.status.stages[i].seconds.is_some() {
                continue; // finished earlier
            }
            let job = names::stage_job(&self.base, i);
            let Some(state) = self.children().job(&job).map(job_state) else {
                waiting = true;
                continue;
            };
            self.count(i, &job, &state);
            match state {
                JobState::Complete => self.finish_stage(i, &job),
                JobState::Failed(why) => {
                    let name = self.status.stages[i].name.clone();
                    let msg = self.failure_message(&job, &name, &why);
                    return self.fail("StageFailed", msg);
                }
                _ => {
                    in_use += self.pods_of(&job);
                    running.push((i, job));
                }
            }
        }
        let done = |st: &[StageStatus], i: usize| st.get(i).is_some_and(|s| s.seconds.is_some());
        if !waiting && running.is_empty() {
            return self.commit_step(plan);
        }
        if !self.suspended() {
            for i in 0..self.status.stages.len() {
                let job = names::stage_job(&self.base, i);
                let stage = self.status.stages[i].clone();
                let ready = after(&stage, i)
                    .iter()
                    .all(|&a| done(&self.status.stages, a));
                if stage.seconds.is_some() || !ready || self.children().job(&job).is_some() {
                    continue;
                }
                if in_use >= workers {
                    break; // the next stages start as pods free up
                }
                let pods = stage.groups.max(1).min(workers - in_use);
                in_use += pods;
                self.act(Act::Create {
                    step: Step::Stage {
                        index: i,
                        name: stage.name.clone(),
                        groups: stage.groups,
                        pods,
                        plan: plan.clone(),
                    },
                    suspend: self.queued(),
                });
                self.event(
                    false,
                    "StageStarted",
                    format!(
                        "stage {}: {} tasks in {} pods",
                        stage.name, stage.tasks, stage.groups
                    ),
                );
            }
        }
        let mut wake: Next = None;
        // The Jobs created just now have no pods to watch yet.
        for (i, job) in &running {
            self.sync_suspend(job);
            if self.suspended() {
                continue;
            }
            let what = format!("stage {}", self.status.stages[*i].name);
            match self.check_startup(job, &what) {
                Ok(w) => wake = wake.into_iter().chain(w).min(),
                Err(next) => return next,
            }
        }
        if self.suspended() {
            return self.set_suspended();
        }
        let next = self.set_running(Phase::Running, "Running");
        match (next, wake) {
            (Some(n), Some(w)) => Some(n.min(w)),
            (n, w) => n.or(w),
        }
    }

    /// The pods a stage Job may run at once (its parallelism).
    fn pods_of(&self, job: &str) -> u32 {
        self.children()
            .job(job)
            .and_then(|j| j.spec.as_ref())
            .and_then(|s| s.parallelism)
            .and_then(|p| u32::try_from(p).ok())
            .unwrap_or(0)
    }

    /// The plan Job; None once the plan is known and the stages can go on.
    fn plan_step(&mut self) -> Option<Next> {
        let job = names::plan_job(&self.base);
        let Some(state) = self.children().job(&job).map(job_state) else {
            // Created even when suspended (suspended itself), so that resuming only patches.
            let suspend = self.suspended();
            self.act(Act::Create {
                step: Step::Plan,
                suspend: suspend || self.queued(),
            });
            if suspend {
                return Some(self.set_suspended());
            }
            self.event(false, "Planning", "listing the inputs and planning the job");
            return Some(self.set_running(Phase::Pending, "Planning"));
        };
        match state {
            JobState::Complete => {
                let reports = self.children().reports::<PlanReport>(&job);
                let Some(report) = reports.read.into_iter().next() else {
                    let why = lost_report(&reports.lost);
                    let msg = format!("plan Job {job} completed but {why}");
                    return Some(self.fail("ReportLost", msg));
                };
                self.status.stages = report
                    .stages
                    .iter()
                    .map(|s| StageStatus {
                        name: s.name.clone(),
                        tasks: s.tasks,
                        groups: s.groups,
                        feeds: s.feeds.clone(),
                        after: s.after.clone(),
                        ..StageStatus::default()
                    })
                    .collect();
                self.status.plan = Some(report.plan.clone());
                let tasks: u32 = report.stages.iter().map(|s| s.tasks).sum();
                self.event(
                    false,
                    "Planned",
                    format!("{} stages, {tasks} tasks", report.stages.len()),
                );
                None
            }
            JobState::Failed(why) => {
                let msg = self.failure_message(&job, "plan", &why);
                Some(self.fail("PlanFailed", msg))
            }
            _ => Some(self.running_child(&job, "plan", Phase::Pending, "Planning")),
        }
    }

    fn commit_step(&mut self, plan: String) -> Next {
        let job = names::commit_job(&self.base);
        let Some(state) = self.children().job(&job).map(job_state) else {
            if self.suspended() {
                return self.set_suspended();
            }
            self.act(Act::Create {
                step: Step::Commit { plan },
                suspend: self.queued(),
            });
            return self.set_running(Phase::Running, "Committing");
        };
        match state {
            JobState::Complete => {
                let reports = self.children().reports::<TaskReport>(&job);
                match reports.read.into_iter().next() {
                    Some(report) => {
                        self.status.output = report.output.clone();
                        self.status.outputs = report.outputs.clone();
                        self.status.output_rows = Some(report.rows_out);
                        let msg = match report.outputs.len() {
                            0 | 1 => format!(
                                "wrote {} rows to {}",
                                report.rows_out,
                                report.output.unwrap_or_default()
                            ),
                            n => format!(
                                "wrote {} rows to {n} outputs: {}",
                                report.rows_out,
                                report.outputs.join(", ")
                            ),
                        };
                        self.succeed(&msg)
                    }
                    None => {
                        // The commit pod exits 0 only once the result is committed: the job
                        // succeeded, and only the count is unknown.
                        let out = self.manifest_url();
                        let why = lost_report(&reports.lost);
                        self.status.output = Some(out.clone());
                        self.status.output_rows = None;
                        let msg =
                            format!("committed {out}, but {why}, so its row count is unknown");
                        self.condition("ReportLost", true, "ReportLost", &msg);
                        self.succeed(&msg)
                    }
                }
            }
            JobState::Failed(why) => {
                let msg = self.failure_message(&job, "commit", &why);
                self.fail("CommitFailed", msg)
            }
            _ => self.running_child(&job, "commit", Phase::Running, "Committing"),
        }
    }

    /// The URL of the output's manifest, from the spec.
    fn manifest_url(&self) -> String {
        let spec = &self.dj().spec;
        let url = spec.storage.as_ref().map(|s| s.url.as_str()).unwrap_or("");
        let main = spec.main_output();
        let path = main.path.trim_matches('/');
        format!("{}/{path}/_SUCCESS", url.trim_end_matches('/'))
    }

    /// A child Job that is neither complete nor failed: keep its suspension in line with the
    /// spec, and watch that its pods start.
    fn running_child(&mut self, job: &str, what: &str, phase: Phase, reason: &str) -> Next {
        self.sync_suspend(job);
        if self.suspended() {
            return self.set_suspended();
        }
        let wake = match self.check_startup(job, what) {
            Ok(wake) => wake,
            Err(next) => return next,
        };
        let next = self.set_running(phase, reason);
        match (next, wake) {
            (Some(n), Some(w)) => Some(n.min(w)),
            (n, w) => n.or(w),
        }
    }

    /// Pods that cannot start: the `Stalled` condition names why at once, and after the
    /// startup deadline the job fails with it. Ok: when to look again; Err: the job failed.
    fn check_startup(&mut self, job: &str, what: &str) -> Result<Next, Next> {
        let children = self.children();
        let stuck = children.stuck(job).or_else(|| {
            let created = children.created(job)?;
            let podless = children.podless().iter().any(|j| j == job);
            let waited = secs(self.o.now.duration_since(created));
            (podless && waited >= NO_POD_GRACE).then(|| crate::pods::Stuck {
                reason: "NoPods".into(),
                message: format!(
                    "Job {job} has had no pod for {}s (a ResourceQuota, LimitRange or admission \
                     webhook may refuse them: kubectl describe job {job})",
                    waited.as_secs()
                ),
                since: created,
            })
        });
        let podless = children.podless().iter().any(|j| j == job);
        let Some(stuck) = stuck else {
            self.clear("Stalled", "PodsStarted");
            // A Job that has no pod yet, for no known reason: look again soon, for its Events.
            return Ok(podless.then_some(PODLESS_RECHECK));
        };
        let limit = self.dj().spec.startup_deadline_seconds();
        let until = stuck.since + SignedDuration::from_secs(limit);
        let msg = format!("{what}: {}: {}", stuck.reason, stuck.message.trim());
        if self.o.now >= until {
            self.stop_children();
            let msg =
                format!("{msg} (its pods could not start within startupDeadlineSeconds, {limit}s)");
            return Err(self.fail(&stuck.reason, msg));
        }
        let same = self
            .condition_is("Stalled")
            .is_some_and(|c| c.message.as_deref() == Some(msg.as_str()));
        if !same {
            self.event(true, &stuck.reason, msg.clone());
        }
        self.condition("Stalled", true, &stuck.reason, &msg);
        Ok(Some(
            secs(until.duration_since(self.o.now)) + Duration::from_millis(200),
        ))
    }

    /// Task counts of stage `i` from its Job: completions are groups, whose sizes the
    /// operator knows from the task and group counts alone.
    fn count(&mut self, i: usize, job: &str, state: &JobState) {
        let reports = self.children().reports::<TaskReport>(job).read;
        let stage = &mut self.status.stages[i];
        let size =
            |g: u32| kask_api::groups::group_tasks(stage.tasks, stage.groups, g).len() as u32;
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
        stage.spilled_bytes = reports.iter().map(|r| r.spilled_bytes).sum();
    }

    fn finish_stage(&mut self, i: usize, job: &str) {
        let status = self
            .children()
            .job(job)
            .and_then(|j| j.status.clone())
            .unwrap_or_default();
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
        self.act(Act::StageFinished {
            stage: name.clone(),
            tasks,
            failed,
            seconds,
        });
        self.event(
            false,
            "StageSucceeded",
            format!("stage {name}: {tasks} tasks in {seconds:.1}s"),
        );
    }

    /// A failure message naming the step, the task group, the pod and the error line.
    fn failure_message(&self, job: &str, step: &str, why: &str) -> String {
        match self.children().failure(job) {
            Some((pod, index, error)) if step != "plan" && step != "commit" => {
                format!("stage {step}, task group {index} (pod {pod}): {error}")
            }
            Some((pod, _, error)) => format!("{step} (pod {pod}): {error}"),
            None if step != "plan" && step != "commit" && step != "cleanup" => {
                format!("stage {step} (Job {job}): {why}")
            }
            None => format!("{step} (Job {job}): {why}"),
        }
    }

    /// Suspends or resumes an unfinished child Job to match `spec.suspend`. A queued job's
    /// Jobs are resumed by Kueue alone, when it admits them, and suspended by it when it
    /// preempts them: the `Queued` condition says which wait.
    fn sync_suspend(&mut self, job: &str) {
        let want = self.suspended();
        let Some(j) = self.children().job(job) else {
            return;
        };
        let has = j.spec.as_ref().and_then(|s| s.suspend).unwrap_or(false);
        if want == has || job_state(j).finished() {
            return;
        }
        if self.queued() {
            // Kueue would undo either patch: it resumes what it admitted and suspends what
            // it has not (or has preempted).
            if has {
                self.waiting_for_admission(job);
            }
            return;
        }
        self.act(Act::Suspend {
            job: job.to_string(),
            suspend: want,
        });
        if want {
            self.event(
                false,
                "Suspended",
                format!("suspended {job}; resuming continues from here"),
            );
        } else {
            self.event(false, "Resumed", format!("resumed {job}"));
        }
    }

    /// The Kueue LocalQueue the job was submitted to, if any.
    fn queue(&self) -> Option<&str> {
        self.dj()
            .labels()
            .get(names::LABEL_QUEUE)
            .map(String::as_str)
    }

    fn queued(&self) -> bool {
        self.queue().is_some()
    }

    /// A child Job of a queued job waits for Kueue: the `Queued` condition names it.
    fn waiting_for_admission(&mut self, job: &str) {
        let queue = self.queue().unwrap_or_default().to_string();
        let msg = format!("Job {job} waits for Kueue to admit it (queue {queue})");
        let same = self
            .condition_is("Queued")
            .is_some_and(|c| c.message.as_deref() == Some(msg.as_str()));
        if !same {
            self.event(false, "Queued", msg.clone());
        }
        self.condition("Queued", true, "WaitingForAdmission", &msg);
        self.awaiting_admission = true;
    }

    /// Deletes the DaskJob's unfinished Jobs, which stops their pods.
    fn stop_children(&mut self) {
        let names: Vec<String> = self
            .children()
            .jobs()
            .filter(|j| !job_state(j).finished() && j.metadata.deletion_timestamp.is_none())
            .map(ResourceExt::name_any)
            .collect();
        for n in names {
            self.act(Act::Delete(n));
        }
    }

    fn progress(&self) -> String {
        let done: u32 = self.status.stages.iter().map(|s| s.succeeded).sum();
        let all: u32 = self.status.stages.iter().map(|s| s.tasks).sum();
        format!("{done}/{all}")
    }

    fn set_running(&mut self, phase: Phase, reason: &str) -> Next {
        self.status.phase = Some(phase);
        self.status.progress = Some(self.progress());
        self.condition("Suspended", false, reason, "");
        self.condition("Complete", false, reason, "");
        Some(RESYNC)
    }

    fn set_suspended(&mut self) -> Next {
        if self.status.phase != Some(Phase::Suspended) {
            self.event(false, "Suspended", "spec.suspend is true: no pods run");
        }
        self.status.phase = Some(Phase::Suspended);
        for s in &mut self.status.stages {
            s.running = 0;
        }
        self.status.progress = Some(self.progress());
        self.clear("Stalled", "Suspended");
        self.condition("Suspended", true, "Suspended", "spec.suspend is true");
        None
    }

    fn succeed(&mut self, msg: &str) -> Next {
        self.status.phase = Some(Phase::Succeeded);
        self.end();
        self.status.progress = Some(self.progress());
        self.clear("Stalled", "Succeeded");
        self.condition("Complete", true, "Succeeded", msg);
        self.condition("Suspended", false, "Succeeded", "");
        self.event(false, "Succeeded", msg);
        self.ttl_next()
    }

    fn fail(&mut self, reason: &str, message: String) -> Next {
        self.status.phase = Some(Phase::Failed);
        self.end();
        self.status.message = Some(message.clone());
        for s in &mut self.status.stages {
            s.running = 0;
        }
        self.status.progress = Some(self.progress());
        self.clear("Stalled", reason);
        self.condition("Failed", true, reason, &message);
        self.condition("Complete", false, reason, "");
        self.event(true, reason, message);
        self.ttl_next()
    }

    /// The end time and the duration from the start (none when the job never started).
    fn end(&mut self) {
        self.status.completion_time = Some(self.now());
        self.status.duration = self
            .status
            .start_time
            .as_deref()
            .and_then(|s| s.parse::<Timestamp>().ok())
            .map(|start| human_duration(self.o.now.duration_since(start)));
    }

    fn ttl_next(&self) -> Next {
        let ttl = self.dj().spec.ttl_seconds_after_finished?;
        Some(Duration::from_secs(u64::try_from(ttl).unwrap_or(0)) + Duration::from_millis(200))
    }

    /// A finished job: no Job of it runs on (one created from a stale view of the job would),
    /// and it is deleted once its TTL has passed.
    fn after_end(&mut self) -> Next {
        self.stop_children();
        let ttl = self.dj().spec.ttl_seconds_after_finished?;
        let end = self.time_or_now(self.status.completion_time.as_deref());
        let expiry = end + SignedDuration::from_secs(ttl);
        if self.o.now >= expiry {
            self.act(Act::DeleteSelf);
            return None;
        }
        Some(secs(expiry.duration_since(self.o.now)) + Duration::from_millis(200))
    }

    /// A deleted job: stop its pods, remove its scratch prefix with a cleanup pod (unless the
    /// commit already did), then let it go. Deletion always ends: a cleanup pod that cannot
    /// run within [`CLEANUP_LIMIT`] is given up on, with a warning.
    fn finalize(&mut self) -> Next {
        if !self.dj().finalizers().iter().any(|f| f == FINALIZER) {
            return None;
        }
        let needs_cleanup = self.status.phase != Some(Phase::Succeeded)
            && self.dj().spec.storage.is_some()
            && self.status.start_time.is_some();
        if !needs_cleanup {
            self.act(Act::RemoveFinalizer);
            return None;
        }
        let job = names::cleanup_job(&self.base);
        let deleted = self
            .dj()
            .metadata
            .deletion_timestamp
            .as_ref()
            .map_or(self.o.now, |t| t.0);
        let waited = secs(self.o.now.duration_since(deleted));
        let scratch = self
            .dj()
            .spec
            .scratch_prefix(self.dj().uid().as_deref().unwrap_or(""));
        match self.children().job(&job).map(job_state) {
            None if waited < CLEANUP_LIMIT => {
                self.stop_children();
                // A worker still terminating can finish one more upload: cleaning before it is
                // gone would leave that upload behind.
                if self.children().live_pods(&job) > 0 && waited < WORKERS_GONE_LIMIT {
                    return Some(Duration::from_secs(2));
                }
                self.act(Act::Create {
                    step: Step::Cleanup,
                    suspend: false,
                });
                return Some(Duration::from_secs(10));
            }
            None => {
                self.event(
                    true,
                    "CleanupSkipped",
                    format!("no cleanup pod ran; scratch data may remain under {scratch}"),
                );
            }
            Some(JobState::Complete) => {}
            Some(JobState::Failed(why)) => {
                // Deletion is not held hostage by a store that cannot be reached.
                let msg = self.failure_message(&job, "cleanup", &why);
                self.event(
                    true,
                    "CleanupFailed",
                    format!("scratch data may remain under {scratch}: {msg}"),
                );
            }
            Some(_) => {
                // Stuck for a minute is enough: nobody waits on a deletion for long.
                let stuck = self
                    .children()
                    .stuck(&job)
                    .filter(|s| secs(self.o.now.duration_since(s.since)) >= CLEANUP_STUCK);
                if waited < CLEANUP_LIMIT && stuck.is_none() {
                    return Some(Duration::from_secs(10));
                }
                let why = stuck.map_or_else(
                    || format!("it did not finish within {}s", CLEANUP_LIMIT.as_secs()),
                    |s| format!("{}: {}", s.reason, s.message),
                );
                self.act(Act::Delete(job.clone()));
                self.event(
                    true,
                    "CleanupSkipped",
                    format!("the cleanup pod could not run ({why}); scratch data may remain under {scratch}"),
                );
            }
        }
        self.act(Act::RemoveFinalizer);
        None
    }
}

/// Why no report was read, for a message.
/// The stages stage `i` waits for: those its plan names, or the one before it.
fn after(stage: &StageStatus, i: usize) -> Vec<usize> {
    match &stage.after {
        Some(a) => a.iter().map(|&a| a as usize).filter(|&a| a < i).collect(),
        None => i.checked_sub(1).into_iter().collect(),
    }
}

fn lost_report(lost: &[(String, String)]) -> String {
    match lost.first() {
        Some((pod, why)) => format!("its pod {pod} left {why}"),
        None => "its pod is gone, and its report with it".into(),
    }
}

/// A duration as `kubectl` prints one: `45s`, `3m12s`, `2h5m`, `3d4h` (whole units, the two
/// largest).
pub fn human_duration(d: SignedDuration) -> String {
    let s = d.as_secs().max(0);
    let (days, hours, minutes, seconds) = (s / 86_400, s / 3_600 % 24, s / 60 % 60, s % 60);
    if days > 0 {
        format!("{days}d{hours}h")
    } else if hours > 0 {
        format!("{hours}h{minutes}m")
    } else if minutes > 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{seconds}s")
    }
}
