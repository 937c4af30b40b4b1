//! Output shapes: broadcasting, reductions, matmul, transpose and subscripts.

use crate::common::{Inputs, fail, inputs, ok};
use kask_array_expr::AxisIndex::{Index, Range};
use kask_array_expr::DType::{Bool, F32, F64, I32};
use kask_array_expr::{AxisIndex, Kind};

fn ins() -> Inputs {
    inputs(&[
        ("a", &[2, 3, 4], F64),
        ("m23", &[2, 3], F64),
        ("m34", &[3, 4], F64),
        ("m43", &[4, 3], F64),
        ("c31", &[3, 1], F64),
        ("r4", &[4], F64),
        ("v3", &[3], F64),
        ("v4", &[4], F64),
        ("v5", &[5], F64),
        ("ai", &[3, 4], I32),
        ("ab", &[3, 4], Bool),
        ("af", &[3, 4], F32),
        ("e0", &[0, 3], F64),
        ("z1", &[0], F64),
        ("s", &[], F64),
        ("big", &[1000, 50], F32),
    ])
}

fn shape(src: &str) -> Vec<u64> {
    ok(src, &ins()).shape
}

#[test]
fn broadcasting_valid() {
    let cases: [(&str, &[u64]); 10] = [
        ("m34 + r4", &[3, 4]),
        ("r4 + m34", &[3, 4]),
        ("c31 * r4", &[3, 4]),
        ("a + m34", &[2, 3, 4]),
        ("a - c31", &[2, 3, 4]),
        ("s + a", &[2, 3, 4]),
        ("a + 1", &[2, 3, 4]),
        ("z1 + 1", &[0]),
        ("where(ab, c31, r4)", &[3, 4]),
        ("where(s > 0, v3, 0)", &[3]),
    ];
    for (src, want) in cases {
        assert_eq!(shape(src), want, "{src}");
    }
}

#[test]
fn broadcasting_invalid_names_both_operands() {
    let e = fail("m34 + v5", &ins());
    assert_eq!(
        e.message,
        "cannot broadcast m34 (shape (3, 4)) with v5 (shape (5,)) in \"m34 + v5\""
    );
    assert_eq!(e.span, (0, 8));
    let e = fail("(m23 * 2) < m34", &ins());
    assert_eq!(
        e.message,
        "cannot broadcast (m23 * 2) (shape (2, 3)) with m34 (shape (3, 4)) in \"(m23 * 2) < m34\""
    );
    let e = fail("where(ab, m34, v3)", &ins());
    assert_eq!(
        e.message,
        "cannot broadcast ab (shape (3, 4)) with v3 (shape (3,)) in \"where(ab, m34, v3)\""
    );
    assert!(
        fail("z1 + v3", &ins())
            .message
            .starts_with("cannot broadcast z1 (shape (0,))")
    );
}

#[test]
fn reductions_shapes_and_axes() {
    let cases: [(&str, &[u64], &[usize]); 16] = [
        ("a.sum()", &[], &[0, 1, 2]),
        ("a.sum(axis=None)", &[], &[0, 1, 2]),
        ("a.sum(axis=0)", &[3, 4], &[0]),
        ("a.sum(0)", &[3, 4], &[0]),
        ("np.sum(a, 1)", &[2, 4], &[1]),
        ("a.sum(axis=-1)", &[2, 3], &[2]),
        ("np.max(a, axis=-3)", &[3, 4], &[0]),
        ("a.sum(axis=(0, 2))", &[3], &[0, 2]),
        ("a.sum(axis=(2, 0))", &[3], &[0, 2]),
        ("a.mean(axis=(-1,))", &[2, 3], &[2]),
        ("a.sum(axis=1, keepdims=True)", &[2, 1, 4], &[1]),
        ("a.prod(keepdims=True)", &[1, 1, 1], &[0, 1, 2]),
        ("a.min(axis=(0, -1), keepdims=False)", &[3], &[0, 2]),
        ("a.sum(axis=())", &[2, 3, 4], &[]),
        ("np.var(a, 0)", &[3, 4], &[0]),
        ("af.std(axis=0, ddof=1, keepdims=True)", &[1, 4], &[0]),
    ];
    for (src, want_shape, want_axes) in cases {
        let e = ok(src, &ins());
        assert_eq!(e.shape, want_shape, "{src}");
        let Kind::Reduce { axes, .. } = &e.kind else {
            panic!("{src} should be a reduction, got {e}");
        };
        assert_eq!(axes, want_axes, "{src}");
    }
}

