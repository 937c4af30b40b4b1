//! `kask-operator`: the DaskJob controller. It turns each DaskJob into a plan Job, one Indexed
//! Job per stage and a commit Job, and keeps the DaskJob's status current from their state and
//! their pods' termination messages. It never reads data or Secrets.

mod children;
mod conditions;
mod decide;
mod error;
mod http;
mod jobs;
mod leader;
mod metrics;
mod names;
mod pods;
mod reconcile;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use clap::{ArgAction, Parser};
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{Controller, WatchStreamExt, controller, watcher};
use kube::{Api, Client, ResourceExt};
use tracing::{debug, error, info, warn};

use jobs::WorkerDefaults;
use kask_api::{DaskJob, PodTemplate};
use metrics::Metrics;
use reconcile::{Ctx, error_policy, reconcile};

/// The Kask controller for DaskJob resources.
#[derive(Parser, Debug)]
#[command(name = "kask-operator", version, about)]
struct Args {
    /// The worker image for jobs that do not name one in spec.image.
    #[arg(long, env = "KASK_WORKER_IMAGE", default_value = concat!("localhost/kask:", env!("CARGO_PKG_VERSION")))]
    worker_image: String,
    /// Requests and limits of worker containers for jobs without spec.resources, as the JSON
    /// of a Kubernetes ResourceRequirements, e.g. '{"requests":{"cpu":"1","memory":"2Gi"}}'.
    #[arg(long, env = "KASK_WORKER_RESOURCES")]
    worker_resources: Option<String>,
    /// The size limit of a worker pod's /tmp volume, where its tasks spill (a Kubernetes
    /// quantity, e.g. 10Gi); unlimited when empty.
    #[arg(long, env = "KASK_WORKER_SPILL_SIZE")]
    worker_spill_size: Option<String>,
    /// What each job's spec.podTemplate is laid over, as its JSON, e.g.
    /// '{"annotations":{"sidecar.istio.io/inject":"false"},"priorityClassName":"batch"}'.
    #[arg(long, env = "KASK_WORKER_POD_TEMPLATE")]
    worker_pod_template: Option<String>,
    /// The service account worker pods run as when a job names none in
    /// spec.serviceAccountName; without either they run with no token.
    #[arg(long, env = "KASK_WORKER_SERVICE_ACCOUNT")]
    worker_service_account: Option<String>,
    /// Namespaces whose DaskJobs to run, comma-separated; all namespaces when empty.
    #[arg(long, env = "KASK_WATCH_NAMESPACES", value_delimiter = ',')]
    namespaces: Vec<String>,
    /// Reconcile only while holding a coordination.k8s.io Lease, so that several replicas can
    /// run with one active.
    #[arg(long, env = "KASK_LEADER_ELECT", default_value_t = false, action = ArgAction::Set)]
    leader_elect: bool,
    /// The leader election Lease's name.
    #[arg(long, env = "KASK_LEASE_NAME", default_value = "kask-operator")]
    lease_name: String,
    /// The Lease's namespace: the operator's own.
    #[arg(long, env = "POD_NAMESPACE", default_value = "kask-system")]
    lease_namespace: String,
    /// Seconds the leader holds the Lease without renewing it; a standby takes over after it.
    #[arg(long, env = "KASK_LEASE_DURATION", default_value_t = 15)]
    lease_duration: u64,
    /// The leader renews the Lease this many seconds before it expires.
    #[arg(long, env = "KASK_LEASE_GRACE", default_value_t = 5)]
    lease_grace: u64,
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

/// A byte size as a Kubernetes quantity (digits and a binary or decimal suffix), checked here
/// so that a typo stops the operator at start rather than every worker Job at creation.
fn size_quantity(s: &str) -> Option<Quantity> {
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &s[digits.len()..];
    let ok = !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit())
        && ["", "Ki", "Mi", "Gi", "Ti", "Pi", "k", "M", "G", "T", "P"].contains(&suffix);
    ok.then(|| Quantity(s.to_string()))
}

