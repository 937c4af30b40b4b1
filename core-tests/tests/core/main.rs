//! Tests of `kask-core`'s parts, one file per module of the library.

mod capped_pool;
mod commit_verify;
mod history_logs;
mod history_sampler;
mod marker;
mod memory;
mod output;
mod output_folders;
mod plan_hive;
mod plan_tasks;
mod shuffle;
mod shuffle_reader;
mod shuffle_runs;
mod shuffle_writer;
mod store;
mod store_checksum;
mod store_mapped;
mod usage;
