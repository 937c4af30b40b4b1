//! A job's history: one record per task attempt, retries included, written whether the job
//! succeeds or fails, found through the result's manifest, and rendered by `kask report`.

use std::collections::BTreeMap;
use std::sync::Arc;

use kask_api::history::{AttemptOutcome, JobHistory, JobOutcome};
use kask_worker::history::read::{locate, read};
use kask_worker::runner::StoreWrapper;

use crate::faults::{FaultRates, FaultStore, Faults};
use crate::support::{Lab, run};

/// Its reduce tasks each read their own partition (`shufflePartitions`): taken together, one
/// task would open every map task's slice of every partition (four times the reads of one
/// task), and at the fault rate below twenty attempts were not always enough.
const JOB: &str = "  targetTaskBytes: 200\n  shufflePartitions: 4\n  retries: 20\n  dataframe:\n    inputs: {t: {path: \"t/*.csv\", format: csv}}\n    pipeline: [{source: t}, {groupby: {by: [k], aggs: {v: [sum]}}}]\n  output: {path: out}\n";

async fn lab() -> Lab {
    let lab = Lab::local();
    for f in 0..4 {
        let mut csv = String::from("k,v\n");
        for i in 0..50 {
            csv.push_str(&format!("k{},{}\n", (i * 7 + f) % 9, i));
        }
        lab.put(&format!("t/{f}.csv"), csv).await;
    }
    lab
}

async fn history_of(lab: &Lab, output: &str) -> JobHistory {
    let dir = locate(&lab.store, output, None).await.expect("a history");
    read(&lab.store, &dir).await.expect("readable")
}

/// Attempts by (stage, task), their outcomes in start order.
fn by_task(h: &JobHistory) -> BTreeMap<(usize, usize), Vec<AttemptOutcome>> {
    let mut m: BTreeMap<(usize, usize), Vec<AttemptOutcome>> = BTreeMap::new();
    for a in &h.attempts {
        m.entry((a.stage, a.task)).or_default().push(a.outcome);
    }
    m
}

#[test]
fn every_attempt_is_recorded_and_a_retried_task_shows_its_failed_attempts() {
    run(async {
        // Seeds until one fails a task attempt (a 503 can also hit planning or the commit,
        // which retry in place); each seed's faults are the same on every run.
        for seed in 0..20 {
            let lab = lab().await;
            let faults = Faults::new(
                seed,
                FaultRates {
                    unavailable: 0.08,
                    ..FaultRates::default()
                },
            );
            let root = lab.store.root.as_ref().to_string();
            let f = Arc::clone(&faults);
            let wrap = StoreWrapper(Arc::new(move |inner| {
                Arc::new(FaultStore::new(inner, Arc::clone(&f), &root))
            }));
            let summary = lab
                .run_wrapped(JOB, Some(wrap))
                .await
                .expect("succeeds with retries");
            let h = history_of(&lab, "out").await;
            let job = h.job.clone().expect("the job's record");
            assert_eq!(job.outcome, JobOutcome::Succeeded);
            assert_eq!(job.mode, "local");
            assert!(job.ended_ms.is_some_and(|e| e >= job.started_ms));
            assert_eq!(job.outputs.len(), 1, "{:?}", job.outputs);
            assert!(
                job.outputs[0].ends_with("out/_SUCCESS"),
                "{:?}",
                job.outputs
            );
            assert_eq!(job.job_id, summary.manifest.job_id);
            // Every planned task has exactly one committed attempt; every other attempt failed
            // with the store's (retryable) error; none is left running.
            let tasks = by_task(&h);
            let planned: usize = job.stages.iter().map(|s| s.tasks).sum();
            assert_eq!(tasks.len(), planned, "{tasks:?}");
            for (key, outcomes) in &tasks {
                let committed = outcomes
                    .iter()
                    .filter(|o| **o == AttemptOutcome::Committed)
                    .count();
                assert_eq!(committed, 1, "{key:?}: {outcomes:?}");
                assert_eq!(
                    outcomes.last(),
                    Some(&AttemptOutcome::Committed),
                    "{key:?}: {outcomes:?}"
                );
            }
            for a in &h.attempts {
                assert_eq!(a.runner, "local");
                assert!(a.ended_ms.is_some(), "{a:?}");
                if a.outcome == AttemptOutcome::Failed {
                    assert_eq!(a.retryable, Some(true), "{a:?}");
                    assert!(
                        a.error.as_deref().is_some_and(|e| e.contains("503")),
                        "{a:?}"
                    );
                } else {
                    assert_eq!(a.outcome, AttemptOutcome::Committed, "{a:?}");
                    assert!(a.peak_memory_bytes > 0, "{a:?}");
                }
            }
            // Rows: the scan tasks read the 200 input rows between them.
            let read: u64 = h
                .attempts
                .iter()
                .filter(|a| a.stage == 0 && a.outcome == AttemptOutcome::Committed)
                .map(|a| a.rows_in)
                .sum();
            assert_eq!(read, 200);
            assert_eq!(h.runners.len(), 1);
            assert!(!h.runners[0].samples.is_empty());
            let failed = h
                .attempts
                .iter()
                .filter(|a| a.outcome == AttemptOutcome::Failed)
                .count();
            if failed > 0 {
                assert_eq!(h.attempts.len(), planned + failed);
                // The page draws every attempt, the failed ones marked.
                let page = kask_report::render(&h);
                assert_eq!(
                    page.matches("<rect class=\"attempt ").count(),
                    h.attempts.len()
                );
                assert_eq!(page.matches("data-outcome=\"failed\"").count(), failed);
                return;
            }
        }
        panic!("no seed failed a task attempt");
    });
}

