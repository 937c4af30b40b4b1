//! An SQL query's mistakes, said the way its author needs them: where in the query, and for
//! an unknown table or column, which ones exist.

use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;

use kask_core::error::Error;
use kask_core::error::df_message;

/// The user's error for a query (at field path `at`) that DataFusion could not plan.
pub fn query_error(ctx: &SessionContext, at: &str, e: &DataFusionError) -> Error {
    if let DataFusionError::SQL(parse, _) = e.find_root() {
        return Error::spec(at, syntax(&parse.to_string()));
    }
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
        text.push_str(&format!(" (tables and views: {})", names.join(", ")));
    }
    Error::spec(at, text)
}

/// A syntax error's message with its place first: sqlparser ends it with `at Line: L,
/// Column: C`, or says it found the end of the query.
pub fn syntax(raw: &str) -> String {
    let msg = raw.strip_prefix("sql parser error: ").unwrap_or(raw).trim();
    if let Some(at) = msg.rfind(" at Line: ")
        && let Some((line, column)) = msg[at + " at Line: ".len()..].split_once(", Column: ")
    {
        return format!("line {line}, column {}: {}", column.trim(), &msg[..at]);
    }
    if msg.ends_with("found: EOF") {
        return format!("at the end of the query: {msg}");
    }
    msg.to_string()
}
