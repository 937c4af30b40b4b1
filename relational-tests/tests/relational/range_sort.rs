use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, StringArray};
use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::physical_expr::PhysicalSortExpr;
use datafusion::physical_expr::expressions::Column;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::Schema;
use datafusion::physical_expr::LexOrdering;
use kask_core::marker::{KeySample, PartRange, TaskFile, TaskMarker};
use kask_relational::range_sort::*;
use std::cmp::Ordering;

fn sample(key: u8, rows: u64) -> (Vec<u8>, u64) {
    (vec![key], rows)
}

#[test]
fn cuts_split_rows_evenly_at_sampled_keys() {
    // Two runs sampled every 10 rows over keys 0..80, interleaved.
    let samples: Vec<_> = (0..8u8).map(|i| sample(i * 10, 10)).collect();
    assert_eq!(cut_points(&samples, 1), Some(vec![]));
    assert_eq!(cut_points(&samples, 2), Some(vec![vec![40]]));
    assert_eq!(
        cut_points(&samples, 4),
        Some(vec![vec![20], vec![40], vec![60]])
    );
    // More ranges than samples: some ranges are empty, never any row in two.
    let cuts = cut_points(&samples, 16).expect("rows");
    assert_eq!(cuts.len(), 15);
    assert!(cuts.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(cut_points(&[], 4), None);
    assert_eq!(cut_points(&[sample(1, 0)], 4), None);
}

#[test]
fn one_heavy_key_takes_the_ranges_that_fall_in_it() {
    let samples = vec![sample(1, 1), sample(5, 98), sample(9, 1)];
    // Rows 25, 50 and 75 all fall in the rows sampled at 5.
    assert_eq!(
        cut_points(&samples, 4),
        Some(vec![vec![5], vec![5], vec![5]])
    );
}

fn marker(runs: &[(u64, &[(u64, u8)])]) -> TaskMarker {
    TaskMarker {
        files: runs
            .iter()
            .map(|(rows, samples)| TaskFile {
                path: "run".into(),
                rows: *rows,
                bytes: 0,
                crc32c: None,
                partitions: vec![],
                window: 0,
                samples: samples
                    .iter()
                    .map(|(row, key)| KeySample {
                        row: *row,
                        key: to_hex(&[*key]),
                    })
                    .collect(),
            })
            .collect(),
        ..TaskMarker::default()
    }
}

#[test]
fn each_sample_stands_for_the_rows_up_to_the_next() {
    let maps = vec![
        marker(&[(1000, &[(0, 3), (256, 7), (512, 9)])]),
        marker(&[(10, &[(0, 1)])]),
    ];
    assert_eq!(
        weighted_samples(&maps).expect("samples"),
        vec![
            sample(3, 256),
            sample(7, 256),
            sample(9, 488),
            sample(1, 10)
        ]
    );
    let many: Vec<KeySample> = (0..2500u64)
        .map(|i| KeySample {
            row: i * SAMPLE_EVERY,
            key: String::new(),
        })
        .collect();
    let kept = spread(many, MAX_SAMPLES);
    assert!(kept.len() <= MAX_SAMPLES && kept.len() > MAX_SAMPLES / 2);
    assert_eq!(kept[0].row, 0, "the run's first row is always a sample");
}

fn keys_of(options: SortOptions) -> (SortKeys, Arc<Schema>) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, true),
        Field::new("s", DataType::Utf8, true),
    ]));
    let ordering = LexOrdering::new(vec![
        PhysicalSortExpr::new(Arc::new(Column::new("k", 0)), options),
        PhysicalSortExpr::new_default(Arc::new(Column::new("s", 1))),
    ])
    .expect("an order");
    (SortKeys::new(&ordering, &schema).expect("keys"), schema)
}

