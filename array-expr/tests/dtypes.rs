//! Dtype rules of every operator and function, NEP 50 weak scalars, and where casts go.

use crate::common::{Inputs, fail, inputs, ok};
use kask_array_expr::DType::{self, Bool, F32, F64, I32, I64};
use kask_array_expr::{Expr, Kind, Scalar};

/// One 1-D array per dtype, named after NumPy's short codes.
fn ins() -> Inputs {
    inputs(&[
        ("bo", &[3], Bool),
        ("i4", &[3], I32),
        ("i8", &[3], I64),
        ("f4", &[3], F32),
        ("f8", &[3], F64),
    ])
}

/// Each row: source, result dtype, and the tree with its casts.
fn assert_rows(rows: &[(&str, DType, &str)]) {
    for &(src, dtype, want) in rows {
        let e = ok(src, &ins());
        assert_eq!(e.dtype, dtype, "dtype of {src}");
        assert_eq!(e.to_string(), want, "tree of {src}");
        assert_operands_agree(&e);
    }
}

/// The evaluator's contract: both operands of Binary/Where/MatMul already share the computation dtype.
fn assert_operands_agree(e: &Expr) {
    match &e.kind {
        Kind::Binary(op, l, r) => {
            assert_eq!(l.dtype, r.dtype, "operands of {e}");
            if !op.is_comparison() {
                assert_eq!(l.dtype, e.dtype, "{e}");
            }
        }
        Kind::Where(c, x, y) => {
            assert_eq!(c.dtype, Bool, "{e}");
            assert_eq!((x.dtype, y.dtype), (e.dtype, e.dtype), "{e}");
        }
        Kind::MatMul(l, r) => assert_eq!((l.dtype, r.dtype), (e.dtype, e.dtype), "{e}"),
        Kind::Reduce { arg, .. } => assert_eq!(arg.dtype, e.dtype, "{e}"),
        Kind::Cast(arg) => assert_ne!(arg.dtype, e.dtype, "no-op cast in {e}"),
        _ => {}
    }
    for child in e.children() {
        assert_operands_agree(child);
    }
}

#[test]
fn arithmetic_operators() {
    assert_rows(&[
        ("bo + bo", Bool, "(+ bo bo)"),
        ("bo * bo", Bool, "(* bo bo)"),
        ("i4 + bo", I32, "(+ i4 (int32 bo))"),
        ("i4 + i8", I64, "(+ (int64 i4) i8)"),
        ("i4 * f4", F64, "(* (float64 i4) (float64 f4))"),
        ("i8 + f4", F64, "(+ (float64 i8) (float64 f4))"),
        ("f4 + f8", F64, "(+ (float64 f4) f8)"),
        ("f4 * f4", F32, "(* f4 f4)"),
        ("bo + f4", F32, "(+ (float32 bo) f4)"),
        ("i8 - i4", I64, "(- i8 (int64 i4))"),
        ("f4 - bo", F32, "(- f4 (float32 bo))"),
    ]);
}

#[test]
fn division_floor_division_modulo_power() {
    assert_rows(&[
        ("i4 / i4", F64, "(/ (float64 i4) (float64 i4))"),
        ("bo / bo", F64, "(/ (float64 bo) (float64 bo))"),
        ("i8 / bo", F64, "(/ (float64 i8) (float64 bo))"),
        ("f4 / f4", F32, "(/ f4 f4)"),
        ("f4 / i4", F64, "(/ (float64 f4) (float64 i4))"),
        ("f4 / f8", F64, "(/ (float64 f4) f8)"),
        ("f4 / bo", F32, "(/ f4 (float32 bo))"),
        ("bo // bo", I64, "(// (int64 bo) (int64 bo))"),
        ("bo % bo", I64, "(% (int64 bo) (int64 bo))"),
        ("i4 // i4", I32, "(// i4 i4)"),
        ("i4 % i8", I64, "(% (int64 i4) i8)"),
        ("f4 % i8", F64, "(% (float64 f4) (float64 i8))"),
        ("f4 // f4", F32, "(// f4 f4)"),
        ("bo ** bo", I64, "(** (int64 bo) (int64 bo))"),
        ("i4 ** i4", I32, "(** i4 i4)"),
        ("i4 ** bo", I32, "(** i4 (int32 bo))"),
        ("f4 ** f4", F32, "(** f4 f4)"),
        ("f8 ** i4", F64, "(** f8 (float64 i4))"),
    ]);
}

