//! The SQL job kind: named tables and one query in DataFusion's SQL dialect.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::spec::Input;

/// An SQL job: named tables (files as in a dataframe job's inputs) and a query over them.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SqlJob {
    /// Named tables, each the files a glob matches. Unquoted names in the query are folded to
    /// lower case, as in PostgreSQL: name tables in lower case, or quote them in the query.
    pub tables: BTreeMap<String, Input>,
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
        if self.query.trim().is_empty() {
            e.add("spec.sql.query", "must not be empty");
        }
    }
}
