//! The SQL job kind: named tables and one query in DataFusion's SQL dialect.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::spec::{Format, Input, Output, OutputMode};

/// An SQL job: named tables (files as in a dataframe job's inputs) and a query over them.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SqlJob {
    /// Named tables, each the files a glob matches. Names are matched as the query's unquoted
    /// names are, without regard to case.
    pub tables: BTreeMap<String, Input>,
    /// Named queries, in order: each may use the tables and the views before it, and the
    /// queries may use them all, as they would a table. A view that several outputs use is
    /// computed once.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub views: IndexMap<String, String>,
    /// One query (`SELECT ...`, `WITH ...`), whose result is written to `spec.output`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Several named results instead of `query` (a job graph), each a query with its own
    /// output folder and manifest; they commit together or not at all.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub outputs: IndexMap<String, SqlOutput>,
}

/// One result of an SQL job graph.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SqlOutput {
    /// The query whose result this is; it may use the tables and every view.
    pub query: String,
    /// Its folder, relative to `storage.url`, as `spec.output.path`.
    pub path: String,
    /// parquet (default), csv or json.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    /// `error` (default) refuses to replace an existing result; `overwrite` replaces it.
    #[serde(default)]
    pub mode: OutputMode,
    /// Columns whose values name folders (`region=eu/part-….parquet`, Hive partitioning, as
    /// Spark's `partitionBy` and pandas' `partition_cols`); they are left out of the files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partition_by: Vec<String>,
}

impl SqlOutput {
    /// Where and how it is written, as a `spec.output` would say.
    pub fn to_output(&self) -> Output {
        Output {
            path: self.path.clone(),
            format: self.format,
            mode: self.mode,
            partition_by: self.partition_by.clone(),
        }
    }
}

impl SqlJob {
    /// Every query with its field path: the views', then the query's or the outputs'.
    pub fn queries(&self) -> Vec<(String, &str)> {
        let views = self
            .views
            .iter()
            .map(|(n, q)| (format!("spec.sql.views.{n}"), q.as_str()));
        let query = self
            .query
            .iter()
            .map(|q| ("spec.sql.query".to_string(), q.as_str()));
        let outputs = self
            .outputs
            .iter()
            .map(|(n, o)| (format!("spec.sql.outputs.{n}.query"), o.query.as_str()));
        views.chain(query).chain(outputs).collect()
    }

    pub(crate) fn check(&self, has_output: bool, e: &mut crate::validate::Errors) {
        if self.tables.is_empty() {
            e.add("spec.sql.tables", "needs at least one table");
        }
        for (name, input) in &self.tables {
            crate::validate::check_input("spec.sql.tables", name, input, e);
            if name.contains(['.', '"']) {
                e.add(
                    format!("spec.sql.tables.{name}"),
                    "a table name must not contain '.' or '\"'",
                );
            }
        }
        for (name, query) in &self.views {
            let at = format!("spec.sql.views.{name}");
            if name.trim().is_empty() || name.contains(['.', '"']) {
                e.add(&at, "a view name must not be empty nor contain '.' or '\"'");
            }
            if self.tables.keys().any(|t| t.eq_ignore_ascii_case(name)) {
                e.add(&at, format!("{name:?} is also the name of a table"));
            }
            if query.trim().is_empty() {
                e.add(&at, "must not be empty");
            }
        }
        match (&self.query, self.outputs.is_empty()) {
            (Some(q), true) => {
                if q.trim().is_empty() {
                    e.add("spec.sql.query", "must not be empty");
                }
                if !has_output {
                    e.add("spec.output", "is required with spec.sql.query");
                }
            }
            (None, true) => e.add(
                "spec.sql",
                "needs a query (with spec.output) or outputs (a job graph)",
            ),
            (Some(_), false) => e.add(
                "spec.sql",
                "has both query and outputs; a job graph puts each query in outputs",
            ),
            (None, false) => {
                if has_output {
                    e.add(
                        "spec.output",
                        "is not used by a job graph, whose results are in spec.sql.outputs; remove it",
                    );
                }
            }
        }
        for (name, out) in &self.outputs {
            let at = format!("spec.sql.outputs.{name}");
            if name.trim().is_empty() || name.contains(['.', '"', '/']) {
                e.add(
                    &at,
                    "an output name must not be empty nor contain '.', '/' or '\"'",
                );
            }
            if out.query.trim().is_empty() {
                e.add(format!("{at}.query"), "must not be empty");
            }
        }
    }
}
