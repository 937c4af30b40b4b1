//! `kask worker ...`: the entrypoint of the pods the operator creates. Each command prints its
//! report and leaves it in the pod's termination message, where the operator reads it.

use std::path::PathBuf;

use clap::Subcommand;
use serde::Serialize;

use kask_api::report::{FailureReport, PlanReport, fitted, termination_message};
use kask_worker::Error;
use kask_worker::history;
use kask_worker::pod;

#[derive(Subcommand, Debug)]
pub enum WorkerCommand {
    /// List the inputs, plan the job and write the plan under its scratch prefix.
    Plan {
        /// The job's id (the DaskJob's UID), naming its scratch prefix.
        #[arg(long, env = "KASK_JOB_ID")]
        job_id: String,
    },
    /// Run one task group of a stage.
    Run {
        /// The plan's URL, from the plan pod's report.
        #[arg(long)]
        plan: String,
        /// The stage, by name or index.
        #[arg(long)]
        stage: String,
        /// The task group (an Indexed Job's completion index).
        #[arg(long, env = "JOB_COMPLETION_INDEX")]
        index: usize,
    },
    /// Commit the output (`_SUCCESS` manifest) and remove the scratch prefix.
    Commit {
        /// The plan's URL.
        #[arg(long)]
        plan: String,
        /// The job's id (the DaskJob's UID), to recognise its result once committed.
        #[arg(long, env = "KASK_JOB_ID")]
        job_id: String,
    },
    /// Remove a deleted job's scratch prefix.
    Cleanup {
        /// The job's id (the DaskJob's UID).
        #[arg(long, env = "KASK_JOB_ID")]
        job_id: String,
    },
}

/// Where Kubernetes picks up a container's termination message.
fn termination_log() -> Option<PathBuf> {
    match std::env::var_os("KASK_TERMINATION_LOG") {
        Some(p) if p.is_empty() => None,
        Some(p) => Some(PathBuf::from(p)),
        None => Some(PathBuf::from("/dev/termination-log")).filter(|p| p.exists()),
    }
}

/// Prints a report and leaves it where Kubernetes keeps it as the termination message.
fn leave(msg: &str) {
    println!("{msg}");
    if let Some(path) = termination_log()
        && let Err(e) = std::fs::write(&path, msg)
    {
        eprintln!(
            "warning: cannot write the termination message to {}: {e}",
            path.display()
        );
    }
}

/// Leaves a success report whole: a report cut short would read as a failure, or as no report.
fn leave_success<T: Serialize>(report: &T) -> Result<(), Error> {
    let msg = fitted(report).ok_or_else(|| {
        Error::spec(
            "spec.output.path",
            "is too long for the commit's report (4 KiB with the store's URL)",
        )
    })?;
    leave(&msg);
    Ok(())
}

/// Leaves the plan's report, summarised (stages by index) if the names make it too long.
fn leave_plan(report: &PlanReport) -> Result<(), Error> {
    let msg = fitted(report)
        .or_else(|| fitted(&report.summarised()))
        .ok_or_else(|| {
            Error::spec(
                "spec",
                format!(
                    "the plan has {} stages, more than a pod can report to the operator \
                     (a 4 KiB termination message); split the job",
                    report.stages.len()
                ),
            )
        })?;
    leave(&msg);
    Ok(())
}

/// Resolves when the process gets SIGTERM. In a pod, `kask` is PID 1, which the kernel
/// shields from signals it has no handler for: without this, a deleted pod (a suspended or
/// deleted job, a drained node) would keep running to the end of its grace period.
async fn terminated() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(e) => {
            eprintln!("warning: cannot watch for SIGTERM: {e}");
            std::future::pending::<()>().await;
        }
    }
}

/// Runs a worker command; SIGTERM stops it at once. Whatever the task group had not
/// committed is simply not there: the replacement pod runs it again.
pub async fn dispatch(what: WorkerCommand) -> Result<(), Error> {
    let role = match &what {
        WorkerCommand::Plan { .. } => "plan".to_string(),
        WorkerCommand::Run { stage, index, .. } => format!("{stage}/{index}"),
        WorkerCommand::Commit { .. } => "commit".to_string(),
        WorkerCommand::Cleanup { .. } => "cleanup".to_string(),
    };
    // The pod's name (its hostname) names its lane and its log in the job's history.
    let pod = std::env::var("HOSTNAME").unwrap_or_else(|_| format!("worker-{role}"));
    history::set_runner(&pod, &role);
    history::logs::keep();
    // From the start, so that the pod's reported peak memory covers all it did.
    history::sampler::sampler();
    let result = tokio::select! {
        r = run(what) => r,
        () = terminated() => Err(Error::Stopped(
            "SIGTERM (the pod was deleted, or its job suspended); uncommitted tasks run again in the next pod".into(),
        )),
    };
    if let Err(e) = &result {
        leave(&termination_message(&FailureReport {
            error: e.to_string().trim_end().to_string(),
            task: None,
            retryable: e.is_retryable(),
        }));
    }
    let lasting = match &result {
        Err(e) if !e.is_retryable() => Some(e.to_string().trim_end().to_string()),
        _ => None,
    };
    history::finish_process(lasting).await;
    result
}

async fn run(what: WorkerCommand) -> Result<(), Error> {
    let spec = pod::spec_from_env()?;
    match what {
        WorkerCommand::Plan { job_id } => leave_plan(&pod::plan(&spec, &job_id).await?),
        WorkerCommand::Run { plan, stage, index } => {
            leave_success(&pod::run_stage(&spec, &plan, &stage, index).await?)
        }
        WorkerCommand::Commit { plan, job_id } => {
            let mut report = pod::commit(&spec, &job_id, &plan).await?;
            if fitted(&report).is_none() {
                // A graph with many outputs: the main one's manifest is enough to report.
                report.outputs.clear();
            }
            leave_success(&report)
        }
        WorkerCommand::Cleanup { job_id } => leave_success(&pod::cleanup(&spec, &job_id).await?),
    }
}
