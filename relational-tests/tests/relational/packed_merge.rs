use std::cmp::Ordering;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, AsArray, FixedSizeBinaryBuilder, Int32Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Int64Type, Schema, SchemaRef};
use datafusion::execution::memory_pool::{GreedyMemoryPool, MemoryConsumer, MemoryPool};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet};
use futures::TryStreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;

use kask_relational::packed_merge::*;
use kask_relational::range_sort::SortKeys;

fn ordering(keys: &[(&str, usize, SortOptions)]) -> LexOrdering {
    LexOrdering::new(
        keys.iter()
            .map(|(name, i, o)| PhysicalSortExpr::new(Arc::new(Column::new(name, *i)), *o)),
    )
    .expect("an order")
}

fn asc() -> SortOptions {
    SortOptions {
        descending: false,
        nulls_first: false,
    }
}

#[test]
fn fixed_width_keys_up_to_sixteen_bytes_pack() {
    let schema = Schema::new(vec![
        Field::new("key", DataType::FixedSizeBinary(10), false),
        Field::new("a", DataType::Int64, true),
        Field::new("b", DataType::Int32, true),
        Field::new("s", DataType::Utf8, true),
        Field::new("d", DataType::Decimal128(20, 2), true),
        Field::new("f", DataType::Boolean, true),
        Field::new("wide", DataType::FixedSizeBinary(16), true),
    ]);
    let width = |keys: &[(&str, usize)]| {
        let keys: Vec<_> = keys.iter().map(|(n, i)| (*n, *i, asc())).collect();
        packed_width(&ordering(&keys), &schema)
    };
    // Arrow's row format: a null byte, then the value.
    assert_eq!(width(&[("key", 0)]), Some(11));
    assert_eq!(width(&[("a", 1)]), Some(9));
    assert_eq!(width(&[("b", 2), ("a", 1)]), Some(14));
    assert_eq!(width(&[("f", 5), ("key", 0)]), Some(13));
    assert_eq!(width(&[("a", 1), ("key", 0)]), None, "20 bytes");
    assert_eq!(width(&[("s", 3)]), None, "strings are not of a fixed width");
    assert_eq!(width(&[("d", 4)]), None, "17 bytes");
    assert_eq!(width(&[("wide", 6)]), None, "17 bytes");
}

/// A row of the merged inputs, as plain Rust values.
#[derive(Clone, Debug, PartialEq)]
struct Row {
    k: Option<i64>,
    g: Option<i32>,
    /// A nullable fixed-size binary column (gathered by `interleave`).
    tag: Option<[u8; 3]>,
    /// A fixed-size binary column without nulls (gathered by slices).
    pay: [u8; 6],
    s: Option<String>,
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, true),
        Field::new("g", DataType::Int32, true),
        Field::new("tag", DataType::FixedSizeBinary(3), true),
        Field::new("pay", DataType::FixedSizeBinary(6), false),
        Field::new("s", DataType::Utf8, true),
    ]))
}

fn batch_of(rows: &[Row]) -> RecordBatch {
    let mut tag = FixedSizeBinaryBuilder::new(3);
    let mut pay = FixedSizeBinaryBuilder::new(6);
    for r in rows {
        match &r.tag {
            Some(t) => tag.append_value(t).expect("3 bytes"),
            None => tag.append_null(),
        }
        pay.append_value(r.pay).expect("6 bytes");
    }
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.k))),
            Arc::new(Int32Array::from_iter(rows.iter().map(|r| r.g))),
            Arc::new(tag.finish()),
            Arc::new(pay.finish()),
            Arc::new(StringArray::from_iter(rows.iter().map(|r| r.s.clone()))),
        ],
    )
    .expect("batch")
}

fn rows_of(batch: &RecordBatch) -> Vec<Row> {
    let k = batch.column(0).as_primitive::<Int64Type>();
    let g = batch.column(1).as_primitive::<Int32Type>();
    let tag = batch.column(2).as_fixed_size_binary();
    let pay = batch.column(3).as_fixed_size_binary();
    let s = batch.column(4).as_string::<i32>();
    (0..batch.num_rows())
        .map(|i| Row {
            k: k.is_valid(i).then(|| k.value(i)),
            g: g.is_valid(i).then(|| g.value(i)),
            tag: tag
                .is_valid(i)
                .then(|| tag.value(i).try_into().expect("3 bytes")),
            pay: pay.value(i).try_into().expect("6 bytes"),
            s: s.is_valid(i).then(|| s.value(i).to_string()),
        })
        .collect()
}

