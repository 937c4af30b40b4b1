//! The planner: from a spec and its input listing to stages and tasks. No I/O: the same spec
//! and listing always give the same plan.
//!
//! Row-wise steps stay inside a stage. A wide step (merge, groupby, distinct, sort, head) ends
//! the stage with a shuffle whose map side already does what it can (partial aggregation,
//! top-k, limit); the next stage's tasks each take one reduce partition. A stage that has a
//! single task needs no shuffle at all: it applies wide steps in place.

use std::collections::BTreeMap;

use kask_api::{DaskJobSpec, How, StepRef};

use super::listing::{ListedInput, Listing, Splits};
use super::{
    Fragment, InputFile, InputPlan, Op, PLAN_VERSION, Partial, Plan, PlanSchema, Sink, Stage,
    StageSource,
};
use crate::error::{Error, Result};

/// Builds the plan's stages; schemas are filled in by [`crate::task::schema::resolve`].
pub fn plan_stages(job_id: &str, spec: &DaskJobSpec, listing: &Listing) -> Result<Plan> {
    let df = spec.dataframe.as_ref().ok_or_else(|| {
        Error::spec(
            "spec.dataframe",
            "this version of kask runs dataframe jobs only",
        )
    })?;
    let target = spec.target_task_bytes();
    let workers = spec.workers() as usize;
    let partitions = |n: usize| -> usize {
        spec.shuffle_partitions
            .map(|p| p as usize)
            .unwrap_or(n.min(workers))
            .max(1)
    };

    let inputs: BTreeMap<String, InputPlan> = listing
        .inputs
        .iter()
        .map(|(name, l)| (name.clone(), input_plan(l)))
        .collect();
    let listed = |name: &str| {
        listing
            .inputs
            .get(name)
            .ok_or_else(|| Error::internal(format!("input {name:?} was not listed")))
    };

    let mut stages: Vec<Stage> = Vec::new();
    let mut push = |mut draft: Stage, sink: Sink| -> usize {
        let id = stages.len();
        draft.id = id;
        draft.name = format!("s{id}-{}", draft.name);
        draft.sink = sink;
        stages.push(draft);
        id
    };

    let source = match df.pipeline.first().and_then(|s| s.as_ref()) {
        Some(StepRef::Source(s)) => s.to_string(),
        _ => {
            return Err(Error::spec(
                "spec.dataframe.pipeline[0]",
                "the first step must be `source: <input>`",
            ));
        }
    };
    let mut cur = input_stage(&source, listed(&source)?, target);

    let steps = &df.pipeline;
    let mut i = 1;
    while i < steps.len() {
        let step = steps[i]
            .as_ref()
            .ok_or_else(|| Error::internal(format!("pipeline[{i}] was not validated")))?;
        match step {
            StepRef::Source(_) => {
                return Err(Error::spec(
                    format!("spec.dataframe.pipeline[{i}]"),
                    "only the first step can be a source",
                ));
            }
            StepRef::Filter(_)
            | StepRef::Select(_)
            | StepRef::Drop(_)
            | StepRef::Rename(_)
            | StepRef::Assign(_) => {
                cur.ops.push(Op::Step { step: i });
            }
            StepRef::Merge(m) => {
                let right = listed(&m.right)?;
                let right_bytes: u64 = right.files.iter().map(|f| f.size).sum();
                let broadcast =
                    matches!(m.how, How::Inner | How::Left) && right_bytes < spec.broadcast_bytes();
                if cur.tasks == 1 || broadcast {
                    cur.ops.push(Op::Merge { step: i });
                } else {
                    let right_stage = input_stage(&m.right, right, target);
                    let r = partitions(cur.tasks.max(right_stage.tasks));
                    let (lk, rk) = m.key_columns();
                    let left = push(cur, shuffle(r, lk, Partial::None));
                    let right = push(right_stage, shuffle(r, rk, Partial::None));
                    cur = reduce_stage(
                        "merge",
                        StageSource::Join {
                            left,
                            right,
                            step: i,
                        },
                        vec![],
                        r,
                    );
                }
            }
            StepRef::GroupBy(g) => {
                if cur.tasks == 1 {
                    cur.ops.push(Op::GroupBy { step: i });
                } else {
                    let r = partitions(cur.tasks);
                    let from = push(cur, shuffle(r, g.by.clone(), Partial::GroupBy { step: i }));
                    cur = reduce_stage(
                        "groupby",
                        StageSource::Shuffle { stage: from },
                        vec![Op::FinalGroupBy { step: i }],
                        r,
                    );
                }
            }
            StepRef::Distinct(_) => {
                if cur.tasks == 1 {
                    cur.ops.push(Op::Distinct { step: i });
                } else {
                    let r = partitions(cur.tasks);
                    // The keys (the subset, or every column) are filled in with the schemas.
                    let from = push(
                        cur,
                        shuffle(
                            r,
                            vec![],
                            Partial::Distinct {
                                step: i,
                                columns: vec![],
                            },
                        ),
                    );
                    cur = reduce_stage(
                        "distinct",
                        StageSource::Shuffle { stage: from },
                        vec![Op::FinalDistinct { step: i }],
                        r,
                    );
                }
            }
            StepRef::Sort(_) => {
                if cur.tasks == 1 {
                    cur.ops.push(Op::Sort { step: i });
                } else {
                    // A sort followed by head needs only each task's top rows.
                    let partial = match steps.get(i + 1).and_then(|s| s.as_ref()) {
                        Some(StepRef::Head(n)) => Partial::TopK { step: i, n },
                        _ => Partial::None,
                    };
                    let from = push(cur, shuffle(1, vec![], partial));
                    cur = reduce_stage(
                        "sort",
                        StageSource::Shuffle { stage: from },
                        vec![Op::Sort { step: i }],
                        1,
                    );
                }
            }
            StepRef::Head(n) => {
                if cur.tasks == 1 {
                    cur.ops.push(Op::Head { step: i });
                } else {
                    let from = push(cur, shuffle(1, vec![], Partial::Limit { n }));
                    cur = reduce_stage(
                        "head",
                        StageSource::Shuffle { stage: from },
                        vec![Op::Head { step: i }],
                        1,
                    );
                }
            }
        }
        i += 1;
    }
    push(cur, Sink::Output);

    Ok(Plan {
        version: PLAN_VERSION,
        job_id: job_id.to_string(),
        job_name: String::new(),
        spec: spec.clone(),
        inputs,
        stages,
        array: None,
        sql: None,
    })
}

