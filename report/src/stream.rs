//! The task stream: a lane per runner slot, a bar per task attempt, coloured by stage; failed
//! attempts outlined in red and crossed, attempts that never ended dashed, superseded ones
//! faded.

use std::fmt::Write as _;

use kask_api::history::{AttemptOutcome, JobHistory};

use crate::format::{bytes, count, esc, px, seconds};
use crate::layout::{Span, drawn_end, lanes};

/// Stage colours (Tableau 10), repeated for stages beyond ten.
pub const PALETTE: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];

/// Stage `i`'s colour.
pub fn colour(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

const LABEL: f64 = 190.0;
const WIDTH: f64 = 900.0;
const ROW: f64 = 22.0;
const BAR: f64 = 16.0;
const AXIS: f64 = 24.0;

/// An attempt's outcome as the page names it: one not ended is `running` while the job runs,
/// and `never-ended` (its process was lost) once the job has ended.
pub fn outcome_name(o: AttemptOutcome, live: bool) -> &'static str {
    match o {
        AttemptOutcome::Running if live => "running",
        AttemptOutcome::Running => "never-ended",
        AttemptOutcome::Committed => "committed",
        AttemptOutcome::Superseded => "superseded",
        AttemptOutcome::Failed => "failed",
    }
}

/// The task stream's section.
pub fn section(h: &JobHistory, span: &Span) -> String {
    let mut out = String::from("<section id=\"stream\"><h2>Task stream</h2>\n");
    if h.attempts.is_empty() {
        out.push_str("<p>No task attempt was recorded.</p></section>\n");
        return out;
    }
    let lanes = lanes(&h.attempts, span);
    let height = lanes.len() as f64 * ROW + AXIS;
    let _ = writeln!(
        out,
        "<svg class=\"stream\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" role=\"img\" aria-label=\"task stream\">",
        px(LABEL + WIDTH + 10.0),
        px(height),
        px(LABEL + WIDTH + 10.0),
        px(height)
    );
    for (row, lane) in lanes.iter().enumerate() {
        let y = row as f64 * ROW;
        let name = if lane.slot == 0 {
            lane.runner.clone()
        } else {
            format!("{} #{}", lane.runner, lane.slot + 1)
        };
        let _ = writeln!(
            out,
            "<g class=\"lane\" data-runner=\"{}\"><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            esc(&lane.runner),
            px(LABEL - 6.0),
            px(y + BAR - 3.0),
            esc(&short(&name, 30))
        );
        for &i in &lane.attempts {
            let a = &h.attempts[i];
            let x0 = LABEL + span.x(a.started_ms, WIDTH);
            let x1 = LABEL + span.x(drawn_end(a, span), WIDTH);
            let w = (x1 - x0).max(1.5);
            let secs = (drawn_end(a, span) - a.started_ms) as f64 / 1000.0;
            let mut tip = format!(
                "{} task {} attempt {} on {}: {} in {}",
                a.stage_name,
                a.task,
                a.attempt,
                a.runner,
                outcome_name(a.outcome, span.live),
                seconds(secs)
            );
            if a.outcome == AttemptOutcome::Committed {
                let _ = write!(
                    tip,
                    "; {} rows ({}) in, {} rows ({}) out",
                    count(a.rows_in),
                    bytes(a.bytes_in),
                    count(a.rows_out),
                    bytes(a.bytes_out)
                );
            }
            if let Some(e) = &a.error {
                let _ = write!(tip, "; {}", short(e, 300));
            }
            let _ = writeln!(
                out,
                "<rect class=\"attempt {o}\" data-stage=\"{s}\" data-task=\"{t}\" data-attempt=\"{id}\" data-outcome=\"{o}\" x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{bh}\" fill=\"{c}\"><title>{tip}</title></rect>",
                o = outcome_name(a.outcome, span.live),
                s = esc(&a.stage_name),
                t = a.task,
                id = esc(&a.attempt),
                x = px(x0),
                y = px(y + 2.0),
                w = px(w),
                bh = px(BAR),
                c = colour(a.stage),
                tip = esc(&tip)
            );
            if a.outcome == AttemptOutcome::Failed {
                let _ = writeln!(
                    out,
                    "<path class=\"failed-mark\" d=\"M{} {}l{} {}M{} {}l{} -{}\"/>",
                    px(x0 + w / 2.0 - 5.0),
                    px(y + 5.0),
                    px(10.0),
                    px(10.0),
                    px(x0 + w / 2.0 - 5.0),
                    px(y + 15.0),
                    px(10.0),
                    px(10.0)
                );
            }
        }
        out.push_str("</g>\n");
    }
    axis(&mut out, span, lanes.len() as f64 * ROW);
    out.push_str("</svg>\n");
    legend(&mut out, h, span.live);
    out.push_str("</section>\n");
    out
}

/// Time ticks under the lanes, in seconds from the start.
fn axis(out: &mut String, span: &Span, y: f64) {
    let total = span.seconds();
    let step = nice_step(total / 8.0);
    let mut t = 0.0;
    let _ = writeln!(
        out,
        "<line class=\"axis\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>",
        px(LABEL),
        px(y),
        px(LABEL + WIDTH),
        px(y)
    );
    while t <= total + 1e-9 {
        let x = LABEL + t / total.max(1e-9) * WIDTH;
        let _ = writeln!(
            out,
            "<text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            px(x),
            px(y + 16.0),
            esc(&seconds(t))
        );
        t += step;
    }
}

/// A step of 1, 2 or 5 times a power of ten, at least `raw`.
pub fn nice_step(raw: f64) -> f64 {
    if raw <= 0.0 || !raw.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * p)
}

fn legend(out: &mut String, h: &JobHistory, live: bool) {
    out.push_str("<p class=\"legend\">");
    let mut names: Vec<(usize, &str)> = match &h.job {
        Some(j) if !j.stages.is_empty() => {
            j.stages.iter().map(|s| (s.id, s.name.as_str())).collect()
        }
        _ => h
            .attempts
            .iter()
            .map(|a| (a.stage, a.stage_name.as_str()))
            .collect(),
    };
    names.sort();
    names.dedup();
    for (i, name) in names {
        let _ = write!(
            out,
            "<span><i style=\"background:{}\"></i>{}</span> ",
            colour(i),
            esc(name)
        );
    }
    out.push_str("<span><i class=\"failed\"></i>failed</span> ");
    out.push_str(if live {
        "<span><i class=\"running\"></i>running</span> "
    } else {
        "<span><i class=\"never-ended\"></i>never ended (killed, or still running)</span> "
    });
    out.push_str("<span><i class=\"superseded\"></i>superseded by another attempt</span></p>\n");
}

/// `text` cut to `n` characters.
pub fn short(text: &str, n: usize) -> String {
    let first = text.lines().next().unwrap_or_default();
    if first.chars().count() <= n && first.len() == text.trim_end().len() {
        return first.to_string();
    }
    let cut: String = first.chars().take(n).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_round() {
        assert_eq!(nice_step(0.7), 1.0);
        assert_eq!(nice_step(1.3), 2.0);
        assert_eq!(nice_step(36.0), 50.0);
        assert_eq!(nice_step(0.0), 1.0);
    }

    #[test]
    fn long_text_is_cut_to_its_first_line() {
        assert_eq!(short("abc", 5), "abc");
        assert_eq!(short("abcdef", 3), "abc…");
        assert_eq!(short("one\ntwo", 10), "one…");
    }
}
