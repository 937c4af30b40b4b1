//! Error types for compiling and evaluating record expressions.

use sqlparser::tokenizer::Location;

/// A syntax error or an unsupported SQL feature, located in the SQL text.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("at column {column}: {message}")]
pub struct CompileError {
    /// 1-based line in the SQL text.
    pub line: u64,
    /// 1-based character column in the SQL text.
    pub column: u64,
    /// What is wrong, without the position.
    pub message: String,
}

impl CompileError {
    /// Builds an error at a sqlparser location; an empty location (line 0)
    /// means sqlparser lost track, and column 1 is the least misleading guess.
    pub(crate) fn at(location: Location, message: impl Into<String>) -> CompileError {
        let (line, column) = if location.line == 0 {
            (1, 1)
        } else {
            (location.line, location.column)
        };
        CompileError {
            line,
            column,
            message: message.into(),
        }
    }
}

/// A failure while evaluating an expression against one item.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message} in {sql:?}")]
pub struct EvalError {
    /// The source text of the expression that failed.
    pub sql: String,
    /// What went wrong, naming the operator or function and the values involved.
    pub message: String,
}