fn shuffle(partitions: usize, keys: Vec<String>, partial: Partial) -> Sink {
    Sink::Shuffle {
        partitions,
        keys,
        float_keys: vec![],
        partial,
    }
}

fn empty_schema() -> PlanSchema {
    PlanSchema(std::sync::Arc::new(
        datafusion::arrow::datatypes::Schema::empty(),
    ))
}

fn reduce_stage(kind: &str, source: StageSource, ops: Vec<Op>, tasks: usize) -> Stage {
    Stage {
        id: 0,
        name: kind.to_string(),
        source,
        ops,
        sink: Sink::Output,
        tasks,
        fragments: vec![],
        task_bytes: vec![],
        output_schema: empty_schema(),
        sink_input_schema: None,
        array: None,
        sql: None,
        feeds: vec![],
    }
}

fn input_stage(name: &str, listed: &ListedInput, target: u64) -> Stage {
    let fragments = cut_input(listed, target);
    let task_bytes = fragments
        .iter()
        .map(|t| t.iter().map(|f| f.end - f.start).sum())
        .collect();
    Stage {
        id: 0,
        name: format!("scan-{}", dns_safe(name)),
        source: StageSource::Input {
            input: name.to_string(),
        },
        ops: vec![],
        sink: Sink::Output,
        tasks: fragments.len(),
        fragments,
        task_bytes,
        output_schema: empty_schema(),
        sink_input_schema: None,
        array: None,
        sql: None,
        feeds: vec![],
    }
}

/// What the plan records of a listed input.
pub fn input_plan(l: &ListedInput) -> InputPlan {
    InputPlan {
        format: l.format,
        csv: l.csv.clone(),
        schema: PlanSchema(l.schema.clone()),
        files: l
            .files
            .iter()
            .map(|f| InputFile {
                path: f.path.clone(),
                size: f.size,
            })
            .collect(),
        bytes: l.files.iter().map(|f| f.size).sum(),
    }
}

