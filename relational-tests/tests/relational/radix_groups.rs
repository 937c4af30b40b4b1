use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, AsArray, Float64Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, SchemaRef};
use datafusion::common::tree_node::TreeNode;
use datafusion::datasource::MemTable;
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::GreedyMemoryPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::physical_plan::{ExecutionPlan, collect, displayable};
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};

use crate::test_plans::node_named;
use kask_relational::dict_groups::dictionary_group_aggregates;
use kask_relational::radix_groups::{CHUNK_ROWS, radix_group_aggregates};

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, true),
        Field::new("v", DataType::Int64, true),
        Field::new("w", DataType::Float64, false),
    ]))
}

/// Row `i`'s key: null in every 97th row, else one of `groups` numbers spread by a hash.
fn key(i: u64, groups: u64) -> Option<i64> {
    (i % 97 != 3).then(|| ((i.wrapping_mul(2_654_435_761) >> 5) % groups) as i64 - 1_000)
}

fn value(i: u64) -> Option<i64> {
    (i % 13 != 5).then_some((i as i64 * 7919) % 1000 - 300)
}

fn weight(i: u64) -> f64 {
    (i % 7) as f64 * 0.25
}

/// Per key: sum, count of values, count of rows, min, max, sum of values over 100, and the
/// sum of the weights (for their mean).
#[derive(Debug, Default, PartialEq, Clone, Copy)]
struct Expected {
    sum: Option<i64>,
    count: i64,
    rows: i64,
    min: Option<i64>,
    max: Option<i64>,
    big: Option<i64>,
    weights: f64,
}

