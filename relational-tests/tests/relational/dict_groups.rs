use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, SchemaRef};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::execution::memory_pool::GreedyMemoryPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::physical_plan::{ExecutionPlan, collect, displayable};
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};

use kask_relational::dict_groups::dictionary_group_aggregates;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("a", DataType::Utf8, true),
        Field::new("b", DataType::Utf8, true),
        Field::new("v", DataType::Int64, true),
    ]))
}

type Key = (Option<String>, Option<String>);

/// The keys of row `i`: `a` null in every 17th row, else one of `groups` strings (short ones
/// and ones longer than a view holds); `b` one of three, null in every 11th.
fn key(i: u64, groups: u64) -> Key {
    let a = (i % 17 != 3).then(|| {
        let g = (i.wrapping_mul(2_654_435_761) >> 7) % groups;
        match g % 3 {
            0 => format!("id{g:03}"),
            1 => format!("a key longer than twelve bytes, number {g}"),
            _ => format!("k{g}"),
        }
    });
    let b = (i % 11 != 4).then(|| ["x", "y", "zz"][(i % 3) as usize].to_string());
    (a, b)
}

fn value(i: u64) -> Option<i64> {
    (i % 13 != 5).then_some((i as i64 * 7919) % 1000 - 300)
}

/// Writes rows `rows` to `path` in row groups of `group` rows, the strings dictionary-encoded
/// when `dictionary`.
fn write(path: &std::path::Path, rows: std::ops::Range<u64>, groups: u64, dictionary: bool) {
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(3_000))
        .set_dictionary_enabled(dictionary)
        .build();
    let file = std::fs::File::create(path).expect("file");
    let mut writer = ArrowWriter::try_new(file, schema(), Some(props)).expect("writer");
    let keys: Vec<Key> = rows.clone().map(|i| key(i, groups)).collect();
    let a = StringArray::from_iter(keys.iter().map(|k| k.0.clone()));
    let b = StringArray::from_iter(keys.iter().map(|k| k.1.clone()));
    let v = Int64Array::from_iter(rows.map(value));
    let batch =
        RecordBatch::try_new(schema(), vec![Arc::new(a), Arc::new(b), Arc::new(v)]).expect("batch");
    writer.write(&batch).expect("written");
    writer.close().expect("closed");
}

/// The key of row `i` of an output batch: its first two columns, string views.
fn key_at(b: &RecordBatch, i: usize) -> Key {
    let string = |c: usize| {
        let a = b.column(c).as_string_view();
        a.is_valid(i).then(|| a.value(i).to_string())
    };
    (string(0), string(1))
}

/// Per key: sum, count of values, count of rows, min, max, and sum of values over 100.
#[derive(Debug, Default, PartialEq, Clone, Copy)]
struct Expected {
    sum: Option<i64>,
    count: i64,
    rows: i64,
    min: Option<i64>,
    max: Option<i64>,
    big: Option<i64>,
}

/// The answer computed row by row in plain Rust.
fn reference(rows: u64, groups: u64) -> BTreeMap<Key, Expected> {
    let mut out: BTreeMap<Key, Expected> = BTreeMap::new();
    for i in 0..rows {
        let e = out.entry(key(i, groups)).or_default();
        e.rows += 1;
        if let Some(v) = value(i) {
            e.sum = Some(e.sum.unwrap_or(0) + v);
            e.count += 1;
            e.min = Some(e.min.map_or(v, |m| m.min(v)));
            e.max = Some(e.max.map_or(v, |m| m.max(v)));
            if v > 100 {
                e.big = Some(e.big.unwrap_or(0) + v);
            }
        }
    }
    out
}

const QUERY: &str = "SELECT a, b, sum(v) AS s, count(v) AS c, count(*) AS n, min(v) AS lo, \
     max(v) AS hi, sum(v) FILTER (WHERE v > 100) AS big, avg(v) AS mean FROM t GROUP BY a, b";

/// A session like Kask's: each partition reads its own files (no work stealing).
fn context(probe_rows: usize) -> SessionContext {
    let mut config = SessionConfig::new()
        .with_target_partitions(2)
        .with_batch_size(1000)
        .with_round_robin_repartition(false)
        .with_repartition_file_scans(false);
    config
        .options_mut()
        .execution
        .skip_partial_aggregation_probe_rows_threshold = probe_rows;
    config
        .options_mut()
        .execution
        .enable_file_stream_work_stealing = false;
    SessionContext::new_with_config(config)
}

