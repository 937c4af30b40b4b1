//! The bag job kind: steps over a bag of JSON records or text lines, as dask.bag does.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A bag job: named inputs of JSON lines or text, and steps over their records.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BagJob {
    /// Named inputs. The first step names one of them as its `source`.
    pub inputs: BTreeMap<String, BagInput>,
    /// Steps applied in order; the first one is `source`.
    pub steps: Vec<BagStep>,
    /// What a line that is not valid JSON does: `error` (default) fails the job naming the file
    /// and line; `skip` drops it and reports how many lines were skipped.
    #[serde(default)]
    pub on_bad_record: OnBadRecord,
}

/// One input: the files a glob matches.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BagInput {
    /// A glob relative to `storage.url`, e.g. `events/*.jsonl`; `.gz` files are decompressed.
    pub path: String,
    /// `json` (one JSON value per line) or `text` (each line is a string record); default from
    /// the extension: `.json`, `.jsonl` and `.ndjson` are json, anything else text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<BagFormat>,
}

impl BagInput {
    /// The format, explicit or guessed from the glob's extension.
    pub fn format(&self) -> BagFormat {
        self.format.unwrap_or_else(|| {
            let p = self.path.trim_end_matches(".gz").to_ascii_lowercase();
            if p.ends_with(".json") || p.ends_with(".jsonl") || p.ends_with(".ndjson") {
                BagFormat::Json
            } else {
                BagFormat::Text
            }
        })
    }
}

/// How a bag input's lines become records.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BagFormat {
    /// One JSON value per line.
    Json,
    /// One string per line.
    Text,
}

/// What a malformed JSON line does.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnBadRecord {
    /// Fail, naming the file and line.
    #[default]
    Error,
    /// Drop the line and count it.
    Skip,
}

/// One bag step. Exactly one field is set. A record that is not a JSON object (a text line,
/// a plucked value) is seen by expressions as `{"value": <record>}`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BagStep {
    /// Start from this input (the first step, and only there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Replace each record by a new one: `{field: "<SQL expression>"}`, evaluated over the
    /// record's fields (a missing field is null).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map: Option<IndexMap<String, String>>,
    /// Replace each record by the value at a dotted field path, e.g. `user.country` (null when
    /// the record lacks it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pluck: Option<String>,
    /// Keep the records for which this SQL boolean expression is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Split each string record into words, one record per word.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<Split>,
    /// One record per element of the list at this field path, the element in the list's place
    /// (`.` flattens records that are lists themselves).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flatten: Option<String>,
    /// Keep one of each distinct record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distinct: Option<NoOptions>,
    /// Count each distinct record: records `{"value": <record>, "count": n}`, most frequent
    /// first within each output part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequencies: Option<NoOptions>,
    /// The number of records, as one record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<NoOptions>,
    /// The `k` largest records, largest first (by the value at field path `by`, or by the
    /// record itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topk: Option<TopK>,
}

/// A step without options, written `{}`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoOptions {}

/// How `split` cuts a string.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Split {
    /// The separator (default: runs of whitespace, with empty words dropped, as Python's
    /// `str.split()`; with a separator, empty words are kept, as `str.split(sep)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sep: Option<String>,
}

/// The `k` largest records.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TopK {
    /// How many.
    #[schemars(range(min = 1))]
    pub k: u64,
    /// Compare records by the value at this field path (default: the record itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// The bag step kinds, in the order a step's single key is reported.
pub const BAG_STEP_KINDS: [&str; 10] = [
    "source",
    "map",
    "pluck",
    "filter",
    "split",
    "flatten",
    "distinct",
    "frequencies",
    "count",
    "topk",
];

