//! Kask's core: what every job kind shares. Storage ([`store`]), the plan's stages and tasks
//! ([`plan`]), running a task exactly once in effect ([`task`]), the markers that commit
//! tasks ([`marker`]), the files a task writes ([`output`]), the shuffle through object storage ([`shuffle`]), re-running tasks
//! whose outputs were lost ([`lineage`]), the exactly-once commit of results ([`commit`]) from
//! the files a job kind names ([`parts`]), the memory budget ([`memory`]), a job's id
//! ([`job_id`]), local mode ([`runner`]), and the trait a job kind implements ([`kind`]).
//!
//! The job kinds (`kask-relational`, `kask-array`, `kask-bag`) build on this crate; the
//! `kask` binary installs them.

pub mod capped_pool;
pub mod commit;
pub mod decision;
pub mod error;
pub mod failpoint;
pub mod history;
pub mod job_id;
pub mod kind;
pub mod lineage;
pub mod marker;
pub mod memory;
pub mod output;
pub mod output_folders;
pub mod parts;
pub mod plan;
pub mod runner;
pub mod shuffle;
pub mod store;
pub mod task;
pub mod usage;

pub use error::{Error, Result};
