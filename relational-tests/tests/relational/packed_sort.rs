use std::cmp::Ordering;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, AsArray, FixedSizeBinaryBuilder, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use datafusion::catalog::MemTable;
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::GreedyMemoryPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::physical_plan::{ExecutionPlan, collect, displayable};
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::TryStreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::test_plans::node_named;
use kask_relational::packed_sort::packed_sorts;

#[derive(Clone, Debug, PartialEq)]
struct Row {
    id: i64,
    k: Option<i64>,
    tag: Option<[u8; 3]>,
    s: Option<String>,
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("k", DataType::Int64, true),
        Field::new("tag", DataType::FixedSizeBinary(3), true),
        Field::new("s", DataType::Utf8, true),
    ]))
}

fn rows(seed: u64, n: usize) -> Vec<Row> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| Row {
            id: i as i64,
            // Few keys, so that many rows tie on both.
            k: rng.random_bool(0.9).then(|| rng.random_range(-50..50)),
            tag: rng
                .random_bool(0.8)
                .then(|| [rng.random_range(0..3), 7, rng.random_range(0..2)]),
            s: rng
                .random_bool(0.9)
                .then(|| format!("s{}", rng.random_range(0..100))),
        })
        .collect()
}

fn batch_of(rows: &[Row]) -> RecordBatch {
    let mut tag = FixedSizeBinaryBuilder::new(3);
    for r in rows {
        match &r.tag {
            Some(t) => tag.append_value(t).expect("3 bytes"),
            None => tag.append_null(),
        }
    }
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.id))),
            Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.k))),
            Arc::new(tag.finish()),
            Arc::new(StringArray::from_iter(rows.iter().map(|r| r.s.clone()))),
        ],
    )
    .expect("batch")
}

fn rows_of(batches: &[RecordBatch]) -> Vec<Row> {
    let mut out = Vec::new();
    for b in batches {
        assert_eq!(b.schema(), schema(), "the input's types");
        let id = b.column(0).as_primitive::<Int64Type>();
        let k = b.column(1).as_primitive::<Int64Type>();
        let tag = b.column(2).as_fixed_size_binary();
        let s = b.column(3).as_string::<i32>();
        out.extend((0..b.num_rows()).map(|i| {
            Row {
                id: id.value(i),
                k: k.is_valid(i).then(|| k.value(i)),
                tag: tag
                    .is_valid(i)
                    .then(|| tag.value(i).try_into().expect("3 bytes")),
                s: s.is_valid(i).then(|| s.value(i).to_string()),
            }
        }));
    }
    out
}

/// `ORDER BY k DESC NULLS FIRST, tag` worked out on the Rust values.
fn by_keys(a: &Row, b: &Row) -> Ordering {
    let k = match (a.k, b.k) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => y.cmp(&x),
    };
    let tag = match (a.tag, b.tag) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => x.cmp(&y),
    };
    k.then(tag)
}

const QUERY: &str = "SELECT * FROM t ORDER BY k DESC NULLS FIRST, tag";

/// A context over table `t`: `parts` partitions of batches of up to 1,000 rows.
fn context(parts: &[Vec<Row>]) -> SessionContext {
    let mut config = SessionConfig::new()
        .with_target_partitions(parts.len())
        .with_batch_size(777);
    // What a spilling sort keeps back for its merge: small, for the small pool below.
    config.options_mut().execution.sort_spill_reservation_bytes = 64 << 10;
    let ctx = SessionContext::new_with_config(config);
    let partitions = parts
        .iter()
        .map(|p| p.chunks(1000).map(batch_of).collect())
        .collect();
    let table = MemTable::try_new(schema(), partitions).expect("table");
    ctx.register_table("t", Arc::new(table))
        .expect("registered");
    ctx
}

async fn rewritten(ctx: &SessionContext, query: &str) -> Arc<dyn ExecutionPlan> {
    let df = ctx.sql(query).await.expect("the query");
    packed_sorts(df.create_physical_plan().await.expect("planned")).expect("rewritten")
}

