//! Precedence, associativity, Python literal and call syntax, checked through tree shapes.

use crate::common::{Inputs, fail, inputs, ok, tree};
use kask_array_expr::DType::{Bool, F64, I32};
use kask_array_expr::{DType, Kind, Scalar};

fn ins() -> Inputs {
    inputs(&[
        ("x", &[3], F64),
        ("y", &[3], F64),
        ("z", &[3], F64),
        ("p", &[3], Bool),
        ("q", &[3], Bool),
        ("r", &[3], Bool),
        ("i", &[3], I32),
        ("v", &[4], F64),
        ("m", &[4, 6], F64),
    ])
}

#[test]
fn precedence_and_associativity() {
    let cases = [
        ("x + y * z", "(+ x (* y z))"),
        ("x * y + z", "(+ (* x y) z)"),
        ("x - y - z", "(- (- x y) z)"),
        ("x / y / z", "(/ (/ x y) z)"),
        ("x / y // z % x", "(% (// (/ x y) z) x)"),
        ("(x + y) * z", "(* (+ x y) z)"),
        ("x ** y ** z", "(** x (** y z))"),
        ("-x ** 2", "(negative (** x 2.0))"),
        ("x ** -1", "(** x -1.0)"),
        ("x ** -y", "(** x (negative y))"),
        ("- - x", "(negative (negative x))"),
        ("+x", "x"),
        ("p | q & r", "(| p (& q r))"),
        ("p & q | r", "(| (& p q) r)"),
        ("p ^ q | r", "(| (^ p q) r)"),
        ("p & q ^ r", "(^ (& p q) r)"),
        ("p | q ^ r", "(| p (^ q r))"),
        ("~p & q", "(& (invert p) q)"),
        ("~(p & q)", "(invert (& p q))"),
        ("x + y < z * x", "(< (+ x y) (* z x))"),
        ("i < i | i", "(< i (| i i))"),
        ("i & i == i", "(== (& i i) i)"),
        ("(x < y) & (y < z)", "(& (< x y) (< y z))"),
        ("x + y - z + x", "(+ (- (+ x y) z) x)"),
        ("2 * v @ m", "(@ (* 2.0 v) m)"),
        ("v @ m * 2", "(* (@ v m) 2.0)"),
        ("-x.sum()", "(negative (sum x axes=[0]))"),
        ("-x[1]", "(negative (slice x 1))"),
        ("m.T.sum(axis=0)", "(sum (T m) axes=[0])"),
        ("m.T[0]", "(slice (T m) 0 0:4:1)"),
        ("m[0][1:3]", "(slice (slice m 0 0:6:1) 1:3:1)"),
        ("np.sum(x)", "(sum x axes=[0])"),
        ("numpy.sum(x)", "(sum x axes=[0])"),
        ("x.sum()", "(sum x axes=[0])"),
    ];
    for (src, want) in cases {
        assert_eq!(tree(src, &ins()), want, "{src}");
    }
}

#[test]
fn python_scalars_fold_with_python_semantics() {
    // Python evaluates scalar-only subexpressions itself before NumPy sees them.
    let cases: [(&str, Scalar, DType); 12] = [
        ("-2 ** 2", Scalar::Int(-4), DType::I64),
        ("2 ** -1", Scalar::Float(0.5), F64),
        ("1 + 2", Scalar::Int(3), DType::I64),
        ("7 // -2", Scalar::Int(-4), DType::I64),
        ("-7 % 3", Scalar::Int(2), DType::I64),
        ("1 / 2", Scalar::Float(0.5), F64),
        ("True + True", Scalar::Int(2), DType::I64),
        ("True & False", Scalar::Bool(false), Bool),
        ("3 > 2", Scalar::Bool(true), Bool),
        ("1_000 * 1.5", Scalar::Float(1500.0), F64),
        ("0x10 | 0b1", Scalar::Int(17), DType::I64),
        ("-np.inf", Scalar::Float(f64::NEG_INFINITY), F64),
    ];
    for (src, value, dtype) in cases {
        let e = ok(src, &ins());
        assert_eq!(e.kind, Kind::Scalar(value), "{src}");
        assert_eq!(e.dtype, dtype, "{src}");
        assert!(e.shape.is_empty(), "{src}");
        assert_eq!(e.span, (0, src.len()), "{src}");
    }
    assert_eq!(tree("(1 + 2) * x", &ins()), "(* 3.0 x)");
    assert_eq!(tree("x + (.5 + 2.)", &ins()), "(+ x 2.5)");
    assert_eq!(tree("x * 1e-3", &ins()), "(* x 0.001)");
    assert!(matches!(ok("nan", &ins()).kind, Kind::Scalar(Scalar::Float(v)) if v.is_nan()));
    assert_eq!(
        tree("x + np.pi", &ins()),
        format!("(+ x {:?})", std::f64::consts::PI)
    );
}

