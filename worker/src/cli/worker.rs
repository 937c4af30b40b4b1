//! `kask worker ...`: the entrypoint of the pods the operator creates. Each command prints its
//! report and leaves it in the pod's termination message, where the operator reads it.

use std::path::PathBuf;

use clap::Subcommand;
use serde::Serialize;

use kask_api::report::{FailureReport, termination_message};
use kask_worker::Error;
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

fn leave<T: Serialize>(report: &T) {
    let msg = termination_message(report);
    println!("{msg}");
    if let Some(path) = termination_log()
        && let Err(e) = std::fs::write(&path, &msg)
    {
        eprintln!(
            "warning: cannot write the termination message to {}: {e}",
            path.display()
        );
    }
}

/// Runs a worker command.
pub async fn dispatch(what: WorkerCommand) -> Result<(), Error> {
    let result = run(what).await;
    if let Err(e) = &result {
        leave(&FailureReport {
            error: e.to_string().trim_end().to_string(),
            task: None,
            retryable: e.is_retryable(),
        });
    }
    result
}

async fn run(what: WorkerCommand) -> Result<(), Error> {
    let spec = pod::spec_from_env()?;
    match what {
        WorkerCommand::Plan { job_id } => leave(&pod::plan(&spec, &job_id).await?),
        WorkerCommand::Run { plan, stage, index } => {
            leave(&pod::run_stage(&spec, &plan, &stage, index).await?)
        }
        WorkerCommand::Commit { plan } => leave(&pod::commit(&spec, &plan).await?),
        WorkerCommand::Cleanup { job_id } => leave(&pod::cleanup(&spec, &job_id).await?),
    }
    Ok(())
}
