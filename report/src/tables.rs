//! The job's cost, its slowest and largest task attempts (where skew shows), and its errors
//! with what their processes logged.

use std::fmt::Write as _;

use kask_api::history::{AttemptOutcome, AttemptRecord, JobHistory};

use crate::format::{bytes, count, esc, seconds};
use crate::layout::Span;
use crate::stream::colour;

/// How many attempts the slowest and largest tables list.
const TOP: usize = 10;
/// Log lines shown with an error.
const EXCERPT_LINES: usize = 30;

/// What the job cost.
pub fn cost(h: &JobHistory, span: &Span) -> String {
    let ok: Vec<&AttemptRecord> = h
        .attempts
        .iter()
        .filter(|a| a.outcome == AttemptOutcome::Committed)
        .collect();
    let sum = |f: fn(&AttemptRecord) -> u64| ok.iter().map(|a| f(a)).sum::<u64>();
    let cpu: f64 = h.runners.iter().map(|r| r.cpu_seconds).sum();
    let peak = h
        .runners
        .iter()
        .map(|r| r.peak_memory_bytes)
        .chain(h.attempts.iter().map(|a| a.peak_memory_bytes))
        .max()
        .unwrap_or(0);
    let failed = h
        .attempts
        .iter()
        .filter(|a| a.outcome == AttemptOutcome::Failed)
        .count();
    let never = h
        .attempts
        .iter()
        .filter(|a| a.outcome == AttemptOutcome::Running)
        .count();
    let rows = [
        ("wall time", seconds(span.seconds())),
        (
            "CPU time",
            if h.runners.is_empty() {
                "not recorded".into()
            } else {
                format!("{} in {} processes", seconds(cpu), h.runners.len())
            },
        ),
        ("peak memory of a process", bytes(peak)),
        (
            "read",
            format!(
                "{} rows, {}",
                count(sum(|a| a.rows_in)),
                bytes(sum(|a| a.bytes_in))
            ),
        ),
        (
            "written",
            format!(
                "{} rows, {}",
                count(sum(|a| a.rows_out)),
                bytes(sum(|a| a.bytes_out))
            ),
        ),
        ("spilled to disk", bytes(sum(|a| a.spilled_bytes))),
        (
            "task attempts",
            format!(
                "{} ({} committed, {failed} failed, {never} {})",
                h.attempts.len(),
                ok.len(),
                if span.live { "running" } else { "never ended" }
            ),
        ),
    ];
    let mut out = String::from("<section id=\"cost\"><h2>Cost</h2><table class=\"cost\"><tbody>\n");
    for (k, v) in rows {
        let _ = writeln!(out, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(&v));
    }
    out.push_str("</tbody></table></section>\n");
    out
}

fn attempt_rows(out: &mut String, list: &[&AttemptRecord]) {
    out.push_str(
        "<thead><tr><th>stage</th><th>task</th><th>attempt</th><th>runner</th><th>outcome</th>\
         <th>time</th><th>rows in</th><th>bytes in</th><th>rows out</th><th>bytes out</th>\
         <th>spilled</th><th>peak memory</th></tr></thead><tbody>\n",
    );
    for a in list {
        let _ = writeln!(
            out,
            "<tr><td><i style=\"background:{}\"></i>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:?}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            colour(a.stage),
            esc(&a.stage_name),
            a.task,
            esc(&a.attempt),
            esc(&a.runner),
            a.outcome,
            seconds(a.seconds(a.started_ms)),
            count(a.rows_in),
            bytes(a.bytes_in),
            count(a.rows_out),
            bytes(a.bytes_out),
            bytes(a.spilled_bytes),
            bytes(a.peak_memory_bytes)
        );
    }
    out.push_str("</tbody>\n");
}

/// The slowest and the largest committed attempts.
pub fn extremes(h: &JobHistory) -> String {
    let mut ok: Vec<&AttemptRecord> = h
        .attempts
        .iter()
        .filter(|a| a.outcome == AttemptOutcome::Committed)
        .collect();
    let mut out = String::new();
    ok.sort_by(|a, b| {
        b.seconds(b.started_ms)
            .total_cmp(&a.seconds(a.started_ms))
            .then(a.stage.cmp(&b.stage))
            .then(a.task.cmp(&b.task))
    });
    out.push_str("<section id=\"slowest\"><h2>Slowest tasks</h2><table class=\"attempts\">\n");
    attempt_rows(&mut out, &ok[..ok.len().min(TOP)]);
    out.push_str("</table></section>\n");
    ok.sort_by(|a, b| {
        (b.bytes_in + b.bytes_out)
            .cmp(&(a.bytes_in + a.bytes_out))
            .then(a.stage.cmp(&b.stage))
            .then(a.task.cmp(&b.task))
    });
    out.push_str("<section id=\"largest\"><h2>Largest tasks</h2><table class=\"attempts\">\n");
    attempt_rows(&mut out, &ok[..ok.len().min(TOP)]);
    out.push_str("</table></section>\n");
    out
}

