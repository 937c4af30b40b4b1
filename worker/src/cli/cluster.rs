//! `kask submit`, `kask status` and `kask logs`: DaskJobs on the cluster of the current
//! kubeconfig.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams, PostParams};
use kube::{Client, ResourceExt};

use super::human_bytes;
use super::progress::stage_bar_style;
use kask_api::{DaskJob, DaskJobStatus, Phase};
use kask_worker::Error;

pub(super) fn kube_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::spec("kubernetes", format!("{what}: {e}"))
}

pub(super) async fn client() -> Result<Client, Error> {
    Client::try_default()
        .await
        .map_err(|e| kube_err("cannot reach the cluster of the current kubeconfig", e))
}

async fn api(namespace: Option<&str>) -> Result<(Api<DaskJob>, Client), Error> {
    let client = client().await?;
    let api = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::default_namespaced(client.clone()),
    };
    Ok((api, client))
}

/// `kask submit`: creates the DaskJob, and with `watch` follows it to its end.
pub async fn submit(
    job: &DaskJob,
    file: &Path,
    namespace: Option<&str>,
    watch: bool,
) -> Result<(), Error> {
    if job.spec.storage.is_none() {
        return Err(Error::spec(
            format!("{}: spec.storage", file.display()),
            "a job on Kubernetes needs a storage section (kask run uses the job file's directory)",
        ));
    }
    let (api, _) = api(namespace).await?;
    let created = api
        .create(&PostParams::default(), job)
        .await
        .map_err(|e| match e {
            kube::Error::Api(ref status) if status.code == 409 => {
                let name = job.name_any();
                let ns = namespace.map(|n| format!(" -n {n}")).unwrap_or_default();
                Error::spec(
                    format!("{}: metadata.name", file.display()),
                    format!(
                        "a DaskJob named {name} already exists here, and a job's spec cannot change once created; \
                         see it with `kask status {name}{ns}`, then `kask delete {name}{ns}` and submit again, \
                         or give this job another metadata.name"
                    ),
                )
            }
            other => kube_err(&format!("creating daskjob/{}", job.name_any()), other),
        })?;
    println!(
        "daskjob/{} created in namespace {}",
        created.name_any(),
        created.namespace().unwrap_or_default()
    );
    if watch {
        follow(&api, &created.name_any()).await
    } else {
        Ok(())
    }
}

/// `kask list`: the DaskJobs of a namespace (or of every one), one line each, as
/// `kubectl get daskjobs` shows them.
pub async fn list(namespace: Option<&str>, all: bool) -> Result<(), Error> {
    let api: Api<DaskJob> = if all {
        Api::all(client().await?)
    } else {
        api(namespace).await?.0
    };
    let jobs = api
        .list(&Default::default())
        .await
        .map_err(|e| kube_err("listing daskjobs", e))?;
    let rows: Vec<Vec<String>> = jobs
        .items
        .iter()
        .map(|dj| {
            let s = dj.status.clone().unwrap_or_default();
            let mut row = vec![
                dj.name_any(),
                phase_name(&s),
                s.progress.clone().unwrap_or_else(|| "-".into()),
                s.output_rows.map_or_else(|| "-".into(), |r| r.to_string()),
                s.duration.clone().unwrap_or_else(|| "-".into()),
                s.message.clone().unwrap_or_default(),
            ];
            if all {
                row.insert(0, dj.namespace().unwrap_or_default());
            }
            row
        })
        .collect();
    if rows.is_empty() {
        println!("no DaskJobs");
        return Ok(());
    }
    let mut header = vec!["NAME", "PHASE", "PROGRESS", "ROWS", "DURATION", "MESSAGE"];
    if all {
        header.insert(0, "NAMESPACE");
    }
    print!("{}", table(&header, &rows));
    Ok(())
}

/// Columns padded to their widest cell; the last one is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}   ", w = widths[i]));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// `kask delete`: deletes a DaskJob; the operator stops its pods and removes its scratch
/// data (a committed result stays).
pub async fn delete(name: &str, namespace: Option<&str>) -> Result<(), Error> {
    let (api, _) = api(namespace).await?;
    api.delete(name, &Default::default())
        .await
        .map_err(|e| match e {
            kube::Error::Api(ref status) if status.code == 404 => Error::spec(
                "kubernetes",
                format!("no DaskJob named {name} in this namespace (`kask list` shows them)"),
            ),
            other => kube_err(&format!("deleting daskjob/{name}"), other),
        })?;
    println!(
        "daskjob/{name} deleted (its pods stop and its scratch data is removed; a committed result stays)"
    );
    Ok(())
}

