//! `kask dashboard` and `kask run --dashboard`: a web server on this machine that lists jobs
//! and shows each one's status and history (task stream, stage graph, memory, errors) while it
//! runs, the page following the job without a reload. It uses the user's own credentials (the
//! kubeconfig, and the environment's storage credentials for histories) and binds to loopback
//! unless told otherwise: it has no authentication of its own.

mod pages;
mod source;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::Mutex;

use kask_worker::Error;
use kask_worker::history::read::Reader;
use kask_worker::store::Store;

pub use source::{Both, Cluster, Local};

use pages::JobRow;

/// Where the default dashboard listens: loopback, on the port Dask's dashboard uses.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8787";

/// How long a job's view is reused before its history is read again: every open page polls
/// each second, and reading a history lists its folder.
const FRESH: Duration = Duration::from_millis(900);

/// Where the dashboard's jobs come from.
pub enum Source {
    /// A cluster's DaskJobs.
    Cluster(Cluster),
    /// A local run.
    Local(Local),
}

/// One job's view as last drawn, and the reader that follows its history.
#[derive(Default)]
struct Watched {
    reader: Reader,
    store: Option<(String, Store)>,
    drawn: Option<(Instant, String)>,
}

/// The jobs whose pages are open, by namespace and name.
type WatchedJobs = HashMap<(String, String), Arc<Mutex<Watched>>>;

struct Dashboard {
    source: Source,
    watched: Mutex<WatchedJobs>,
}

/// A running dashboard.
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Its URL.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Stops it.
    pub fn stop(self) {
        self.task.abort();
    }
}

/// Binds `listen` and serves the dashboard of `source` in the background.
pub async fn start(listen: &str, source: Source) -> Result<Running, Error> {
    let addr: SocketAddr = listen.parse().map_err(|e| {
        Error::spec(
            "--listen",
            format!("{listen:?} is not an address and port such as {DEFAULT_LISTEN}: {e}"),
        )
    })?;
    if !addr.ip().is_loopback() {
        eprintln!(
            "warning: the dashboard listens on {addr}: anyone who reaches it sees your jobs \
             and their logs with your credentials; it has no authentication of its own"
        );
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::spec("--listen", format!("cannot listen on {addr}: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::spec("--listen", format!("{addr}: {e}")))?;
    let state = Arc::new(Dashboard {
        source,
        watched: Mutex::new(HashMap::new()),
    });
    let app = Router::new()
        .route("/", get(list_page))
        .route("/view/jobs", get(list_view))
        .route("/api/jobs", get(list_json))
        .route("/jobs/{namespace}/{name}", get(job_page))
        .route("/view/jobs/{namespace}/{name}", get(job_view))
        .with_state(state);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the dashboard stopped");
        }
    });
    Ok(Running { addr, task })
}

/// A view with its version, which the page's script compares with the one it shows.
fn view(body: String) -> Response {
    let version = pages::version(&body);
    let mut r = html(body);
    if let Ok(v) = HeaderValue::from_str(&version) {
        r.headers_mut().insert("x-kask-version", v);
    }
    r
}

fn html(body: String) -> Response {
    let mut r = body.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// An error as the page shows it: what the dashboard could not reach.
fn failure(e: &Error) -> Response {
    (StatusCode::BAD_GATEWAY, e.to_string()).into_response()
}

impl Dashboard {
    async fn rows(&self) -> Result<(Vec<JobRow>, String), Error> {
        match &self.source {
            Source::Cluster(c) => Ok((c.list().await?, c.scope())),
            Source::Local(l) => Ok((
                l.list(),
                "A run on this machine (kask run --dashboard)".into(),
            )),
        }
    }

    async fn list_view(&self) -> Result<String, Error> {
        let (rows, scope) = self.rows().await?;
        Ok(pages::job_list(&rows, &scope))
    }

    /// Job `namespace/name`'s view, drawn again at most every [`FRESH`]; `None` when there is
    /// no such job.
    async fn job_view(&self, namespace: &str, name: &str) -> Result<Option<String>, Error> {
        let entry = {
            let mut all = self.watched.lock().await;
            all.entry((namespace.to_string(), name.to_string()))
                .or_default()
                .clone()
        };
        let mut w = entry.lock().await;
        if let Some((at, body)) = &w.drawn
            && at.elapsed() < FRESH
        {
            return Ok(Some(body.clone()));
        }
        let found = match &self.source {
            Source::Cluster(c) => c.find(namespace, name).await?,
            Source::Local(l) => Some(l.find()),
        };
        let Some(found) = found else {
            return Ok(None);
        };
        let history = match &found.history {
            None => Err("the job has not been planned yet".to_string()),
            Some((storage, dir)) => {
                if w.store.as_ref().is_none_or(|(url, _)| *url != storage.url) {
                    w.store = Some((storage.url.clone(), Store::from_storage(storage)?));
                }
                let Watched { reader, store, .. } = &mut *w;
                match store {
                    Some((_, store)) => reader.read(store, dir).await.map_err(|e| e.to_string()),
                    None => Err("no storage".to_string()),
                }
            }
        };
        let now = kask_worker::history::now_ms();
        let body = pages::job_view(
            &found.row,
            &found.stages,
            history.as_ref().map_err(|e| e.as_str()),
            now,
        );
        w.drawn = Some((Instant::now(), body.clone()));
        Ok(Some(body))
    }
}

async fn list_page(State(d): State<Arc<Dashboard>>) -> Response {
    let first = d.list_view().await.unwrap_or_else(|e| e.to_string());
    let version = pages::version(&first);
    html(pages::shell("jobs", "/view/jobs", &first, &version))
}

async fn list_view(State(d): State<Arc<Dashboard>>) -> Response {
    match d.list_view().await {
        Ok(body) => view(body),
        Err(e) => failure(&e),
    }
}

async fn list_json(State(d): State<Arc<Dashboard>>) -> Response {
    match d.rows().await {
        Ok((rows, _)) => {
            let body = serde_json::to_string(&rows).unwrap_or_else(|_| "[]".into());
            let mut r = body.into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        Err(e) => failure(&e),
    }
}

/// A job's page: its first view comes from the page's script, so that a page opened before
/// the job's history exists fills in as soon as it does.
async fn job_page(Path((namespace, name)): Path<(String, String)>) -> Response {
    let src = format!(
        "/view{}",
        JobRow {
            namespace: namespace.clone(),
            name: name.clone(),
            ..JobRow::default()
        }
        .href()
    );
    html(pages::shell(
        &format!("{namespace}/{name}"),
        &src,
        "<p class=\"note\">Loading…</p>",
        "",
    ))
}

async fn job_view(
    State(d): State<Arc<Dashboard>>,
    Path((namespace, name)): Path<(String, String)>,
) -> Response {
    match d.job_view(&namespace, &name).await {
        Ok(Some(body)) => view(body),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            format!("no DaskJob {namespace}/{name}"),
        )
            .into_response(),
        Err(e) => failure(&e),
    }
}