/// The files of a table of `rows` rows: two halves, the second dictionary-encoded only when
/// `both`.
struct Table {
    _dir: tempfile::TempDir,
}

async fn table(ctx: &SessionContext, rows: u64, groups: u64, both: bool) -> Table {
    let dir = tempfile::tempdir().expect("dir");
    write(&dir.path().join("0.parquet"), 0..rows / 2, groups, true);
    write(&dir.path().join("1.parquet"), rows / 2..rows, groups, both);
    let path = format!("{}/", dir.path().display());
    ctx.register_parquet("t", &path, ParquetReadOptions::default())
        .await
        .expect("registered");
    Table { _dir: dir }
}

/// The query's physical plan with its partial aggregation rewritten.
async fn rewritten(ctx: &SessionContext) -> Arc<dyn ExecutionPlan> {
    let df = ctx.sql(QUERY).await.expect("the query");
    let plan = df.create_physical_plan().await.expect("planned");
    let plan = dictionary_group_aggregates(plan).expect("rewritten");
    assert!(
        plan.exists(|n| Ok(n.name() == "DictGroupsExec"))
            .expect("walked"),
        "{}",
        displayable(plan.as_ref()).indent(true)
    );
    plan
}

fn answer(batches: &[RecordBatch]) -> BTreeMap<Key, (Expected, f64)> {
    let mut out = BTreeMap::new();
    for b in batches {
        let types: Vec<&DataType> = b
            .schema_ref()
            .fields()
            .iter()
            .map(|f| f.data_type())
            .collect();
        assert_eq!(types[..2], [&DataType::Utf8View, &DataType::Utf8View]);
        assert_eq!(types[2..8], [&DataType::Int64; 6]);
        assert_eq!(types[8], &DataType::Float64);
        let int = |c: usize, i: usize| {
            let a = b.column(c).as_primitive::<Int64Type>();
            a.is_valid(i).then(|| a.value(i))
        };
        let mean = b.column(8).as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            let e = Expected {
                sum: int(2, i),
                count: int(3, i).expect("count"),
                rows: int(4, i).expect("count"),
                min: int(5, i),
                max: int(6, i),
                big: int(7, i),
            };
            let m = if mean.is_valid(i) {
                mean.value(i)
            } else {
                f64::NAN
            };
            let key = key_at(b, i);
            assert!(out.insert(key, (e, m)).is_none(), "a key twice");
        }
    }
    out
}

fn check(got: BTreeMap<Key, (Expected, f64)>, rows: u64, groups: u64) {
    let want = reference(rows, groups);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (k, e) in &want {
        let (g, mean) = got[k];
        assert_eq!(&g, e, "key {k:?}");
        match e.sum {
            Some(s) => {
                let m = s as f64 / e.count as f64;
                assert!(
                    (mean - m).abs() <= 1e-9 * m.abs().max(1.0),
                    "key {k:?}: {mean} {m}"
                );
            }
            None => assert!(mean.is_nan(), "key {k:?}: mean {mean} of no values"),
        }
    }
}

