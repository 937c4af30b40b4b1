//! The command line.

mod cluster;
mod dashboard;
mod explain;
mod progress;
mod report;
mod worker;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand, ValueEnum};

use kask_api::{DaskJob, load_job};
use kask_worker::Error;
use kask_worker::datagen::{
    GenFormat, array::ArrayGen, groupby::GroupbyGen, join::JoinGen, sort::SortGen, text::TextGen,
};
use kask_worker::runner::{self, Progress, RunOptions, job_dir};

/// Kask runs Dask-style partitioned data jobs, described as DaskJob resources, on Kubernetes or
/// on this machine.
#[derive(Parser, Debug)]
#[command(name = "kask", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a job on this machine.
    Run {
        /// The DaskJob YAML file.
        job: PathBuf,
        /// Storage URL to use instead of spec.storage.url (default without one: the job
        /// file's directory).
        #[arg(long)]
        storage: Option<String>,
        /// Most tasks at once (default: spec.workers, at most the number of cores and one per
        /// 192 MiB of the memory limit).
        #[arg(long)]
        parallelism: Option<usize>,
        /// Memory this run may use, e.g. 512Mi or 2G (default: the container's limit, else the
        /// machine's memory). Sorts, aggregations and joins spill to disk beyond it.
        #[arg(long, value_parser = parse_memory)]
        memory: Option<u64>,
        /// Show the run live in a web page while it runs, served at ADDR (default
        /// 127.0.0.1:8787; port 0 picks a free one). The URL is printed when the run starts.
        #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = dashboard::DEFAULT_LISTEN)]
        dashboard: Option<String>,
    },
    /// Serve a web page listing the DaskJobs of the current kubeconfig's cluster, each with
    /// its status and, live while it runs, its task stream, stage graph, memory and errors
    /// from the history beside its output (read with this machine's storage credentials).
    Dashboard {
        /// Address to listen on (default: loopback only; port 0 picks a free one).
        #[arg(long, default_value = dashboard::DEFAULT_LISTEN)]
        listen: String,
        /// Only this namespace's jobs (default: every namespace).
        #[arg(long, short = 'n')]
        namespace: Option<String>,
        /// Where to read the jobs' histories, instead of each job's own storage settings
        /// (often an in-cluster endpoint).
        #[command(flatten)]
        storage: StorageFlags,
    },
    /// Show the plan (stages, tasks, bytes per task, shuffles) without running it.
    Explain {
        /// The DaskJob YAML file.
        job: PathBuf,
        /// Storage URL to use instead of spec.storage.url.
        #[arg(long)]
        storage: Option<String>,
    },
    /// Check a job: every spec error, then the inputs' columns against the pipeline.
    Validate {
        /// The DaskJob YAML file.
        job: PathBuf,
        /// Storage URL to use instead of spec.storage.url.
        #[arg(long)]
        storage: Option<String>,
        /// Check the spec only, without listing the inputs.
        #[arg(long)]
        offline: bool,
    },
    /// Check a committed result: every file its manifest names is there with its size, rows and
    /// checksum, and no data file lies beside them. Prints one line (OK or FAIL); exit status 1
    /// when the result is not whole.
    Verify {
        /// The output folder: a local path, or a URL such as s3://bucket/prefix/out.
        path: String,
        #[command(flatten)]
        storage: StorageFlags,
    },
    /// Write a job's report: one self-contained HTML file with its task stream, stage graph,
    /// memory and throughput, slowest and largest tasks, errors and cost, from the history
    /// kept beside its result (also for a failed job, and after its pods and DaskJob are gone).
    Report {
        /// The job's output folder: a local path, or a URL such as s3://bucket/prefix/out.
        path: String,
        /// The job whose history to show (default: the result's, else the newest).
        #[arg(long)]
        job: Option<String>,
        /// The file to write (default: <job>-report.html here).
        #[arg(long, short = 'o')]
        out: Option<PathBuf>,
        #[command(flatten)]
        storage: StorageFlags,
    },
    /// Print the DaskJob CustomResourceDefinition.
    Crd,
    /// Generate data: db-benchmark tables, Zarr arrays, text.
    Gen {
        #[command(subcommand)]
        what: GenCommand,
    },
    /// Create a DaskJob on the cluster of the current kubeconfig.
    Submit {
        /// The DaskJob YAML file (checked before it is sent).
        job: PathBuf,
        /// Namespace (default: the kubeconfig context's).
        #[arg(long, short = 'n')]
        namespace: Option<String>,
        /// Follow the job with a bar per stage until it ends; exit non-zero if it fails.
        #[arg(long, short = 'w')]
        watch: bool,
    },
    /// Show a DaskJob's status: phase, output, and per stage tasks, rows, CPU and memory.
    Status {
        /// The DaskJob's name.
        name: String,
        /// Namespace (default: the kubeconfig context's).
        #[arg(long, short = 'n')]
        namespace: Option<String>,
    },
    /// List the DaskJobs of a namespace: phase, progress, rows, duration and message.
    List {
        /// Namespace (default: the kubeconfig context's).
        #[arg(long, short = 'n', conflicts_with = "all_namespaces")]
        namespace: Option<String>,
        /// Every namespace's.
        #[arg(long, short = 'A')]
        all_namespaces: bool,
    },
    /// Delete a DaskJob: its pods stop and its scratch data is removed; a committed result
    /// stays.
    Delete {
        /// The DaskJob's name.
        name: String,
        /// Namespace (default: the kubeconfig context's).
        #[arg(long, short = 'n')]
        namespace: Option<String>,
    },
    /// Print the logs of the pods that ran a DaskJob (or a stage, or a task): from the
    /// cluster, or, given the job's output folder (a path or URL) instead of its name, from
    /// the history the pods uploaded there (after the DaskJob and its pods are gone).
    Logs {
        /// The DaskJob's name, or its output folder (e.g. s3://bucket/prefix/out).
        name: String,
        /// With an output folder: the job whose logs to print (default: the result's, else
        /// the newest).
        #[arg(long)]
        job: Option<String>,
        /// With an output folder in S3-compatible storage: how to reach it.
        #[command(flatten)]
        storage: StorageFlags,
        /// Namespace (default: the kubeconfig context's).
        #[arg(long, short = 'n')]
        namespace: Option<String>,
        /// Only this stage's pods (e.g. s0-scan-orders; `plan` and `commit` too).
        #[arg(long)]
        stage: Option<String>,
        /// Only the pod that ran this task of the stage.
        #[arg(long)]
        task: Option<u32>,
    },
    /// The steps worker pods run (the operator's plan, stage, commit and cleanup pods);
    /// not for people, so not in --help.
    #[command(hide = true)]
    Worker {
        #[command(subcommand)]
        what: worker::WorkerCommand,
    },
}

