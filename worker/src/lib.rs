//! The `kask` binary's library: the worker pods' entry ([`pod`]) and the data generators
//! ([`datagen`]), over the engine crates: the core (`kask-core`) and the job kinds
//! (`kask-relational`, `kask-array`, `kask-bag`), re-exported here under the names the
//! binary and its tests use. The command line is the binary's own (`main.rs`, `cli/`).

pub mod datagen;
pub mod pod;

pub use kask_array as array;
pub use kask_bag as bag;
pub use kask_core::{
    Error, Result, commit, error, failpoint, history, kind, lineage, marker, memory, output, plan,
    runner, shuffle, store, task, usage,
};
pub use kask_relational as relational;

/// Installs the job kinds this binary runs (every one); call before planning or running a job.
pub fn install_kinds() {
    kask_core::kind::install(vec![
        &kask_relational::Relational,
        &kask_array::Array,
        &kask_bag::Bag,
    ]);
}