fn find(plan: &Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan> {
    let mut found = None;
    plan.apply(|n| {
        if n.name() == "DictGroupsExec" {
            found = Some(Arc::clone(n));
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .expect("walked");
    found.expect("a DictGroupsExec")
}

/// How many partitions of `plan`'s `DictGroupsExec` grouped by codes.
fn coded(plan: &Arc<dyn ExecutionPlan>) -> usize {
    find(plan)
        .metrics()
        .and_then(|m| m.sum_by_name("coded_partitions"))
        .map_or(0, |v| v.as_usize())
}

/// Runs the query over 40,000 rows of 64 values of `a` (the second file dictionary-encoded
/// when `both`), checks its answer, and says how many partitions grouped by codes.
async fn checked_run(both: bool) -> usize {
    let (rows, groups) = (40_000, 64);
    let ctx = context(1_000_000);
    let _files = table(&ctx, rows, groups, both).await;
    let plan = rewritten(&ctx).await;
    let got = collect(Arc::clone(&plan), ctx.task_ctx())
        .await
        .expect("ran");
    check(answer(&got), rows, groups);
    coded(&plan)
}

#[tokio::test]
async fn null_short_and_long_keys_give_a_plain_computations_answer() {
    assert_eq!(
        checked_run(true).await,
        2,
        "both files are dictionary-encoded"
    );
}

#[tokio::test]
async fn a_file_without_dictionaries_is_aggregated_the_plain_way() {
    assert_eq!(
        checked_run(false).await,
        1,
        "only the first file is dictionary-encoded"
    );
}

#[tokio::test]
async fn rows_that_mostly_start_groups_are_handed_on_and_the_answer_holds() {
    // 12,000 values of `a` (times three of `b`) in 40,000 rows: after 1,000 rows most rows
    // start a group.
    let (rows, groups) = (40_000, 12_000);
    let ctx = context(1_000);
    let _files = table(&ctx, rows, groups, true).await;
    let plan = rewritten(&ctx).await;
    let partial = find(&plan);
    let out = collect(Arc::clone(&partial), ctx.task_ctx())
        .await
        .expect("ran");
    let handed: usize = out.iter().map(|b| b.num_rows()).sum();
    // Aggregated up to the probe (at most the groups seen by then), then one row per row.
    assert!(
        handed > rows as usize - 2_000,
        "{handed} rows out of {rows}"
    );
    assert_eq!(coded(&partial), 2);
    let got = collect(plan, ctx.task_ctx()).await.expect("ran");
    check(answer(&got), rows, groups);
}

#[tokio::test]
async fn a_pool_too_small_for_the_groups_makes_it_emit_early() {
    let (rows, groups) = (40_000, 3_000);
    let ctx = context(1_000_000);
    let _files = table(&ctx, rows, groups, true).await;
    let plan = rewritten(&ctx).await;
    let partial = find(&plan);
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(GreedyMemoryPool::new(64 * 1024)))
        .build_arc()
        .expect("runtime");
    let small = Arc::new(
        datafusion::execution::TaskContext::default()
            .with_runtime(runtime)
            .with_session_config(ctx.copied_config()),
    );
    let out = collect(Arc::clone(&partial), small).await.expect("ran");
    assert_eq!(coded(&partial), 2);
    let emitted: usize = out.iter().map(|b| b.num_rows()).sum();
    let distinct = reference(rows, groups).len();
    assert!(
        emitted > 2 * distinct,
        "{emitted} partial rows for {distinct} groups"
    );
    // The partial sums add up to each key's sum.
    let mut sums: BTreeMap<Key, i64> = BTreeMap::new();
    for b in &out {
        let s = b.column(2).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            if s.is_valid(i) {
                *sums.entry(key_at(b, i)).or_default() += s.value(i);
            }
        }
    }
    let want: BTreeMap<Key, i64> = reference(rows, groups)
        .into_iter()
        .filter_map(|(k, e)| e.sum.map(|s| (k, s)))
        .collect();
    assert_eq!(sums, want);
}

#[tokio::test]
async fn a_group_column_that_a_filter_reads_is_left_to_datafusion() {
    let ctx = context(1_000_000);
    let _files = table(&ctx, 1_000, 8, true).await;
    let df = ctx
        .sql("SELECT a, count(*) FROM t WHERE a LIKE 'k%' GROUP BY a")
        .await
        .expect("the query");
    let plan = df.create_physical_plan().await.expect("planned");
    let plan = dictionary_group_aggregates(plan).expect("rewritten");
    assert!(
        !plan
            .exists(|n| Ok(n.name() == "DictGroupsExec"))
            .expect("walked"),
        "{}",
        displayable(plan.as_ref()).indent(true)
    );
}

/// Where partitions steal each other's files, a partition read by codes would leave its files
/// to the others' plain scans to read as well: every partition is aggregated the plain way.
#[tokio::test]
async fn partitions_that_share_their_files_are_aggregated_the_plain_way() {
    let (rows, groups) = (40_000, 64);
    let ctx = context(1_000_000);
    ctx.state_ref()
        .write()
        .config_mut()
        .options_mut()
        .execution
        .enable_file_stream_work_stealing = true;
    let _files = table(&ctx, rows, groups, false).await;
    let plan = rewritten(&ctx).await;
    let got = collect(Arc::clone(&plan), ctx.task_ctx())
        .await
        .expect("ran");
    check(answer(&got), rows, groups);
    assert_eq!(coded(&plan), 0);
}

/// A projection that computes an aggregate's argument and a filter on another column stand
/// between the scan and the aggregation; they are planned again over the dictionaries.
#[tokio::test]
async fn projections_and_filters_between_are_planned_again() {
    let (rows, groups) = (40_000, 64);
    let ctx = context(1_000_000);
    let _files = table(&ctx, rows, groups, true).await;
    let df = ctx
        .sql(
            "SELECT a, b, sum(v * 2 + 1) AS s, max(v * 2 + 1) AS m FROM t \
             WHERE v > 0 AND a IS NOT NULL GROUP BY a, b",
        )
        .await
        .expect("the query");
    let plan = df.create_physical_plan().await.expect("planned");
    let plan = dictionary_group_aggregates(plan).expect("rewritten");
    let shown = displayable(plan.as_ref()).indent(true).to_string();
    // The common `v * 2 + 1` is computed once, in a projection below the aggregation.
    let below = shown.split("DictGroupsExec").nth(1).unwrap_or_default();
    assert!(below.contains("ProjectionExec"), "{shown}");
    let got = collect(Arc::clone(&plan), ctx.task_ctx())
        .await
        .expect("ran");
    assert_eq!(coded(&plan), 2);
    let mut want: BTreeMap<Key, i64> = BTreeMap::new();
    for i in 0..rows {
        let k = key(i, groups);
        if let Some(v) = value(i)
            && v > 0
            && k.0.is_some()
        {
            *want.entry(k).or_default() += v * 2 + 1;
        }
    }
    let mut sums: BTreeMap<Key, i64> = BTreeMap::new();
    for b in &got {
        assert_eq!(b.column(0).data_type(), &DataType::Utf8View);
        let s = b.column(2).as_primitive::<Int64Type>();
        let m = b.column(3).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            let k = key_at(b, i);
            assert!(m.value(i) <= s.value(i), "{k:?}");
            assert!(sums.insert(k, s.value(i)).is_none());
        }
    }
    assert_eq!(sums, want);
}

/// A projection that hands a group column on twice, once into a column that is no group
/// column, would give that column as a dictionary too: no route. Handed on once, there is one.
#[tokio::test]
async fn a_group_column_handed_on_twice_has_no_route() {
    use datafusion::physical_expr::expressions::col;
    use datafusion::physical_plan::projection::ProjectionExec;

    let ctx = context(1_000_000);
    let _files = table(&ctx, 1_000, 8, true).await;
    let df = ctx.sql("SELECT a, b, v FROM t").await.expect("the query");
    let plan = df.create_physical_plan().await.expect("planned");
    let mut scan = None;
    plan.apply(|n| {
        if n.name() == "DataSourceExec" {
            scan = Some(Arc::clone(n));
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .expect("walked");
    let scan = scan.expect("a scan");
    let schema = scan.schema();
    let a = col("a", &schema).expect("a");
    let v = col("v", &schema).expect("v");
    let once = ProjectionExec::try_new(
        vec![
            (Arc::clone(&a), "g".to_string()),
            (Arc::clone(&v), "v".into()),
        ],
        Arc::clone(&scan),
    )
    .expect("projection");
    let once: Arc<dyn ExecutionPlan> = Arc::new(once);
    assert!(kask_relational::dict_route::route(&once, &[0]).is_some());
    let twice = ProjectionExec::try_new(
        vec![
            (Arc::clone(&a), "g".to_string()),
            (a, "other".into()),
            (v, "v".into()),
        ],
        scan,
    )
    .expect("projection");
    let twice: Arc<dyn ExecutionPlan> = Arc::new(twice);
    assert!(kask_relational::dict_route::route(&twice, &[0]).is_none());
}

/// Runs `sql` as a task does (its filter's `AND` made lean first, then the rewrite) over
/// 40,000 rows of 64 values of `a`, checks that both partitions grouped by codes, and returns
/// its batches.
async fn coded_without_null_keys(sql: &str) -> Vec<RecordBatch> {
    let ctx = context(1_000_000);
    let _files = table(&ctx, ROWS, GROUPS, true).await;
    let plan = ctx
        .sql(sql)
        .await
        .expect("the query")
        .create_physical_plan()
        .await
        .expect("planned");
    let plan = kask_relational::lean_logic::lean_logic(plan)
        .and_then(dictionary_group_aggregates)
        .expect("rewritten");
    let got = collect(Arc::clone(&plan), ctx.task_ctx())
        .await
        .expect("ran");
    assert_eq!(
        coded(&plan),
        2,
        "{}",
        displayable(plan.as_ref()).indent(true)
    );
    got
}

const ROWS: u64 = 40_000;
const GROUPS: u64 = 64;

/// A pandas `dropna` before a groupby by two columns tests both for nulls (db-benchmark q2),
/// in one `AND` that the task has made lean; the keys then hold no null.
#[tokio::test]
async fn null_tests_of_both_group_columns_keep_the_codes() {
    let got = coded_without_null_keys(
        "SELECT a, b, sum(v) AS s FROM t WHERE a IS NOT NULL AND b IS NOT NULL GROUP BY a, b",
    )
    .await;
    let mut want: BTreeMap<Key, i64> = BTreeMap::new();
    for i in 0..ROWS {
        let k = key(i, GROUPS);
        if let (Some(v), true) = (value(i), k.0.is_some() && k.1.is_some()) {
            *want.entry(k).or_default() += v;
        }
    }
    let mut sums: BTreeMap<Key, i64> = BTreeMap::new();
    for b in &got {
        let s = b.column(2).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            if s.is_valid(i) {
                assert!(sums.insert(key_at(b, i), s.value(i)).is_none());
            }
        }
    }
    assert_eq!(sums, want);
}

/// One group column without nulls (db-benchmark q1 by `id1`): its rows' keys are read
/// straight from the dictionary's key buffer.
#[tokio::test]
async fn one_group_column_without_nulls_keeps_the_codes() {
    let got =
        coded_without_null_keys("SELECT a, sum(v) AS s FROM t WHERE a IS NOT NULL GROUP BY a")
            .await;
    let mut want: BTreeMap<String, i64> = BTreeMap::new();
    for i in 0..ROWS {
        if let ((Some(a), _), Some(v)) = (key(i, GROUPS), value(i)) {
            *want.entry(a).or_default() += v;
        }
    }
    let mut sums: BTreeMap<String, i64> = BTreeMap::new();
    for b in &got {
        assert_eq!(b.column(0).data_type(), &DataType::Utf8View);
        assert_eq!(b.column(1).data_type(), &DataType::Int64);
        let (a, s) = (
            b.column(0).as_string_view(),
            b.column(1).as_primitive::<Int64Type>(),
        );
        for i in 0..b.num_rows() {
            assert!(a.is_valid(i) && s.is_valid(i), "row {i} of a batch: a null");
            assert!(sums.insert(a.value(i).to_string(), s.value(i)).is_none());
        }
    }
    assert_eq!(sums.len(), GROUPS as usize);
    assert_eq!(sums, want);
}

/// A dictionary is the one held when it is the same array or an array over the same buffers
/// (as the Parquet reader hands on a column chunk's dictionary, batch after batch); equal
/// strings in other buffers, a slice of the same buffers, or the same strings with nulls are
/// other dictionaries.
#[test]
fn a_dictionary_over_the_same_buffers_is_the_same_dictionary() {
    use datafusion::arrow::array::{ArrayRef, make_array};
    let strings = || StringArray::from(vec!["x", "yy", "zzz"]);
    let held: ArrayRef = Arc::new(strings());
    let rebuilt = make_array(held.to_data());
    assert!(!Arc::ptr_eq(&held, &rebuilt));
    assert!(kask_relational::dict_groups::same_dictionary(&held, &held));
    assert!(kask_relational::dict_groups::same_dictionary(
        &held, &rebuilt
    ));
    let equal: ArrayRef = Arc::new(strings());
    assert!(!kask_relational::dict_groups::same_dictionary(
        &held, &equal
    ));
    assert!(!kask_relational::dict_groups::same_dictionary(
        &held,
        &held.slice(1, 2)
    ));
    assert!(!kask_relational::dict_groups::same_dictionary(
        &held,
        &held.slice(0, 2)
    ));
    let with_nulls = make_array(
        held.to_data()
            .into_builder()
            .null_bit_buffer(Some(datafusion::arrow::buffer::Buffer::from([0b101u8])))
            .build()
            .expect("valid"),
    );
    assert!(!kask_relational::dict_groups::same_dictionary(
        &held,
        &with_nulls
    ));
    assert!(kask_relational::dict_groups::same_dictionary(
        &with_nulls,
        &make_array(with_nulls.to_data())
    ));
}
