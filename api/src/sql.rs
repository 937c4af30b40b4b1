//! The SQL job kind: named tables and one query in DataFusion's SQL dialect.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::spec::Input;

/// An SQL job: named tables (files as in a dataframe job's inputs) and a query over them.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SqlJob {
    /// Named tables, each the files a glob matches. Names are matched as the query's unquoted
    /// names are, without regard to case.
    pub tables: BTreeMap<String, Input>,
    /// Named queries, in order: each may use the tables and the views before it, and the query
    /// may use them all, as it would a table.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub views: IndexMap<String, String>,
    /// One query (`SELECT ...`, `WITH ...`), whose result is the job's output.
    pub query: String,
}

impl SqlJob {
    pub(crate) fn check(&self, e: &mut crate::validate::Errors) {
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
        if self.query.trim().is_empty() {
            e.add("spec.sql.query", "must not be empty");
        }
    }
}
