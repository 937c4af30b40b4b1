//! `kask report PATH`: a job's history, read from its storage, as one HTML file.

use std::path::{Path, PathBuf};

use kask_worker::Error;
use kask_worker::history::read::{locate, read};
use kask_worker::store::Store;

/// Writes the report of the job whose result (or failed run) is in the output folder of
/// `storage`'s `output`, or of job `job_id` there, to `out` (default: `<job>-report.html` in
/// the current folder); returns the file written.
pub async fn report(
    storage: &kask_api::Storage,
    output: &str,
    job_id: Option<&str>,
    out: Option<PathBuf>,
) -> Result<PathBuf, Error> {
    let store = Store::from_storage(storage)?;
    let dir = locate(&store, output, job_id).await?;
    let history = read(&store, &dir).await?;
    let page = kask_report::render(&history);
    let path = out.unwrap_or_else(|| default_name(&history));
    std::fs::write(&path, page)
        .map_err(|e| Error::spec("--out", format!("cannot write {}: {e}", path.display())))?;
    Ok(path)
}

/// `<job name>-report.html`, the name made safe for a file.
fn default_name(h: &kask_api::history::JobHistory) -> PathBuf {
    let name = h
        .job
        .as_ref()
        .map(|j| {
            if j.job.is_empty() {
                j.job_id.clone()
            } else {
                j.job.clone()
            }
        })
        .unwrap_or_else(|| "kask".into());
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    Path::new(&format!("{safe}-report.html")).to_path_buf()
}

/// Prints the logs the pods of a job uploaded to its history (`kask logs PATH`): every pod's,
/// or those of the pods that ran stage `stage` (and its task `task`).
pub async fn logs(
    storage: &kask_api::Storage,
    output: &str,
    job_id: Option<&str>,
    stage: Option<&str>,
    task: Option<u32>,
) -> Result<(), Error> {
    let store = Store::from_storage(storage)?;
    let dir = locate(&store, output, job_id).await?;
    let history = read(&store, &dir).await?;
    if task.is_some() && stage.is_none() {
        return Err(Error::spec("--task", "needs --stage"));
    }
    let wanted = |runner: &str| -> bool {
        let Some(stage) = stage else { return true };
        history.attempts.iter().any(|a| {
            a.runner == runner && a.stage_name == stage && task.is_none_or(|t| a.task == t as usize)
        }) || (task.is_none()
            && history
                .runners
                .iter()
                .any(|r| r.runner == runner && r.role.split('/').next() == Some(stage)))
    };
    let shown: Vec<&(String, String)> = history.logs.iter().filter(|(r, _)| wanted(r)).collect();
    if shown.is_empty() {
        let what = match (stage, task) {
            (Some(s), Some(t)) => format!(" of task {t} of stage {s}"),
            (Some(s), None) => format!(" of stage {s}"),
            _ => String::new(),
        };
        return Err(Error::spec(
            "PATH",
            format!("the history at {} holds no pod log{what}", history.location),
        ));
    }
    for (runner, log) in shown {
        println!("==> {runner} <==");
        print!("{log}");
        if !log.ends_with('\n') {
            println!();
        }
    }
    Ok(())
}
