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
// Transparent huge pages cost more than they save here, limited or not: mimalloc asks for them
// on its arenas, a purge of a 64 KiB piece splits one, and the next allocation there faults in
// and zeroes a whole 2 MiB page again; a process that runs for seconds pays for every one of
// its pages that way. So the binary turns them off for itself (`PR_SET_THP_DISABLE`, which holds
// whatever the kernel's THP setting is). db-benchmark groupby q1 at 1e8 rows with `--memory 2Gi`,
// 8 runs each: median 0.89 s (0.59 s system time) with huge pages, 0.70 s (0.29 s) without.
// TPC-H SF10 without a limit, three alternating runs each (6 December 2026): q07 3.53, 3.40,
// 4.31 s with them and 3.12, 3.18, 3.19 s without; q09 6.85–7.33 s against 6.34–6.70 s; q18
// 5.37–6.28 s against 4.11–5.03 s; system time halved in each (q18 3.8–4.4 s to 1.4–1.6 s).
//
// Sound: C functions of integers that touch no memory of ours (mimalloc's `mi_option_t` is a
// C enum, an `int`); the indices are those of the vendored `mimalloc.h` (v2 and v3) of
// libmimalloc-sys 0.1.49 (Cargo.lock), and a wrong one would change another integer option,
// never memory safety. `prctl` is the C library's, with Linux's stable constant 41.
#[allow(unsafe_code)]
unsafe extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
    fn prctl(option: std::ffi::c_int, ...) -> std::ffi::c_int;
}
const MI_OPTION_PURGE_DECOMMITS: std::ffi::c_int = 5;
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;
const PR_SET_THP_DISABLE: std::ffi::c_int = 41;

/// Has mimalloc hand freed memory back to the kernel at once.
#[allow(unsafe_code)]
fn purge_promptly() {
    // SAFETY: see the declarations; mimalloc allows options to be set at any time.
    unsafe {
        mi_option_set(MI_OPTION_PURGE_DECOMMITS, 0);
        mi_option_set(MI_OPTION_PURGE_DELAY, 0);
    }
}

/// Turns transparent huge pages off for this process.
#[allow(unsafe_code)]
fn small_pages() {
    // SAFETY: see the declarations; `prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0)` sets a flag on this
    // process. Where it fails (a kernel before 3.15) only speed changes.
    unsafe {
        let off: std::ffi::c_ulong = 1;
        let zero: std::ffi::c_ulong = 0;
        prctl(PR_SET_THP_DISABLE, off, zero, zero, zero);
    }
}

fn main() -> ExitCode {
    small_pages();
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