/// A bag step with its one field resolved.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BagStepRef<'a> {
    /// `source: input`
    Source(&'a str),
    /// `map: {field: expr}`
    Map(&'a IndexMap<String, String>),
    /// `pluck: path`
    Pluck(&'a str),
    /// `filter: expr`
    Filter(&'a str),
    /// `split: {sep}`
    Split(&'a Split),
    /// `flatten: path`
    Flatten(&'a str),
    /// `distinct: {}`
    Distinct,
    /// `frequencies: {}`
    Frequencies,
    /// `count: {}`
    Count,
    /// `topk: {k, by}`
    TopK(&'a TopK),
}

impl BagStep {
    /// The names of the fields that are set.
    pub fn kinds_set(&self) -> Vec<&'static str> {
        let set = [
            self.source.is_some(),
            self.map.is_some(),
            self.pluck.is_some(),
            self.filter.is_some(),
            self.split.is_some(),
            self.flatten.is_some(),
            self.distinct.is_some(),
            self.frequencies.is_some(),
            self.count.is_some(),
            self.topk.is_some(),
        ];
        BAG_STEP_KINDS
            .iter()
            .zip(set)
            .filter_map(|(k, s)| s.then_some(*k))
            .collect()
    }

    /// The step's one field, or `None` when zero or several are set (validation reports that).
    pub fn as_ref(&self) -> Option<BagStepRef<'_>> {
        if self.kinds_set().len() != 1 {
            return None;
        }
        Some(if let Some(s) = &self.source {
            BagStepRef::Source(s)
        } else if let Some(m) = &self.map {
            BagStepRef::Map(m)
        } else if let Some(p) = &self.pluck {
            BagStepRef::Pluck(p)
        } else if let Some(f) = &self.filter {
            BagStepRef::Filter(f)
        } else if let Some(s) = &self.split {
            BagStepRef::Split(s)
        } else if let Some(f) = &self.flatten {
            BagStepRef::Flatten(f)
        } else if self.distinct.is_some() {
            BagStepRef::Distinct
        } else if self.frequencies.is_some() {
            BagStepRef::Frequencies
        } else if self.count.is_some() {
            BagStepRef::Count
        } else {
            BagStepRef::TopK(self.topk.as_ref()?)
        })
    }
}

impl BagJob {
    /// Structural checks; expressions are compiled when the worker plans the job.
    pub(crate) fn check(&self, e: &mut crate::validate::Errors) {
        if self.inputs.is_empty() {
            e.add("spec.bag.inputs", "needs at least one input");
        }
        for (name, input) in &self.inputs {
            crate::validate::check_relative_path(
                &format!("spec.bag.inputs.{name}.path"),
                &input.path,
                e,
            );
        }
        if self.steps.is_empty() {
            e.add(
                "spec.bag.steps",
                "needs at least one step, starting with `source: <input>`",
            );
        }
        crate::validate::too_many(
            "spec.bag.steps",
            "steps",
            self.steps.len(),
            crate::crd::MAX_STEPS,
            e,
        );
        for (i, step) in self.steps.iter().enumerate() {
            let at = format!("spec.bag.steps[{i}]");
            let Some(step) = step.as_ref() else {
                let set = step.kinds_set();
                let message = if set.is_empty() {
                    format!("a step needs one of: {}", BAG_STEP_KINDS.join(", "))
                } else {
                    format!(
                        "a step has exactly one of {} (found {})",
                        BAG_STEP_KINDS.join(", "),
                        set.join(", ")
                    )
                };
                e.add(at, message);
                continue;
            };
            match step {
                BagStepRef::Source(name) => {
                    if i != 0 {
                        e.add(
                            format!("{at}.source"),
                            "only the first step can be a source",
                        );
                    } else if !self.inputs.contains_key(name) {
                        let names: Vec<&str> = self.inputs.keys().map(String::as_str).collect();
                        e.add(
                            format!("{at}.source"),
                            format!("no input named {name:?} (inputs: {})", names.join(", ")),
                        );
                    }
                }
                BagStepRef::Map(m) => {
                    if m.is_empty() {
                        e.add(
                            format!("{at}.map"),
                            "needs at least one `field: expression`",
                        );
                    }
                    for (field, expr) in m {
                        if field.is_empty() {
                            e.add(format!("{at}.map"), "a field name must not be empty");
                        }
                        if expr.trim().is_empty() {
                            e.add(format!("{at}.map.{field}"), "needs a SQL expression");
                        }
                    }
                }
                BagStepRef::Pluck(p) => check_field_path(&format!("{at}.pluck"), p, false, e),
                BagStepRef::Flatten(p) => check_field_path(&format!("{at}.flatten"), p, true, e),
                BagStepRef::Filter(f) => {
                    if f.trim().is_empty() {
                        e.add(format!("{at}.filter"), "needs a SQL boolean expression");
                    }
                }
                BagStepRef::Split(s) => {
                    if s.sep.as_deref() == Some("") {
                        e.add(
                            format!("{at}.split.sep"),
                            "an empty separator splits nothing; leave sep out to split on whitespace",
                        );
                    }
                }
                BagStepRef::TopK(t) => {
                    if t.k == 0 {
                        e.add(format!("{at}.topk.k"), "must be at least 1");
                    }
                    if let Some(by) = &t.by {
                        check_field_path(&format!("{at}.topk.by"), by, false, e);
                    }
                }
                BagStepRef::Distinct | BagStepRef::Frequencies | BagStepRef::Count => {}
            }
            if i == 0 && !matches!(step, BagStepRef::Source(_)) {
                e.add(at, "the first step must be `source: <input>`");
            }
        }
    }
}

fn check_field_path(at: &str, path: &str, dot_allowed: bool, e: &mut crate::validate::Errors) {
    if dot_allowed && path == "." {
        return;
    }
    if path.is_empty() || path.split('.').any(str::is_empty) {
        e.add(
            at,
            format!("{path:?} is not a field path; write names joined by dots, e.g. user.country"),
        );
    }
}
