//! `kask`: run DaskJobs locally, explain and validate them, print the CRD, generate benchmark
//! data.

mod cli;

use std::process::ExitCode;

use clap::Parser;

// Arrow batches are large and short-lived; mimalloc reuses their memory instead of returning it
// to the kernel and faulting it back in, which the system allocator did for every batch.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// mimalloc's own setter. Freed memory that mimalloc keeps committed for reuse counts against a
// cgroup's limit, and its delayed purge (10 ms by default) runs only when the freeing thread
// allocates again, so idle threads hold on to it. Under a limit the worker purges at once
// (`mi_option_purge_delay`, 15) with `MADV_FREE` instead of decommitting
// (`mi_option_purge_decommits`, 5): pages the kernel may take back under pressure, without
// a system call that unmaps them. A 100-million-row sort at `--memory 1Gi`: 1.35 GB peak resident
// with mimalloc's defaults; inside a 1 GiB cgroup it finishes, in 98 s (116 s when decommitting).
//
// Sound: a C function of two integers that touches no memory of ours (mimalloc's `mi_option_t`
// is a C enum, an `int`); the indices are those of the vendored `mimalloc.h` (v2 and v3) of
// libmimalloc-sys 0.1.49 (Cargo.lock), and a wrong one would change another integer option,
// never memory safety.
#[allow(unsafe_code)]
unsafe extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}
const MI_OPTION_PURGE_DECOMMITS: std::ffi::c_int = 5;
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

/// Has mimalloc hand freed memory back to the kernel at once.
#[allow(unsafe_code)]
fn purge_promptly() {
    // SAFETY: see the declaration; mimalloc allows options to be set at any time.
    unsafe {
        mi_option_set(MI_OPTION_PURGE_DECOMMITS, 0);
        mi_option_set(MI_OPTION_PURGE_DELAY, 0);
    }
}

fn main() -> ExitCode {
    kask_worker::install_kinds();
    kask_core::memory::when_limited(purge_promptly);
    let args = cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("KASK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Worker pods keep a copy of their log for the job's history (`history::logs::keep`).
        .with_writer(|| kask_worker::history::logs::StderrAndCopy);
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