/// The operator's pod template for workers, refused when it sets what is Kask's.
fn worker_pod_template(json: Option<&str>) -> Result<PodTemplate, String> {
    let flag = "--worker-pod-template (KASK_WORKER_POD_TEMPLATE)";
    let template = match json.map(str::trim) {
        Some(j) if !j.is_empty() && j != "{}" => {
            serde_json::from_str::<PodTemplate>(j).map_err(|e| format!("{flag}: {e}"))?
        }
        _ => return Ok(PodTemplate::default()),
    };
    if let Some((field, message)) = template.problems().into_iter().next() {
        return Err(format!("{flag}: {field}: {message}"));
    }
    Ok(template)
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    if args.lease_grace >= args.lease_duration {
        return Err("--lease-grace must be shorter than --lease-duration".into());
    }
    let worker = WorkerDefaults {
        image: args.worker_image.clone(),
        resources: match &args.worker_resources {
            Some(json) if !json.trim().is_empty() => Some(
                serde_json::from_str::<ResourceRequirements>(json)
                    .map_err(|e| format!("--worker-resources (KASK_WORKER_RESOURCES): {e}"))?,
            ),
            _ => None,
        },
        spill_size: match args.worker_spill_size.as_deref().map(str::trim) {
            Some(s) if !s.is_empty() => Some(size_quantity(s).ok_or_else(|| {
                format!(
                    "--worker-spill-size (KASK_WORKER_SPILL_SIZE) {s:?} is not a size such as 10Gi"
                )
            })?),
            _ => None,
        },
        pod_template: worker_pod_template(args.worker_pod_template.as_deref())?,
        service_account: args
            .worker_service_account
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string),
    };
    let namespaces: Vec<String> = args
        .namespaces
        .iter()
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .collect();

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

    let scopes: Vec<Option<&str>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.iter().map(|n| Some(n.as_str())).collect()
    };
    // Refuse to start without the CRD or the rights, with a message that says which.
    for scope in &scopes {
        let djs: Api<DaskJob> = api(&client, *scope);
        if let Err(e) = djs.list(&kube::api::ListParams::default().limit(1)).await {
            let place = scope.map_or("in all namespaces".to_string(), |n| {
                format!("in namespace {n}")
            });
            return Err(format!(
                "cannot list DaskJobs {place} (is the CRD installed? kubectl apply -f crds/; \
                 does the operator's RBAC cover this namespace?): {e}"
            )
            .into());
        }
    }
    // A standby is ready too: it serves its endpoints and can take over at any moment.
    ready.store(true, Ordering::Relaxed);

    let leadership = if args.leader_elect {
        let cfg = leader::LeaseConfig {
            name: args.lease_name.clone(),
            namespace: args.lease_namespace.clone(),
            identity: std::env::var("POD_NAME")
                .unwrap_or_else(|_| format!("kask-operator-{}", std::process::id())),
            duration: args.lease_duration,
            grace: args.lease_grace,
        };
        tokio::select! {
            held = leader::acquire(client.clone(), &cfg) => Some(held?),
            () = shutdown_signal() => {
                info!("stopped before becoming the leader");
                return Ok(());
            }
        }
    } else {
        None
    };
    metrics.leader.set(1);

    let reporter = Reporter {
        controller: "kask-operator".into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let shared = Shared {
        client: client.clone(),
        recorder: Recorder::new(client.clone(), reporter),
        metrics: Arc::clone(&metrics),
        worker,
    };
    info!(
        worker_image = %args.worker_image,
        namespaces = %if namespaces.is_empty() { "all".to_string() } else { namespaces.join(",") },
        "watching DaskJobs"
    );
    let controllers =
        futures::future::join_all(scopes.iter().map(|scope| control(&client, *scope, &shared)));
    match leadership {
        None => {
            controllers.await;
        }
        Some(mut leadership) => {
            tokio::select! {
                _ = controllers => leadership.release().await,
                () = leadership.lost() => {
                    metrics.leader.set(0);
                    // Another replica may already be reconciling: stop at once. The restart
                    // campaigns again as a standby.
                    return Err("lost the leader Lease; exiting".into());
                }
            }
        }
    }
    info!("stopped");
    Ok(())
}

