//! Plans a bag job: lists the source input's files, cuts them into tasks of about
//! `targetTaskBytes` (whole lines; compressed files whole), compiles every expression, and
//! ends a stage at each wide step that has more than one task to merge.

use std::collections::BTreeMap;

use super::read::compressed;
use super::steps;
use kask_api::{BagJob, BagStepRef, CsvOptions, DaskJobSpec, Format};
use kask_core::error::{Error, Result};
use kask_core::plan::listing::{ListedFile, ListedInput, Splits, matching_files};
use kask_core::plan::tasks::{cut_input, dns_safe, reduce_partitions};
use kask_core::plan::{
    InputFile, InputPlan, Op, PLAN_VERSION, Partial, Plan, PlanSchema, Sink, Stage, StageSource,
};
use kask_core::store::Store;

fn empty_schema() -> PlanSchema {
    PlanSchema(std::sync::Arc::new(
        datafusion::arrow::datatypes::Schema::empty(),
    ))
}

/// The source input, listed.
pub async fn list_source(store: &Store, job: &BagJob) -> Result<(String, ListedInput)> {
    let Some(BagStepRef::Source(name)) = job.steps.first().and_then(|s| s.as_ref()) else {
        return Err(Error::spec(
            "spec.bag.steps[0]",
            "the first step must be `source: <input>`",
        ));
    };
    let input = job.inputs.get(name).ok_or_else(|| {
        Error::spec(
            "spec.bag.steps[0].source",
            format!("no input named {name:?}"),
        )
    })?;
    let files = matching_files(store, name, &input.path).await?;
    for (path, _, _) in &files {
        let p = path.to_ascii_lowercase();
        if [".bz2", ".xz", ".zip"].iter().any(|x| p.ends_with(x)) {
            return Err(Error::input(
                name,
                format!("{path}: bag inputs may be plain, .gz or .zst files"),
            ));
        }
    }
    let listed = ListedInput {
        format: Format::Json,
        csv: CsvOptions::default(),
        schema: std::sync::Arc::new(datafusion::arrow::datatypes::Schema::empty()),
        hive: vec![],
        sampled: false,
        files: files
            .into_iter()
            .map(|(path, size, version)| ListedFile {
                splits: if compressed(&path) {
                    Splits::Whole
                } else {
                    Splits::Anywhere
                },
                path,
                size,
                version,
                keys: vec![],
            })
            .collect(),
    };
    Ok((name.to_string(), listed))
}

fn stage(name: &str, source: StageSource, ops: Vec<Op>, tasks: usize) -> Stage {
    Stage {
        id: 0,
        name: name.to_string(),
        source,
        ops,
        sink: Sink::Output,
        tasks,
        fragments: vec![],
        task_bytes: vec![],
        output_schema: empty_schema(),
        detail: serde_json::Value::Null,
        feeds: vec![],
    }
}

/// The plan of a bag job over its listed source, its shuffles sized for tasks with a memory
/// pool of `pool` bytes.
pub fn plan(
    job_id: &str,
    spec: &DaskJobSpec,
    source: &str,
    listed: &ListedInput,
    pool: Option<u64>,
) -> Result<Plan> {
    let job = spec
        .bag
        .as_ref()
        .ok_or_else(|| Error::internal("a bag plan for a job without spec.bag"))?;
    let workers = spec.workers() as usize;
    let fragments = cut_input(listed, spec.target_task_bytes());
    let mut cur = stage(
        &format!("scan-{}", dns_safe(source)),
        StageSource::Input {
            input: source.to_string(),
        },
        vec![],
        fragments.len(),
    );
    cur.task_bytes = fragments
        .iter()
        .map(|t| t.iter().map(|f| f.end - f.start).sum())
        .collect();
    cur.fragments = fragments;

    let mut stages: Vec<Stage> = Vec::new();
    for i in 1..job.steps.len() {
        let step = job.steps[i]
            .as_ref()
            .ok_or_else(|| Error::internal(format!("bag step {i} was not validated")))?;
        let kind = match step {
            BagStepRef::Source(_) => {
                return Err(Error::spec(
                    format!("spec.bag.steps[{i}]"),
                    "only the first step can be a source",
                ));
            }
            BagStepRef::Distinct => "distinct",
            BagStepRef::Frequencies => "frequencies",
            BagStepRef::Count => "count",
            BagStepRef::TopK(_) => "topk",
            _ => {
                // Compiling now reports a bad expression before any task runs.
                steps::compile(job, i)?;
                cur.ops.push(Op::BagRow { step: i });
                continue;
            }
        };
        if cur.tasks <= 1 {
            cur.ops.push(Op::BagWide { step: i });
            continue;
        }
        let keyed = matches!(step, BagStepRef::Distinct | BagStepRef::Frequencies);
        let partitions = if keyed {
            let bytes = listed.files.iter().map(|f| f.size).sum();
            reduce_partitions(spec.shuffle_partitions, cur.tasks, workers, bytes, pool)
        } else {
            1
        };
        let from = stages.len();
        cur.id = from;
        cur.name = format!("s{from}-{}", cur.name);
        cur.sink = Sink::Shuffle {
            partitions,
            keys: if keyed { vec!["k".into()] } else { vec![] },
            partial: Partial::Bag { step: i },
        };
        stages.push(cur);
        cur = stage(
            kind,
            StageSource::Shuffle { stage: from },
            vec![Op::BagFinal { step: i }],
            partitions,
        );
    }
    let id = stages.len();
    cur.id = id;
    cur.name = format!("s{id}-{}", cur.name);
    stages.push(cur);

    let mut inputs = BTreeMap::new();
    inputs.insert(
        source.to_string(),
        InputPlan {
            format: Format::Json,
            csv: CsvOptions::default(),
            schema: empty_schema(),
            files: listed
                .files
                .iter()
                .map(|f| InputFile {
                    path: f.path.clone(),
                    size: f.size,
                    keys: vec![],
                })
                .collect(),
            bytes: listed.files.iter().map(|f| f.size).sum(),
            hive: vec![],
        },
    );
    Ok(Plan {
        version: PLAN_VERSION,
        job_id: job_id.to_string(),
        job_name: String::new(),
        spec: spec.clone(),
        inputs,
        stages,
        kind: "bag".into(),
        detail: serde_json::Value::Null,
        output_stages: vec![],
    })
}
