//! The exactly-once output protocol.
//!
//! Task attempts write under their own prefixes in the job's scratch space and commit with
//! create-only markers ([`crate::marker`]); a file a later step finds lost or corrupt is made again
//! under a new marker epoch ([`crate::lineage`]). The job commit ([`job`]) moves the winning
//! files into the output under names unique to the job and then replaces the `_SUCCESS`
//! manifest ([`manifest`]), holding the output's lock ([`lock`]) and keeping a journal
//! ([`journal`]) so that it can be finished or undone after a crash. Until the manifest names
//! them, files at the output path are not a result.
//!
//! A job writes and deletes only what it owns: at plan time the output must be empty or hold a
//! Kask result ([`owner`]); a commit removes only files a manifest names; the cleanup of a
//! failed job ([`cleanup`]) undoes only its own commit, and a local run whose commit failed steps
//! back from it ([`undo`]). [`verify`] checks a committed result.

pub mod cleanup;
pub mod job;
pub mod journal;
pub mod lock;
pub mod manifest;
pub mod owner;
pub mod undo;
pub mod verify;

pub use job::{commit_all, commit_job, committed};
pub use manifest::{
    MANIFEST, Manifest, ManifestArray, ManifestColumn, ManifestFile, manifest_path, read_manifest,
};
pub use owner::check_output;
