//! Kask's engine: the distributed planner, tasks on DataFusion, the shuffle, the exactly-once
//! commit, and local mode. The `kask` binary (`main.rs`) is its command line.

pub mod array;
pub mod bag;
pub mod commit;
pub mod datagen;
pub mod error;
pub mod failpoint;
pub mod lineage;
pub mod memory;
pub mod plan;
pub mod pod;
pub mod relational;
pub mod runner;
pub mod shuffle;
pub mod store;
pub mod task;

pub use error::{Error, Result};
