//! Property tests against reference implementations written here, independently of the crate.

use crate::common::inputs;
use kask_array_expr::DType::F64;
use kask_array_expr::{AxisIndex, Kind, check};
use proptest::prelude::*;

/// NumPy's broadcast rule, written as the docs state it: pad with leading 1s, then on every axis
/// all lengths other than 1 must agree, and the result is that length (or 1).
fn reference_broadcast(a: &[u64], b: &[u64]) -> Option<Vec<u64>> {
    let n = a.len().max(b.len());
    let pad = |s: &[u64]| {
        let mut v = vec![1; n - s.len()];
        v.extend_from_slice(s);
        v
    };
    let (a, b) = (pad(a), pad(b));
    a.iter()
        .zip(&b)
        .map(|(&x, &y)| {
            let not_one: Vec<u64> = [x, y].into_iter().filter(|&d| d != 1).collect();
            match not_one.as_slice() {
                [] => Some(1),
                [d] => Some(*d),
                [d, e] if d == e => Some(*d),
                _ => None,
            }
        })
        .collect()
}

/// Python's `list(range(len)[start:stop:step])` for a positive step, by testing every index.
fn python_slice(len: i64, start: Option<i64>, stop: Option<i64>, step: i64) -> Vec<i64> {
    let resolve = |v: i64| if v < 0 { v + len } else { v };
    let first = start.map_or(0, resolve).max(0);
    let end = stop.map_or(len, resolve);
    (0..len)
        .filter(|&i| i >= first && i < end && (i - first) % step == 0)
        .collect()
}

fn part(v: Option<i64>) -> String {
    v.map_or(String::new(), |v| v.to_string())
}

prop_compose! {
    /// Two shapes that broadcast: suffixes of one base shape with some lengths replaced by 1.
    fn compatible_pair()(base in prop::collection::vec(0u64..6, 0..5))(
        cut_a in 0..=base.len(),
        cut_b in 0..=base.len(),
        ones_a in prop::collection::vec(any::<bool>(), base.len()),
        ones_b in prop::collection::vec(any::<bool>(), base.len()),
        base in Just(base),
    ) -> (Vec<u64>, Vec<u64>) {
        let make = |cut: usize, ones: &[bool]| -> Vec<u64> {
            base.iter()
                .zip(ones)
                .skip(cut)
                .map(|(&d, &one)| if one { 1 } else { d })
                .collect()
        };
        (make(cut_a, &ones_a), make(cut_b, &ones_b))
    }
}

proptest! {
    #[test]
    fn compatible_shapes_always_check((a, b) in compatible_pair()) {
        let ins = inputs(&[("a", &a, F64), ("b", &b, F64)]);
        let want = reference_broadcast(&a, &b).expect("the strategy only makes compatible pairs");
        let e = check("a + b", &ins).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(e.shape, want);
    }

    #[test]
    fn random_shapes_check_exactly_when_the_reference_broadcasts(
        a in prop::collection::vec(0u64..4, 0..4),
        b in prop::collection::vec(0u64..4, 0..4),
    ) {
        let ins = inputs(&[("a", &a, F64), ("b", &b, F64)]);
        match (reference_broadcast(&a, &b), check("a * b", &ins)) {
            (Some(want), Ok(e)) => prop_assert_eq!(e.shape, want),
            (None, Err(e)) => prop_assert!(e.message.starts_with("cannot broadcast a (shape")),
            (want, got) => prop_assert!(false, "reference {:?} but checker {:?}", want, got),
        }
    }

    #[test]
    fn slices_match_python(
        len in 0i64..30,
        start in prop::option::of(-40i64..40),
        stop in prop::option::of(-40i64..40),
        step in prop::option::of(1i64..7),
    ) {
        let dims = [u64::try_from(len).expect("len is non-negative")];
        let ins = inputs(&[("a", &dims, F64)]);
        let src = match step {
            Some(step) => format!("a[{}:{}:{step}]", part(start), part(stop)),
            None => format!("a[{}:{}]", part(start), part(stop)),
        };
        let e = check(&src, &ins).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let want = python_slice(len, start, stop, step.unwrap_or(1));
        let Kind::Slice(_, entries) = &e.kind else {
            return Err(TestCaseError::fail(format!("{src} is not a slice: {e}")));
        };
        let [AxisIndex::Range { start: lo, stop: hi, step: by }] = entries.as_slice() else {
            return Err(TestCaseError::fail(format!("{src} gave {entries:?}")));
        };
        prop_assert!(lo <= hi && *hi <= dims[0] && *by >= 1, "{} gave {:?}", src, entries);
        let got: Vec<i64> = (*lo..*hi)
            .step_by(usize::try_from(*by).expect("small step"))
            .map(|i| i64::try_from(i).expect("small index"))
            .collect();
        prop_assert_eq!(&got, &want, "{}", src);
        prop_assert_eq!(e.shape, vec![u64::try_from(want.len()).expect("small length")]);
    }

    #[test]
    fn integer_indices_match_python(len in 0i64..20, i in -25i64..25, rest in 1u64..4) {
        let dims = [u64::try_from(len).expect("len is non-negative"), rest];
        let ins = inputs(&[("a", &dims, F64)]);
        let src = format!("a[{i}]");
        let in_range = -len <= i && i < len;
        match check(&src, &ins) {
            Ok(e) => {
                prop_assert!(in_range, "{} should be out of range", src);
                let want = u64::try_from(if i < 0 { i + len } else { i }).expect("in range");
                let Kind::Slice(_, entries) = &e.kind else {
                    return Err(TestCaseError::fail(format!("{src} is not a slice: {e}")));
                };
                prop_assert_eq!(entries.first(), Some(&AxisIndex::Index(want)));
                prop_assert_eq!(e.shape, vec![rest]);
            }
            Err(e) => {
                prop_assert!(!in_range, "{} should check: {}", src, e);
                let msg = format!("index {i} is out of bounds for axis 0 of a, which has length {len}");
                prop_assert_eq!(e.message, msg);
            }
        }
    }
}
