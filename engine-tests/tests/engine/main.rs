//! Engine tests: local mode end to end on `file://` and on a real S3 server (MinIO), bad input,
//! the exactly-once commit, and property tests against reference implementations. One test
//! binary, so the engine is linked once.

mod arrays;
mod bad_input;
mod bag_sql;
mod bags;
mod chaos;
mod coalesce;
mod commit;
mod common_subplans;
mod conformance;
mod datagen;
mod df_graph;
mod df_steps;
mod faults;
mod history;
mod hive;
mod hive_out;
mod join_order;
mod key_filters;
mod local_broadcast;
mod malformed;
mod memory;
mod pods;
mod properties;
mod skew;
mod sort;
mod sql;
mod sql_graph;
mod step_exprs;
mod subqueries;
mod support;
mod uploads;
mod whole_groups;
mod window_step;
