//! Relational jobs: SQL queries and `dataframe` pipelines. DataFusion plans the queries (or
//! the pipelines, compiled to logical plans by [`pipeline`]) into one physical plan for the
//! whole job, as if every task were a partition of one process; Kask then cuts that plan into
//! stages at each exchange (a hash repartition, a coalesce, a sorted merge), the way
//! Ballista's distributed planner does, but with Kask's stages: a stage's tasks are the
//! partitions of its sub-plan, the exchange between stages is Kask's shuffle through the
//! object store, and every task commits with a marker.
//!
//! Stage plans reach the task pods inside the job's plan, as DataFusion's protobuf with
//! Kask's codec for its own nodes ([`codec`]): a task decodes its stage and runs it, and
//! refuses to if the decoded sub-plan displays differently from the one the plan pod cut.

pub mod build_side;
pub mod coalesce;
pub mod codec;
pub mod common_subplans;
pub mod corr_groups;
pub mod csv_guard;
pub mod ctes;
pub mod cut;
pub mod decimal_arith;
pub mod dense_groups;
pub mod diagnose;
pub mod dict_groups;
pub mod dict_route;
pub mod errors;
pub mod estimate;
pub mod exchange;
pub mod expr_split;
pub mod folder_sort;
pub mod graph;
pub mod group_keys;
pub mod group_top_k;
pub mod hive_listing;
pub mod hive_prune;
pub mod join_order;
pub mod key_filter;
mod kind;
pub mod lean_filter;
pub mod lean_logic;
pub mod merge;
pub mod one_input;
pub mod operator_exprs;
pub mod packed_merge;
pub mod packed_sort;
pub mod pipeline;
pub mod planner;
pub mod process_cache;
pub mod queued_stream;
pub mod radix_groups;
pub mod range_sort;
pub mod reshape;
pub mod session;
pub mod set_semi_joins;
pub mod shared_build;
pub mod shared_table;
pub mod shares;
pub mod size_hint;
pub mod skew;
pub mod spill_join;
pub mod steps;
pub mod tables;
pub mod task;
pub mod view_eq;
pub mod whole_groups;
pub mod widening_cast;
pub mod window_step;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use kask_core::plan::{Fragment, Plan, Stage};
use kask_core::{Error, Result};

pub use kind::Relational;

/// What an SQL job's plan adds to [`kask_core::plan::Plan`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SqlPlan {
    /// The partitions of every hash exchange.
    pub partitions: usize,
    /// Each table's byte ranges, one list per scan task.
    pub tables: BTreeMap<String, Vec<Vec<Fragment>>>,
}

/// One stage's sub-plan.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SqlStage {
    /// The sub-plan as DataFusion displays it, with the shuffle readers of earlier stages
    /// as its leaves. A task refuses to run a sub-plan that differs.
    pub plan: String,
    /// The sub-plan itself: DataFusion's protobuf with [`codec::KaskCodec`], base64.
    pub proto: String,
    /// The partitioning of a hash exchange the stage writes into, as protobuf, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// The order and chunk size of a sorted run the stage writes for a sort by key range,
    /// as protobuf, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<String>,
    /// Its tasks record the distinct hashes of their shuffle keys beside the shuffle, for a
    /// later stage's key filter ([`key_filter`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub key_hashes: bool,
    /// The earlier stages whose key hashes filter its rows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filtered_by: Vec<usize>,
}

impl SqlStage {
    /// The tables whose files this stage's sub-plan scans.
    pub fn scanned_tables<'a>(&self, plan: &'a Plan) -> Vec<&'a str> {
        plan.inputs
            .iter()
            .filter(|(_, i)| {
                i.files
                    .iter()
                    .any(|f| self.plan.contains(&format!("/{}", f.path)))
            })
            .map(|(name, _)| name.as_str())
            .collect()
    }
}

impl SqlPlan {
    /// The SQL part of `plan`.
    pub fn of(plan: &Plan) -> Result<SqlPlan> {
        plan.detail()
    }
}

impl SqlStage {
    /// The sub-plan of `stage`, which every stage of a relational plan has.
    pub fn of(stage: &Stage) -> Result<SqlStage> {
        stage.detail()?.ok_or_else(|| {
            Error::internal(format!(
                "stage {} of an SQL plan has no sub-plan",
                stage.name
            ))
        })
    }
}
