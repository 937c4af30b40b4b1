//! `kask explain`: the plan as text.

use std::fmt::Write;

use super::human_bytes as human;
use kask_worker::array::{ArrayPlan, ArrayStage};
use kask_worker::plan::{Op, Partial, Plan, Sink, StageSource};
use kask_worker::relational::SqlStage;

fn op_text(plan: &Plan, op: &Op) -> String {
    let step = |i: &usize| {
        plan.spec
            .bag
            .as_ref()
            .and_then(|bag| bag.steps.get(*i))
            .and_then(|s| s.kinds_set().first().map(|k| format!("{k}[{i}]")))
            .unwrap_or_default()
    };
    match op {
        Op::BagRow { step: i } => step(i),
        Op::BagWide { step: i } => format!("{} (whole, in one task)", step(i)),
        Op::BagFinal { step: i } => format!("{} (final: merge the tasks' states)", step(i)),
    }
}

fn array_text(a: &ArrayStage) -> String {
    match a {
        ArrayStage::Partials { node, block, grid } => {
            format!("partial states of reduction n{node}, blocks of {block:?} ({grid:?} per axis)")
        }
        ArrayStage::Combine {
            node,
            block,
            grid,
            output,
            ..
        } => format!(
            "reduction n{node} from its partials, blocks of {block:?} ({grid:?} per axis){}",
            if *output { "" } else { ", kept in scratch" }
        ),
        ArrayStage::Blocks { block, grid } => {
            format!("the expression, blocks of {block:?} ({grid:?} per axis)")
        }
    }
}

