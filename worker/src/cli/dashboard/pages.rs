//! The dashboard's pages: pure functions from what a source found to HTML. A page is a shell
//! whose script fetches its view (a fragment) every second and swaps it in when it changed, so
//! the pages update without a reload and work with scripts off only as far as the first view.

use std::fmt::Write as _;

use kask_api::StageStatus;
use kask_api::history::JobHistory;
use kask_report::format::{bytes, esc};
use kask_report::layout::Span;
use serde::Serialize;

/// One job in the list.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct JobRow {
    /// Its namespace (`local` for a local run).
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// dataframe, sql, array or bag.
    pub kind: String,
    /// Pending, Running, Succeeded, Failed, Suspended (or Planning, for a local run).
    pub phase: String,
    /// Tasks done out of all, e.g. `12/40`.
    pub progress: String,
    /// When it started (RFC 3339), if it has.
    pub started: String,
    /// Why it failed or cannot start.
    pub message: String,
}

impl JobRow {
    /// The path of its page.
    pub fn href(&self) -> String {
        format!(
            "/jobs/{}/{}",
            url_part(&self.namespace),
            url_part(&self.name)
        )
    }
}

/// `text` safe as one segment of a URL path (names are DNS labels; this guards the rest).
fn url_part(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

const SCRIPT: &str = include_str!("live.js");

const EXTRA_STYLE: &str = "
nav{display:flex;gap:16px;align-items:baseline;border-bottom:1px solid #ddd;padding-bottom:6px;margin-bottom:12px}
nav a{color:#1f5fa8;text-decoration:none;font-weight:600}
#link{font-size:12px;padding:1px 6px;border-radius:3px;background:#eee;color:#555}
#link.live{background:#e3f2e5;color:#2e7d32}#link.down{background:#fdecea;color:#c62828}
td.phase{font-weight:600}td.phase.Succeeded{color:#2e7d32}td.phase.Failed{color:#c62828}
td.phase.Running{color:#1f5fa8}
table.jobs td,table.stages td{text-align:left}table.stages td.n{text-align:right}
.note{color:#555;font-style:italic}
";

/// A page titled `title` whose content is the view at `view` (fetched by its script).
pub fn shell(title: &str, view: &str, first: &str, version: &str) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"generator\" content=\"kask {}\"><title>Kask: {}</title>\
         <style>{}{EXTRA_STYLE}</style></head><body>\n\
         <nav><a href=\"/\">Kask jobs</a><span>{}</span><span id=\"link\">connecting</span></nav>\n\
         <main id=\"view\" data-src=\"{}\" data-version=\"{}\" data-updates=\"0\">{first}</main>\n\
         <script>{SCRIPT}</script></body></html>\n",
        env!("CARGO_PKG_VERSION"),
        esc(title),
        kask_report::STYLE,
        esc(title),
        esc(view),
        esc(version),
    );
    out
}

/// The job list's view: one row per job, each linking to its page.
pub fn job_list(rows: &[JobRow], scope: &str) -> String {
    let mut out = format!("<h1>Jobs</h1><p class=\"meta\">{}</p>\n", esc(scope));
    if rows.is_empty() {
        out.push_str("<p class=\"note\">No DaskJob yet.</p>\n");
        return out;
    }
    out.push_str(
        "<table class=\"jobs\"><thead><tr><th>namespace</th><th>name</th><th>kind</th>\
         <th>phase</th><th>progress</th><th>started</th><th>message</th></tr></thead><tbody>\n",
    );
    for r in rows {
        let _ = writeln!(
            out,
            "<tr class=\"job\" data-job=\"{ns}/{name}\"><td>{ns}</td><td><a href=\"{href}\">{name}</a></td>\
             <td>{kind}</td><td class=\"phase {phase}\">{phase}</td><td>{progress}</td><td>{started}</td>\
             <td>{message}</td></tr>",
            ns = esc(&r.namespace),
            name = esc(&r.name),
            href = esc(&r.href()),
            kind = esc(&r.kind),
            phase = esc(&r.phase),
            progress = esc(&r.progress),
            started = esc(&r.started),
            message = esc(&r.message),
        );
    }
    out.push_str("</tbody></table>\n");
    out
}

/// What a job's page shows besides its history: the status the cluster keeps.
fn status(out: &mut String, row: &JobRow, stages: &[StageStatus]) {
    let _ = writeln!(
        out,
        "<section id=\"status\" data-phase=\"{p}\"><p class=\"meta\">{ns}/{name}: <b>{p}</b>{progress}{started}</p>",
        p = esc(&row.phase),
        ns = esc(&row.namespace),
        name = esc(&row.name),
        progress = if row.progress.is_empty() {
            String::new()
        } else {
            format!(", {} tasks", esc(&row.progress))
        },
        started = if row.started.is_empty() {
            String::new()
        } else {
            format!(", started {}", esc(&row.started))
        },
    );
    if !row.message.is_empty() {
        let _ = writeln!(
            out,
            "<div class=\"error job\"><pre>{}</pre></div>",
            esc(&row.message)
        );
    }
    if !stages.is_empty() {
        out.push_str(
            "<table class=\"stages\"><thead><tr><th>stage</th><th>tasks</th><th>done</th>\
             <th>running</th><th>failed</th><th>rows in</th><th>rows out</th><th>read</th>\
             <th>peak memory</th><th>spilled</th></tr></thead><tbody>\n",
        );
        for s in stages {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
                 <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
                 <td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                esc(&s.name),
                s.tasks,
                s.succeeded,
                s.running,
                s.failed,
                s.rows_read,
                s.rows_written,
                bytes(s.bytes_read),
                bytes(s.peak_memory_bytes),
                bytes(s.spilled_bytes)
            );
        }
        out.push_str("</tbody></table>\n");
    }
    out.push_str("</section>\n");
}

/// A job's view: its status, then its history drawn as the report draws it, over the time
/// until `now_ms` while it runs; or why there is no history to draw yet.
pub fn job_view(
    row: &JobRow,
    stages: &[StageStatus],
    history: Result<&JobHistory, &str>,
    now_ms: u64,
) -> String {
    let mut out = String::new();
    status(&mut out, row, stages);
    match history {
        Ok(h) => out.push_str(&kask_report::body(h, &Span::at(h, now_ms))),
        Err(why) => {
            let _ = writeln!(
                out,
                "<section id=\"no-history\"><p class=\"note\">No history to show yet: {}</p></section>",
                esc(why)
            );
        }
    }
    out
}

/// A view's version: its hash, so that the page swaps it in only when it changed (the
/// versions a page compares all come from one dashboard process).
pub fn version(view: &str) -> String {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    view.hash(&mut h);
    format!("{:016x}", h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(ns: &str, name: &str, phase: &str) -> JobRow {
        JobRow {
            namespace: ns.into(),
            name: name.into(),
            kind: "dataframe".into(),
            phase: phase.into(),
            progress: "3/7".into(),
            ..JobRow::default()
        }
    }

    #[test]
    fn the_list_links_every_job_and_escapes_what_users_wrote() {
        let mut bad = row("team-a", "q<1>", "Failed");
        bad.message = "input <x> missing".into();
        let view = job_list(
            &[row("default", "revenue", "Running"), bad],
            "all namespaces",
        );
        assert_eq!(view.matches("<tr class=\"job\"").count(), 2);
        assert!(view.contains("<a href=\"/jobs/default/revenue\">revenue</a>"));
        assert!(view.contains("/jobs/team-a/q%3C1%3E"));
        assert!(view.contains("input &lt;x&gt; missing"));
        assert!(!view.contains("<x>"));
    }

    #[test]
    fn a_job_without_history_yet_says_why() {
        let view = job_view(
            &row("default", "a", "Pending"),
            &[],
            Err("not planned yet"),
            0,
        );
        assert!(view.contains("data-phase=\"Pending\""));
        assert!(view.contains("No history to show yet: not planned yet"));
    }

    #[test]
    fn the_shell_names_its_view_and_carries_the_script() {
        let page = shell("jobs", "/view/jobs", "<p>first</p>", "v1");
        assert!(page.contains("data-src=\"/view/jobs\""));
        assert!(page.contains("data-version=\"v1\""));
        assert!(page.contains("<p>first</p>"));
        assert!(page.contains("fetch("));
        assert_ne!(version("a"), version("b"));
        assert_eq!(version("a"), version("a"));
    }
}
