//! Where things go on the page: lanes of the task stream, columns of the stage graph, bins of
//! the throughput timeline. Pure functions of the history.

use kask_api::history::{AttemptOutcome, AttemptRecord, JobHistory, StageRecord};

/// The span the page's time axes cover, in Unix milliseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Span {
    /// Its start.
    pub start: u64,
    /// Its end (after its start).
    pub end: u64,
    /// The job is still running and the span ends now: attempts that have not ended are
    /// running rather than lost.
    pub live: bool,
}

impl Span {
    /// From the job's start (or its first attempt's) to its end (or its last record's).
    pub fn of(h: &JobHistory) -> Span {
        let job = h.job.as_ref();
        let starts = h
            .attempts
            .iter()
            .map(|a| a.started_ms)
            .chain(h.runners.iter().map(|r| r.started_ms))
            .chain(job.map(|j| j.started_ms));
        let ends = h
            .attempts
            .iter()
            .map(|a| a.ended_ms.unwrap_or(a.started_ms))
            .chain(h.runners.iter().map(|r| r.ended_ms))
            .chain(job.and_then(|j| j.ended_ms));
        let start = starts.min().unwrap_or(0);
        let end = ends.max().unwrap_or(start).max(start + 1);
        Span {
            start,
            end,
            live: false,
        }
    }

    /// As [`Span::of`], seen at `now_ms` while the job may still run: a job that has not
    /// ended spans until now.
    pub fn at(h: &JobHistory, now_ms: u64) -> Span {
        let span = Span::of(h);
        let ended = h.job.as_ref().is_some_and(|j| j.ended_ms.is_some());
        if ended {
            return span;
        }
        Span {
            end: span.end.max(now_ms).max(span.start + 1),
            live: true,
            ..span
        }
    }

    /// Seconds it covers.
    pub fn seconds(&self) -> f64 {
        (self.end - self.start) as f64 / 1000.0
    }

    /// Where `ms` falls on an axis `width` wide.
    pub fn x(&self, ms: u64, width: f64) -> f64 {
        let ms = ms.clamp(self.start, self.end);
        (ms - self.start) as f64 / (self.end - self.start) as f64 * width
    }
}

/// The end an attempt is drawn to: its own, or (never ended: killed, or still running) the
/// span's.
pub fn drawn_end(a: &AttemptRecord, span: &Span) -> u64 {
    a.ended_ms.unwrap_or(span.end).max(a.started_ms)
}

/// One lane of the task stream: a runner's slot that ran one attempt at a time.
#[derive(Clone, Debug, PartialEq)]
pub struct Lane {
    /// The runner (a pod, or `local`).
    pub runner: String,
    /// Its slot within the runner.
    pub slot: usize,
    /// The attempts in it, as indices into the history's attempts.
    pub attempts: Vec<usize>,
}

/// Lanes: each runner's attempts, by start, each put in the first of the runner's lanes that
/// is free by then (so a runner that ran two tasks at once gets two lanes). Runners in order
/// of their first attempt.
pub fn lanes(attempts: &[AttemptRecord], span: &Span) -> Vec<Lane> {
    let mut order: Vec<usize> = (0..attempts.len()).collect();
    order.sort_by_key(|&i| (attempts[i].started_ms, attempts[i].stage, attempts[i].task));
    let mut lanes: Vec<(Lane, u64)> = Vec::new();
    for i in order {
        let a = &attempts[i];
        let free = lanes
            .iter_mut()
            .find(|(l, busy_until)| l.runner == a.runner && *busy_until <= a.started_ms);
        match free {
            Some((lane, busy_until)) => {
                lane.attempts.push(i);
                *busy_until = drawn_end(a, span);
            }
            None => {
                let slot = lanes.iter().filter(|(l, _)| l.runner == a.runner).count();
                lanes.push((
                    Lane {
                        runner: a.runner.clone(),
                        slot,
                        attempts: vec![i],
                    },
                    drawn_end(a, span),
                ));
            }
        }
    }
    // A runner's lanes together, runners by their first attempt.
    let mut out: Vec<Lane> = Vec::new();
    for (lane, _) in lanes {
        let at = out
            .iter()
            .rposition(|l| l.runner == lane.runner)
            .map_or(out.len(), |p| p + 1);
        out.insert(at, lane);
    }
    out
}

/// Each stage's column in the stage graph: 0 for a stage that reads no other, else one more
/// than the furthest stage it reads.
pub fn columns(stages: &[StageRecord]) -> Vec<usize> {
    let mut col = vec![0usize; stages.len()];
    for (i, s) in stages.iter().enumerate() {
        col[i] = s
            .after
            .iter()
            .filter(|&&d| d < i)
            .map(|&d| col[d] + 1)
            .max()
            .unwrap_or(0);
    }
    col
}

