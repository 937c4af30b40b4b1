//! Where one process runs every task (`kask run`), a join collects a side whole that a cluster
//! would shuffle: the tasks there share one table, so a side of up to a 32nd of the memory
//! pool costs the job one read, against writing both sides to the store and reading
//! them back. On a cluster (a job id given, as the plan pod has) each task would build its
//! own, and the spec's 64 MiB default stands. Results equal a plain join here.

use kask_worker::relational::SqlStage;
use kask_worker::runner::{self, RunOptions};

use crate::support::{Lab, V, batch, ints, sorted, strs};

/// `side` rows: key `k` in 0..72 with a string of 1 MiB + `k` bytes, 72 MiB of files in all,
/// above the 64 MiB a cluster collects.
const SIDE_KEYS: i64 = 72;
/// `probe` rows: 160 of them, key `i % 100`, each with a string of 512 KiB (80 MiB of files
/// in two parts, so that `side` is the smaller side, the one a join builds).
const PROBE_ROWS: i64 = 160;
const MIB: usize = 1 << 20;

/// A memory limit whose pool (half of it, less 64 MiB) has a 32nd above 72 MiB.
const MEMORY: u64 = 8 << 30;

const QUERY: &str = "SELECT p.k, p.i, length(s.blob) AS n FROM probe p JOIN side s ON p.k = s.k";

async fn lab() -> Lab {
    let lab = Lab::local();
    let keys: Vec<Option<i64>> = (0..SIDE_KEYS).map(Some).collect();
    let blobs: Vec<String> = (0..SIDE_KEYS)
        .map(|k| "s".repeat(MIB + k as usize))
        .collect();
    let side = batch(vec![
        ("k", ints(&keys)),
        (
            "blob",
            strs(&blobs.iter().map(|b| Some(b.as_str())).collect::<Vec<_>>()),
        ),
    ]);
    lab.put_partitioned("side", &side, 1, 8).await;
    // Each string its own, so that no dictionary makes the files small.
    let fillers: Vec<String> = (0..PROBE_ROWS)
        .map(|i| format!("{i:08}{}", "p".repeat(MIB / 2 - 8)))
        .collect();
    let keys: Vec<Option<i64>> = (0..PROBE_ROWS).map(|i| Some(i % 100)).collect();
    let rows: Vec<Option<i64>> = (0..PROBE_ROWS).map(Some).collect();
    let fillers: Vec<Option<&str>> = fillers.iter().map(|f| Some(f.as_str())).collect();
    let probe = batch(vec![
        ("k", ints(&keys)),
        ("i", ints(&rows)),
        ("blob", strs(&fillers)),
    ]);
    lab.put_partitioned("probe", &probe, 2, 16).await;
    lab
}

fn spec() -> String {
    spec_with("")
}

/// [`spec`] with more lines of spec.
fn spec_with(more: &str) -> String {
    format!(
        "{more}  sql:\n    tables:\n      probe: {{path: \"probe/*.parquet\"}}\n      side: {{path: \"side/*.parquet\"}}\n    query: {}\n  targetTaskBytes: 1\n  output: {{path: out, mode: overwrite}}\n",
        serde_json::to_string(QUERY).expect("json")
    )
}

/// The stages' sub-plans of job `spec`, planned with `job_id` (`None`: `kask run`'s).
async fn stage_plans(lab: &Lab, spec: &str, job_id: Option<&str>) -> Vec<String> {
    let job = kask_api::load_job("job.yaml", &lab.job_yaml(spec)).expect("job");
    let opts = RunOptions {
        storage: Some(lab.store.url.clone()),
        base_dir: lab.dir.path().to_path_buf(),
        parallelism: Some(2),
        wrap: None,
        memory: Some(MEMORY),
    };
    let (_, plan) = runner::prepare(&job, &opts, job_id).await.expect("plan");
    plan.stages
        .iter()
        .map(|s| SqlStage::of(s).expect("an SQL stage").plan)
        .collect()
}

#[tokio::test]
async fn one_process_collects_a_side_that_a_cluster_shuffles() {
    let lab = lab().await;

    let here = stage_plans(&lab, &spec(), None).await;
    assert_eq!(
        here.len(),
        1,
        "one stage, no shuffle:\n{}",
        here.join("\n\n")
    );
    assert!(
        here[0].contains("mode=CollectLeft") && here[0].contains("side/part-0.parquet"),
        "the stage that scans probe reads side whole:\n{}",
        here[0]
    );

    // A size the spec sets holds here too: none, both sides shuffled.
    let set = stage_plans(&lab, &spec_with("  broadcastBytes: 0\n"), None).await;
    assert_eq!(set.len(), 3, "{}", set.join("\n\n"));

    let cluster = stage_plans(&lab, &spec(), Some("0b6e7a52-cluster")).await;
    assert_eq!(
        cluster.len(),
        3,
        "both sides shuffled, then joined:\n{}",
        cluster.join("\n\n")
    );
    assert!(
        cluster[2].contains("mode=Partitioned"),
        "{}",
        cluster.join("\n\n")
    );

    let summary = lab.run_with_memory(&spec(), MEMORY).await.expect("runs");
    let (names, types, got) = lab.typed_result("out").await;
    assert_eq!(names, ["k", "i", "n"]);
    assert_eq!(types, ["Int64", "Int64", "Int32"]);
    let want: Vec<Vec<V>> = (0..PROBE_ROWS)
        .filter(|i| i % 100 < SIDE_KEYS)
        .map(|i| {
            let k = i % 100;
            vec![V::I(k), V::I(i), V::I(MIB as i64 + k)]
        })
        .collect();
    assert_eq!(summary.manifest.rows, want.len() as u64);
    assert_eq!(sorted(got), sorted(want));
}