/// The answer computed row by row in plain Rust.
fn reference(rows: u64, groups: u64) -> BTreeMap<Option<i64>, Expected> {
    let mut out: BTreeMap<Option<i64>, Expected> = BTreeMap::new();
    for i in 0..rows {
        let e = out.entry(key(i, groups)).or_default();
        e.rows += 1;
        e.weights += weight(i);
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

const QUERY: &str = "SELECT k, sum(v) AS s, count(v) AS c, count(*) AS n, min(v) AS lo, \
     max(v) AS hi, sum(v) FILTER (WHERE v > 100) AS big, avg(w) AS mean FROM t GROUP BY k";

/// A session of two partitions whose partial aggregations judge after `probe_rows` rows.
fn context(probe_rows: usize) -> SessionContext {
    let mut config = SessionConfig::new()
        .with_target_partitions(2)
        .with_batch_size(8192);
    config
        .options_mut()
        .execution
        .skip_partial_aggregation_probe_rows_threshold = probe_rows;
    SessionContext::new_with_config(config)
}

/// Registers table `t` of `rows` rows in two partitions of 8,192-row batches.
fn register(ctx: &SessionContext, rows: u64, groups: u64) {
    let batch = |range: std::ops::Range<u64>| {
        let k = Int64Array::from_iter(range.clone().map(|i| key(i, groups)));
        let v = Int64Array::from_iter(range.clone().map(value));
        let w = Float64Array::from_iter_values(range.map(weight));
        RecordBatch::try_new(schema(), vec![Arc::new(k), Arc::new(v), Arc::new(w)]).expect("batch")
    };
    let half = rows / 2;
    let partition = |range: std::ops::Range<u64>| {
        let mut out = Vec::new();
        let mut at = range.start;
        while at < range.end {
            let end = (at + 8192).min(range.end);
            out.push(batch(at..end));
            at = end;
        }
        out
    };
    let table = MemTable::try_new(schema(), vec![partition(0..half), partition(half..rows)])
        .expect("table");
    ctx.register_table("t", Arc::new(table))
        .expect("registered");
}

/// The query's physical plan with its partial aggregation rewritten.
async fn rewritten(ctx: &SessionContext, query: &str) -> Arc<dyn ExecutionPlan> {
    let df = ctx.sql(query).await.expect("the query");
    let plan = df.create_physical_plan().await.expect("planned");
    let plan = radix_group_aggregates(plan).expect("rewritten");
    assert!(
        plan.exists(|n| Ok(n.name() == "RadixGroupsExec"))
            .expect("walked"),
        "{}",
        displayable(plan.as_ref()).indent(true)
    );
    plan
}

fn find(plan: &Arc<dyn ExecutionPlan>, name: &str) -> Arc<dyn ExecutionPlan> {
    node_named(plan, name).unwrap_or_else(|| panic!("no {name}"))
}

/// Rows of `plan`'s `RadixGroupsExec` aggregated in parts.
fn partitioned(plan: &Arc<dyn ExecutionPlan>) -> usize {
    find(plan, "RadixGroupsExec")
        .metrics()
        .and_then(|m| m.sum_by_name("partitioned_rows"))
        .map_or(0, |v| v.as_usize())
}

fn answer(batches: &[RecordBatch]) -> BTreeMap<Option<i64>, (Expected, f64)> {
    let mut out = BTreeMap::new();
    for b in batches {
        let types: Vec<&DataType> = b
            .schema_ref()
            .fields()
            .iter()
            .map(|f| f.data_type())
            .collect();
        assert_eq!(types[..7], [&DataType::Int64; 7]);
        assert_eq!(types[7], &DataType::Float64);
        let int = |c: usize, i: usize| {
            let a = b.column(c).as_primitive::<Int64Type>();
            a.is_valid(i).then(|| a.value(i))
        };
        let mean = b.column(7).as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            let e = Expected {
                sum: int(1, i),
                count: int(2, i).expect("count"),
                rows: int(3, i).expect("count"),
                min: int(4, i),
                max: int(5, i),
                big: int(6, i),
                weights: 0.0,
            };
            assert!(
                out.insert(int(0, i), (e, mean.value(i))).is_none(),
                "a key twice"
            );
        }
    }
    out
}

fn check(got: BTreeMap<Option<i64>, (Expected, f64)>, rows: u64, groups: u64) {
    let want = reference(rows, groups);
    assert_eq!(got.len(), want.len());
    for (k, e) in &want {
        let Some((g, mean)) = got.get(k) else {
            panic!("key {k:?} missing");
        };
        assert_eq!(*g, Expected { weights: 0.0, ..*e }, "key {k:?}");
        let m = e.weights / e.rows as f64;
        assert!((mean - m).abs() <= 1e-9, "key {k:?}: {mean} {m}");
    }
}

/// Runs the query over `rows` rows of `groups` keys, checks its answer, and says how many
/// rows were aggregated in parts.
async fn checked_run(rows: u64, groups: u64) -> usize {
    let ctx = context(1_000_000);
    register(&ctx, rows, groups);
    let plan = rewritten(&ctx, QUERY).await;
    let got = collect(Arc::clone(&plan), ctx.task_ctx())
        .await
        .expect("ran");
    check(answer(&got), rows, groups);
    partitioned(&plan)
}

#[tokio::test]
async fn many_groups_are_aggregated_in_parts_to_a_plain_computations_answer() {
    // 2.6 million rows of 300,000 keys: each partition splits after 32,768 groups, and
    // aggregates a queue of a million rows once before its input ends.
    let rows = 2_600_000;
    let done = checked_run(rows, 300_000).await;
    assert!(done > CHUNK_ROWS, "{done} rows aggregated in parts");
    assert!(done < rows as usize, "{done} rows aggregated in parts");
}

#[tokio::test]
async fn few_groups_stay_in_one_table() {
    assert_eq!(checked_run(200_000, 1_000).await, 0);
}

#[tokio::test]
async fn rows_that_mostly_start_groups_are_handed_on_and_the_answer_holds() {
    // After 100,000 rows of 2 million keys, most rows start a group.
    let rows = 400_000;
    let groups = 2_000_000;
    let ctx = context(100_000);
    register(&ctx, rows, groups);
    let plan = rewritten(&ctx, QUERY).await;
    let partial = find(&plan, "RadixGroupsExec");
    let out = collect(Arc::clone(&partial), ctx.task_ctx())
        .await
        .expect("ran");
    let handed: usize = out.iter().map(|b| b.num_rows()).sum();
    let distinct = reference(rows, groups).len();
    assert!(
        handed > rows as usize - 20_000 && handed > distinct,
        "{handed} rows out of {rows} for {distinct} groups"
    );
    let got = collect(plan, ctx.task_ctx()).await.expect("ran");
    check(answer(&got), rows, groups);
}

/// 100,000 integer keys span less than `dense_groups::MOST_SPAN`: numbered through an array,
/// they stay in one table.
#[tokio::test]
async fn keys_numbered_through_an_array_stay_in_one_table() {
    assert_eq!(checked_run(600_000, 100_000).await, 0);
}

#[tokio::test]
async fn a_pool_too_small_for_the_groups_makes_it_emit_early() {
    // Keys spanning more than an array numbers, so that the table splits.
    let (rows, groups) = (1_200_000, 400_000);
    let ctx = context(10_000_000);
    register(&ctx, rows, groups);
    let plan = rewritten(&ctx, QUERY).await;
    let partial = find(&plan, "RadixGroupsExec");
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(GreedyMemoryPool::new(4 << 20)))
        .build_arc()
        .expect("runtime");
    let small = Arc::new(
        TaskContext::default()
            .with_runtime(runtime)
            .with_session_config(ctx.copied_config()),
    );
    let out = collect(Arc::clone(&partial), small).await.expect("ran");
    assert!(partitioned(&partial) > 0);
    let emitted: usize = out.iter().map(|b| b.num_rows()).sum();
    let distinct = reference(rows, groups).len();
    assert!(
        emitted > 2 * distinct,
        "{emitted} partial rows for {distinct} groups"
    );
    // The many small tables of each early emission are handed on together.
    assert!(
        emitted / out.len() > 2_000,
        "{emitted} partial rows in {} batches",
        out.len()
    );
    // The partial sums add up to each key's sum.
    let mut sums: BTreeMap<Option<i64>, i64> = BTreeMap::new();
    for b in &out {
        let k = b.column(0).as_primitive::<Int64Type>();
        let s = b.column(1).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            if s.is_valid(i) {
                *sums.entry(k.is_valid(i).then(|| k.value(i))).or_default() += s.value(i);
            }
        }
    }
    let want: BTreeMap<Option<i64>, i64> = reference(rows, groups)
        .into_iter()
        .filter_map(|(k, e)| e.sum.map(|s| (k, s)))
        .collect();
    assert_eq!(sums, want);
}

