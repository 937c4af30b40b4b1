//! `kask-operator`: the DaskJob controller. It turns each DaskJob into a plan Job, one Indexed
//! Job per stage and a commit Job, and keeps the DaskJob's status current from their state and
//! their pods' termination messages. It never reads data or Secrets.

mod children;
mod conditions;
mod error;
mod http;
mod jobs;
mod metrics;
mod names;
mod reconcile;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{Controller, watcher};
use kube::{Api, Client};
use tracing::{error, info, warn};

use kask_api::DaskJob;
use metrics::Metrics;
use reconcile::{Ctx, error_policy, reconcile};

/// The Kask controller for DaskJob resources.
#[derive(Parser, Debug)]
#[command(name = "kask-operator", version, about)]
struct Args {
    /// The worker image for jobs that do not name one in spec.image.
    #[arg(long, env = "KASK_WORKER_IMAGE", default_value = concat!("localhost/kask:", env!("CARGO_PKG_VERSION")))]
    worker_image: String,
    /// Address of the /metrics, /healthz and /readyz endpoints.
    #[arg(long, env = "KASK_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    http_addr: SocketAddr,
    /// Log format: json (one object per line, with job, stage and task fields) or text.
    #[arg(long, env = "KASK_LOG_FORMAT", default_value = "json")]
    log_format: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("KASK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    if args.log_format == "json" {
        logs.json().init();
    } else {
        logs.init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!(error = %e, "the operator stopped");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::try_default().await?;
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let health = http::Health {
        metrics: Arc::clone(&metrics),
        ready: Arc::clone(&ready),
    };
    let addr = args.http_addr;
    tokio::spawn(async move {
        if let Err(e) = http::serve(addr, health).await {
            error!(error = %e, %addr, "the HTTP endpoints stopped");
        }
    });

    let reporter = Reporter {
        controller: "kask-operator".into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        recorder: Recorder::new(client.clone(), reporter),
        metrics,
        worker_image: args.worker_image.clone(),
    });
    let djs: Api<DaskJob> = Api::all(client.clone());
    // Refuse to start against a cluster without the CRD, with a message that says so.
    if let Err(e) = djs.list(&kube::api::ListParams::default().limit(1)).await {
        return Err(format!(
            "cannot list DaskJobs (is the CRD installed? kubectl apply -f crds/): {e}"
        )
        .into());
    }
    let jobs: Api<Job> = Api::all(client.clone());
    info!(worker_image = %args.worker_image, "watching DaskJobs in all namespaces");
    ready.store(true, Ordering::Relaxed);
    Controller::new(djs, watcher::Config::default())
        .owns(
            jobs,
            watcher::Config::default().labels(names::LABEL_JOB_UID),
        )
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                warn!(error = %e, "reconcile error");
            }
        })
        .await;
    info!("stopped");
    Ok(())
}