#[test]
fn encoded_keys_compare_as_the_rows_sort() {
    for descending in [false, true] {
        for nulls_first in [false, true] {
            let (keys, schema) = keys_of(SortOptions {
                descending,
                nulls_first,
            });
            let k = vec![Some(3), None, Some(-7), Some(3), Some(120)];
            let s = vec![Some("b"), Some("a"), None, Some("a"), Some("")];
            let batch = RecordBatch::try_new(
                schema,
                vec![
                    Arc::new(Int64Array::from(k.clone())),
                    Arc::new(StringArray::from(s.clone())),
                ],
            )
            .expect("batch");
            let rows = keys.rows(&batch).expect("rows");
            let mut by_bytes: Vec<usize> = (0..5).collect();
            by_bytes.sort_by(|&a, &b| rows.row(a).as_ref().cmp(rows.row(b).as_ref()));
            // The same order worked out by hand: nulls at their end, then k, then s.
            let mut by_hand: Vec<usize> = (0..5).collect();
            by_hand.sort_by(|&a, &b| {
                let ka = match (k[a], k[b]) {
                    (None, None) => Ordering::Equal,
                    (None, _) => {
                        if nulls_first {
                            Ordering::Less
                        } else {
                            Ordering::Greater
                        }
                    }
                    (_, None) => {
                        if nulls_first {
                            Ordering::Greater
                        } else {
                            Ordering::Less
                        }
                    }
                    (Some(x), Some(y)) => {
                        if descending {
                            y.cmp(&x)
                        } else {
                            x.cmp(&y)
                        }
                    }
                };
                // s ascending, nulls last.
                ka.then_with(|| match (s[a], s[b]) {
                    (None, None) => Ordering::Equal,
                    (None, _) => Ordering::Greater,
                    (_, None) => Ordering::Less,
                    (Some(x), Some(y)) => x.cmp(y),
                })
            });
            assert_eq!(
                by_bytes, by_hand,
                "descending {descending}, nulls first {nulls_first}"
            );
        }
    }
}

#[test]
fn a_sorted_batch_is_cut_to_its_range() {
    let (keys, schema) = keys_of(SortOptions::default());
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 2, 3, 5, 8])),
            Arc::new(StringArray::from(vec!["x"; 6])),
        ],
    )
    .expect("batch");
    let key = |k: i64| {
        let b = RecordBatch::try_new(
            batch.schema(),
            vec![
                Arc::new(Int64Array::from(vec![k])),
                Arc::new(StringArray::from(vec!["x"])),
            ],
        )
        .expect("batch");
        keys.key(&b, 0).expect("key")
    };
    let ks = |b: RecordBatch| -> Vec<i64> {
        b.column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("ints")
            .values()
            .to_vec()
    };
    let (two, five) = (key(2), key(5));
    let cut = |lo: Option<&[u8]>, hi: Option<&[u8]>| {
        ks(keep_range(&keys, batch.clone(), lo, hi).expect("cut"))
    };
    assert_eq!(cut(Some(&two), Some(&five)), vec![2, 2, 3]);
    assert_eq!(cut(None, Some(&two)), vec![1]);
    assert_eq!(cut(Some(&five), None), vec![5, 8]);
    assert_eq!(cut(Some(&five), Some(&two)), Vec::<i64>::new());
    assert_eq!(cut(None, None), vec![1, 2, 2, 3, 5, 8]);
}

#[test]
fn keys_survive_hex() {
    let bytes: Vec<u8> = (0..=255).collect();
    assert_eq!(from_hex(&to_hex(&bytes)), Ok(bytes));
    assert!(from_hex("abc").is_err());
    assert!(from_hex("zz").is_err());
}

#[test]
fn a_small_result_is_one_range_and_a_large_one_every_task() {
    assert_eq!(ranges_for(5, 1_000, 4), 1);
    assert_eq!(ranges_for(0, 1_000, 4), 1);
    assert_eq!(ranges_for(2_500, 1_000, 4), 3);
    assert_eq!(ranges_for(1_000_000, 1_000, 4), 4);
    assert_eq!(ranges_for(10, 0, 4), 4);
}

#[test]
fn a_chunk_held_counts_its_decoded_bytes_not_its_compressed_ones() {
    let range = |len, decoded| PartRange {
        len,
        decoded,
        rows: 1,
        ..PartRange::default()
    };
    // Not windowed: all of it, decoded.
    assert_eq!(held_of(&range(1_000, 4_000), 0), 4_000);
    // Two windows of 100 compressed bytes out of 1,000: a fifth of the decoded bytes.
    assert_eq!(held_of(&range(1_000, 4_000), 100), 800);
    // Shorter than two windows: whole.
    assert_eq!(held_of(&range(150, 600), 100), 600);
    // A marker from before sizes were recorded: its ranges were not compressed.
    assert_eq!(held_of(&range(1_000, 0), 100), 200);
}
