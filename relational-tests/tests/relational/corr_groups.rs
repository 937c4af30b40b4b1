use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array};
use datafusion::arrow::datatypes::{Float64Type, UInt64Type};
use datafusion::functions_aggregate::correlation::CorrelationGroupsAccumulator;
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};

use kask_relational::corr_groups::CorrGroups;

/// A batch of `rows` rows over `groups` groups: x and y with a null in every 17th and 23rd
/// row, a filter false in every 7th row and null in every 31st, and values from a hash of the
/// row so that each group's pairs are correlated but not exactly.
struct Batch {
    x: ArrayRef,
    y: ArrayRef,
    filter: BooleanArray,
    groups: Vec<usize>,
}

fn batch(seed: u64, rows: usize, groups: usize) -> Batch {
    let value = |i: u64| ((i.wrapping_mul(6_364_136_223_846_793_005) >> 33) % 1000) as f64 / 10.0;
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    let mut filter = Vec::new();
    let mut group = Vec::new();
    for r in 0..rows as u64 {
        let i = seed * 1_000_003 + r;
        let x = value(i);
        xs.push((i % 17 != 3).then_some(x));
        ys.push((i % 23 != 5).then_some(0.5 * x + value(i ^ 0xdead)));
        filter.push((i % 31 != 2).then_some(i % 7 != 1));
        group.push((value(i ^ 0xbeef) as usize) % groups);
    }
    Batch {
        x: Arc::new(Float64Array::from(xs)),
        y: Arc::new(Float64Array::from(ys)),
        filter: BooleanArray::from(filter),
        groups: group,
    }
}

fn feed(acc: &mut dyn GroupsAccumulator, batches: &[Batch], groups: usize, filtered: bool) {
    for b in batches {
        let filter = filtered.then_some(&b.filter);
        acc.update_batch(
            &[Arc::clone(&b.x), Arc::clone(&b.y)],
            &b.groups,
            filter,
            groups,
        )
        .expect("update");
    }
}

fn assert_same_states(ours: &[ArrayRef], theirs: &[ArrayRef]) {
    assert_eq!(ours.len(), 6);
    assert_eq!(theirs.len(), 6);
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        assert_eq!(a.data_type(), b.data_type(), "state column {i}");
        assert_eq!(a.len(), b.len(), "state column {i}");
        assert_eq!(a.null_count(), 0, "state column {i}");
        if i == 0 {
            assert_eq!(
                a.as_primitive::<UInt64Type>().values(),
                b.as_primitive::<UInt64Type>().values()
            );
        } else {
            // Bit for bit: the same sums added in the same order.
            let bits = |x: &ArrayRef| -> Vec<u64> {
                x.as_primitive::<Float64Type>()
                    .values()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect()
            };
            assert_eq!(bits(a), bits(b), "state column {i}");
        }
    }
}

#[test]
fn states_are_datafusions_bit_for_bit_with_nulls_and_filters() {
    let groups = 40;
    let batches: Vec<Batch> = (0..5).map(|s| batch(s, 997, groups)).collect();
    for filtered in [false, true] {
        let mut ours = CorrGroups::default();
        let mut theirs = CorrelationGroupsAccumulator::new();
        feed(&mut ours, &batches, groups, filtered);
        feed(&mut theirs, &batches, groups, filtered);
        // The first ten groups, then the rest, as a partial aggregation emits under pressure.
        let first = ours.state(EmitTo::First(10)).expect("state");
        assert_same_states(&first, &theirs.state(EmitTo::First(10)).expect("state"));
        assert_eq!(first[0].len(), 10);
        assert_same_states(
            &ours.state(EmitTo::All).expect("state"),
            &theirs.state(EmitTo::All).expect("state"),
        );
    }
}

#[test]
fn states_of_single_rows_are_datafusions() {
    let b = batch(9, 500, 1);
    let values = [Arc::clone(&b.x), Arc::clone(&b.y)];
    let ours = CorrGroups::default();
    let theirs = CorrelationGroupsAccumulator::new();
    for filter in [None, Some(&b.filter)] {
        assert_same_states(
            &ours.convert_to_state(&values, filter).expect("states"),
            &theirs.convert_to_state(&values, filter).expect("states"),
        );
    }
}

