use kask_api::history::{
    AttemptOutcome, AttemptRecord, JobHistory, JobOutcome, JobRecord, RunnerRecord, Sample,
    StageRecord,
};

use super::render;

fn attempt(
    stage: usize,
    task: usize,
    id: &str,
    runner: &str,
    start: u64,
    end: Option<u64>,
    outcome: AttemptOutcome,
) -> AttemptRecord {
    AttemptRecord {
        stage,
        stage_name: ["s0-scan-<x>", "s1-groupby"][stage].to_string(),
        task,
        attempt: id.to_string(),
        runner: runner.to_string(),
        started_ms: start,
        ended_ms: end,
        outcome,
        rows_in: 100,
        bytes_in: 1000 * (task as u64 + 1),
        rows_out: 10,
        bytes_out: 100,
        error: (outcome == AttemptOutcome::Failed).then(|| "storage unavailable: <timeout>".into()),
        ..AttemptRecord::default()
    }
}

fn history() -> JobHistory {
    let t0 = 1_780_000_000_000;
    JobHistory {
        location: "s3://lake/out/_kask/history/u1".into(),
        job: Some(JobRecord {
            version: 1,
            job_id: "u1".into(),
            job: "team/revenue".into(),
            kind: "dataframe".into(),
            mode: "kubernetes".into(),
            started_ms: t0,
            ended_ms: Some(t0 + 9_000),
            outcome: JobOutcome::Succeeded,
            stages: vec![
                StageRecord {
                    id: 0,
                    name: "s0-scan-<x>".into(),
                    tasks: 3,
                    ..StageRecord::default()
                },
                StageRecord {
                    id: 1,
                    name: "s1-groupby".into(),
                    tasks: 1,
                    after: vec![0],
                    ..StageRecord::default()
                },
            ],
            outputs: vec!["s3://lake/out/_SUCCESS".into()],
            storage: "s3://lake".into(),
            ..JobRecord::default()
        }),
        attempts: vec![
            attempt(
                0,
                0,
                "a0",
                "pod-0",
                t0 + 100,
                Some(t0 + 2_000),
                AttemptOutcome::Committed,
            ),
            attempt(
                0,
                1,
                "a1",
                "pod-0",
                t0 + 150,
                Some(t0 + 1_000),
                AttemptOutcome::Failed,
            ),
            attempt(
                0,
                1,
                "a1b",
                "pod-1",
                t0 + 1_200,
                Some(t0 + 3_000),
                AttemptOutcome::Committed,
            ),
            attempt(0, 2, "a2", "pod-1", t0 + 200, None, AttemptOutcome::Running),
            attempt(
                0,
                2,
                "a2b",
                "pod-2",
                t0 + 4_000,
                Some(t0 + 5_000),
                AttemptOutcome::Committed,
            ),
            attempt(
                1,
                0,
                "b0",
                "pod-3",
                t0 + 5_500,
                Some(t0 + 8_500),
                AttemptOutcome::Committed,
            ),
        ],
        runners: vec![RunnerRecord {
            runner: "pod-0".into(),
            role: "s0-scan-x/0".into(),
            started_ms: t0,
            ended_ms: t0 + 2_100,
            cpu_seconds: 1.5,
            peak_memory_bytes: 200 << 20,
            memory_limit_bytes: Some(256 << 20),
            samples: (0..5)
                .map(|i| Sample {
                    ms: t0 + i * 500,
                    rss: (100 + i * 20) << 20,
                    cpu_seconds: i as f64 * 0.3,
                })
                .collect(),
        }],
        logs: vec![(
            "pod-0".into(),
            "starting\n{\"attempt\":\"a1\",\"msg\":\"task failed\"}\nother".into(),
        )],
    }
}

#[test]
fn every_attempt_is_a_bar_and_every_stage_a_box() {
    let page = render(&history());
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert_eq!(page.matches("<rect class=\"attempt ").count(), 6);
    assert_eq!(page.matches("data-outcome=\"failed\"").count(), 1);
    assert_eq!(page.matches("data-outcome=\"never-ended\"").count(), 1);
    assert_eq!(page.matches("<g class=\"stage\"").count(), 2);
    assert_eq!(page.matches("<path class=\"edge\"").count(), 1);
    // Four runners; pod-0 and pod-1 each ran two attempts at once: six lanes.
    assert_eq!(page.matches("<g class=\"lane\"").count(), 6);
    assert!(page.contains("data-outcome=\"succeeded\""));
    assert!(page.contains("<polyline class=\"memory\""));
    assert!(page.contains("<line class=\"limit\""));
    assert!(page.contains("<path class=\"throughput\""));
}

#[test]
fn errors_come_with_their_log_and_user_text_is_escaped() {
    let page = render(&history());
    assert!(page.contains("storage unavailable: &lt;timeout&gt;"));
    assert!(
        page.contains(
            "{&quot;attempt&quot;:&quot;a1&quot;,&quot;msg&quot;:&quot;task failed&quot;}"
        )
    );
    assert!(page.contains("never ended"));
    assert!(!page.contains("<x>"), "a stage name is escaped");
    assert!(page.contains("s0-scan-&lt;x&gt;"));
}

#[test]
fn the_page_needs_nothing_from_the_network() {
    let page = render(&history());
    for needle in [
        "<script", "src=", "<link", "http://", "https://", "@import", "url(http",
    ] {
        assert!(!page.contains(needle), "{needle}");
    }
}

#[test]
fn a_job_that_failed_before_it_planned_still_has_a_page() {
    let h = JobHistory {
        job: Some(JobRecord {
            job_id: "u2".into(),
            started_ms: 5,
            ended_ms: Some(10),
            outcome: JobOutcome::Failed,
            error: Some("input x: no such file".into()),
            ..JobRecord::default()
        }),
        ..JobHistory::default()
    };
    let page = render(&h);
    assert!(page.contains("data-outcome=\"failed\""));
    assert!(page.contains("input x: no such file"));
    assert!(page.contains("No task attempt was recorded"));
}

#[test]
fn the_slowest_and_largest_tables_put_the_extreme_first() {
    let page = render(&history());
    let slowest = &page[page.find("id=\"slowest\"").expect("slowest")..];
    let first_row = &slowest[slowest.find("<tbody>").expect("rows")..];
    assert!(
        first_row[..200].contains("s1-groupby"),
        "{}",
        &first_row[..200]
    );
    let largest = &page[page.find("id=\"largest\"").expect("largest")..];
    let first_row = &largest[largest.find("<tbody>").expect("rows")..];
    assert!(
        first_row[..300].contains("<td>2</td>"),
        "task 2 read the most: {}",
        &first_row[..300]
    );
}

#[test]
fn a_running_job_shows_its_unended_attempts_as_running_not_as_errors() {
    let mut h = history();
    if let Some(j) = h.job.as_mut() {
        j.ended_ms = None;
        j.outcome = JobOutcome::default();
    }
    let now = h.job.as_ref().map_or(0, |j| j.started_ms) + 20_000;
    let page = super::body(&h, &crate::layout::Span::at(&h, now));
    assert!(!page.contains("<!DOCTYPE html>"), "a fragment, not a page");
    assert_eq!(page.matches("data-outcome=\"running\"").count(), 2);
    assert_eq!(page.matches("data-outcome=\"never-ended\"").count(), 0);
    assert!(page.contains(">Running</span>"));
    assert!(page.contains("1 failed, 1 running"));
    // Only the failed attempt is an error while the job runs.
    assert_eq!(page.matches("<div class=\"error attempt\"").count(), 1);
}