/// How `kask gen array` stores chunks.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum GenCodec {
    Zstd,
    None,
}

#[derive(Subcommand, Debug)]
enum GenCommand {
    /// A Zarr v3 array of random values (floats in [0, 1), integers in [-100, 100)).
    Array {
        /// Shape, e.g. 1000,1000.
        #[arg(long, value_delimiter = ',', required = true)]
        shape: Vec<u64>,
        /// Chunk shape, e.g. 250,250 (default: the shape).
        #[arg(long, value_delimiter = ',')]
        chunks: Option<Vec<u64>>,
        /// bool, int32, int64, float32 or float64.
        #[arg(long, default_value = "float64")]
        dtype: String,
        /// Seed of the random generator: the same seed gives the same data.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// How chunks are stored: zstd (level 1) or none (raw bytes).
        #[arg(long, value_enum, default_value_t = GenCodec::Zstd)]
        codec: GenCodec,
        /// The array's directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// Text files of words, for word counts.
    Text {
        /// Total bytes, about.
        #[arg(long, default_value_t = 1 << 20)]
        bytes: u64,
        /// Number of files.
        #[arg(long, default_value_t = 4)]
        files: usize,
        /// Distinct words.
        #[arg(long, default_value_t = 10_000)]
        vocabulary: usize,
        /// Seed of the random generator: the same seed gives the same data.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The folder written to.
        #[arg(long)]
        out: PathBuf,
    },
    /// The groupby table G1_<rows>_<groups>_<nas>_0.
    Groupby {
        /// Rows (of the main table).
        #[arg(long, default_value_t = 10_000_000)]
        rows: u64,
        /// Distinct values of the id columns (the K of G1_N_K).
        #[arg(long, default_value_t = 100)]
        groups: u64,
        /// Percentage of nulls in every column.
        #[arg(long, default_value_t = 0)]
        nas: u32,
        /// Seed of the random generator: the same seed gives the same data.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Files per table.
        #[arg(long, default_value_t = 8)]
        partitions: usize,
        /// The folder written to.
        #[arg(long)]
        out: PathBuf,
        /// parquet or csv.
        #[arg(long, value_enum, default_value_t = FormatArg::Parquet)]
        format: FormatArg,
    },
    /// Records for a sort benchmark (GraySort's: a 10-byte random key, a 90-byte payload), as
    /// Parquet files under <out>/sort_<records>.
    Sort {
        /// Bytes of records, 100 each: e.g. 10G (decimal units: 1e8 records) or 1000000.
        #[arg(long, value_parser = parse_memory)]
        bytes: u64,
        /// Seed of the random generator: the same seed gives the same data.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Files.
        #[arg(long, default_value_t = 16)]
        partitions: usize,
        /// The folder written to.
        #[arg(long)]
        out: PathBuf,
    },
    /// The join tables x, small, medium and big.
    Join {
        /// Rows (of the main table).
        #[arg(long, default_value_t = 10_000_000)]
        rows: u64,
        /// Seed of the random generator: the same seed gives the same data.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Files per table.
        #[arg(long, default_value_t = 8)]
        partitions: usize,
        /// The folder written to.
        #[arg(long)]
        out: PathBuf,
        /// parquet or csv.
        #[arg(long, value_enum, default_value_t = FormatArg::Parquet)]
        format: FormatArg,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum FormatArg {
    Parquet,
    Csv,
}

impl From<FormatArg> for GenFormat {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Parquet => GenFormat::Parquet,
            FormatArg::Csv => GenFormat::Csv,
        }
    }
}

/// Reads and validates a job file.
fn read_job(path: &Path) -> Result<DaskJob, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::spec(
            path.display().to_string(),
            format!("cannot read the job file: {e}"),
        )
    })?;
    Ok(load_job(&path.display().to_string(), &text)?)
}

