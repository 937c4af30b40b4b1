//! `kask-operator`: the DaskJob controller.
//!
//! This release ships the DaskJob API, its CRD and local mode (`kask run`); the controller that
//! turns DaskJobs into Kubernetes Jobs comes with the operator milestone. The binary exists now
//! so that images, manifests and CI can be built around it.

use clap::Parser;

/// The Kask controller for DaskJob resources.
#[derive(Parser, Debug)]
#[command(name = "kask-operator", version, about)]
struct Args {}

fn main() -> std::process::ExitCode {
    let _args = Args::parse();
    eprintln!(
        "kask-operator {}: the controller is not part of this release; run jobs locally with `kask run JOB.yaml`",
        env!("CARGO_PKG_VERSION")
    );
    std::process::ExitCode::FAILURE
}
