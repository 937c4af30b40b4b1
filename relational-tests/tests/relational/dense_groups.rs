use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int32Array, Int64Array, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Int64Type, Schema, SchemaRef};
use datafusion::logical_expr::EmitTo;

use kask_relational::dense_groups::{MOST_SPAN, group_values};

fn schema_of(data_type: DataType) -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("k", data_type, true)]))
}

/// Group numbers by first appearance, as `GroupValues` must give them.
#[derive(Default)]
struct Reference<K> {
    groups: HashMap<Option<K>, usize>,
    keys: Vec<Option<K>>,
}

impl<K: std::hash::Hash + Eq + Copy> Reference<K> {
    fn intern(&mut self, keys: &[Option<K>]) -> Vec<usize> {
        keys.iter()
            .map(|k| {
                *self.groups.entry(*k).or_insert_with(|| {
                    self.keys.push(*k);
                    self.keys.len() - 1
                })
            })
            .collect()
    }
}

/// Keys of batch `b`: within `span` of `base`, a null in every 29th row.
fn keys(b: u64, rows: u64, base: i64, span: u64) -> Vec<Option<i64>> {
    (0..rows)
        .map(|i| {
            let n = b * rows + i;
            (n % 29 != 7).then(|| base + ((n.wrapping_mul(2_654_435_761) >> 3) % span) as i64)
        })
        .collect()
}

fn emitted_i64(array: &ArrayRef) -> Vec<Option<i64>> {
    assert_eq!(array.data_type(), &DataType::Int64);
    let a = array.as_primitive::<Int64Type>();
    (0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i)))
        .collect()
}

#[test]
fn narrow_keys_are_numbered_by_first_appearance_with_nulls() {
    let mut values = group_values(&schema_of(DataType::Int64)).expect("group values");
    let mut want = Reference::default();
    let mut groups = Vec::new();
    for b in 0..6 {
        let k = keys(b, 5_000, -1_000, 3_000);
        values
            .intern(&[Arc::new(Int64Array::from(k.clone()))], &mut groups)
            .expect("interned");
        assert_eq!(groups, want.intern(&k), "batch {b}");
    }
    assert_eq!(values.len(), want.keys.len());
    let out = values.emit(EmitTo::All).expect("emitted");
    assert_eq!(emitted_i64(&out[0]), want.keys);
    assert!(values.is_empty());
}

#[test]
fn keys_that_spread_past_the_span_keep_their_numbers() {
    let mut values = group_values(&schema_of(DataType::Int64)).expect("group values");
    let mut want = Reference::default();
    let mut groups = Vec::new();
    // Narrow at first, then a batch reaching far above and one far below.
    let batches = [
        keys(0, 4_000, 10, 500),
        keys(1, 4_000, 10, 500),
        keys(2, 4_000, 10 + MOST_SPAN as i64, 500),
        keys(3, 4_000, i64::MIN, 500),
        keys(4, 4_000, 10, 500),
    ];
    for (b, k) in batches.iter().enumerate() {
        values
            .intern(&[Arc::new(Int64Array::from(k.clone()))], &mut groups)
            .expect("interned");
        assert_eq!(groups, want.intern(k), "batch {b}");
    }
    assert!(values.size() > 0);
    let out = values.emit(EmitTo::All).expect("emitted");
    assert_eq!(emitted_i64(&out[0]), want.keys);
}

#[test]
fn emitting_the_first_groups_numbers_the_rest_from_zero() {
    let mut values = group_values(&schema_of(DataType::Int32)).expect("group values");
    let k: Vec<Option<i32>> = vec![Some(5), None, Some(9), Some(5), Some(7), Some(12)];
    let mut groups = Vec::new();
    values
        .intern(&[Arc::new(Int32Array::from(k))], &mut groups)
        .expect("interned");
    assert_eq!(groups, [0, 1, 2, 0, 3, 4]);
    let first = values.emit(EmitTo::First(2)).expect("emitted");
    let a = first[0].as_primitive::<Int32Type>();
    assert_eq!(a.len(), 2);
    assert_eq!((a.value(0), a.is_null(1)), (5, true));
    // 9, 7 and 12 are groups 0, 1 and 2 now; 5 and null start new ones.
    values
        .intern(
            &[Arc::new(Int32Array::from(vec![
                Some(12),
                Some(5),
                Some(9),
                None,
                Some(7),
            ]))],
            &mut groups,
        )
        .expect("interned");
    assert_eq!(groups, [2, 3, 0, 4, 1]);
    let rest = values.emit(EmitTo::All).expect("emitted");
    let a = rest[0].as_primitive::<Int32Type>();
    let got: Vec<Option<i32>> = (0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i)))
        .collect();
    assert_eq!(got, [Some(9), Some(7), Some(12), Some(5), None]);
}

#[test]
fn unsigned_keys_above_the_signed_range_are_numbered() {
    let mut values = group_values(&schema_of(DataType::UInt64)).expect("group values");
    let top = u64::MAX - 10;
    let k: Vec<Option<u64>> = (0..100).map(|i| Some(top + (i * 7) % 11)).collect();
    let mut want = Reference::default();
    let mut groups = Vec::new();
    values
        .intern(&[Arc::new(UInt64Array::from(k.clone()))], &mut groups)
        .expect("interned");
    assert_eq!(groups, want.intern(&k));
    let out = values.emit(EmitTo::All).expect("emitted");
    assert_eq!(out[0].data_type(), &DataType::UInt64);
    let a = out[0].as_primitive::<datafusion::arrow::datatypes::UInt64Type>();
    let got: Vec<Option<u64>> = (0..a.len()).map(|i| Some(a.value(i))).collect();
    assert_eq!(got, want.keys);
}