/// Pearson's r of the pairs, computed in two passes over them.
fn plain_r(pairs: &[(f64, f64)]) -> Option<f64> {
    if pairs.len() < 2 {
        return None;
    }
    let n = pairs.len() as f64;
    let mx = pairs.iter().map(|p| p.0).sum::<f64>() / n;
    let my = pairs.iter().map(|p| p.1).sum::<f64>() / n;
    let cov: f64 = pairs.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sx: f64 = pairs.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sy: f64 = pairs.iter().map(|p| (p.1 - my).powi(2)).sum();
    (sx > 0.0 && sy > 0.0).then(|| cov / (sx * sy).sqrt())
}

#[test]
fn merged_states_give_pearsons_r_of_each_groups_counted_pairs() {
    // 60 groups, the last few with one pair or none, over batches split among three partial
    // accumulators whose states one final accumulator merges.
    let groups = 60;
    let mut batches: Vec<Batch> = (0..6).map(|s| batch(s, 700, 55)).collect();
    batches.push(Batch {
        x: Arc::new(Float64Array::from(vec![Some(1.0), Some(2.0), None])),
        y: Arc::new(Float64Array::from(vec![Some(3.0), Some(4.0), Some(5.0)])),
        filter: BooleanArray::from(vec![true, true, true]),
        groups: vec![57, 58, 59],
    });
    let mut merged = CorrGroups::default();
    for part in batches.chunks(3) {
        let mut partial = CorrGroups::default();
        feed(&mut partial, part, groups, true);
        let states = partial.state(EmitTo::All).expect("state");
        let indices: Vec<usize> = (0..states[0].len()).collect();
        merged
            .merge_batch(&states, &indices, groups)
            .expect("merge");
    }
    let r = merged.evaluate(EmitTo::All).expect("evaluate");
    let r = r.as_primitive::<Float64Type>();
    assert_eq!(r.len(), groups);
    for g in 0..groups {
        let mut pairs = Vec::new();
        for b in &batches {
            let (x, y) = (
                b.x.as_primitive::<Float64Type>(),
                b.y.as_primitive::<Float64Type>(),
            );
            for (row, &bg) in b.groups.iter().enumerate() {
                let counted = x.is_valid(row)
                    && y.is_valid(row)
                    && b.filter.is_valid(row)
                    && b.filter.value(row);
                if bg == g && counted {
                    pairs.push((x.value(row), y.value(row)));
                }
            }
        }
        match plain_r(&pairs) {
            None => assert!(
                r.is_null(g),
                "group {g}: {} pairs, r {:?}",
                pairs.len(),
                r.value(g)
            ),
            Some(want) => {
                assert!(
                    r.is_valid(g),
                    "group {g} has {} pairs but no r",
                    pairs.len()
                );
                let got = r.value(g);
                assert!((got - want).abs() < 1e-9, "group {g}: r {got}, want {want}");
            }
        }
    }
    // The groups of one pair or none have none; the correlated ones have a positive r.
    assert!(r.is_null(57) && r.is_null(58) && r.is_null(59) && r.is_null(56));
    assert!((0..55).all(|g| r.value(g) > 0.0));
}

#[test]
fn wrong_arguments_are_an_error_not_a_panic() {
    let mut acc = CorrGroups::default();
    let x: ArrayRef = Arc::new(Float64Array::from(vec![1.0, 2.0]));
    let err = acc
        .update_batch(std::slice::from_ref(&x), &[0, 0], None, 1)
        .expect_err("one argument");
    assert!(err.to_string().contains("1 arguments, not 2"), "{err}");
    let short: ArrayRef = Arc::new(Float64Array::from(vec![1.0]));
    assert!(acc.update_batch(&[x, short], &[0, 0], None, 1).is_err());
}