#[test]
fn comparisons_cast_to_the_promoted_dtype_and_give_bool() {
    assert_rows(&[
        ("i4 < f4", Bool, "(< (float64 i4) (float64 f4))"),
        ("bo == i8", Bool, "(== (int64 bo) i8)"),
        ("f4 != f4", Bool, "(!= f4 f4)"),
        ("i4 >= i4", Bool, "(>= i4 i4)"),
        ("i4 <= i8", Bool, "(<= (int64 i4) i8)"),
        ("i4 > bo", Bool, "(> i4 (int32 bo))"),
        ("bo == bo", Bool, "(== bo bo)"),
    ]);
}

#[test]
fn bitwise_operators() {
    assert_rows(&[
        ("bo & bo", Bool, "(& bo bo)"),
        ("bo | i4", I32, "(| (int32 bo) i4)"),
        ("i4 ^ i8", I64, "(^ (int64 i4) i8)"),
        ("~bo", Bool, "(invert bo)"),
        ("~i8", I64, "(invert i8)"),
    ]);
    for (src, culprit) in [("f4 & i4", "f4"), ("i4 | f8", "f8"), ("bo ^ f4", "f4")] {
        let e = fail(src, &ins());
        let dtype = if culprit == "f4" {
            "float32"
        } else {
            "float64"
        };
        let want = format!(
            "operator {} needs bool or integer operands, but {culprit} has dtype {dtype}",
            &src[3..src.len() - 3]
        );
        assert_eq!(e.message, want, "{src}");
        assert_eq!(
            e.span.0,
            src.find(culprit).expect("culprit in source"),
            "{src}"
        );
    }
    assert_eq!(
        fail("~f4", &ins()).message,
        "~ needs a bool or integer operand, but f4 has dtype float32"
    );
}

#[test]
fn boolean_subtraction_and_negation_are_refused() {
    let e = fail("bo - bo", &ins());
    assert!(e.message.contains("- on two booleans"), "{}", e.message);
    assert!(e.message.contains("use ^"), "{}", e.message);
    assert_eq!(e.span, (3, 4));
    let e = fail("bo - True", &ins());
    assert!(e.message.contains("- on two booleans"), "{}", e.message);
    let e = fail("-bo", &ins());
    assert!(e.message.contains("unary - on booleans"), "{}", e.message);
    assert!(e.message.contains("use ~bo"), "{}", e.message);
    assert_eq!(e.span, (0, 1));
}

#[test]
fn elementwise_functions() {
    assert_rows(&[
        ("abs(i4)", I32, "(absolute i4)"),
        ("np.abs(bo)", Bool, "(absolute bo)"),
        ("absolute(f4)", F32, "(absolute f4)"),
        ("sqrt(i4)", F64, "(sqrt (float64 i4))"),
        ("exp(bo)", F64, "(exp (float64 bo))"),
        ("log(i8)", F64, "(log (float64 i8))"),
        ("log(f4)", F32, "(log f4)"),
        ("np.sqrt(f8)", F64, "(sqrt f8)"),
        ("-i4", I32, "(negative i4)"),
        ("-f4", F32, "(negative f4)"),
        // A NumPy function of a Python scalar is a strong NumPy scalar, converted directly.
        ("np.sqrt(2)", F64, "(sqrt 2.0)"),
        ("abs(-3)", I64, "(absolute -3)"),
    ]);
}