/// Group keys that are expressions over two columns, one of them a string, go through
/// DataFusion's many-column tables.
#[tokio::test]
async fn computed_keys_over_several_columns_give_a_plain_computations_answer() {
    let (rows, groups) = (1_200_000, 150_000);
    let ctx = context(10_000_000);
    register(&ctx, rows, groups);
    let plan = rewritten(
        &ctx,
        "SELECT k % 1000 AS a, CAST(k / 1000 AS VARCHAR) AS b, sum(v) AS s FROM t \
         GROUP BY k % 1000, CAST(k / 1000 AS VARCHAR)",
    )
    .await;
    let got = collect(Arc::clone(&plan), ctx.task_ctx())
        .await
        .expect("ran");
    assert!(partitioned(&plan) > 0);
    let mut want: BTreeMap<(Option<i64>, Option<String>), Option<i64>> = BTreeMap::new();
    for i in 0..rows {
        let k = key(i, groups);
        let e = want
            .entry((k.map(|k| k % 1000), k.map(|k| (k / 1000).to_string())))
            .or_default();
        if let Some(v) = value(i) {
            *e = Some(e.unwrap_or(0) + v);
        }
    }
    let mut sums = BTreeMap::new();
    for b in &got {
        let a = b.column(0).as_primitive::<Int64Type>();
        let s = b.column(2).as_primitive::<Int64Type>();
        let text = |i: usize| match b.column(1).data_type() {
            DataType::Utf8View => {
                let c = b.column(1).as_string_view();
                c.is_valid(i).then(|| c.value(i).to_string())
            }
            other => panic!("b is {other}"),
        };
        for i in 0..b.num_rows() {
            let key = (a.is_valid(i).then(|| a.value(i)), text(i));
            let sum = s.is_valid(i).then(|| s.value(i));
            assert!(sums.insert(key, sum).is_none(), "a key twice");
        }
    }
    assert_eq!(sums, want);
}