fn random_row(rng: &mut StdRng) -> Row {
    Row {
        // Few distinct keys, so that runs share keys and ties are ordered by run.
        k: rng.random_bool(0.9).then(|| rng.random_range(-20..20)),
        g: rng.random_bool(0.8).then(|| rng.random_range(-3..3)),
        tag: rng
            .random_bool(0.7)
            .then(|| [rng.random(), rng.random(), rng.random()]),
        pay: rng.random(),
        s: rng
            .random_bool(0.8)
            .then(|| format!("s{}", rng.random_range(0..1000))),
    }
}

/// Null first or last, then the values up or down, as the sort options say.
fn compare<T: Ord>(a: &Option<T>, b: &Option<T>, o: SortOptions) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) if o.nulls_first => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) if o.nulls_first => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) if o.descending => y.cmp(x),
        (Some(x), Some(y)) => x.cmp(y),
    }
}

/// Merges `runs` (each sorted here by `order`, cut into batches of random sizes) and checks
/// the result against all the rows sorted by `order`, ties in the order of the runs.
async fn check_merge(
    seed: u64,
    run_rows: &[usize],
    keys: &[(&str, usize, SortOptions)],
    order: impl Fn(&Row, &Row) -> Ordering,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let schema = schema();
    let ordering = ordering(keys);
    let width = packed_width(&ordering, &schema).expect("keys that pack");
    let mut expected = Vec::new();
    let mut streams = Vec::new();
    for &n in run_rows {
        let mut rows: Vec<Row> = (0..n).map(|_| random_row(&mut rng)).collect();
        rows.sort_by(&order);
        expected.extend(rows.iter().cloned());
        let mut batches = Vec::new();
        let mut rest = rows.as_slice();
        while !rest.is_empty() {
            // Some empty batches too: the merge must skip them.
            let take = rng.random_range(0..=40).min(rest.len());
            batches.push(Ok(batch_of(&rest[..take])));
            rest = &rest[take..];
        }
        streams.push(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&schema),
            futures::stream::iter(batches),
        )) as SendableRecordBatchStream);
    }
    expected.sort_by(&order);
    let pool: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(64 << 20));
    let reservation = MemoryConsumer::new("test merge").register(&pool);
    let metrics = ExecutionPlanMetricsSet::new();
    let keys = Arc::new(SortKeys::new(&ordering, &schema).expect("keys"));
    let out: Vec<RecordBatch> = merged(
        streams,
        keys,
        width,
        Arc::clone(&schema),
        37,
        Some(reservation),
        BaselineMetrics::new(&metrics, 0),
    )
    .try_collect()
    .await
    .expect("merged");
    for b in &out {
        assert_eq!(b.schema(), schema, "the types of the input");
        assert!(b.num_rows() <= 37);
    }
    let got: Vec<Row> = out.iter().flat_map(rows_of).collect();
    assert_eq!(got.len(), expected.len(), "every row once");
    assert_eq!(got, expected);
    assert_eq!(pool.reserved(), 0, "the merge gives its memory back");
}

#[tokio::test]
async fn merges_integer_keys_down_with_nulls_first() {
    let o = SortOptions {
        descending: true,
        nulls_first: true,
    };
    for seed in 0..5 {
        check_merge(seed, &[300, 0, 1, 517, 64, 250], &[("k", 0, o)], |a, b| {
            compare(&a.k, &b.k, o)
        })
        .await;
    }
}

#[tokio::test]
async fn merges_two_keys_one_of_them_fixed_binary() {
    let tag = SortOptions {
        descending: true,
        nulls_first: false,
    };
    // 5 + 4 bytes of row format: the 32-bit key, then the 3-byte tag.
    for seed in 10..15 {
        check_merge(
            seed,
            &[120, 333, 90],
            &[("g", 1, asc()), ("tag", 2, tag)],
            |a, b| compare(&a.g, &b.g, asc()).then_with(|| compare(&a.tag, &b.tag, tag)),
        )
        .await;
    }
}

#[tokio::test]
async fn one_run_comes_out_as_it_went_in() {
    check_merge(21, &[400], &[("k", 0, asc())], |a, b| {
        compare(&a.k, &b.k, asc())
    })
    .await;
}

#[tokio::test]
async fn runs_of_no_rows_merge_to_nothing() {
    check_merge(22, &[0, 0, 0], &[("k", 0, asc())], |a, b| {
        compare(&a.k, &b.k, asc())
    })
    .await;
}
