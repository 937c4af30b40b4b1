//! `kask`: run DaskJobs locally, explain and validate them, print the CRD, generate benchmark
//! data.

mod cli;

use std::process::ExitCode;

use clap::Parser;

// Arrow batches are large and short-lived; mimalloc reuses their memory instead of returning it
// to the kernel and faulting it back in, which the system allocator did for every batch.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    kask_worker::install_kinds();
    let args = cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("KASK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // Worker pods log JSON lines (job, stage and task as fields) for log collectors.
    if std::env::var("KASK_LOG_FORMAT").is_ok_and(|f| f == "json") {
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
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::dispatch(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.to_string().trim_end());
            // Whose fault, in the code: pods' podFailurePolicy and scripts read it.
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}