/// String files whose pages are not all dictionary-encoded leave the dictionary path to the
/// partitioned tables.
#[tokio::test]
async fn plain_encoded_strings_fall_back_to_parts() {
    let dir = tempfile::tempdir().expect("dir");
    let schema = Arc::new(Schema::new(vec![
        Field::new("s", DataType::Utf8, true),
        Field::new("v", DataType::Int64, true),
    ]));
    let (rows, groups) = (300_000u64, 100_000u64);
    let text = |i: u64| key(i, groups).map(|k| format!("id{k:010}"));
    let props = WriterProperties::builder()
        .set_dictionary_enabled(false)
        .build();
    for (name, range) in [("0.parquet", 0..rows / 2), ("1.parquet", rows / 2..rows)] {
        let file = std::fs::File::create(dir.path().join(name)).expect("file");
        let mut writer =
            ArrowWriter::try_new(file, Arc::clone(&schema), Some(props.clone())).expect("writer");
        let s = StringArray::from_iter(range.clone().map(text));
        let v = Int64Array::from_iter(range.map(value));
        let batch = RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(s), Arc::new(v)])
            .expect("batch");
        writer.write(&batch).expect("written");
        writer.close().expect("closed");
    }
    // Each of two partitions reads its own file, as Kask's tasks do.
    let mut config = SessionConfig::new()
        .with_target_partitions(2)
        .with_round_robin_repartition(false)
        .with_repartition_file_scans(false);
    config
        .options_mut()
        .execution
        .enable_file_stream_work_stealing = false;
    let ctx = SessionContext::new_with_config(config);
    let path = format!("{}/", dir.path().display());
    ctx.register_parquet("f", &path, ParquetReadOptions::default())
        .await
        .expect("registered");
    let df = ctx
        .sql("SELECT s, sum(v) FROM f GROUP BY s")
        .await
        .expect("the query");
    let plan = df.create_physical_plan().await.expect("planned");
    let plan = radix_group_aggregates(plan)
        .and_then(dictionary_group_aggregates)
        .expect("rewritten");
    let got = collect(Arc::clone(&plan), ctx.task_ctx())
        .await
        .expect("ran");
    let dict = find(&plan, "DictGroupsExec");
    let metric = |name: &str| {
        dict.metrics()
            .and_then(|m| m.sum_by_name(name))
            .map_or(0, |v| v.as_usize())
    };
    assert_eq!(metric("coded_partitions"), 0);
    assert!(metric("partitioned_rows") > 0);
    let shown = displayable(plan.as_ref()).indent(true).to_string();
    assert!(shown.contains("DictGroupsExec: RadixGroupsExec"), "{shown}");
    let mut want: BTreeMap<Option<String>, Option<i64>> = BTreeMap::new();
    for i in 0..rows {
        let e = want.entry(text(i)).or_default();
        if let Some(v) = value(i) {
            *e = Some(e.unwrap_or(0) + v);
        }
    }
    let mut sums = BTreeMap::new();
    for b in &got {
        let s = b.column(0).as_string_view();
        let v = b.column(1).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            let key = s.is_valid(i).then(|| s.value(i).to_string());
            assert!(
                sums.insert(key, v.is_valid(i).then(|| v.value(i)))
                    .is_none()
            );
        }
    }
    assert_eq!(sums, want);
}
