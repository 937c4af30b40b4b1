//! An SQL query's mistakes, said the way its author needs them: where in the query, and for
//! an unknown table or column, which ones exist.

use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;

use crate::error::Error;
use crate::task::df_message;

/// The user's error for a query DataFusion could not plan.
pub fn query_error(ctx: &SessionContext, e: &DataFusionError) -> Error {
    let mut msg = df_message(e);
    for prefix in ["Error during planning: ", "SQL error: ", "Schema error: "] {
        if let Some(rest) = msg.strip_prefix(prefix) {
            msg = rest.to_string();
        }
    }
    let place = e
        .diagnostic()
        .and_then(|d| d.span)
        .filter(|s| s.start.line > 0)
        .map(|s| format!("line {}, column {}: ", s.start.line, s.start.column))
        .unwrap_or_default();
    let mut text = format!("{place}{msg}");
    if msg.contains("table") && msg.contains("not found") {
        let mut names = ctx
            .catalog("datafusion")
            .and_then(|c| c.schema("public"))
            .map(|s| s.table_names())
            .unwrap_or_default();
        names.sort();
        text.push_str(&format!(" (tables: {})", names.join(", ")));
    }
    Error::spec("spec.sql.query", text)
}