/// The API of `K` in one namespace, or in all.
fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// What the controllers of all scopes share.
struct Shared {
    client: Client,
    recorder: Recorder,
    metrics: Arc<Metrics>,
    worker: WorkerDefaults,
}

/// One controller: DaskJobs, the Jobs they own and those Jobs' pods, in one scope; until
/// SIGTERM or Ctrl-C. Jobs and pods are watched once, into caches that every reconcile
/// reads instead of listing them.
async fn control(client: &Client, scope: Option<&str>, shared: &Shared) {
    let selector = watcher::Config::default().labels(names::LABEL_JOB_UID);
    let (jobs, jobs_writer) = reflector::store::<Job>();
    let job_events = watcher(api::<Job>(client, scope), selector.clone())
        .default_backoff()
        .modify(slim_job)
        .reflect(jobs_writer)
        .applied_objects();
    let (pods, pods_writer) = reflector::store::<Pod>();
    let pod_events = watcher(api::<Pod>(client, scope), selector)
        .default_backoff()
        .modify(slim_pod)
        .reflect(pods_writer)
        .applied_objects();
    let ctx = Arc::new(Ctx {
        client: shared.client.clone(),
        recorder: shared.recorder.clone(),
        metrics: Arc::clone(&shared.metrics),
        worker: shared.worker.clone(),
        jobs,
        pods,
        failures: Mutex::default(),
        written: Mutex::default(),
    });
    Controller::new(api::<DaskJob>(client, scope), watcher::Config::default())
        .owns_stream(job_events)
        .watches_stream(pod_events, |pod: Pod| {
            // A pod that cannot start changes nothing in its Job: its own events lead here.
            let name = pod.annotations().get(names::ANNOTATION_JOB)?.clone();
            Some(ObjectRef::<DaskJob>::new(&name).within(&pod.namespace()?))
        })
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                // A DaskJob deleted between the event and its reconcile: nothing left to do.
                Err(controller::Error::ObjectNotFound(obj)) => {
                    debug!(object = %obj, "gone before its reconcile");
                }
                Err(e) => warn!(error = %e, "reconcile error"),
                Ok(_) => {}
            }
        })
        .await;
}

/// A Job as the cache keeps it: without its pod template (the job's spec is in every one)
/// or managed fields, which the operator never reads back.
fn slim_job(job: &mut Job) {
    job.metadata.managed_fields = None;
    if let Some(spec) = job.spec.as_mut() {
        spec.template = Default::default();
    }
}

/// A pod as the cache keeps it: its status, labels, annotations and container resources;
/// not the environment (which carries the job's spec) or managed fields.
fn slim_pod(pod: &mut Pod) {
    pod.metadata.managed_fields = None;
    if let Some(spec) = pod.spec.as_mut() {
        spec.volumes = None;
        for c in &mut spec.containers {
            c.env = None;
            c.args = None;
            c.volume_mounts = None;
        }
    }
}

/// SIGTERM (the kubelet stopping the pod) or Ctrl-C.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        () = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::size_quantity;

    #[test]
    fn spill_sizes_are_byte_quantities() {
        for ok in ["10Gi", "512Mi", "1000000", "20G"] {
            assert!(size_quantity(ok).is_some(), "{ok}");
        }
        for bad in ["", "Gi", "10 Gi", "ten", "1.5Gi", "10Gb", "-1Gi"] {
            assert!(size_quantity(bad).is_none(), "{bad}");
        }
    }
}
