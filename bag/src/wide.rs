//! Wide bag steps: distinct, frequencies, count and topk. Each keeps a state that records are
//! folded into; a task's state goes through the shuffle as rows of (canonical JSON, number),
//! and the next stage folds those rows into the same kind of state before emitting the
//! results, in a deterministic order.

use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use serde_json::Value;

use super::expr::lookup;
use super::keys::Keys;
use super::{canonical, compare};
use kask_api::{BagJob, BagStepRef};
use kask_core::error::{Error, Result};

/// The shuffle rows of a wide step's state.
pub fn shuffle_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, false),
        Field::new("n", DataType::Int64, false),
    ]))
}

/// The state of a wide step.
#[derive(Debug)]
pub enum Wide {
    /// Distinct records, by canonical JSON.
    Distinct(Keys<()>),
    /// Counts by canonical JSON.
    Frequencies(Keys<i64>),
    /// A count.
    Count(i64),
    /// Candidates for the k largest.
    TopK {
        /// How many to keep.
        k: usize,
        /// The field path records are compared by.
        by: Option<String>,
        /// (sort key, canonical JSON, record).
        items: Vec<(Value, String, Value)>,
    },
}

impl Wide {
    /// The empty state of wide step `i`.
    pub fn new(job: &BagJob, i: usize) -> Result<Wide> {
        match job.steps.get(i).and_then(|s| s.as_ref()) {
            Some(BagStepRef::Distinct) => Ok(Wide::Distinct(Keys::default())),
            Some(BagStepRef::Frequencies) => Ok(Wide::Frequencies(Keys::default())),
            Some(BagStepRef::Count) => Ok(Wide::Count(0)),
            Some(BagStepRef::TopK(t)) => Ok(Wide::TopK {
                k: usize::try_from(t.k).unwrap_or(usize::MAX),
                by: t.by.clone(),
                items: Vec::new(),
            }),
            other => Err(Error::internal(format!("step {i} ({other:?}) is not wide"))),
        }
    }

    /// An empty state of the same step, for a map task that flushed this one.
    pub fn emptied(&self) -> Wide {
        match self {
            Wide::Distinct(_) => Wide::Distinct(Keys::default()),
            Wide::Frequencies(_) => Wide::Frequencies(Keys::default()),
            Wide::Count(_) => Wide::Count(0),
            Wide::TopK { k, by, .. } => Wide::TopK {
                k: *k,
                by: by.clone(),
                items: Vec::new(),
            },
        }
    }

    /// Whether the state's shuffle rows are hashed by key (else all go to one partition).
    pub fn keyed(&self) -> bool {
        matches!(self, Wide::Distinct(_) | Wide::Frequencies(_))
    }

    /// About how many bytes the state holds (what a map task flushes to the shuffle past its
    /// budget).
    pub fn held_bytes(&self) -> usize {
        match self {
            Wide::Distinct(m) => m.held_bytes(),
            Wide::Frequencies(m) => m.held_bytes(),
            Wide::Count(_) | Wide::TopK { .. } => 0,
        }
    }

    /// Folds in one record.
    pub fn push(&mut self, item: Value) {
        match self {
            Wide::Distinct(m) => m.update_value(&item, |_| ()),
            Wide::Frequencies(m) => m.update_value(&item, |n| *n += 1),
            Wide::Count(n) => *n += 1,
            Wide::TopK { k, by, items } => {
                let key = sort_key(by.as_deref(), &item);
                items.push((key, canonical(&item), item));
                if items.len() >= 2 * (*k).max(1) {
                    keep_top(items, *k);
                }
            }
        }
    }

    /// Folds in a string record, without a JSON value for it: the word count's inner loop.
    pub fn push_str(&mut self, word: &str) {
        match self {
            Wide::Frequencies(m) => m.update_str(word, |n| *n += 1),
            Wide::Distinct(m) => m.update_str(word, |_| ()),
            Wide::Count(n) => *n += 1,
            Wide::TopK { .. } => self.push(Value::String(word.to_string())),
        }
    }

    /// Folds in another task's state, as shuffle rows.
    pub fn push_rows(&mut self, batch: &RecordBatch) -> Result<()> {
        let bad = || Error::internal("bag shuffle rows are not (k utf8, n int64)");
        let keys = batch
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(bad)?;
        let counts = batch
            .column(1)
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or_else(bad)?;
        for i in 0..batch.num_rows() {
            let (k, n) = (keys.value(i), counts.value(i));
            match self {
                Wide::Distinct(m) => m.update_canonical(k, |_| ()),
                Wide::Frequencies(m) => m.update_canonical(k, |c| *c += n),
                Wide::Count(c) => *c += n,
                Wide::TopK { .. } => self.push(parse(k)?),
            }
        }
        Ok(())
    }

    /// The state as shuffle rows.
    pub fn into_rows(self) -> Result<RecordBatch> {
        let (k, n): (StringArray, Int64Array) = match self {
            Wide::Distinct(m) => m.into_columns(|()| 1),
            Wide::Frequencies(m) => m.into_columns(|n| n),
            Wide::Count(c) => (StringArray::from(vec![""]), Int64Array::from(vec![c])),
            Wide::TopK { k, mut items, .. } => {
                keep_top(&mut items, k);
                let (k, n): (Vec<String>, Vec<i64>) =
                    items.into_iter().map(|(_, c, _)| (c, 1)).unzip();
                (StringArray::from(k), Int64Array::from(n))
            }
        };
        RecordBatch::try_new(shuffle_schema(), vec![Arc::new(k), Arc::new(n)])
            .map_err(|e| Error::internal(format!("bag shuffle rows: {e}")))
    }

    /// The step's results: distinct records by canonical JSON; `{"value", "count"}` records,
    /// most frequent first; the count; the k largest, largest first.
    pub fn emit(self, out: &mut dyn FnMut(Value) -> Result<()>) -> Result<()> {
        match self {
            Wide::Distinct(m) => {
                let mut keys: Vec<String> = m.into_map().into_keys().collect();
                keys.sort();
                for k in keys {
                    out(parse(&k)?)?;
                }
            }
            Wide::Frequencies(m) => {
                let mut pairs: Vec<(String, i64)> = m.into_map().into_iter().collect();
                pairs.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                for (k, n) in pairs {
                    let mut record = serde_json::Map::new();
                    record.insert("value".into(), parse(&k)?);
                    record.insert("count".into(), Value::from(n));
                    out(Value::Object(record))?;
                }
            }
            Wide::Count(n) => out(Value::from(n))?,
            Wide::TopK { k, mut items, .. } => {
                keep_top(&mut items, k);
                // Canonical, as after a shuffle: the same job gives the same records however
                // many tasks it ran.
                for (_, c, _) in items {
                    out(parse(&c)?)?;
                }
            }
        }
        Ok(())
    }
}

fn parse(k: &str) -> Result<Value> {
    serde_json::from_str(k).map_err(|e| Error::internal(format!("bag shuffle key {k:?}: {e}")))
}

fn sort_key(by: Option<&str>, item: &Value) -> Value {
    match by {
        Some(p) => lookup(item, p).cloned().unwrap_or(Value::Null),
        None => item.clone(),
    }
}

/// Keeps the k largest, largest first; ties go to the smaller canonical JSON, so every run
/// picks the same records.
fn keep_top(items: &mut Vec<(Value, String, Value)>, k: usize) {
    items.sort_by(|a, b| compare(&b.0, &a.0).then_with(|| a.1.cmp(&b.1)));
    items.truncate(k);
}