fn options(job: &Path, storage: Option<String>) -> RunOptions {
    RunOptions {
        storage,
        base_dir: job_dir(job),
        ..RunOptions::default()
    }
}

/// How to reach S3-compatible storage from this machine (credentials come from the
/// environment, as for jobs).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct StorageFlags {
    /// S3-compatible endpoint, e.g. http://localhost:9000.
    #[arg(long)]
    endpoint: Option<String>,
    /// S3 region.
    #[arg(long)]
    region: Option<String>,
    /// Allow plain HTTP to the endpoint.
    #[arg(long)]
    allow_http: bool,
}

impl StorageFlags {
    /// `storage` with the settings given here in place of its own.
    pub fn apply(&self, mut storage: kask_api::Storage) -> kask_api::Storage {
        if let Some(e) = &self.endpoint {
            storage.endpoint = Some(e.clone());
        }
        if let Some(r) = &self.region {
            storage.region = Some(r.clone());
        }
        if self.allow_http {
            storage.allow_http = Some(true);
        }
        storage
    }
}

/// The storage holding an output folder, and the folder's name in it: the folder's parent is
/// the storage, so that a path or a URL names the result alone.
fn verify_target(path: &str, flags: &StorageFlags) -> Result<(kask_api::Storage, String), Error> {
    let url = if path.contains("://") {
        path.trim_end_matches('/').to_string()
    } else {
        let abs =
            std::path::absolute(path).map_err(|e| Error::spec("PATH", format!("{path}: {e}")))?;
        format!("file://{}", abs.display())
    };
    let (parent, name) = url
        .rsplit_once('/')
        .filter(|(p, n)| !n.is_empty() && !p.ends_with('/'))
        .ok_or_else(|| Error::spec("PATH", format!("{path} names no folder inside a storage")))?;
    let storage = flags.apply(kask_api::Storage {
        url: parent.to_string(),
        endpoint: None,
        region: None,
        allow_http: None,
        secret_ref: None,
    });
    Ok((storage, name.to_string()))
}