#[test]
fn every_reduction_keeps_dims_as_given() {
    for op in ["sum", "mean", "min", "max", "prod", "var", "std"] {
        for (keep, want) in [("True", vec![3, 1]), ("False", vec![3])] {
            let src = format!("np.{op}(m34, axis=1, keepdims={keep})");
            let e = ok(&src, &ins());
            assert_eq!(e.shape, want, "{src}");
            let Kind::Reduce { keepdims, ddof, .. } = e.kind else {
                panic!("{src} should be a reduction");
            };
            assert_eq!((keepdims, ddof), (keep == "True", 0), "{src}");
        }
    }
}

#[test]
fn reductions_over_empty_axes() {
    assert_eq!(shape("e0.sum(axis=0)"), [3]);
    assert_eq!(shape("e0.mean()"), [] as [u64; 0]);
    assert_eq!(shape("e0.prod(axis=0)"), [3]);
    // Only the reduced axis matters: axis 1 has length 3.
    assert_eq!(shape("e0.max(axis=1)"), [0]);
    let e = fail("e0.max(axis=0)", &ins());
    assert_eq!(
        e.message,
        "zero-size array to reduction operation max which has no identity: axis 0 of e0 has length 0"
    );
    assert!(
        fail("np.amin(e0)", &ins())
            .message
            .contains("operation min")
    );
    assert_eq!(shape("s.sum()"), [] as [u64; 0]);
    assert_eq!(
        fail("s.sum(axis=0)", &ins()).message,
        "axis 0 is out of bounds for array of dimension 0 (s has shape ())"
    );
}

#[test]
fn matmul_shapes() {
    let cases: [(&str, &[u64]); 8] = [
        ("m23 @ m34", &[2, 4]),
        ("m23 @ v3", &[2]),
        ("v3 @ m34", &[4]),
        ("v3 @ v3", &[]),
        ("np.matmul(m23, m34)", &[2, 4]),
        ("np.dot(v3, v3)", &[]),
        ("m23.dot(m34)", &[2, 4]),
        ("m23.T @ m23", &[3, 3]),
    ];
    for (src, want) in cases {
        assert_eq!(shape(src), want, "{src}");
        assert!(matches!(ok(src, &ins()).kind, Kind::MatMul(..)), "{src}");
    }
}

#[test]
fn matmul_errors() {
    let e = fail("m23 @ m43", &ins());
    assert_eq!(
        e.message,
        "cannot matmul m23 (shape (2, 3)) with m43 (shape (4, 3)) in \"m23 @ m43\": \
         the last axis of m23 has length 3 but the first axis of m43 has length 4"
    );
    let e = fail("v4 @ m34", &ins());
    assert!(
        e.message
            .starts_with("cannot matmul v4 (shape (4,)) with m34 (shape (3, 4))")
    );
    let e = fail("m23 @ 2", &ins());
    assert_eq!(
        e.message,
        "matmul needs arrays, not scalars: 2 is a Python int; use * to scale"
    );
    assert_eq!(e.span, (6, 7));
    let e = fail("np.matmul(s, v3)", &ins());
    assert_eq!(
        e.message,
        "matmul needs arrays, not scalars: s is 0-dimensional; use * to scale"
    );
    let e = fail("a @ m34", &ins());
    assert_eq!(
        e.message,
        "matmul of arrays with more than 2 dimensions is not supported: a has shape (2, 3, 4)"
    );
    assert_eq!(e.span, (0, 1));
}