#[tokio::test]
async fn each_partition_comes_out_as_a_stable_sort_of_its_rows() {
    // The first partition sorts three groups of rows and merges them; the second, one.
    let all = rows(3, 100_000);
    const _: () = assert!(70_000 > 2 * kask_relational::packed_sort::GROUP_ROWS);
    let parts = vec![all[..70_000].to_vec(), all[70_000..].to_vec()];
    let ctx = context(&parts);
    let plan = rewritten(&ctx, QUERY).await;
    let sort = node_named(&plan, "PackedSortExec")
        .unwrap_or_else(|| panic!("{}", displayable(plan.as_ref()).indent(true)));
    for (p, rows) in parts.iter().enumerate() {
        let out: Vec<RecordBatch> = sort
            .execute(p, ctx.task_ctx())
            .expect("executed")
            .try_collect()
            .await
            .expect("sorted");
        assert!(out.iter().all(|b| b.num_rows() <= 777), "the batch size");
        let mut expected = rows.clone();
        expected.sort_by(by_keys);
        assert_eq!(rows_of(&out), expected, "partition {p}");
    }
    assert_eq!(groups(&sort), 3 + 1, "groups sorted and merged");
    // The whole plan, through DataFusion's merge of the two partitions.
    let got = rows_of(&collect(plan, ctx.task_ctx()).await.expect("ran"));
    assert!(got.windows(2).all(|w| by_keys(&w[0], &w[1]).is_le()));
    let mut by_id = got.clone();
    by_id.sort_by_key(|r| r.id);
    assert_eq!(by_id, all, "every row once");
}

/// The groups of rows `sort` (a `PackedSortExec`) sorted, in all its partitions.
fn groups(sort: &Arc<dyn ExecutionPlan>) -> usize {
    sort.metrics()
        .and_then(|m| m.sum_by_name("sorted_groups"))
        .map_or(0, |v| v.as_usize())
}

#[tokio::test]
async fn wide_rows_are_grouped_by_their_bytes() {
    // 8,000 rows of about 1 KB: two groups of at most 4 MiB, not one of 32,768 rows.
    let mut all = rows(6, 8_000);
    for r in &mut all {
        r.s = r.s.as_ref().map(|s| s.repeat(200));
    }
    let ctx = context(std::slice::from_ref(&all));
    let plan = rewritten(&ctx, QUERY).await;
    let got = rows_of(
        &collect(Arc::clone(&plan), ctx.task_ctx())
            .await
            .expect("ran"),
    );
    let mut expected = all;
    expected.sort_by(by_keys);
    assert_eq!(got, expected);
    let sort = node_named(&plan, "PackedSortExec").expect("the packed sort");
    assert!(groups(&sort) >= 2, "{} groups", groups(&sort));
}

#[tokio::test]
async fn a_sort_the_pool_cannot_hold_spills_through_datafusions_sort() {
    let all = rows(4, 60_000);
    let ctx = context(std::slice::from_ref(&all));
    let plan = rewritten(&ctx, QUERY).await;
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(GreedyMemoryPool::new(1 << 20)))
        .build_arc()
        .expect("runtime");
    let small = Arc::new(
        TaskContext::default()
            .with_runtime(runtime)
            .with_session_config(ctx.copied_config()),
    );
    let got = rows_of(&collect(Arc::clone(&plan), small).await.expect("ran"));
    assert!(got.windows(2).all(|w| by_keys(&w[0], &w[1]).is_le()));
    let mut by_id = got;
    by_id.sort_by_key(|r| r.id);
    assert_eq!(by_id, all, "every row once");
    let sort = node_named(&plan, "PackedSortExec").expect("the packed sort");
    let spilled = sort.metrics().and_then(|m| m.spilled_bytes()).unwrap_or(0);
    assert!(spilled > 0, "the sort it handed its rows to spilled");
}

#[tokio::test]
async fn keys_that_do_not_pack_and_top_n_sorts_stay_datafusions() {
    let ctx = context(&[rows(5, 100)]);
    for query in [
        "SELECT * FROM t ORDER BY s",
        "SELECT * FROM t ORDER BY k, id",
        "SELECT * FROM t ORDER BY k LIMIT 5",
    ] {
        let plan = rewritten(&ctx, query).await;
        assert!(node_named(&plan, "PackedSortExec").is_none(), "{query}");
        assert!(
            node_named(&plan, "SortExec")
                .or_else(|| node_named(&plan, "SortExec(TopK)"))
                .is_some(),
            "{query}: {}",
            displayable(plan.as_ref()).indent(true)
        );
    }
}