#[test]
fn calls_take_positional_and_keyword_arguments() {
    let cases = [
        ("np.sum(m, axis=0)", "(sum m axes=[0])"),
        ("np.sum(m, 1)", "(sum m axes=[1])"),
        ("sum(m, axis=(0, 1),)", "(sum m axes=[0, 1])"),
        ("m.sum(1, keepdims=True)", "(sum m axes=[1] keepdims)"),
        ("m.var(ddof=1, axis=0)", "(var m axes=[0] ddof=1)"),
        ("np.where(p, x, 0.0)", "(where p x 0.0)"),
        ("absolute(x)", "(absolute x)"),
        ("np.amax(m)", "(max m axes=[0, 1])"),
        ("np.dot(v, m)", "(@ v m)"),
        ("v.dot(m)", "(@ v m)"),
        ("np.transpose(m)", "(T m)"),
        ("m.transpose()", "(T m)"),
        ("(\n  x +\n  y\n)  # comment", "(+ x y)"),
    ];
    for (src, want) in cases {
        assert_eq!(tree(src, &ins()), want, "{src}");
    }
}

#[test]
fn inputs_shadow_the_module_and_constants_as_python_scoping_would() {
    let ins = inputs(&[("np", &[3], F64), ("inf", &[3], I32), ("sum", &[2], F64)]);
    assert_eq!(tree("np.sum()", &ins), "(sum np axes=[0])");
    assert_eq!(tree("inf + 1", &ins), "(+ inf 1)");
    assert_eq!(
        tree("numpy.sum(sum) + sum", &ins),
        "(+ (sum sum axes=[0]) sum)"
    );
    assert_eq!(tree("sum(sum)", &ins), "(sum sum axes=[0])");
}

#[test]
fn spans_cover_each_node_including_parentheses() {
    let src = "(x + y) * z";
    let e = ok(src, &ins());
    assert_eq!(e.span, (0, 11));
    let Kind::Binary(_, lhs, rhs) = &e.kind else {
        panic!("expected a binary node, got {e}");
    };
    assert_eq!(&src[lhs.span.0..lhs.span.1], "(x + y)");
    assert_eq!(&src[rhs.span.0..rhs.span.1], "z");
}

#[test]
fn inputs_and_size() {
    let e = ok("(x * y).sum() + m.sum() + 1", &ins());
    let names: Vec<String> = e.inputs().into_iter().collect();
    assert_eq!(names, ["m", "x", "y"]);
    assert_eq!(e.size(), 1);
    assert_eq!(ok("m", &ins()).size(), 24);
    assert!(ok("1.5", &ins()).inputs().is_empty());
}

#[test]
fn nesting_is_bounded_without_overflowing_the_stack() {
    let deep = format!("{}x{}", "(".repeat(99), ")".repeat(99));
    assert_eq!(tree(&deep, &ins()), "x");
    let chain = vec!["x"; 100].join(" + ");
    assert_eq!(ok(&chain, &ins()).shape, vec![3]);
    // Calls are the deepest-stacked path; this runs on the test harness's 2 MiB thread.
    let calls = format!("{}x{}", "where(p, sqrt(".repeat(49), "), y)".repeat(49));
    assert_eq!(ok(&calls, &ins()).shape, vec![3]);
    for src in [
        format!("{}x{}", "(".repeat(5000), ")".repeat(5000)),
        vec!["x"; 5000].join(" + "),
        format!("{}x", "-".repeat(5000)),
        format!("x{}", " ** x".repeat(5000)),
        format!("x{}", ".T".repeat(5000)),
    ] {
        let e = fail(&src, &ins());
        assert!(
            e.message.starts_with("expression is nested too deeply"),
            "{}",
            e.message
        );
    }
}
