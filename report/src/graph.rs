//! The stage graph (a box per stage, an arrow from each stage it reads) and a table of what
//! each stage did, with its skew: its slowest task against its median one.

use std::fmt::Write as _;

use kask_api::history::{AttemptOutcome, AttemptRecord, JobHistory, StageRecord};

use crate::format::{bytes, count, esc, px, seconds};
use crate::layout::columns;
use crate::stream::{colour, short};

const BOX_W: f64 = 190.0;
const BOX_H: f64 = 44.0;
const GAP_X: f64 = 60.0;
const GAP_Y: f64 = 16.0;

/// The stages: the planned ones, else those the attempts name.
pub fn stages(h: &JobHistory) -> Vec<StageRecord> {
    if let Some(j) = &h.job
        && !j.stages.is_empty()
    {
        return j.stages.clone();
    }
    let mut seen: Vec<StageRecord> = Vec::new();
    for a in &h.attempts {
        if !seen.iter().any(|s| s.id == a.stage) {
            seen.push(StageRecord {
                id: a.stage,
                name: a.stage_name.clone(),
                tasks: 0,
                after: if a.stage > 0 {
                    vec![a.stage - 1]
                } else {
                    vec![]
                },
                feeds: vec![],
            });
        }
    }
    seen.sort_by_key(|s| s.id);
    seen
}

/// The stage graph's section.
pub fn section(h: &JobHistory) -> String {
    let stages = stages(h);
    let mut out = String::from("<section id=\"stages\"><h2>Stages</h2>\n");
    if stages.is_empty() {
        out.push_str("<p>The job was not planned.</p></section>\n");
        return out;
    }
    let cols = columns(&stages);
    let mut rows_in_col: Vec<usize> = vec![0; cols.iter().max().map_or(1, |m| m + 1)];
    let mut at: Vec<(f64, f64)> = Vec::with_capacity(stages.len());
    for &c in &cols {
        let r = rows_in_col[c];
        rows_in_col[c] += 1;
        at.push((
            10.0 + c as f64 * (BOX_W + GAP_X),
            10.0 + r as f64 * (BOX_H + GAP_Y),
        ));
    }
    let width = 20.0 + rows_in_col.len() as f64 * (BOX_W + GAP_X) - GAP_X;
    let height = 20.0 + *rows_in_col.iter().max().unwrap_or(&1) as f64 * (BOX_H + GAP_Y) - GAP_Y;
    let _ = writeln!(
        out,
        "<svg class=\"graph\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"stage graph\">\
         <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"6\" markerHeight=\"6\" orient=\"auto\"><path d=\"M0 0L10 5L0 10z\"/></marker></defs>",
        w = px(width),
        h = px(height)
    );
    for (i, s) in stages.iter().enumerate() {
        for &d in &s.after {
            let Some(from) = stages.iter().position(|x| x.id == d) else {
                continue;
            };
            let (x0, y0) = (at[from].0 + BOX_W, at[from].1 + BOX_H / 2.0);
            let (x1, y1) = (at[i].0, at[i].1 + BOX_H / 2.0);
            let _ = writeln!(
                out,
                "<path class=\"edge\" d=\"M{} {}C{} {} {} {} {} {}\" marker-end=\"url(#arrow)\"/>",
                px(x0),
                px(y0),
                px(x0 + GAP_X / 2.0),
                px(y0),
                px(x1 - GAP_X / 2.0),
                px(y1),
                px(x1),
                px(y1)
            );
        }
    }
    for (i, s) in stages.iter().enumerate() {
        let (x, y) = at[i];
        let done = committed(&h.attempts, s.id);
        let _ = writeln!(
            out,
            "<g class=\"stage\" data-stage=\"{name}\"><rect x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{bh}\" rx=\"5\" style=\"stroke:{c}\"/>\
             <rect x=\"{x}\" y=\"{y}\" width=\"6\" height=\"{bh}\" fill=\"{c}\"/>\
             <text x=\"{tx}\" y=\"{ty}\">{label}</text><text class=\"sub\" x=\"{tx}\" y=\"{sy}\">{done} of {tasks} tasks</text></g>",
            name = esc(&s.name),
            x = px(x),
            y = px(y),
            w = px(BOX_W),
            bh = px(BOX_H),
            c = colour(s.id),
            tx = px(x + 14.0),
            ty = px(y + 18.0),
            sy = px(y + 35.0),
            label = esc(&short(&s.name, 26)),
            tasks = s.tasks,
        );
    }
    out.push_str("</svg>\n");
    table(&mut out, h, &stages);
    out.push_str("</section>\n");
    out
}

fn committed(attempts: &[AttemptRecord], stage: usize) -> usize {
    let mut tasks: Vec<usize> = attempts
        .iter()
        .filter(|a| a.stage == stage && a.outcome == AttemptOutcome::Committed)
        .map(|a| a.task)
        .collect();
    tasks.sort_unstable();
    tasks.dedup();
    tasks.len()
}

/// The median of `v` (sorted here).
pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn table(out: &mut String, h: &JobHistory, stages: &[StageRecord]) {
    out.push_str(
        "<table class=\"stages\"><thead><tr><th>stage</th><th>tasks</th><th>attempts</th>\
         <th>failed</th><th>rows in</th><th>rows out</th><th>bytes in</th><th>bytes out</th>\
         <th>spilled</th><th>median task</th><th>slowest task</th><th>skew</th></tr></thead><tbody>\n",
    );
    for s in stages {
        let mine: Vec<&AttemptRecord> = h.attempts.iter().filter(|a| a.stage == s.id).collect();
        let ok: Vec<&&AttemptRecord> = mine
            .iter()
            .filter(|a| a.outcome == AttemptOutcome::Committed)
            .collect();
        let mut secs: Vec<f64> = ok.iter().map(|a| a.seconds(a.started_ms)).collect();
        let slowest = secs.iter().copied().fold(0.0, f64::max);
        let med = median(&mut secs);
        let skew = if med > 0.0 {
            format!("{:.1}×", slowest / med)
        } else {
            "–".into()
        };
        let failed = mine
            .iter()
            .filter(|a| a.outcome == AttemptOutcome::Failed)
            .count();
        let sum = |f: fn(&AttemptRecord) -> u64| ok.iter().map(|a| f(a)).sum::<u64>();
        let _ = writeln!(
            out,
            "<tr data-stage=\"{}\"><td><i style=\"background:{}\"></i>{}</td><td>{}</td><td>{}</td><td{}>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&s.name),
            colour(s.id),
            esc(&s.name),
            s.tasks,
            mine.len(),
            if failed > 0 { " class=\"bad\"" } else { "" },
            failed,
            count(sum(|a| a.rows_in)),
            count(sum(|a| a.rows_out)),
            bytes(sum(|a| a.bytes_in)),
            bytes(sum(|a| a.bytes_out)),
            bytes(sum(|a| a.spilled_bytes)),
            seconds(med),
            seconds(slowest),
            skew
        );
    }
    out.push_str("</tbody></table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
    }
}