#[test]
fn a_failed_job_keeps_its_history_with_the_error() {
    run(async {
        let lab = lab().await;
        // Good rows first, so that the columns' types are inferred as numbers and the bad
        // value fails the task that reads it, not the planning.
        let mut bad = String::from("k,v\n");
        for i in 0..5000 {
            bad.push_str(&format!("k{},{i}\n", i % 9));
        }
        bad.push_str("k1,not-a-number\n");
        lab.put("t/bad.csv", bad).await;
        let err = lab.run(JOB).await.expect_err("a bad value fails the job");
        let h = history_of(&lab, "out").await;
        let job = h.job.expect("the job's record");
        assert_eq!(job.outcome, JobOutcome::Failed);
        let said = job.error.expect("why");
        assert_eq!(said, err.to_string().trim_end());
        let failed: Vec<_> = h
            .attempts
            .iter()
            .filter(|a| a.outcome == AttemptOutcome::Failed)
            .collect();
        assert!(!failed.is_empty(), "{:?}", h.attempts);
        assert!(
            failed.iter().all(|a| a.retryable == Some(false)),
            "{failed:?}"
        );
        assert!(
            failed.iter().all(|a| a
                .error
                .as_deref()
                .is_some_and(|e| e.contains("not-a-number"))),
            "{failed:?}"
        );
        // No manifest: the history is found under the output all the same.
        assert!(
            lab.store
                .get_opt("out/_SUCCESS")
                .await
                .expect("get")
                .is_none()
        );
    });
}

#[test]
fn the_manifest_names_the_history_and_a_rerun_has_its_own() {
    run(async {
        let lab = lab().await;
        let first = lab
            .run(
                JOB.replace(
                    "output: {path: out}",
                    "output: {path: out, mode: overwrite}",
                )
                .as_str(),
            )
            .await
            .expect("runs");
        let second = lab
            .run(
                JOB.replace(
                    "output: {path: out}",
                    "output: {path: out, mode: overwrite}",
                )
                .as_str(),
            )
            .await
            .expect("runs again");
        assert_ne!(first.manifest.job_id, second.manifest.job_id);
        let named = second.manifest.history.clone().expect("named");
        assert_eq!(named, format!("_kask/history/{}", second.manifest.job_id));
        let h = history_of(&lab, "out").await;
        assert_eq!(h.job.expect("record").job_id, second.manifest.job_id);
        let older = locate(&lab.store, "out", Some(&first.manifest.job_id))
            .await
            .expect("by id");
        let older = read(&lab.store, &older).await.expect("readable");
        assert_eq!(older.job.expect("record").job_id, first.manifest.job_id);
        // The result is whole with the histories beside it.
        let v = kask_worker::commit::verify::verify(&lab.store, "out")
            .await
            .expect("verify");
        assert!(v.ok(), "{:?}", v.problems);
    });
}

#[test]
fn a_reader_that_follows_a_history_sees_records_added_changed_and_removed() {
    run(async {
        let lab = lab().await;
        lab.run(JOB).await.expect("runs");
        let dir = locate(&lab.store, "out", None).await.expect("a history");
        let mut reader = kask_worker::history::read::Reader::default();
        let first = reader.read(&lab.store, &dir).await.expect("readable");
        assert_eq!(
            first.attempts.len(),
            history_of(&lab, "out").await.attempts.len()
        );
        // A task attempt starts, the job record is rewritten, a runner record goes.
        let mut extra = first.attempts[0].clone();
        extra.attempt = "zz-new".into();
        extra.outcome = AttemptOutcome::Running;
        extra.ended_ms = None;
        extra.started_ms += 1;
        lab.put(
            &format!("{dir}/attempts/zz-new.json"),
            serde_json::to_vec(&extra).expect("json"),
        )
        .await;
        let mut job = first.job.clone().expect("the job's record");
        job.error = Some("a changed record of a longer size".into());
        lab.put(
            &format!("{dir}/job.json"),
            serde_json::to_vec(&job).expect("json"),
        )
        .await;
        let runners = lab
            .store
            .list(&format!("{dir}/runners"))
            .await
            .expect("list");
        assert_eq!(runners.len(), 1);
        lab.store.delete(&runners[0].0).await.expect("delete");
        let second = reader.read(&lab.store, &dir).await.expect("readable");
        assert_eq!(second.attempts.len(), first.attempts.len() + 1);
        assert!(second.attempts.iter().any(|a| a.attempt == "zz-new"));
        assert_eq!(second.job.and_then(|j| j.error), job.error);
        assert!(second.runners.is_empty());
    });
}

#[test]
fn an_output_keeps_its_newest_histories_and_the_committing_jobs() {
    run(async {
        use kask_worker::history::prune::prune;
        let lab = Lab::local();
        for id in ["h1", "h2", "h3", "h4", "h5"] {
            lab.put(&format!("out/_kask/history/{id}/job.json"), "{}")
                .await;
            lab.put(&format!("out/_kask/history/{id}/attempts/a.json"), "{}")
                .await;
            // Their ages must differ for the store to tell them apart.
            tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        }
        // Job h1 (the oldest) just committed: it stays, with the two newest.
        let removed = prune(&lab.store, "out", 2, "h1").await.expect("prunes");
        assert_eq!(removed, 2);
        let left = lab
            .store
            .list_dirs("out/_kask/history")
            .await
            .expect("lists");
        assert_eq!(left, ["h1", "h4", "h5"]);
        assert!(
            lab.store
                .list("out/_kask/history/h2")
                .await
                .expect("lists")
                .is_empty()
        );
        assert_eq!(prune(&lab.store, "out", 5, "h1").await.expect("prunes"), 0);
    });
}
