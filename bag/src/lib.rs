//! Bag jobs: steps over a bag of JSON values (records from JSON lines, strings from text
//! lines), as dask.bag runs them, on the same stages, shuffle and commit as dataframes.
//!
//! Row-wise steps (map, pluck, filter, split, flatten) run inside a task as records stream
//! past. A wide step (distinct, frequencies, count, topk) keeps a small state per task; with
//! several tasks the states go through the shuffle as (canonical JSON, number) rows, and the
//! next stage merges them ([`wide`]). Records are `serde_json::Value`s, so a bag holds
//! whatever its lines hold: fields may be missing or differ in type from record to record.

/// The expression language, a crate of its own so that it builds and tests without the engine.
pub use kask_bag_expr as expr;
pub mod keys;
mod kind;
pub mod planner;
pub mod read;
pub mod steps;
pub mod task;
pub mod unify;
pub mod wide;
pub mod words;

use std::cmp::Ordering;
use std::fmt::Write;

use serde_json::Value;

pub use kind::Bag;

/// A value's canonical JSON: object keys sorted at every level, so that records equal as
/// JSON (whatever their key order) are equal as text, hash alike and shuffle alike.
pub fn canonical(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{}", Value::String(k.clone()));
                out.push(':');
                if let Some(x) = m.get(k) {
                    write_canonical(x, out);
                }
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

fn rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

/// A total order on JSON values for `topk`: null < booleans < numbers < strings < lists <
/// objects; numbers by value, strings by code point, lists element-wise, objects by their
/// canonical text.
pub fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i.cmp(&j),
            _ => {
                let (p, q) = (
                    x.as_f64().unwrap_or(f64::NAN),
                    y.as_f64().unwrap_or(f64::NAN),
                );
                p.total_cmp(&q)
            }
        },
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (p, q) in x.iter().zip(y) {
                let o = compare(p, q);
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(_), Value::Object(_)) => canonical(a).cmp(&canonical(b)),
        _ => rank(a).cmp(&rank(b)),
    }
}