/// Renders a plan for a terminal.
pub fn render(plan: &Plan, store_url: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "job {} on {store_url}", plan.job_id);
    let targets = plan.targets();
    for t in &targets {
        let name = match targets.len() {
            1 => String::new(),
            _ => format!(" {}", t.name),
        };
        let _ = writeln!(
            s,
            "output{name} {} ({:?}, mode {:?})",
            t.output.path, t.format, t.output.mode
        );
    }
    if plan.kind == "array"
        && let Ok(a) = ArrayPlan::of(plan)
    {
        let _ = writeln!(
            s,
            "array {} of shape {:?}, chunks {:?}",
            a.dtype, a.shape, a.chunks
        );
        for (name, m) in &a.inputs {
            let _ = writeln!(
                s,
                "input {name}: {} {} of shape {:?}, chunks {:?}",
                m.path, m.dtype, m.shape, m.chunks
            );
        }
    }
    for st in &plan.stages {
        let _ = writeln!(
            s,
            "\nstage {} — {} task{}",
            st.name,
            st.tasks,
            if st.tasks == 1 { "" } else { "s" }
        );
        if targets.len() > 1 && !st.feeds.is_empty() {
            let _ = writeln!(s, "  feeds    {}", st.feeds.join(", "));
        }
        match &st.source {
            StageSource::Input { input } => {
                let i = &plan.inputs[input];
                let format = match plan.spec.bag.as_ref().and_then(|b| b.inputs.get(input)) {
                    Some(b) => format!("{:?} lines", b.format()),
                    None => format!("{:?}", i.format),
                };
                let _ = writeln!(
                    s,
                    "  reads    input {input:?}: {} file(s), {}, {format}",
                    i.files.len(),
                    human(i.bytes),
                );
            }
            StageSource::Shuffle { stage } => {
                let _ = writeln!(
                    s,
                    "  reads    one shuffle partition of {} per task",
                    plan.stages[*stage].name
                );
            }
            StageSource::Array => {
                if let Ok(a) = &ArrayStage::of(st) {
                    let _ = writeln!(s, "  computes {}", array_text(a));
                }
            }
            StageSource::Sql { reads } => {
                let sub_plan = SqlStage::of(st).ok();
                let tables = sub_plan
                    .as_ref()
                    .map(|q| q.scanned_tables(plan))
                    .unwrap_or_default();
                let filtered_by = sub_plan
                    .as_ref()
                    .map(|q| q.filtered_by.clone())
                    .unwrap_or_default();
                let mut what: Vec<String> = tables.iter().map(|t| format!("table {t}")).collect();
                what.extend(reads.iter().map(|r| {
                    let name = &plan.stages[*r].name;
                    if filtered_by.contains(r) {
                        format!("the key hashes of {name} (it keeps rows whose keys {name} has)")
                    } else {
                        format!("the shuffle of {name}")
                    }
                }));
                let _ = writeln!(s, "  reads    {}", what.join(", "));
                if let Some(q) = &sub_plan {
                    let _ = writeln!(s, "  runs");
                    // A scan lists every file of its tasks: long lines are cut for a terminal.
                    for line in q.plan.lines() {
                        match line.char_indices().nth(240) {
                            Some((at, _)) => {
                                let _ = writeln!(s, "    {} …", &line[..at]);
                            }
                            None => {
                                let _ = writeln!(s, "    {line}");
                            }
                        }
                    }
                }
            }
        }
        if !st.ops.is_empty() {
            let ops: Vec<String> = st.ops.iter().map(|o| op_text(plan, o)).collect();
            let _ = writeln!(s, "  runs     {}", ops.join(" → "));
        }
        match &st.sink {
            Sink::Output => match plan.target_of(st.id) {
                Some(t) if targets.len() > 1 => {
                    let _ = writeln!(s, "  writes   output {} ({})", t.name, t.output.path);
                }
                _ => {
                    let _ = writeln!(s, "  writes   the output");
                }
            },
            Sink::Scratch => {
                let _ = writeln!(s, "  writes   scratch files for a later stage");
            }
            Sink::Ranges { keys, chunk_rows } => {
                let _ = writeln!(
                    s,
                    "  writes   its rows sorted by [{}], in chunks of {chunk_rows} rows with their first and last keys",
                    keys.join(", ")
                );
            }
            Sink::Shuffle {
                partitions,
                keys,
                partial,
                ..
            } => {
                let before = match partial {
                    Partial::None => String::new(),
                    Partial::Bag { step } => format!(" after a per-task state of step [{step}]"),
                };
                let by = if keys.is_empty() {
                    String::new()
                } else {
                    format!(" by hash of [{}]", keys.join(", "))
                };
                match st.name.split_once("-view-") {
                    Some((_, view)) if *partitions == 1 => {
                        let _ = writeln!(
                            s,
                            "  keeps    view {view}'s rows, a partition per task, for the stages that use it"
                        );
                    }
                    _ => {
                        let hashes = if SqlStage::of(st).is_ok_and(|q| q.key_hashes) {
                            ", and its keys' hashes for a later stage's key filter"
                        } else {
                            ""
                        };
                        let _ = writeln!(
                            s,
                            "  writes   a shuffle into {partitions} partition(s){by}{before}{hashes}"
                        );
                    }
                }
            }
        }
        let cols: Vec<String> = st
            .output_schema
            .0
            .fields()
            .iter()
            .map(|f| format!("{}: {}", f.name(), f.data_type()))
            .collect();
        if !cols.is_empty() {
            let _ = writeln!(s, "  columns  {}", cols.join(", "));
        }
        for (t, frags) in st.fragments.iter().enumerate().take(20) {
            let parts: Vec<String> = frags
                .iter()
                .map(|f| {
                    if f.is_whole_file() {
                        f.path.clone()
                    } else {
                        format!("{}[{}..{}]", f.path, f.start, f.end)
                    }
                })
                .collect();
            let _ = writeln!(
                s,
                "  task {t:<4} {:>10}  {}",
                human(st.task_bytes.get(t).copied().unwrap_or(0)),
                parts.join(", ")
            );
        }
        if st.fragments.len() > 20 {
            let _ = writeln!(s, "  ... and {} more tasks", st.fragments.len() - 20);
        }
    }
    s
}
