//! Row-wise bag steps, compiled once per task: map, pluck, filter, split and flatten. Each
//! turns one record into zero or more.

use serde_json::{Map, Value};

use super::expr::{RecordExpr, lookup};
use kask_api::{BagJob, BagStepRef};
use kask_core::error::{Error, Result};

/// A compiled row-wise step.
#[derive(Clone, Debug)]
pub enum RowOp {
    /// `map`: a new record from named expressions.
    Map(Vec<(String, RecordExpr)>),
    /// `pluck`: the value at a field path.
    Pluck(String),
    /// `filter`: records for which the expression is true.
    Filter(RecordExpr),
    /// `split`: one record per word of a string record.
    Split(Option<String>),
    /// `flatten`: one record per element of a list (the record itself for `.`).
    Flatten(String),
}

/// A compiled step and its field path, for errors.
#[derive(Clone, Debug)]
pub struct Row {
    /// `spec.bag.steps[i].<kind>`
    pub path: String,
    /// The operation.
    pub op: RowOp,
}

/// The step at index `i`'s field path.
pub fn step_path(i: usize, kind: &str) -> String {
    format!("spec.bag.steps[{i}].{kind}")
}

fn compile_expr(sql: &str, at: &str) -> Result<RecordExpr> {
    RecordExpr::compile(sql).map_err(|e| Error::spec(at, format!("{e} in {sql:?}")))
}

/// Compiles row-wise step `i` (errors name the step and, for expressions, the position).
pub fn compile(job: &BagJob, i: usize) -> Result<Row> {
    let step = job
        .steps
        .get(i)
        .and_then(|s| s.as_ref())
        .ok_or_else(|| Error::internal(format!("bag step {i} was not validated")))?;
    let (kind, op) = match step {
        BagStepRef::Map(fields) => {
            let mut out = Vec::with_capacity(fields.len());
            for (name, sql) in fields {
                out.push((
                    name.clone(),
                    compile_expr(sql, &format!("{}.{name}", step_path(i, "map")))?,
                ));
            }
            ("map", RowOp::Map(out))
        }
        BagStepRef::Pluck(p) => ("pluck", RowOp::Pluck(p.to_string())),
        BagStepRef::Filter(sql) => (
            "filter",
            RowOp::Filter(compile_expr(sql, &step_path(i, "filter"))?),
        ),
        BagStepRef::Split(s) => ("split", RowOp::Split(s.sep.clone())),
        BagStepRef::Flatten(p) => ("flatten", RowOp::Flatten(p.to_string())),
        other => {
            return Err(Error::internal(format!(
                "step {i} ({other:?}) is not row-wise"
            )));
        }
    };
    Ok(Row {
        path: step_path(i, kind),
        op,
    })
}

fn short(v: &Value) -> String {
    let text = v.to_string();
    if text.len() > 200 {
        let cut = (0..=200)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        format!("{}…", &text[..cut])
    } else {
        text
    }
}

fn set_path(record: &mut Value, path: &[&str], value: Value) {
    let Some((first, rest)) = path.split_first() else {
        *record = value;
        return;
    };
    if let Value::Object(m) = record {
        if rest.is_empty() {
            m.insert((*first).to_string(), value);
        } else if let Some(inner) = m.get_mut(*first) {
            set_path(inner, rest, value);
        }
    }
}

/// The words of a string as `split` cuts them: Python's `str.split()` without a separator
/// (see [`super::words`]), `str.split(sep)` with one.
pub fn words<'a>(text: &'a str, sep: Option<&'a str>) -> Box<dyn Iterator<Item = &'a str> + 'a> {
    match sep {
        None => Box::new(super::words::Words::new(text)),
        Some(sep) => Box::new(text.split(sep)),
    }
}

impl Row {
    /// Applies the step to one record, passing what it makes to `out`.
    pub fn apply(&self, item: Value, out: &mut dyn FnMut(Value) -> Result<()>) -> Result<()> {
        let fail = |e: &dyn std::fmt::Display, item: &Value| {
            Error::spec(&self.path, format!("{e} (record: {})", short(item)))
        };
        match &self.op {
            RowOp::Map(fields) => {
                let mut m = Map::with_capacity(fields.len());
                for (name, e) in fields {
                    let v = e.eval(&item).map_err(|e| fail(&e, &item))?;
                    m.insert(name.clone(), v);
                }
                out(Value::Object(m))
            }
            RowOp::Pluck(p) => out(lookup(&item, p).cloned().unwrap_or(Value::Null)),
            RowOp::Filter(e) => {
                if e.matches(&item).map_err(|e| fail(&e, &item))? {
                    out(item)
                } else {
                    Ok(())
                }
            }
            RowOp::Split(sep) => {
                let text = match &item {
                    Value::String(s) => s,
                    Value::Null => return Ok(()),
                    other => {
                        return Err(fail(
                            &"split needs string records (text lines, or pluck a string field first)",
                            other,
                        ));
                    }
                };
                for w in words(text, sep.as_deref()) {
                    out(Value::String(w.to_string()))?;
                }
                Ok(())
            }
            RowOp::Flatten(p) if p == "." => match item {
                Value::Array(elements) => elements.into_iter().try_for_each(&mut *out),
                Value::Null => Ok(()),
                other => out(other),
            },
            RowOp::Flatten(p) => {
                let list = match lookup(&item, p) {
                    Some(Value::Array(a)) => a.clone(),
                    None | Some(Value::Null) => return Ok(()),
                    Some(_) => return out(item),
                };
                let parts: Vec<&str> = p.split('.').collect();
                for element in list {
                    let mut record = item.clone();
                    set_path(&mut record, &parts, element);
                    out(record)?;
                }
                Ok(())
            }
        }
    }
}
