//! Progress of a local run: a bar per stage on a terminal, plain lines otherwise.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use kask_worker::plan::{Plan, Stage};
use kask_worker::runner::Progress;
use kask_worker::task::TaskOutcome;

/// The look of a stage's bar, in local runs and in `kask submit --watch`.
pub fn stage_bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix:>18} [{bar:30.cyan/blue}] {pos}/{len} tasks {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// One bar per stage.
pub struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<usize, ProgressBar>>,
}

impl Bars {
    /// Bars drawn on stderr.
    pub fn new() -> Self {
        Bars {
            multi: MultiProgress::new(),
            bars: Mutex::new(HashMap::new()),
        }
    }
}

impl Progress for Bars {
    fn planned(&self, plan: &Plan) {
        let style = stage_bar_style();
        let Ok(mut bars) = self.bars.lock() else {
            return;
        };
        for s in &plan.stages {
            let bar = self.multi.add(ProgressBar::new(s.tasks as u64));
            bar.set_style(style.clone());
            bar.set_prefix(s.name.clone());
            bars.insert(s.id, bar);
        }
    }
    fn task_finished(&self, stage: &Stage, _: &TaskOutcome) {
        if let Some(b) = self
            .bars
            .lock()
            .ok()
            .and_then(|b| b.get(&stage.id).cloned())
        {
            b.inc(1);
        }
    }
    fn stage_finished(&self, stage: &Stage) {
        if let Some(b) = self
            .bars
            .lock()
            .ok()
            .and_then(|b| b.get(&stage.id).cloned())
        {
            b.finish_with_message("done");
        }
    }
}

/// A line per stage start and end.
pub struct Lines {
    /// Per stage: when it started, rows in, rows out, bytes spilled.
    started: Mutex<HashMap<usize, (Instant, u64, u64, u64)>>,
}

impl Lines {
    /// Lines on stderr.
    pub fn new() -> Self {
        Lines {
            started: Mutex::new(HashMap::new()),
        }
    }
}

impl Progress for Lines {
    fn stage_started(&self, stage: &Stage) {
        eprintln!("stage {}: {} tasks", stage.name, stage.tasks);
        if let Ok(mut s) = self.started.lock() {
            s.insert(stage.id, (Instant::now(), 0, 0, 0));
        }
    }
    fn task_finished(&self, stage: &Stage, o: &TaskOutcome) {
        if let Ok(mut s) = self.started.lock()
            && let Some(e) = s.get_mut(&stage.id)
        {
            e.1 += o.marker.rows_in;
            e.2 += o.marker.rows_out;
            e.3 += o.marker.spilled_bytes;
        }
    }
    fn stage_finished(&self, stage: &Stage) {
        if let Some((t, rin, rout, spilled)) = self
            .started
            .lock()
            .ok()
            .and_then(|s| s.get(&stage.id).copied())
        {
            let spilled = if spilled > 0 {
                format!(", spilled {} to disk", super::human_bytes(spilled))
            } else {
                String::new()
            };
            eprintln!(
                "stage {}: done in {:.2}s ({rin} rows in, {rout} rows out{spilled})",
                stage.name,
                t.elapsed().as_secs_f64()
            );
        }
    }
}