#[test]
fn transpose_reverses_axes() {
    assert_eq!(shape("m23.T"), [3, 2]);
    assert_eq!(shape("a.T"), [4, 3, 2]);
    assert_eq!(shape("np.transpose(a)"), [4, 3, 2]);
    assert_eq!(shape("a.transpose()"), [4, 3, 2]);
    assert_eq!(shape("v3.T"), [3]);
    assert_eq!(shape("s.T"), [] as [u64; 0]);
    assert_eq!(shape("m23.T.T"), [2, 3]);
    assert_eq!(ok("m23.T", &ins()).to_string(), "(T m23)");
}

fn entries(src: &str) -> (Vec<u64>, Vec<AxisIndex>) {
    let e = ok(src, &ins());
    let Kind::Slice(_, entries) = e.kind else {
        panic!("{src} should be a slice, got {e}");
    };
    (e.shape, entries)
}

fn range(start: u64, stop: u64, step: u64) -> AxisIndex {
    Range { start, stop, step }
}

#[test]
fn slicing_normalizes_like_python() {
    let full = range(0, 50, 1);
    let cases: [(&str, &[u64], Vec<AxisIndex>); 14] = [
        (
            "big[100:200, :]",
            &[100, 50],
            vec![range(100, 200, 1), full],
        ),
        ("big[100:200]", &[100, 50], vec![range(100, 200, 1), full]),
        ("big[-10:]", &[10, 50], vec![range(990, 1000, 1), full]),
        ("big[:-998]", &[2, 50], vec![range(0, 2, 1), full]),
        (
            "big[:, ::7]",
            &[1000, 8],
            vec![range(0, 1000, 1), range(0, 50, 7)],
        ),
        ("big[1:10:3, 49]", &[3], vec![range(1, 10, 3), Index(49)]),
        ("big[5]", &[50], vec![Index(5), full]),
        ("big[-1, 3]", &[], vec![Index(999), Index(3)]),
        ("big[1,]", &[50], vec![Index(1), full]),
        ("big[2000:]", &[0, 50], vec![range(1000, 1000, 1), full]),
        ("big[10:5]", &[0, 50], vec![range(10, 10, 1), full]),
        ("big[-5000:3]", &[3, 50], vec![range(0, 3, 1), full]),
        (
            "big[None:None:None]",
            &[1000, 50],
            vec![range(0, 1000, 1), full],
        ),
        ("big[-(1+1)]", &[50], vec![Index(998), full]),
    ];
    for (src, want_shape, want_entries) in cases {
        let (shape, entries) = entries(src);
        assert_eq!(shape, want_shape, "{src}");
        assert_eq!(entries, want_entries, "{src}");
    }
    let e = ok("big[100:200, :] + 1", &ins());
    assert_eq!((e.shape, e.dtype), (vec![100, 50], F32));
    assert_eq!(shape("(m23 + 1)[1][::2]"), [2]);
}

#[test]
fn slicing_errors() {
    let cases = [
        (
            "big[1000]",
            "index 1000 is out of bounds for axis 0 of big, which has length 1000",
        ),
        (
            "big[0, -51]",
            "index -51 is out of bounds for axis 1 of big, which has length 50",
        ),
        (
            "big[::0]",
            "slice step cannot be zero (in ::0 on axis 0 of big)",
        ),
        (
            "big[:, ::-1]",
            "negative slice steps are not supported (in ::-1 on axis 1 of big)",
        ),
        (
            "big[1, 2, 3]",
            "too many indices for big: it is 2-dimensional, but 3 were indexed",
        ),
        ("s[0]", "cannot subscript s: it is 0-dimensional (shape ())"),
        ("(3)[0]", "(3) is a Python int, which cannot be subscripted"),
        (
            "big[v3]",
            "indices must be integer literals, but v3 has dtype float64 \
             (indexing with arrays is not supported)",
        ),
        (
            "big[1.5]",
            "indices must be integer literals, but 1.5 is a Python float",
        ),
        (
            "big[:True]",
            "indices must be integer literals, but True is a Python bool",
        ),
    ];
    for (src, want) in cases {
        assert_eq!(fail(src, &ins()).message, want, "{src}");
    }
}