#[test]
fn weak_python_scalars_follow_nep_50() {
    assert_rows(&[
        ("i4 + 1", I32, "(+ i4 1)"),
        ("1 + i4", I32, "(+ 1 i4)"),
        ("i4 + 1.5", F64, "(+ (float64 i4) 1.5)"),
        ("f4 + 1", F32, "(+ f4 1.0)"),
        ("f4 * 2.5", F32, "(* f4 2.5)"),
        ("f8 - 1", F64, "(- f8 1.0)"),
        ("bo + 1", I64, "(+ (int64 bo) 1)"),
        ("bo * 2.5", F64, "(* (float64 bo) 2.5)"),
        ("bo + True", Bool, "(+ bo True)"),
        ("bo & False", Bool, "(& bo False)"),
        ("i8 + True", I64, "(+ i8 1)"),
        ("f4 + True", F32, "(+ f4 1.0)"),
        ("i4 / 2", F64, "(/ (float64 i4) 2.0)"),
        ("f4 / 2", F32, "(/ f4 2.0)"),
        ("2 ** i4", I32, "(** 2 i4)"),
        ("f4 ** -1", F32, "(** f4 -1.0)"),
        ("i4 ** 2", I32, "(** i4 2)"),
        ("i4 // 2", I32, "(// i4 2)"),
        ("bo // 2", I64, "(// (int64 bo) 2)"),
        ("i4 & 1", I32, "(& i4 1)"),
        ("i4 > 2.5", Bool, "(> (float64 i4) 2.5)"),
        ("f4 < 1", Bool, "(< f4 1.0)"),
        ("f4 + inf", F32, "(+ f4 inf)"),
        ("f4 * -np.inf", F32, "(* f4 -inf)"),
        // Python folds the scalar part first, so it stays weak.
        ("i4 + (1 + 2)", I32, "(+ i4 3)"),
        ("i4 * -1", I32, "(* i4 -1)"),
        // NumPy scalars from functions are strong and promote fully.
        ("i4 + np.sqrt(2)", F64, "(+ (float64 i4) (sqrt 2.0))"),
        (
            "f4 + abs(-1)",
            F64,
            "(+ (float64 f4) (float64 (absolute -1)))",
        ),
    ]);
}

#[test]
fn weak_scalar_values_are_converted_to_the_node_dtype() {
    let e = ok("f4 * 0.1", &ins());
    let Kind::Binary(_, _, rhs) = &e.kind else {
        panic!("expected a binary node, got {e}");
    };
    assert_eq!(rhs.kind, Kind::Scalar(Scalar::Float(f64::from(0.1f32))));
    assert_eq!(rhs.dtype, F32);
    let e = ok("i4 + 2147483647", &ins());
    let Kind::Binary(_, _, rhs) = &e.kind else {
        panic!("expected a binary node, got {e}");
    };
    assert_eq!(
        (rhs.kind.clone(), rhs.dtype),
        (Kind::Scalar(Scalar::Int(i32::MAX.into())), I32)
    );
}

#[test]
fn python_ints_must_fit_the_array_dtype() {
    let e = fail("i4 + 3000000000", &ins());
    assert_eq!(
        e.message,
        "Python integer 3000000000 is out of bounds for int32 (-2147483648 to 2147483647)"
    );
    assert_eq!(e.span, (5, 15));
    assert!(
        fail("i8 * 9223372036854775808", &ins())
            .message
            .contains("out of bounds for int64")
    );
    assert!(
        fail("2 ** 64", &ins())
            .message
            .contains("out of bounds for int64")
    );
    // NumPy 2 compares out-of-range Python ints exactly; computing in int64 does the same.
    assert_rows(&[
        ("i4 < 3000000000", Bool, "(< (int64 i4) 3000000000)"),
        ("i4 == -2147483649", Bool, "(== (int64 i4) -2147483649)"),
    ]);
    let e = fail("i4 ** -1", &ins());
    assert!(
        e.message
            .starts_with("integers cannot be raised to negative integer powers"),
        "{}",
        e.message
    );
    assert_eq!(e.span, (6, 8));
}