/// Lowercase letters, digits and single dashes, as Kubernetes names and label values need:
/// at most 40 characters, starting and ending with a letter or digit. A name with none of
/// those (`_`, `数据`) becomes `input`.
pub fn dns_safe(name: &str) -> String {
    let mut s = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            s.push(c.to_ascii_lowercase());
        } else if !s.is_empty() && !s.ends_with('-') {
            s.push('-');
        }
    }
    // Cut before trimming, so that a cut at a dash cannot leave one at the end.
    s.truncate(40);
    let s = s.trim_matches('-');
    if s.is_empty() {
        "input".into()
    } else {
        s.into()
    }
}

/// Cuts an input into tasks of about `target` bytes: whole row groups for Parquet, byte
/// ranges for uncompressed text, whole files otherwise; small neighbours share a task.
pub fn cut_input(listed: &ListedInput, target: u64) -> Vec<Vec<Fragment>> {
    let mut units: Vec<Fragment> = Vec::new();
    for f in &listed.files {
        let unit = |start: u64, end: u64| Fragment {
            path: f.path.clone(),
            size: f.size,
            start,
            end,
        };
        match &f.splits {
            Splits::RowGroups(starts) if starts.len() > 1 => {
                for (i, _) in starts.iter().enumerate() {
                    let start = if i == 0 { 0 } else { starts[i] };
                    let end = starts.get(i + 1).copied().unwrap_or(f.size);
                    units.push(unit(start, end));
                }
            }
            Splits::Anywhere if f.size > target => {
                let pieces = f.size.div_ceil(target);
                let step = f.size.div_ceil(pieces);
                let mut start = 0;
                while start < f.size {
                    let end = (start + step).min(f.size);
                    units.push(unit(start, end));
                    start = end;
                }
            }
            _ => units.push(unit(0, f.size)),
        }
    }

    // As many tasks as the target size asks for, but of equal size: 200 MiB with a 128 MiB
    // target makes two tasks of 100 MiB, not one of 128 and one of 72.
    let total: u64 = units.iter().map(|u| u.end - u.start).sum();
    let target = total.div_ceil(total.div_ceil(target.max(1)).max(1)).max(1);
    let mut tasks: Vec<Vec<Fragment>> = Vec::new();
    let mut current: Vec<Fragment> = Vec::new();
    let mut bytes = 0u64;
    for u in units {
        let len = u.end - u.start;
        // A little overshoot beats a tiny last task made of the remainder.
        if !current.is_empty() && bytes + len > target + target / 8 {
            tasks.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += len;
        match current.last_mut() {
            Some(last) if last.path == u.path && last.end == u.start => last.end = u.end,
            _ => current.push(u),
        }
    }
    if !current.is_empty() {
        tasks.push(current);
    }
    tasks
}

#[cfg(test)]
mod tests {
    use super::dns_safe;

    /// A Kubernetes label value: at most 63 characters, alphanumerics with `-`, `_` or `.`
    /// between them (written out here rather than taken from the code under test).
    fn valid_label(v: &str) -> bool {
        let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
        v.len() <= 63
            && alnum(v.chars().next())
            && alnum(v.chars().last())
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    }

    #[test]
    fn every_input_name_gives_a_valid_stage_label() {
        let long_cut_at_underscore = format!("{}_tail", "a".repeat(40));
        let cases = [
            ("orders", "orders"),
            ("Orders_2026", "orders-2026"),
            ("_", "input"),
            ("数据", "input"),
            ("__x__", "x"),
            ("a__b", "a-b"),
            ("数据_sales", "sales"),
            (long_cut_at_underscore.as_str(), &"a".repeat(40)),
        ];
        for (name, want) in cases {
            let got = dns_safe(name);
            assert_eq!(got, want, "{name:?}");
            let label = format!("s12-scan-{got}");
            assert!(valid_label(&label), "{name:?} gives {label:?}");
        }
        let odd = format!("{}_{}", "b".repeat(39), "c".repeat(10));
        assert!(valid_label(&format!("s0-scan-{}", dns_safe(&odd))));
    }
}