/// Rows written per second in each of `bins` equal parts of the span: each committed
/// attempt's rows spread evenly over its run.
pub fn throughput(attempts: &[AttemptRecord], span: &Span, bins: usize) -> Vec<f64> {
    let bins = bins.max(1);
    let mut out = vec![0.0; bins];
    let width = (span.end - span.start) as f64 / bins as f64;
    for a in attempts {
        if a.outcome != AttemptOutcome::Committed || a.rows_out == 0 {
            continue;
        }
        let (s, e) = (
            a.started_ms as f64,
            drawn_end(a, span).max(a.started_ms + 1) as f64,
        );
        let rate = a.rows_out as f64 / (e - s); // rows per ms
        for (b, v) in out.iter_mut().enumerate() {
            let lo = span.start as f64 + b as f64 * width;
            let hi = lo + width;
            let overlap = (e.min(hi) - s.max(lo)).max(0.0);
            *v += rate * overlap;
        }
    }
    // Rows per bin to rows per second.
    out.iter().map(|rows| rows / (width / 1000.0)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(runner: &str, start: u64, end: Option<u64>) -> AttemptRecord {
        AttemptRecord {
            runner: runner.into(),
            started_ms: start,
            ended_ms: end,
            outcome: AttemptOutcome::Committed,
            ..AttemptRecord::default()
        }
    }

    #[test]
    fn overlapping_attempts_of_a_runner_get_lanes_of_their_own() {
        let a = vec![
            attempt("p1", 0, Some(10)),
            attempt("p1", 5, Some(20)),
            attempt("p2", 1, Some(3)),
            attempt("p1", 12, Some(30)),
            attempt("p1", 25, None),
        ];
        let span = Span {
            start: 0,
            end: 40,
            live: false,
        };
        let l = lanes(&a, &span);
        let shape: Vec<(&str, usize, Vec<usize>)> = l
            .iter()
            .map(|l| (l.runner.as_str(), l.slot, l.attempts.clone()))
            .collect();
        assert_eq!(
            shape,
            vec![
                ("p1", 0, vec![0, 3]),
                ("p1", 1, vec![1, 4]),
                ("p2", 0, vec![2]),
            ]
        );
    }

    #[test]
    fn stages_stand_one_column_right_of_what_they_read() {
        let s = |after: Vec<usize>| StageRecord {
            after,
            ..StageRecord::default()
        };
        assert_eq!(
            columns(&[s(vec![]), s(vec![]), s(vec![0, 1]), s(vec![2]), s(vec![0])]),
            vec![0, 0, 1, 2, 1]
        );
    }

    #[test]
    fn throughput_spreads_rows_over_the_attempt() {
        let mut a = attempt("p", 0, Some(2000));
        a.rows_out = 1000;
        let span = Span {
            start: 0,
            end: 4000,
            live: false,
        };
        let t = throughput(&[a], &span, 4);
        assert_eq!(t, vec![500.0, 500.0, 0.0, 0.0]);
        let total: f64 = t.iter().map(|r| r * 1.0).sum();
        assert_eq!(total, 1000.0, "rows per second times a second per bin");
    }

    #[test]
    fn the_span_covers_attempts_that_never_ended() {
        let a = vec![attempt("p", 100, None), attempt("p", 50, Some(300))];
        let h = JobHistory {
            attempts: a,
            ..JobHistory::default()
        };
        let span = Span::of(&h);
        assert_eq!((span.start, span.end), (50, 300));
        assert_eq!(drawn_end(&h.attempts[0], &span), 300);
        assert_eq!(span.x(175, 100.0), 50.0);
    }

    #[test]
    fn a_running_job_spans_until_now_and_an_ended_one_does_not() {
        let mut h = JobHistory {
            attempts: vec![attempt("p", 100, None), attempt("p", 50, Some(300))],
            job: Some(kask_api::history::JobRecord {
                started_ms: 40,
                ..Default::default()
            }),
            ..JobHistory::default()
        };
        let live = Span::at(&h, 1000);
        assert_eq!((live.start, live.end, live.live), (40, 1000, true));
        assert_eq!(drawn_end(&h.attempts[0], &live), 1000);
        if let Some(j) = h.job.as_mut() {
            j.ended_ms = Some(400);
        }
        let ended = Span::at(&h, 1000);
        assert_eq!((ended.end, ended.live), (400, false));
    }
}