/// A local run with its dashboard: served from before planning until a moment after the run
/// ends, so that an open page shows how it ended.
async fn run_with_dashboard(
    dj: &DaskJob,
    opts: &RunOptions,
    progress: &dyn Progress,
    listen: &str,
) -> Result<runner::RunSummary, Error> {
    let local = dashboard::Local::new(&runner::job_name(dj));
    let running = dashboard::start(listen, dashboard::Source::Local(local.clone())).await?;
    eprintln!("dashboard: {}", running.url());
    let result = runner::run(dj, opts, &dashboard::Both(progress, &local)).await;
    local.finish(result.is_ok());
    // The page polls every second: give it one more look at the end.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    running.stop();
    result
}

/// 1536 → "1.5 KiB": the report's own formatting, so that the terminal and the page agree.
use kask_report::format::bytes as human_bytes;

fn parse_memory(text: &str) -> Result<u64, String> {
    kask_worker::memory::parse_size(text)
}

/// "1 task", "3 tasks".
fn plural(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// Runs a command.
pub async fn dispatch(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Run {
            job,
            storage,
            parallelism,
            memory,
            dashboard,
        } => {
            let dj = read_job(&job)?;
            let mut opts = options(&job, storage);
            opts.parallelism = parallelism;
            opts.memory = memory;
            let progress: Box<dyn Progress> = if std::io::stderr().is_terminal() {
                Box::new(progress::Bars::new())
            } else {
                Box::new(progress::Lines::new())
            };
            let s = match dashboard {
                None => runner::run(&dj, &opts, progress.as_ref()).await?,
                Some(listen) => run_with_dashboard(&dj, &opts, progress.as_ref(), &listen).await?,
            };
            let resumed = if s.resumed > 0 {
                format!(", {} resumed from an earlier run", s.resumed)
            } else {
                String::new()
            };
            let what = match (&s.manifest.array, dj.spec.bag.is_some()) {
                (Some(a), _) => format!("a {} array of shape {:?}", a.dtype, a.shape),
                (None, true) => format!("{} records", s.manifest.rows),
                (None, false) => format!("{} rows", s.manifest.rows),
            };
            let skipped = if s.manifest.skipped_records > 0 {
                format!(
                    " (skipped {} malformed input {})",
                    s.manifest.skipped_records,
                    if s.manifest.skipped_records == 1 {
                        "line"
                    } else {
                        "lines"
                    }
                )
            } else {
                String::new()
            };
            println!(
                "wrote {what}{skipped} to {} ({}) in {:.2}s: {}, {}{resumed}",
                s.output_url,
                plural(s.manifest.files.len(), "file"),
                s.seconds,
                plural(s.stages, "stage"),
                plural(s.tasks, "task"),
            );
            for (url, m) in &s.others {
                println!(
                    "wrote {} rows to {url} ({})",
                    m.rows,
                    plural(m.files.len(), "file")
                );
            }
            Ok(())
        }
        Command::Dashboard {
            listen,
            namespace,
            storage,
        } => {
            let cluster = dashboard::Cluster::connect(namespace, storage).await?;
            let running = dashboard::start(&listen, dashboard::Source::Cluster(cluster)).await?;
            eprintln!("dashboard: {} (Ctrl-C stops it)", running.url());
            let _ = tokio::signal::ctrl_c().await;
            running.stop();
            Ok(())
        }
        Command::Explain { job, storage } => {
            let dj = read_job(&job)?;
            let (store, plan) = runner::prepare(&dj, &options(&job, storage), None).await?;
            print!("{}", explain::render(&plan, &store.url));
            Ok(())
        }
        Command::Validate {
            job,
            storage,
            offline,
        } => {
            let dj = read_job(&job)?;
            if offline {
                println!("{}: OK", job.display());
                return Ok(());
            }
            let (_, plan) = runner::prepare(&dj, &options(&job, storage), None).await?;
            println!(
                "{}: OK ({}, {})",
                job.display(),
                plural(plan.stages.len(), "stage"),
                plural(plan.total_tasks(), "task")
            );
            Ok(())
        }
        Command::Worker { what } => worker::dispatch(what).await,
        Command::Submit {
            job,
            namespace,
            watch,
        } => {
            let dj = read_job(&job)?;
            cluster::submit(&dj, &job, namespace.as_deref(), watch).await
        }
        Command::Status { name, namespace } => cluster::status(&name, namespace.as_deref()).await,
        Command::List {
            namespace,
            all_namespaces,
        } => cluster::list(namespace.as_deref(), all_namespaces).await,
        Command::Delete { name, namespace } => cluster::delete(&name, namespace.as_deref()).await,
        Command::Logs {
            name,
            namespace,
            stage,
            task,
            job,
            storage,
        } => {
            // A DaskJob's name has no slash; an output folder (a path or URL) does.
            if name.contains('/') || name.starts_with('.') {
                let (storage, output) = verify_target(&name, &storage)?;
                report::logs(&storage, &output, job.as_deref(), stage.as_deref(), task).await
            } else {
                cluster::logs(&name, namespace.as_deref(), stage.as_deref(), task).await
            }
        }
        Command::Crd => {
            print!("{}", kask_api::crd_yaml());
            Ok(())
        }
        Command::Report {
            path,
            job,
            out,
            storage,
        } => {
            let (storage, output) = verify_target(&path, &storage)?;
            let written = report::report(&storage, &output, job.as_deref(), out).await?;
            println!("{}", written.display());
            Ok(())
        }
        Command::Verify { path, storage } => {
            let (storage, output) = verify_target(&path, &storage)?;
            let store = kask_worker::store::Store::from_storage(&storage)?;
            let verdict = kask_worker::commit::verify::verify(&store, &output).await?;
            for note in &verdict.notes {
                eprintln!("note: {note}");
            }
            println!("{}", verdict.summary(&path));
            if !verdict.ok() {
                use std::io::Write as _;
                let _ = std::io::stdout().flush();
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Gen { what } => {
            let started = std::time::Instant::now();
            let dir = match what {
                GenCommand::Groupby {
                    rows,
                    groups,
                    nas,
                    seed,
                    partitions,
                    out,
                    format,
                } => GroupbyGen {
                    rows,
                    groups,
                    nas,
                    seed,
                    partitions,
                    format: format.into(),
                }
                .write(&out)?,
                GenCommand::Join {
                    rows,
                    seed,
                    partitions,
                    out,
                    format,
                } => {
                    let fmt = format.into();
                    let g = JoinGen {
                        rows,
                        seed,
                        partitions,
                        format: fmt,
                    };
                    tokio::task::block_in_place(|| g.write(&out))?
                }
                GenCommand::Array {
                    shape,
                    chunks,
                    dtype,
                    seed,
                    codec,
                    out,
                } => {
                    let dtype =
                        kask_worker::array::zarr::dtype_from_name(&dtype).ok_or_else(|| {
                            Error::spec(
                                "--dtype",
                                format!(
                                    "{dtype:?} is not one of bool, int32, int64, float32, float64"
                                ),
                            )
                        })?;
                    let chunks = chunks.unwrap_or_else(|| shape.clone());
                    ArrayGen {
                        shape,
                        chunks,
                        dtype,
                        seed,
                        compress: codec == GenCodec::Zstd,
                    }
                    .write(&out)
                    .await?;
                    out
                }
                GenCommand::Sort {
                    bytes,
                    seed,
                    partitions,
                    out,
                } => {
                    let g = SortGen {
                        records: bytes / kask_worker::datagen::sort::RECORD,
                        seed,
                        partitions,
                    };
                    tokio::task::block_in_place(|| g.write(&out))?
                }
                GenCommand::Text {
                    bytes,
                    files,
                    vocabulary,
                    seed,
                    out,
                } => {
                    let g = TextGen {
                        bytes,
                        files,
                        vocabulary,
                        seed,
                    };
                    tokio::task::block_in_place(|| g.write(&out))?;
                    out
                }
            };
            println!(
                "wrote {} in {:.1}s",
                dir.display(),
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
    }
}
