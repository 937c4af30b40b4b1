//! SQL expressions evaluated over JSON records, for Kask's bag jobs.
//!
//! A bag step such as `filter: "status = 'ok' and user.age >= 18"` carries a
//! SQL expression that is compiled once with [`RecordExpr::compile`] and then
//! evaluated against one `serde_json::Value` at a time. Records are
//! heterogeneous, so typing is dynamic: a missing field is SQL NULL, and a
//! value of the wrong kind is an [`EvalError`] when it is met.
//!
//! ```
//! use kask_bag_expr::RecordExpr;
//! use serde_json::json;
//!
//! let filter = RecordExpr::compile("status = 'ok' and user.age >= 18").expect("valid SQL");
//! assert!(filter.matches(&json!({"status": "ok", "user": {"age": 30}})).expect("evaluates"));
//! // A missing field is NULL, and a NULL filter result drops the item.
//! assert!(!filter.matches(&json!({"status": "ok"})).expect("evaluates"));
//!
//! let country = RecordExpr::compile("upper(user.country)").expect("valid SQL");
//! assert_eq!(country.eval(&json!({"user": {"country": "fr"}})).expect("evaluates"), json!("FR"));
//! assert_eq!(country.fields(), vec!["user.country"]);
//!
//! // Text lines are seen as the record {"value": line}.
//! let len = RecordExpr::compile("length(value)").expect("valid SQL");
//! assert_eq!(len.eval(&json!("hello")).expect("evaluates"), json!(5));
//! ```
//!
//! Rules worth knowing beyond plain SQL:
//! - identifiers are case-sensitive (JSON keys are); `a.b`, `a['b']` and
//!   `a[1]` (1-based) look into nested values, and anything missing is NULL;
//! - operands of different kinds (`1 = '1'`) are an error, not `false`,
//!   including in `IN`, `CASE x WHEN`, `IS DISTINCT FROM` and `greatest`;
//! - `AND`, `OR`, `CASE` and `coalesce` evaluate lazily, so a guard such as
//!   `x IS NOT NULL AND x > 1` protects the right-hand side;
//! - LIKE's default escape character is backslash, as in PostgreSQL.

mod cast;
mod compile;
mod error;
mod eval;
mod functions;
mod like;
mod tree;
mod value;

use serde_json::Value;

pub use error::{CompileError, EvalError};

use tree::Node;

/// A compiled SQL expression over one JSON item.
#[derive(Clone, Debug)]
pub struct RecordExpr {
    sql: String,
    root: Node,
}

impl RecordExpr {
    /// Parses and compiles; every syntax or unsupported-feature error carries its position.
    pub fn compile(sql: &str) -> Result<RecordExpr, CompileError> {
        Ok(RecordExpr {
            sql: sql.to_string(),
            root: compile::compile(sql)?,
        })
    }

    /// Evaluates against one item. A non-object item (a string line, a number after a pluck) is seen as the record {"value": item}.
    pub fn eval(&self, item: &Value) -> Result<Value, EvalError> {
        eval::eval(&self.root, item)
            .map(|v| v.into_owned())
            .map_err(|message| self.error(message))
    }

    /// For filters: true keeps the item; false or null drops it; any other result is an EvalError naming the type found.
    pub fn matches(&self, item: &Value) -> Result<bool, EvalError> {
        match eval::eval(&self.root, item)
            .map_err(|m| self.error(m))?
            .as_ref()
        {
            Value::Bool(b) => Ok(*b),
            Value::Null => Ok(false),
            other => Err(self.error(format!(
                "a filter must be a boolean, found {}",
                value::describe(other)
            ))),
        }
    }

    /// The field paths the expression reads, e.g. ["user.country", "status"].
    ///
    /// Paths come in order of first appearance, without duplicates; a
    /// subscript computed at run time (`tags[i]`) ends the path (`tags`).
    pub fn fields(&self) -> Vec<String> {
        fn walk(node: &Node, out: &mut Vec<String>) {
            if let Node::Field(path) = node {
                let joined = path.join(".");
                if !out.contains(&joined) {
                    out.push(joined);
                }
            }
            node.for_each_child(&mut |child| walk(child, out));
        }
        let mut out = Vec::new();
        walk(&self.root, &mut out);
        out
    }

    /// The source text.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    fn error(&self, message: String) -> EvalError {
        EvalError {
            sql: self.sql.clone(),
            message,
        }
    }
}

/// Looks up a dotted field path ("user.address.city") in an item with the same rules as identifiers (missing → Null; a non-object item is {"value": item}).
pub fn lookup<'a>(item: &'a Value, path: &str) -> Option<&'a Value> {
    let parts: Vec<&str> = path.split('.').collect();
    eval::lookup_path(item, &parts)
}
