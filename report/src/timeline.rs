//! Memory and throughput over the job's time: each runner's resident memory (and its limit,
//! when it had one) and the rows the job's tasks wrote per second.

use std::fmt::Write as _;

use kask_api::history::JobHistory;

use crate::format::{bytes, count, esc, px};
use crate::layout::{Span, throughput};
use crate::stream::{PALETTE, nice_step};

const LEFT: f64 = 80.0;
const WIDTH: f64 = 1010.0;
const HEIGHT: f64 = 140.0;
const BINS: usize = 100;
const MIB: f64 = 1048576.0;

/// The timeline's section.
pub fn section(h: &JobHistory, span: &Span) -> String {
    let mut out = String::from("<section id=\"timeline\"><h2>Memory and throughput</h2>\n");
    memory(&mut out, h, span);
    rows(&mut out, h, span);
    out.push_str("</section>\n");
    out
}

fn chart_start(out: &mut String, class: &str, label: &str) {
    let _ = writeln!(
        out,
        "<svg class=\"{class}\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{label}\">",
        w = px(LEFT + WIDTH),
        h = px(HEIGHT + 20.0)
    );
}

/// Gridlines and labels for values up to `top`, labelled by `name`.
fn y_axis(out: &mut String, top: f64, name: impl Fn(f64) -> String) {
    let step = nice_step(top / 4.0);
    let mut v = 0.0;
    while v <= top + 1e-9 {
        let y = HEIGHT - v / top * HEIGHT + 10.0;
        let _ = writeln!(
            out,
            "<line class=\"grid\" x1=\"{}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\"/><text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            px(LEFT),
            px(LEFT + WIDTH),
            px(LEFT - 6.0),
            px(y + 4.0),
            esc(&name(v)),
            y = px(y)
        );
        v += step;
    }
}

fn memory(out: &mut String, h: &JobHistory, span: &Span) {
    let with_samples: Vec<_> = h.runners.iter().filter(|r| !r.samples.is_empty()).collect();
    if with_samples.is_empty() {
        out.push_str("<p>No memory samples were recorded.</p>\n");
        return;
    }
    let top = with_samples
        .iter()
        .flat_map(|r| r.samples.iter().map(|s| s.rss).chain(r.memory_limit_bytes))
        .max()
        .unwrap_or(1)
        .max(1) as f64
        * 1.05;
    // Round steps of MiB, not of bytes.
    let top = nice_step(top / MIB / 4.0) * 4.0 * MIB;
    out.push_str("<h3>Resident memory per process</h3>\n");
    chart_start(out, "memory", "memory over time");
    y_axis(out, top / MIB, |v| bytes((v * MIB) as u64));
    let y = |v: f64| HEIGHT - v / top * HEIGHT + 10.0;
    for (i, r) in with_samples.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let points: Vec<String> = r
            .samples
            .iter()
            .map(|s| format!("{},{}", px(LEFT + span.x(s.ms, WIDTH)), px(y(s.rss as f64))))
            .collect();
        let _ = writeln!(
            out,
            "<polyline class=\"memory\" data-runner=\"{}\" points=\"{}\" style=\"stroke:{colour}\"><title>{}: peak {}</title></polyline>",
            esc(&r.runner),
            points.join(" "),
            esc(&r.runner),
            bytes(r.peak_memory_bytes)
        );
        if let Some(limit) = r.memory_limit_bytes {
            let x0 = LEFT + span.x(r.started_ms, WIDTH);
            let x1 = LEFT + span.x(r.ended_ms, WIDTH);
            let _ = writeln!(
                out,
                "<line class=\"limit\" x1=\"{}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" style=\"stroke:{colour}\"><title>{}: limit {}</title></line>",
                px(x0),
                px(x1),
                esc(&r.runner),
                bytes(limit),
                ly = px(y(limit as f64))
            );
        }
    }
    out.push_str("</svg>\n");
}

fn rows(out: &mut String, h: &JobHistory, span: &Span) {
    let per_second = throughput(&h.attempts, span, BINS);
    let peak = per_second.iter().copied().fold(0.0, f64::max);
    if peak <= 0.0 {
        return;
    }
    let top = nice_step(peak * 1.05 / 4.0) * 4.0;
    out.push_str("<h3>Rows written per second</h3>\n");
    chart_start(out, "throughput", "rows written per second");
    y_axis(out, top, |v| count(v as u64));
    let bin = WIDTH / BINS as f64;
    let mut d = format!("M{} {}", px(LEFT), px(HEIGHT + 10.0));
    for (i, v) in per_second.iter().enumerate() {
        let y = HEIGHT - v / top * HEIGHT + 10.0;
        let _ = write!(
            d,
            "L{} {}L{} {}",
            px(LEFT + i as f64 * bin),
            px(y),
            px(LEFT + (i + 1) as f64 * bin),
            px(y)
        );
    }
    let _ = write!(d, "L{} {}Z", px(LEFT + WIDTH), px(HEIGHT + 10.0));
    let _ = writeln!(out, "<path class=\"throughput\" d=\"{d}\"/>");
    out.push_str("</svg>\n");
}