#[test]
fn scalar_only_expressions_take_python_types() {
    for (src, dtype) in [
        ("1", I64),
        ("1.5", F64),
        ("True", Bool),
        ("1 + 2.0", F64),
        ("2 // 1", I64),
        ("1 < 2", Bool),
    ] {
        let e = ok(src, &ins());
        assert_eq!((e.dtype, e.shape.len()), (dtype, 0), "{src}");
    }
    assert!(
        fail("1 / 0", &ins())
            .message
            .starts_with("division by zero")
    );
    assert!(
        fail("1.5 & 1", &ins())
            .message
            .contains("'float' and 'int'")
    );
}

#[test]
fn where_promotes_x_and_y_and_casts_the_condition() {
    assert_rows(&[
        ("where(bo, i4, 0)", I32, "(where bo i4 0)"),
        ("where(bo, i4, i8)", I64, "(where bo (int64 i4) i8)"),
        ("where(i4, f4, 1)", F32, "(where (bool i4) f4 1.0)"),
        (
            "where(f8 > 0, sqrt(f8), 0.0)",
            F64,
            "(where (> f8 0.0) (sqrt f8) 0.0)",
        ),
        ("where(bo, 1, 2.0)", F64, "(where bo 1.0 2.0)"),
        ("where(bo, 1, 2)", I64, "(where bo 1 2)"),
        ("where(bo, i4, 0.5)", F64, "(where bo (float64 i4) 0.5)"),
        ("where(bo, f4, f8)", F64, "(where bo (float64 f4) f8)"),
        ("where(1, f8, f8)", F64, "(where True f8 f8)"),
        ("where(0.0, bo, bo)", Bool, "(where False bo bo)"),
    ]);
}

#[test]
fn matmul_promotes_and_casts_both_operands() {
    let ins = inputs(&[("m", &[2, 3], F64), ("k", &[3, 4], I32), ("g", &[3], F32)]);
    let cases = [
        ("m @ k", F64, "(@ m (float64 k))"),
        ("k.T @ g", F64, "(@ (float64 (T k)) (float64 g))"),
        ("g @ g", F32, "(@ g g)"),
    ];
    for (src, dtype, want) in cases {
        let e = ok(src, &ins);
        assert_eq!((e.dtype, e.to_string()), (dtype, want.to_string()), "{src}");
    }
}

#[test]
fn reductions_cast_below_when_the_result_dtype_differs() {
    assert_rows(&[
        ("i4.sum()", I64, "(sum (int64 i4) axes=[0])"),
        ("bo.sum()", I64, "(sum (int64 bo) axes=[0])"),
        ("i8.sum()", I64, "(sum i8 axes=[0])"),
        ("f4.sum()", F32, "(sum f4 axes=[0])"),
        ("i4.prod()", I64, "(prod (int64 i4) axes=[0])"),
        ("f8.prod()", F64, "(prod f8 axes=[0])"),
        ("i4.mean()", F64, "(mean (float64 i4) axes=[0])"),
        ("bo.mean()", F64, "(mean (float64 bo) axes=[0])"),
        ("f4.mean()", F32, "(mean f4 axes=[0])"),
        ("i8.var()", F64, "(var (float64 i8) axes=[0])"),
        ("f4.std(ddof=1)", F32, "(std f4 axes=[0] ddof=1)"),
        ("i4.min()", I32, "(min i4 axes=[0])"),
        ("bo.max()", Bool, "(max bo axes=[0])"),
        ("np.amax(f4)", F32, "(max f4 axes=[0])"),
        ("np.sum(3)", I64, "(sum 3 axes=[])"),
        ("np.mean(True)", F64, "(mean 1.0 axes=[])"),
    ]);
}