/// The lines of `log` about attempt `a` (its attempt id, or its stage and task), else the
/// log's last lines.
pub fn excerpt(log: &str, a: &AttemptRecord) -> String {
    let task = format!("task={}", a.task);
    let task_json = format!("\"task\":{}", a.task);
    let lines: Vec<&str> = log.lines().collect();
    let about: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| {
            l.contains(&a.attempt)
                || (l.contains(&a.stage_name) && (l.contains(&task) || l.contains(&task_json)))
        })
        .collect();
    let chosen = if about.is_empty() { lines } else { about };
    let from = chosen.len().saturating_sub(EXCERPT_LINES);
    chosen[from..].join("\n")
}

/// The failed attempts and those that never ended, with what their processes logged; then
/// whatever error the job ended with. While the job runs (`live`), attempts that have not
/// ended are running, not errors.
pub fn errors(h: &JobHistory, live: bool) -> String {
    let mut out = String::from("<section id=\"errors\"><h2>Errors</h2>\n");
    let job_error = h.job.as_ref().and_then(|j| j.error.as_deref());
    let bad: Vec<&AttemptRecord> = h
        .attempts
        .iter()
        .filter(|a| match a.outcome {
            AttemptOutcome::Failed => true,
            AttemptOutcome::Running => !live,
            _ => false,
        })
        .collect();
    if bad.is_empty() && job_error.is_none() {
        out.push_str("<p>None.</p></section>\n");
        return out;
    }
    if let Some(e) = job_error {
        let _ = writeln!(
            out,
            "<div class=\"error job\"><h3>The job failed</h3><pre>{}</pre></div>",
            esc(e)
        );
    }
    for a in bad {
        let what = match a.outcome {
            AttemptOutcome::Failed => "failed",
            _ => {
                "never ended: its process was killed (out of memory, evicted, deleted) or is still running"
            }
        };
        let _ = writeln!(
            out,
            "<div class=\"error attempt\" data-stage=\"{}\" data-task=\"{}\"><h3>{} task {}, attempt {} on {}: {}</h3>",
            esc(&a.stage_name),
            a.task,
            esc(&a.stage_name),
            a.task,
            esc(&a.attempt),
            esc(&a.runner),
            what
        );
        if let Some(e) = &a.error {
            let _ = writeln!(out, "<pre>{}</pre>", esc(e));
        }
        if let Some((_, log)) = h.logs.iter().find(|(r, _)| *r == a.runner) {
            let _ = writeln!(
                out,
                "<details><summary>log of {}</summary><pre class=\"log\">{}</pre></details>",
                esc(&a.runner),
                esc(&excerpt(log, a))
            );
        }
        out.push_str("</div>\n");
    }
    out.push_str("</section>\n");
    out
}

/// Each process's log (its end), folded.
pub fn logs(h: &JobHistory) -> String {
    if h.logs.is_empty() {
        return String::new();
    }
    let mut out = String::from("<section id=\"logs\"><h2>Logs</h2>\n");
    for (runner, log) in &h.logs {
        let lines: Vec<&str> = log.lines().collect();
        let from = lines.len().saturating_sub(200);
        let _ = writeln!(
            out,
            "<details><summary>{} ({} lines{})</summary><pre class=\"log\">{}</pre></details>",
            esc(runner),
            lines.len(),
            if from > 0 { ", the last 200 shown" } else { "" },
            esc(&lines[from..].join("\n"))
        );
    }
    out.push_str("</section>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_excerpt_keeps_the_lines_about_the_attempt() {
        let a = AttemptRecord {
            stage_name: "s1-merge".into(),
            task: 3,
            attempt: "abc".into(),
            ..AttemptRecord::default()
        };
        let log = "start\n{\"stage\":\"s1-merge\",\"task\":3,\"msg\":\"x\"}\nother s1-merge task=4\nattempt abc failed\nend";
        assert_eq!(
            excerpt(log, &a),
            "{\"stage\":\"s1-merge\",\"task\":3,\"msg\":\"x\"}\nattempt abc failed"
        );
        let none = AttemptRecord {
            attempt: "zzz".into(),
            ..a
        };
        assert!(excerpt("a\nb", &none).ends_with("a\nb"));
    }
}
