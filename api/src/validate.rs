//! Structural validation of a `DaskJobSpec`: pure, no schemas and no I/O. Every error carries
//! the field path, and all errors are gathered rather than stopping at the first.
//!
//! Checks that need the inputs' columns (unknown columns, expression types) happen when the
//! worker plans the job.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::paths;
use crate::spec::{DaskJobSpec, DataframeJob, Descending, Format, Input, NamedOutput, Step};

/// One problem in a spec, at a field path such as `spec.dataframe.pipeline[3].merge.right`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Where, as a path from `spec`.
    pub path: String,
    /// What is wrong, and what would be right.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every error found in a spec, in field order.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "the job spec has {n} error{}:",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

pub(crate) struct Errors(Vec<FieldError>);

impl Errors {
    pub(crate) fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }
}

/// The step kinds, in the order a step's single key is reported.
pub const STEP_KINDS: [&str; 15] = [
    "source", "filter", "select", "drop", "rename", "assign", "merge", "groupby", "sort", "head",
    "distinct", "concat", "melt", "explode", "window",
];

/// A pipeline step with its one field resolved.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StepRef<'a> {
    /// `source: input`
    Source(&'a str),
    /// `filter: expr`
    Filter(&'a str),
    /// `select: [..]`
    Select(&'a [String]),
    /// `drop: [..]`
    Drop(&'a [String]),
    /// `rename: {old: new}`
    Rename(&'a BTreeMap<String, String>),
    /// `assign: {name: expr}`
    Assign(&'a indexmap::IndexMap<String, String>),
    /// `merge: {..}`
    Merge(&'a crate::spec::Merge),
    /// `groupby: {..}`
    GroupBy(&'a crate::spec::GroupBy),
    /// `sort: {..}`
    Sort(&'a crate::spec::Sort),
    /// `head: n`
    Head(u64),
    /// `distinct: {..}`
    Distinct(&'a crate::spec::Distinct),
    /// `concat: [..]`
    Concat(&'a [String]),
    /// `melt: {..}`
    Melt(&'a crate::spec::Melt),
    /// `explode: column`
    Explode(&'a str),
    /// `window: {..}`
    Window(&'a crate::spec::Window),
}

impl Step {
    /// The names of the fields that are set.
    pub fn kinds_set(&self) -> Vec<&'static str> {
        let set = [
            self.source.is_some(),
            self.filter.is_some(),
            self.select.is_some(),
            self.drop.is_some(),
            self.rename.is_some(),
            self.assign.is_some(),
            self.merge.is_some(),
            self.groupby.is_some(),
            self.sort.is_some(),
            self.head.is_some(),
            self.distinct.is_some(),
            self.concat.is_some(),
            self.melt.is_some(),
            self.explode.is_some(),
            self.window.is_some(),
        ];
        STEP_KINDS
            .iter()
            .zip(set)
            .filter_map(|(k, s)| s.then_some(*k))
            .collect()
    }

    /// The step's one field, or `None` when zero or several are set (validation reports that).
    pub fn as_ref(&self) -> Option<StepRef<'_>> {
        if self.kinds_set().len() != 1 {
            return None;
        }
        Some(if let Some(s) = &self.source {
            StepRef::Source(s)
        } else if let Some(s) = &self.filter {
            StepRef::Filter(s)
        } else if let Some(s) = &self.select {
            StepRef::Select(s)
        } else if let Some(s) = &self.drop {
            StepRef::Drop(s)
        } else if let Some(s) = &self.rename {
            StepRef::Rename(s)
        } else if let Some(s) = &self.assign {
            StepRef::Assign(s)
        } else if let Some(s) = &self.merge {
            StepRef::Merge(s)
        } else if let Some(s) = &self.groupby {
            StepRef::GroupBy(s)
        } else if let Some(s) = &self.sort {
            StepRef::Sort(s)
        } else if let Some(n) = self.head {
            StepRef::Head(n)
        } else if let Some(c) = &self.concat {
            StepRef::Concat(c)
        } else if let Some(m) = &self.melt {
            StepRef::Melt(m)
        } else if let Some(c) = &self.explode {
            StepRef::Explode(c)
        } else if let Some(w) = &self.window {
            StepRef::Window(w)
        } else {
            StepRef::Distinct(self.distinct.as_ref()?)
        })
    }
}

/// Checks a spec; `Ok` means every structural rule holds.
pub fn validate(spec: &DaskJobSpec) -> Result<(), ValidationErrors> {
    let mut e = Errors(Vec::new());

    let kinds: Vec<&str> = [
        ("dataframe", spec.dataframe.is_some()),
        ("array", spec.array.is_some()),
        ("bag", spec.bag.is_some()),
        ("sql", spec.sql.is_some()),
    ]
    .iter()
    .filter_map(|(k, s)| s.then_some(*k))
    .collect();
    match kinds.as_slice() {
        [] => e.add("spec", "one of dataframe, sql, array or bag is required"),
        [_] => {}
        many => e.add(
            "spec",
            format!(
                "only one of dataframe, sql, array or bag may be set (found {})",
                many.join(", ")
            ),
        ),
    }
    if let Some(template) = &spec.pod_template {
        for (field, message) in template.problems() {
            e.add(format!("spec.podTemplate.{field}"), message);
        }
    }
    if let Some(account) = &spec.service_account_name
        && !is_dns_subdomain(account)
    {
        e.add(
            "spec.serviceAccountName",
            format!(
                "{account:?} is not a service account name (lowercase letters, digits, '-' and '.')"
            ),
        );
    }
    let (kind, allowed): (&str, &[Format]) = if spec.array.is_some() {
        ("an array job", &[Format::Zarr])
    } else if spec.bag.is_some() {
        ("a bag job", &[Format::Json, Format::Parquet])
    } else if spec.sql.is_some() {
        ("an SQL job", &[Format::Parquet, Format::Csv, Format::Json])
    } else {
        (
            "a dataframe job",
            &[Format::Parquet, Format::Csv, Format::Json],
        )
    };
    for out in spec.outputs() {
        let format = spec.format_of(&out.output);
        if !allowed.contains(&format) {
            let names: Vec<&str> = allowed.iter().map(|f| format_name(*f)).collect();
            e.add(
                format!("{}.format", out.field),
                format!(
                    "{kind} cannot write {}; use {}",
                    format_name(format),
                    names.join(" or ")
                ),
            );
        }
    }

    if let Some(storage) = &spec.storage {
        check_storage_url(&storage.url, &mut e);
        if let Some(ep) = &storage.endpoint
            && !(ep.starts_with("http://") || ep.starts_with("https://"))
        {
            e.add(
                "spec.storage.endpoint",
                format!("{ep:?} is not an http:// or https:// URL"),
            );
        }
        if let Some(s) = &storage.secret_ref
            && s.name.trim().is_empty()
        {
            e.add("spec.storage.secretRef.name", "must not be empty");
        }
    }

    if let Some(df) = &spec.dataframe {
        check_dataframe(df, spec.output.is_some(), &mut e);
    }
    if let Some(array) = &spec.array {
        array.check(&mut e);
    }
    if let Some(bag) = &spec.bag {
        bag.check(&mut e);
    }
    if let Some(sql) = &spec.sql {
        sql.check(spec.output.is_some(), &mut e);
    } else if spec.dataframe.is_none() && spec.output.is_none() {
        e.add("spec.output", "is required");
    }

    let outputs = spec.outputs();
    for (i, out) in outputs.iter().enumerate() {
        check_output(spec, out, &mut e);
        for other in &outputs[..i] {
            if paths::overlaps(&out.output.path, &other.output.path) {
                e.add(
                    format!("{}.path", out.field),
                    format!(
                        "{:?} overlaps {}.path ({:?}): each output needs a folder of its own",
                        out.output.path, other.field, other.output.path
                    ),
                );
            }
        }
    }
    for (field, value) in [
        ("workers", spec.workers.map(u64::from)),
        ("targetTaskBytes", spec.target_task_bytes),
        ("shufflePartitions", spec.shuffle_partitions.map(u64::from)),
    ] {
        if value == Some(0) {
            e.add(format!("spec.{field}"), "must be at least 1");
        }
    }

    if e.0.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors(e.0))
    }
}

/// Folder keys name distinct columns of a table result (which columns the result has is
/// checked at planning).
fn check_partition_by(spec: &DaskJobSpec, out: &NamedOutput, e: &mut Errors) {
    let keys = &out.output.partition_by;
    if keys.is_empty() {
        return;
    }
    let at = format!("{}.partitionBy", out.field);
    if spec.dataframe.is_none() && spec.sql.is_none() {
        e.add(
            &at,
            "only dataframe and SQL results are written in folders by column",
        );
        return;
    }
    for (i, k) in keys.iter().enumerate() {
        if k.is_empty() {
            e.add(&at, "a column name is empty");
        } else if keys[..i].contains(k) {
            e.add(&at, format!("{k:?} is named twice"));
        }
    }
}

/// The output is a folder of its own: not the storage root, not inside Kask's scratch space,
/// not a glob, and apart from every input, so that a job never writes where it reads.
fn check_output(spec: &DaskJobSpec, out: &NamedOutput, e: &mut Errors) {
    check_partition_by(spec, out, e);
    let at = &format!("{}.path", out.field);
    let path = &out.output.path;
    let before = e.0.len();
    check_relative_path(at, path, e);
    if e.0.len() > before {
        return;
    }
    let comps = paths::components(path);
    if comps.is_empty() {
        e.add(
            at,
            format!(
                "{path:?} is the storage root; a job writes into a folder of its own, e.g. results/my-job"
            ),
        );
        return;
    }
    if comps.contains(&paths::SCRATCH_DIR) {
        e.add(
            at,
            format!(
                "{path:?} is inside a {}/ folder, where Kask keeps scratch data and commit records",
                paths::SCRATCH_DIR
            ),
        );
    }
    if comps.iter().any(|c| c.contains(['*', '?', '[', '{'])) {
        e.add(at, format!("{path:?} is a folder, not a glob"));
    }
    for (field, input) in spec.input_paths() {
        if paths::overlaps(path, input) {
            e.add(
                at,
                format!(
                    "{path:?} overlaps {field} ({input:?}): a job must not write where it reads, \
                     or its result would replace or join its own input; choose a folder outside it"
                ),
            );
        }
    }
}

fn check_storage_url(url: &str, e: &mut Errors) {
    let path = "spec.storage.url";
    let Some((scheme, rest)) = url.split_once("://") else {
        e.add(
            path,
            format!("{url:?} is not a URL; expected s3://, gs://, az:// or file:///"),
        );
        return;
    };
    match scheme {
        "s3" | "s3a" | "gs" | "az" | "abfs" | "abfss" => {
            if rest.trim_matches('/').is_empty() {
                e.add(path, format!("{url:?} names no bucket or container"));
            }
        }
        "file" => {
            if !rest.starts_with('/') {
                e.add(
                    path,
                    format!("{url:?} is not an absolute path; write file:///abs/dir"),
                );
            }
        }
        other => e.add(
            path,
            format!("unsupported scheme {other:?} in {url:?}; expected s3, gs, az or file"),
        ),
    }
}

fn format_name(f: Format) -> &'static str {
    match f {
        Format::Parquet => "parquet",
        Format::Csv => "csv",
        Format::Json => "json",
        Format::Zarr => "zarr",
    }
}

pub(crate) fn check_relative_path(path: &str, value: &str, e: &mut Errors) {
    if value.trim().is_empty() {
        e.add(path, "must not be empty");
    } else if value.starts_with('/') || value.contains("://") {
        e.add(
            path,
            format!("{value:?} must be relative to spec.storage.url"),
        );
    } else if value.split('/').any(|c| c == "..") {
        e.add(path, format!("{value:?} must not contain \"..\""));
    }
}

/// Checks one table input named `name` under the field path `parent` (e.g. `spec.sql.tables`).
pub(crate) fn check_input(parent: &str, name: &str, input: &Input, e: &mut Errors) {
    let at = format!("{parent}.{name}");
    if name.trim().is_empty() {
        e.add(&at, "a name must not be empty");
    }
    check_relative_path(&format!("{at}.path"), &input.path, e);
    if input.format == Some(Format::Zarr) {
        e.add(
            format!("{at}.format"),
            "a table is parquet, csv or json; Zarr arrays are inputs of array jobs",
        );
    }
    if let Some(csv) = &input.csv {
        if input.format() != Format::Csv {
            e.add(
                format!("{at}.csv"),
                "CSV options are only allowed with format: csv",
            );
        }
        if csv.delimiter.len() != 1 {
            e.add(
                format!("{at}.csv.delimiter"),
                format!(
                    "{:?} must be exactly one ASCII character, e.g. \",\" or \"|\"",
                    csv.delimiter
                ),
            );
        }
    }
}

fn input_names(df: &DataframeJob) -> String {
    df.inputs.keys().cloned().collect::<Vec<_>>().join(", ")
}

/// The names a pipeline's `source` and `right` may use: the inputs and the pipelines before it.
struct Known<'a> {
    df: &'a DataframeJob,
    pipelines: Vec<String>,
}

impl Known<'_> {
    fn check(&self, path: String, name: &str, e: &mut Errors) {
        if self.df.inputs.contains_key(name) || self.pipelines.iter().any(|p| p == name) {
            return;
        }
        let graph = !self.df.views.is_empty() || !self.df.outputs.is_empty();
        let later = self.df.views.contains_key(name) || self.df.outputs.contains_key(name);
        if later {
            e.add(
                path,
                format!(
                    "{name:?} comes after this pipeline; a pipeline can use the inputs and the \
                     views and outputs before it"
                ),
            );
        } else if graph {
            e.add(
                path,
                format!(
                    "no input, view or output named {name:?} (inputs: {}; pipelines before \
                     this one: {})",
                    input_names(self.df),
                    if self.pipelines.is_empty() {
                        "none".to_string()
                    } else {
                        self.pipelines.join(", ")
                    }
                ),
            );
        } else {
            e.add(
                path,
                format!("no input named {name:?} (inputs: {})", input_names(self.df)),
            );
        }
    }
}

fn check_columns(path: String, cols: &[String], e: &mut Errors) {
    if cols.is_empty() {
        e.add(path, "needs at least one column");
        return;
    }
    let mut seen = BTreeSet::new();
    for (i, c) in cols.iter().enumerate() {
        if c.is_empty() {
            e.add(format!("{path}[{i}]"), "a column name must not be empty");
        } else if !seen.insert(c) {
            e.add(
                format!("{path}[{i}]"),
                format!("column {c:?} is listed twice"),
            );
        }
    }
}

fn check_dataframe(df: &DataframeJob, has_output: bool, e: &mut Errors) {
    if df.inputs.is_empty() {
        e.add("spec.dataframe.inputs", "needs at least one input");
    }
    for (name, input) in &df.inputs {
        check_input("spec.dataframe.inputs", name, input, e);
    }
    match (df.pipeline.is_empty(), df.outputs.is_empty()) {
        (false, true) => {
            if !has_output {
                e.add("spec.output", "is required with spec.dataframe.pipeline");
            }
        }
        (true, true) => e.add(
            "spec.dataframe.pipeline",
            "needs at least one step, starting with `source: <input>` (or spec.dataframe.outputs \
             for several results)",
        ),
        (false, false) => e.add(
            "spec.dataframe",
            "has both pipeline and outputs; a job graph puts each pipeline in outputs",
        ),
        (true, false) => {
            if has_output {
                e.add(
                    "spec.output",
                    "is not used by a job graph, whose results are in spec.dataframe.outputs; \
                     remove it",
                );
            }
        }
    }
    for (name, field) in df
        .views
        .keys()
        .map(|n| (n, format!("spec.dataframe.views.{n}")))
        .chain(
            df.outputs
                .keys()
                .map(|n| (n, format!("spec.dataframe.outputs.{n}"))),
        )
    {
        if name.trim().is_empty() || name.contains(['.', '"', '/']) {
            e.add(
                &field,
                "a view or output name must not be empty nor contain '.', '/' or '\"'",
            );
        }
        if df.inputs.contains_key(name) {
            e.add(&field, format!("{name:?} is also the name of an input"));
        }
    }
    for name in df.views.keys().filter(|v| df.outputs.contains_key(*v)) {
        e.add(
            format!("spec.dataframe.outputs.{name}"),
            format!("{name:?} is also the name of a view"),
        );
    }
    too_many(
        "spec.dataframe.views",
        "views",
        df.views.len(),
        crate::crd::MAX_PIPELINES,
        e,
    );
    too_many(
        "spec.dataframe.outputs",
        "outputs",
        df.outputs.len(),
        crate::crd::MAX_PIPELINES,
        e,
    );
    let mut known = Known {
        df,
        pipelines: vec![],
    };
    for p in df.pipelines() {
        check_pipeline(&known, &p.field, p.steps, e);
        known.pipelines.push(p.name);
    }
}

/// The bounds the API server's schema sets (`maxItems`, `maxProperties`), for `kask run`
/// and `kask validate`, which no API server checks.
pub(crate) fn too_many(field: &str, what: &str, n: usize, most: i64, e: &mut Errors) {
    if i64::try_from(n).unwrap_or(i64::MAX) > most {
        e.add(
            field,
            format!("has {n} {what}; a job may have at most {most}"),
        );
    }
}

fn check_pipeline(known: &Known<'_>, field: &str, steps: &[Step], e: &mut Errors) {
    if steps.is_empty() {
        e.add(
            field,
            "needs at least one step, starting with `source: <input>`",
        );
        return;
    }
    too_many(field, "steps", steps.len(), crate::crd::MAX_STEPS, e);
    for (i, step) in steps.iter().enumerate() {
        let at = format!("{field}[{i}]");
        let Some(step) = step.as_ref() else {
            let set = step.kinds_set();
            if set.is_empty() {
                e.add(
                    at,
                    format!("a step needs one of: {}", STEP_KINDS.join(", ")),
                );
            } else {
                e.add(
                    at,
                    format!(
                        "a step has exactly one of {} (found {})",
                        STEP_KINDS.join(", "),
                        set.join(", ")
                    ),
                );
            }
            continue;
        };
        if i == 0 && !matches!(step, StepRef::Source(_)) {
            e.add(&at, "the first step must be `source: <input>`".to_string());
        }
        check_step(known, &at, i, step, e);
    }
}

fn check_step(known: &Known<'_>, at: &str, i: usize, step: StepRef<'_>, e: &mut Errors) {
    match step {
        StepRef::Source(name) => {
            if i != 0 {
                e.add(
                    format!("{at}.source"),
                    "only the first step can be a source; use merge to combine inputs",
                );
            }
            known.check(format!("{at}.source"), name, e);
        }
        StepRef::Filter(expr) => {
            if expr.trim().is_empty() {
                e.add(format!("{at}.filter"), "needs a SQL boolean expression");
            }
        }
        StepRef::Select(cols) => check_columns(format!("{at}.select"), cols, e),
        StepRef::Drop(cols) => check_columns(format!("{at}.drop"), cols, e),
        StepRef::Rename(map) => {
            if map.is_empty() {
                e.add(format!("{at}.rename"), "needs at least one `old: new` pair");
            }
            let mut targets = BTreeMap::new();
            for (old, new) in map {
                if new.is_empty() {
                    e.add(
                        format!("{at}.rename.{old}"),
                        "the new name must not be empty",
                    );
                } else if let Some(prev) = targets.insert(new, old) {
                    e.add(
                        format!("{at}.rename.{old}"),
                        format!("{prev:?} and {old:?} are both renamed to {new:?}"),
                    );
                }
            }
        }
        StepRef::Assign(map) => {
            if map.is_empty() {
                e.add(
                    format!("{at}.assign"),
                    "needs at least one `column: expression` pair",
                );
            }
            for (name, expr) in map {
                if name.is_empty() {
                    e.add(format!("{at}.assign"), "a column name must not be empty");
                }
                if expr.trim().is_empty() {
                    e.add(format!("{at}.assign.{name}"), "needs a SQL expression");
                }
            }
        }
        StepRef::Merge(m) => {
            let at = format!("{at}.merge");
            known.check(format!("{at}.right"), &m.right, e);
            match (&m.on, &m.left_on, &m.right_on) {
                (Some(on), None, None) => check_columns(format!("{at}.on"), on, e),
                (None, Some(l), Some(r)) => {
                    check_columns(format!("{at}.leftOn"), l, e);
                    check_columns(format!("{at}.rightOn"), r, e);
                    if l.len() != r.len() {
                        e.add(
                            format!("{at}.rightOn"),
                            format!(
                                "has {} columns but leftOn has {}; they pair up one to one",
                                r.len(),
                                l.len()
                            ),
                        );
                    }
                }
                _ => e.add(
                    at.clone(),
                    "give either `on`, or both `leftOn` and `rightOn`",
                ),
            }
            if let Some(s) = &m.suffixes
                && (s.len() != 2 || s[0] == s[1])
            {
                e.add(
                    format!("{at}.suffixes"),
                    "needs two different suffixes, e.g. [\"_x\", \"_y\"]",
                );
            }
        }
        StepRef::GroupBy(g) => {
            let at = format!("{at}.groupby");
            // No keys is a global aggregate: one row.
            if !g.by.is_empty() {
                check_columns(format!("{at}.by"), &g.by, e);
            }
            if g.aggs.is_empty() && g.expressions.is_empty() {
                e.add(
                    format!("{at}.aggs"),
                    "needs at least one `column: [aggregation, ...]` (or `expressions`)",
                );
            }
            let mut outputs: BTreeSet<String> = g.by.iter().cloned().collect();
            for (col, aggs) in &g.aggs {
                if aggs.is_empty() {
                    e.add(format!("{at}.aggs.{col}"), "needs at least one aggregation");
                }
                for a in aggs {
                    let name = format!("{col}_{}", a.name());
                    if !outputs.insert(name.clone()) {
                        let why = if g.by.contains(&name) {
                            format!("{}'s column {name:?} is also a key", a.name())
                        } else {
                            format!("{} is listed twice", a.name())
                        };
                        e.add(format!("{at}.aggs.{col}"), why);
                    }
                }
            }
            for (name, expr) in &g.expressions {
                let field = format!("{at}.expressions.{name}");
                if name.is_empty() {
                    e.add(
                        format!("{at}.expressions"),
                        "a column name must not be empty",
                    );
                } else if !outputs.insert(name.clone()) {
                    e.add(
                        field.clone(),
                        format!("{name:?} is already a key or an aggregation's column"),
                    );
                }
                if expr.trim().is_empty() {
                    e.add(
                        field,
                        "needs a SQL aggregate expression, e.g. \"corr(v1, v2)\"",
                    );
                }
            }
        }
        StepRef::Sort(s) => {
            check_columns(format!("{at}.sort.by"), &s.by, e);
            if let Some(Descending::PerKey(d)) = &s.descending
                && d.len() != s.by.len()
            {
                e.add(
                    format!("{at}.sort.descending"),
                    format!(
                        "has {} entries but sort.by has {} columns",
                        d.len(),
                        s.by.len()
                    ),
                );
            }
        }
        StepRef::Head(_) => {}
        StepRef::Melt(m) => {
            let at = format!("{at}.melt");
            if !m.id_vars.is_empty() {
                check_columns(format!("{at}.idVars"), &m.id_vars, e);
            }
            if let Some(v) = &m.value_vars {
                check_columns(format!("{at}.valueVars"), v, e);
                for c in v.iter().filter(|c| m.id_vars.contains(c)) {
                    e.add(
                        format!("{at}.valueVars"),
                        format!("{c:?} is also in idVars"),
                    );
                }
            }
            let (var, value) = m.names();
            if var.is_empty() || value.is_empty() {
                e.add(at.clone(), "varName and valueName must not be empty");
            } else if var == value {
                e.add(
                    format!("{at}.valueName"),
                    format!("{value:?} is also the varName"),
                );
            }
            for name in [var, value] {
                if m.id_vars.iter().any(|c| c == name) {
                    e.add(
                        at.clone(),
                        format!("{name:?} names an idVars column; give varName or valueName another name"),
                    );
                }
            }
        }
        StepRef::Window(w) => crate::window_check::check_window(w, &format!("{at}.window"), e),
        StepRef::Explode(c) => {
            if c.is_empty() {
                e.add(format!("{at}.explode"), "needs the list column to explode");
            }
        }
        StepRef::Concat(names) => {
            if names.is_empty() {
                e.add(
                    format!("{at}.concat"),
                    "needs at least one input or pipeline whose rows to append",
                );
            }
            for (j, name) in names.iter().enumerate() {
                known.check(format!("{at}.concat[{j}]"), name, e);
            }
        }
        StepRef::Distinct(d) => {
            if let Some(subset) = &d.subset {
                check_columns(format!("{at}.distinct.subset"), subset, e);
            }
        }
    }
}

/// A Kubernetes object name (RFC 1123 subdomain): what a service account may be called.
fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}
