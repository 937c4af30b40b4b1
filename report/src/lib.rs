//! A job's history ([`kask_api::history`]) as one self-contained HTML page: the task stream,
//! the stage graph, memory and throughput over time, the slowest and the largest tasks, the
//! errors with their log excerpts, and what the job cost. Everything is drawn as inline SVG
//! by this crate, with no script and nothing fetched when the page is viewed, so the file
//! can be mailed, archived or opened years later.

pub mod format;
pub mod graph;
pub mod layout;
pub mod stream;
pub mod tables;
pub mod timeline;

use std::fmt::Write as _;

use kask_api::history::{JobHistory, JobOutcome};

use format::{esc, seconds, time};
use layout::Span;

/// The page's style sheet (the dashboard's pages use it too).
pub const STYLE: &str = "
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:14px;margin:12px 0 4px}
.outcome{display:inline-block;padding:2px 8px;border-radius:4px;color:#fff;font-weight:600}
.outcome.succeeded{background:#2e7d32}.outcome.failed{background:#c62828}.outcome.running{background:#6d6d6d}
.meta{color:#555}.meta code{color:#222}
table{border-collapse:collapse;font-size:13px}th,td{padding:3px 8px;border-bottom:1px solid #eee;text-align:right}
th:first-child,td:first-child{text-align:left}table.cost th{text-align:left;font-weight:500;color:#555}
td.bad{color:#c62828;font-weight:600}
i{display:inline-block;width:10px;height:10px;margin-right:5px;border-radius:2px;vertical-align:baseline}
i.failed{border:2px solid #c62828;width:6px;height:6px}i.never-ended{border:2px dashed #555;width:6px;height:6px}
i.superseded{background:#ccc}i.running{border:2px solid #333;width:6px;height:6px;background:repeating-linear-gradient(45deg,#bbb 0 2px,#fff 2px 4px)}
.legend span{margin-right:10px;white-space:nowrap}
svg text{font-size:11px;fill:#333}svg .tick{fill:#777;font-size:10px}
svg .axis,svg .grid{stroke:#ddd}
rect.attempt{stroke:#fff;stroke-width:.5}rect.attempt.failed{stroke:#c62828;stroke-width:2}
rect.attempt.never-ended{stroke:#333;stroke-dasharray:3 2;stroke-width:1.5;fill-opacity:.45}
rect.attempt.superseded{fill-opacity:.3}rect.attempt.running{stroke:#333;stroke-width:1;fill-opacity:.6}
.failed-mark{stroke:#c62828;stroke-width:2}
g.stage rect:first-child{fill:#fafafa;stroke-width:1.5}g.stage .sub{fill:#777}
path.edge{fill:none;stroke:#999;stroke-width:1.5}marker path{fill:#999}
polyline.memory{fill:none;stroke-width:1.5}line.limit{stroke-dasharray:6 4;stroke-width:1}
path.throughput{fill:#4e79a7;fill-opacity:.35;stroke:#4e79a7}
pre{background:#f6f6f6;padding:8px;overflow-x:auto;font-size:12px;white-space:pre-wrap}
.error{border-left:3px solid #c62828;padding-left:10px;margin:10px 0}
";

/// The page for history `h`.
pub fn render(h: &JobHistory) -> String {
    let title = title(h);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"generator\" content=\"kask {}\"><title>Kask report: {}</title><style>{STYLE}</style></head><body>",
        env!("CARGO_PKG_VERSION"),
        esc(&title)
    );
    out.push_str(&body(h, &Span::of(h)));
    out.push_str("</body></html>\n");
    out
}

/// The page's content for history `h` drawn over `span`: [`Span::of`] for a report,
/// [`Span::at`] now for a live view of a job that may still run (the dashboard).
pub fn body(h: &JobHistory, span: &Span) -> String {
    let mut out = String::new();
    header(&mut out, h, &title(h), span);
    out.push_str(&tables::cost(h, span));
    out.push_str(&stream::section(h, span));
    out.push_str(&graph::section(h));
    out.push_str(&timeline::section(h, span));
    out.push_str(&tables::extremes(h));
    out.push_str(&tables::errors(h, span.live));
    out.push_str(&tables::logs(h));
    let _ = writeln!(
        out,
        "<footer class=\"meta\"><p>From the history at <code>{}</code>.</p></footer>",
        esc(&h.location)
    );
    out
}

/// The job's name, else its id.
pub fn title(h: &JobHistory) -> String {
    match &h.job {
        Some(j) if !j.job.is_empty() => j.job.clone(),
        Some(j) => j.job_id.clone(),
        None => "a Kask job".to_string(),
    }
}

fn header(out: &mut String, h: &JobHistory, title: &str, span: &Span) {
    let (class, word) = match h.job.as_ref().map(|j| j.outcome) {
        Some(JobOutcome::Succeeded) => ("succeeded", "Succeeded"),
        Some(JobOutcome::Failed) => ("failed", "Failed"),
        _ if span.live => ("running", "Running"),
        _ => ("running", "Not ended"),
    };
    let _ = writeln!(
        out,
        "<header><h1>{}</h1><p><span class=\"outcome {class}\" id=\"outcome\" data-outcome=\"{class}\">{word}</span></p>",
        esc(title)
    );
    if let Some(j) = &h.job {
        let _ = writeln!(
            out,
            "<p class=\"meta\">Job <code>{}</code>, {} ({} mode), started {}, {} from start to end. \
             Storage <code>{}</code>.</p>",
            esc(&j.job_id),
            esc(&j.kind),
            esc(&j.mode),
            esc(&time(j.started_ms)),
            esc(&seconds(span.seconds())),
            esc(&j.storage)
        );
        for o in &j.outputs {
            let _ = writeln!(out, "<p class=\"meta\">Result: <code>{}</code></p>", esc(o));
        }
    }
    out.push_str("</header>\n");
}

#[cfg(test)]
mod tests;
