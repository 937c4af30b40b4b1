use datafusion::arrow::array::{Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use kask_core::memory::*;
use std::sync::Arc;

#[test]
fn spill_space_leaves_room_for_the_rest_of_tmp() {
    assert_eq!(spill_bytes(100 << 20), 90 << 20);
    assert_eq!(spill_bytes(100 << 30), 99 << 30);
}

/// A sort of 24 MB of rows in an 8 MiB pool, with `spill_limit` of spill space.
async fn sort(spill_limit: Option<u64>) -> std::result::Result<usize, String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let budget = Budget {
        spill_limit,
        ..Budget::new(72 << 20, Source::Given, dir.path().join("spill"))
    };
    let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)]));
    let batches: Vec<RecordBatch> = (0..30)
        .map(|b| {
            let keys = (0..100_000i64).map(|i| (i * 7_919 + b * 13) % 1_000_003);
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![Arc::new(Int64Array::from_iter_values(keys))],
            )
            .expect("batch")
        })
        .collect();
    let table = MemTable::try_new(schema, vec![batches]).expect("table");
    let ctx = SessionContext::new_with_config_rt(
        SessionConfig::new().with_target_partitions(1),
        budget.runtime().expect("runtime"),
    );
    ctx.register_table("t", Arc::new(table)).expect("register");
    let df = ctx.sql("SELECT k FROM t ORDER BY k").await.expect("plan");
    match df.collect().await {
        Ok(b) => Ok(b.iter().map(RecordBatch::num_rows).sum()),
        Err(e) => Err(kask_core::error::df_message(&e)),
    }
}

#[tokio::test]
async fn a_sort_spills_within_its_spill_space_or_fails_naming_it() {
    assert_eq!(sort(None).await, Ok(3_000_000));
    let err = sort(Some(1 << 20)).await.expect_err("1 MiB of spill space");
    assert!(
        err.contains("spilled more than its spill space holds") && err.contains("spillSize"),
        "{err}"
    );
}

#[test]
fn sizes_read_as_kubernetes_quantities() {
    assert_eq!(parse_size("1048576"), Ok(1 << 20));
    assert_eq!(parse_size("512Mi"), Ok(512 << 20));
    assert_eq!(parse_size("512MiB"), Ok(512 << 20));
    assert_eq!(parse_size("2G"), Ok(2_000_000_000));
    assert_eq!(parse_size("1.5Gi"), Ok(3 << 29));
    assert!(parse_size("lots").is_err());
    assert!(parse_size("3 parsecs").is_err());
    assert!(parse_size("0").is_err());
}

#[test]
fn cgroup_files_say_limit_or_none() {
    assert_eq!(parse_cgroup_value("268435456\n"), Some(256 << 20));
    assert_eq!(parse_cgroup_value("max\n"), None);
    // cgroup v1's "unlimited", rounded down to a page.
    assert_eq!(parse_cgroup_value("9223372036854771712"), None);
    assert_eq!(parse_cgroup_value(""), None);
    let dir = tempfile::tempdir().expect("tempdir");
    assert_eq!(cgroup_limit(dir.path()), None);
    std::fs::write(dir.path().join("memory.max"), "1073741824\n").expect("write");
    assert_eq!(cgroup_limit(dir.path()), Some(1 << 30));
    let v1 = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(v1.path().join("memory")).expect("mkdir");
    std::fs::write(v1.path().join("memory/memory.limit_in_bytes"), "536870912").expect("w");
    assert_eq!(cgroup_limit(v1.path()), Some(512 << 20));
}

#[test]
fn the_pool_keeps_a_reserve_and_meminfo_is_read_in_kib() {
    assert_eq!(pool_bytes(256 << 20), 64 << 20);
    assert_eq!(pool_bytes(64 << 20), 32 << 20, "half of a small limit");
    assert_eq!(pool_bytes(48 << 20), 24 << 20);
    assert_eq!(pool_bytes(100 << 20), 32 << 20);
    assert_eq!(pool_bytes(2 << 30), (1 << 30) - (64 << 20));
    assert_eq!(pool_bytes(8 << 30), (4 << 30) - (64 << 20));
    assert_eq!(tasks_at_once(256 << 20, 2), 1);
    assert_eq!(tasks_at_once(64 << 20, 4), 1);
    assert_eq!(tasks_at_once(512 << 20, 2), 2);
    assert_eq!(tasks_at_once(8 << 30, 2), 2);
    let info = "MemTotal:       24576000 kB\nMemFree:        100 kB\n";
    assert_eq!(parse_meminfo_total(info), Some(24_576_000 * 1024));
}