/// Polls the job's status, drawing a bar per stage, until it ends; fails with the status
/// message when the job fails.
async fn follow(api: &Api<DaskJob>, name: &str) -> Result<(), Error> {
    let terminal = std::io::stderr().is_terminal();
    let multi = MultiProgress::new();
    let style = stage_bar_style();
    let mut bars: Vec<ProgressBar> = Vec::new();
    let mut last_line = String::new();
    let mut last_stalled = String::new();
    loop {
        let dj = api
            .get(name)
            .await
            .map_err(|e| kube_err(&format!("reading daskjob/{name}"), e))?;
        let status = dj.status.unwrap_or_default();
        if terminal {
            for (i, s) in status.stages.iter().enumerate() {
                if bars.len() <= i {
                    let bar = multi.add(ProgressBar::new(u64::from(s.tasks)));
                    bar.set_style(style.clone());
                    bar.set_prefix(s.name.clone());
                    bars.push(bar);
                }
                bars[i].set_position(u64::from(s.succeeded));
                if s.running > 0 {
                    bars[i].set_message(format!("({} running)", s.running));
                } else {
                    bars[i].set_message(String::new());
                }
            }
        } else {
            let line = format!(
                "{}: {} {}",
                name,
                phase_name(&status),
                status.progress.clone().unwrap_or_default()
            );
            if line != last_line {
                eprintln!("{line}");
                last_line = line;
            }
        }
        // Pods that cannot start: said once per reason, the bars go on.
        let stalled = stalled(&status).unwrap_or_default();
        if !stalled.is_empty() && stalled != last_stalled {
            multi.suspend(|| eprintln!("daskjob/{name} stalled: {stalled}"));
        }
        last_stalled = stalled;
        match status.phase {
            Some(Phase::Succeeded) => {
                for b in &bars {
                    b.finish();
                }
                println!(
                    "daskjob/{name} succeeded: {}",
                    output_summary(&status).unwrap_or_default()
                );
                return Ok(());
            }
            Some(Phase::Failed) => {
                for b in &bars {
                    b.abandon();
                }
                return Err(Error::spec(
                    format!("daskjob/{name}"),
                    format!("failed: {}", status.message.unwrap_or_default()),
                ));
            }
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// What the job wrote, from its status; the row count only when its report gave one.
fn output_summary(status: &DaskJobStatus) -> Option<String> {
    let out = status.output.as_deref()?;
    Some(match status.output_rows {
        Some(rows) => format!("wrote {rows} rows to {out}"),
        None => format!("committed {out} (row count unknown: the commit's report was lost)"),
    })
}

/// The `Stalled` condition's reason and message, when it is True: why pods cannot start.
pub(super) fn stalled(status: &DaskJobStatus) -> Option<String> {
    let c = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled" && c.status == "True")?;
    Some(c.message.clone().unwrap_or_default())
}

pub(super) fn phase_name(status: &DaskJobStatus) -> String {
    status
        .phase
        .map(|p| format!("{p:?}"))
        .unwrap_or_else(|| "Pending".into())
}

/// `kask status`: the job's status as a table.
pub async fn status(name: &str, namespace: Option<&str>) -> Result<(), Error> {
    let (api, _) = api(namespace).await?;
    let dj = api
        .get(name)
        .await
        .map_err(|e| kube_err(&format!("reading daskjob/{name}"), e))?;
    let s = dj.status.clone().unwrap_or_default();
    println!("Name:       {}", dj.name_any());
    println!("Namespace:  {}", dj.namespace().unwrap_or_default());
    println!("Phase:      {}", phase_name(&s));
    println!(
        "Progress:   {} tasks",
        s.progress.clone().unwrap_or_else(|| "-".into())
    );
    if let Some(t) = &s.start_time {
        println!("Started:    {t}");
    }
    if let Some(t) = &s.completion_time {
        println!("Finished:   {t}");
    }
    if let Some(o) = output_summary(&s) {
        println!("Output:     {o}");
    }
    if let Some(m) = &s.message {
        println!("Message:    {m}");
    }
    if let Some(why) = stalled(&s) {
        println!("Stalled:    {why}");
    }
    if let Some(image) = &s.worker_image {
        println!("Image:      {image}");
    }
    if !s.stages.is_empty() {
        println!();
        println!(
            "{:<22} {:>7} {:>7} {:>7} {:>6} {:>12} {:>12} {:>10} {:>10} {:>8} {:>8} {:>8}",
            "STAGE",
            "TASKS",
            "DONE",
            "RUNNING",
            "FAILED",
            "ROWS IN",
            "ROWS OUT",
            "BYTES IN",
            "CPU-S",
            "PEAK MEM",
            "SPILLED",
            "TIME"
        );
        for st in &s.stages {
            println!(
                "{:<22} {:>7} {:>7} {:>7} {:>6} {:>12} {:>12} {:>10} {:>10.1} {:>8} {:>8} {:>8}",
                st.name,
                st.tasks,
                st.succeeded,
                st.running,
                st.failed,
                st.rows_read,
                st.rows_written,
                human_bytes(st.bytes_read),
                st.cpu_seconds,
                human_bytes(st.peak_memory_bytes),
                human_bytes(st.spilled_bytes),
                st.seconds
                    .map(|t| format!("{t:.1}s"))
                    .unwrap_or_else(|| "-".into()),
            );
        }
    }
    Ok(())
}

/// `kask logs`: the logs of the pods that ran the job, or one stage, or one task's group.
pub async fn logs(
    name: &str,
    namespace: Option<&str>,
    stage: Option<&str>,
    task: Option<u32>,
) -> Result<(), Error> {
    let (api, client) = api(namespace).await?;
    let dj = api
        .get(name)
        .await
        .map_err(|e| kube_err(&format!("reading daskjob/{name}"), e))?;
    let ns = dj.namespace().unwrap_or_default();
    let uid = dj.uid().unwrap_or_default();
    let status = dj.status.clone().unwrap_or_default();
    let mut selector = format!("kask.dev/job-uid={uid}");
    if let Some(stage) = stage {
        selector.push_str(&format!(",kask.dev/stage={stage}"));
    }
    // A task runs in the pod of its task group.
    let group = match (task, stage) {
        (Some(t), Some(stage)) => {
            let st = status
                .stages
                .iter()
                .find(|s| s.name == stage)
                .ok_or_else(|| {
                    Error::spec("--stage", format!("daskjob/{name} has no stage {stage:?}"))
                })?;
            let g = (0..st.groups)
                .find(|g| kask_api::groups::group_tasks(st.tasks, st.groups, *g).contains(&t))
                .ok_or_else(|| {
                    Error::spec("--task", format!("stage {stage} has {} tasks", st.tasks))
                })?;
            Some(g.to_string())
        }
        (Some(_), None) => return Err(Error::spec("--task", "needs --stage")),
        _ => None,
    };
    let pods: Api<Pod> = Api::namespaced(client, &ns);
    let mut list = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| kube_err("listing the job's pods", e))?
        .items;
    list.retain(|p| {
        group.as_deref().is_none_or(|g| {
            p.annotations()
                .get("batch.kubernetes.io/job-completion-index")
                .map(String::as_str)
                == Some(g)
        })
    });
    list.sort_by_key(|p| p.metadata.creation_timestamp.clone());
    if list.is_empty() {
        return Err(Error::spec(
            format!("daskjob/{name}"),
            "no pods found (they are deleted with the job's Jobs)",
        ));
    }
    for p in list {
        let pod = p.name_any();
        println!("==> pod/{pod} <==");
        match pods.logs(&pod, &LogParams::default()).await {
            Ok(text) => print!("{text}"),
            Err(e) => println!("(no logs: {e})"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::table;

    #[test]
    fn a_table_pads_every_column_but_the_last_to_its_widest_cell() {
        let rows = vec![
            vec![
                "groupby".to_string(),
                "Succeeded".to_string(),
                "".to_string(),
            ],
            vec![
                "a".to_string(),
                "Failed".to_string(),
                "s0: bad csv".to_string(),
            ],
        ];
        assert_eq!(
            table(&["NAME", "PHASE", "MESSAGE"], &rows),
            "NAME      PHASE       MESSAGE\ngroupby   Succeeded\na         Failed      s0: bad csv\n"
        );
    }
}
