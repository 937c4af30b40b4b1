use datafusion::arrow::array::RecordBatch;
use datafusion::physical_expr::PhysicalExpr;
use kask_relational::key_filter::*;
use std::sync::Arc;

#[test]
fn a_bloom_filter_holds_every_key_added_and_few_others() {
    let mut bloom = KeyBloom::with_capacity(100_000);
    let added: Vec<u64> = (0..100_000u64)
        .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .collect();
    for &h in &added {
        bloom.insert(h);
    }
    assert!(added.iter().all(|&h| bloom.may_contain(h)));
    let others = (1_000_000..1_100_000u64)
        .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .filter(|&h| bloom.may_contain(h))
        .count();
    assert!(others < 3_000, "{others} false positives in 100000");
}

#[test]
fn a_task_with_too_many_keys_records_none() {
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::physical_expr::expressions::Column;

    let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, true)]));
    let keys: Vec<Arc<dyn PhysicalExpr>> = vec![Arc::new(Column::new("k", 0))];
    let batch = |from: i64, n: i64| {
        RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(Int64Array::from_iter_values(from..from + n))],
        )
        .expect("a batch")
    };
    let mut few = KeyHashes::new(keys.clone(), 2000);
    few.push(&batch(0, 1000)).expect("hashed");
    few.push(&batch(500, 1000)).expect("hashed");
    let (bytes, n) = few.finish().expect("recorded");
    assert_eq!((n, bytes.len()), (1500, 1500 * 8));

    let mut many = KeyHashes::new(keys, 2000);
    for i in 0..5 {
        many.push(&batch(i * 1000, 1000)).expect("hashed");
    }
    assert!(many.finish().is_none());
    assert_eq!(task_keys(None), MAX_TASK_KEYS);
    assert_eq!(task_keys(Some(64 << 20)), 1 << 18);
    assert_eq!(task_keys(Some(1 << 40)), MAX_TASK_KEYS);
}
