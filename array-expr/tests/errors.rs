//! Every error's message, column and caret, asserted on the rendered text.

use crate::common::{Inputs, fail, inputs};
use kask_array_expr::DType::{Bool, F64, I32};

fn ins() -> Inputs {
    inputs(&[
        ("a", &[3, 4], F64),
        ("b", &[5], F64),
        ("i", &[3, 4], I32),
        ("p", &[3, 4], Bool),
    ])
}

/// Renders the error for `src` and checks it against `message` with carets at `caret` (a string
/// of spaces and `^` aligned under the source).
fn assert_render(src: &str, column: usize, message: &str, caret: &str) {
    let e = fail(src, &ins());
    let want = format!("at column {column}: {message}\n  {src}\n  {caret}");
    assert_eq!(e.render(src), want, "rendering of {src:?}");
    assert_eq!(e.to_string(), format!("at column {column}: {message}"));
    assert_eq!(e.column, column);
}

#[test]
fn unknown_names() {
    // The brief's example; "c" is the 10th character.
    let src = "(a * b + c).sum(axis=0)";
    let two = inputs(&[("a", &[3, 4], F64), ("b", &[4], F64)]);
    assert_eq!(
        fail(src, &two).render(src),
        "at column 10: unknown name \"c\" (inputs: a, b)\n  (a * b + c).sum(axis=0)\n           ^"
    );
    assert_render(
        "a + c",
        5,
        "unknown name \"c\" (inputs: a, b, i, p)",
        "    ^",
    );
    assert_eq!(
        fail("x", &inputs(&[])).message,
        "unknown name \"x\" (there are no inputs)"
    );
    assert_render(
        "foo(a)",
        1,
        "unknown function \"foo\" (functions: abs, absolute, amax, amin, dot, exp, log, matmul, \
         max, mean, min, prod, sqrt, std, sum, transpose, var, where)",
        "^^^",
    );
    assert_render(
        "np.foo(a)",
        4,
        "unknown function \"foo\" (functions: abs, absolute, amax, amin, dot, exp, log, matmul, \
         max, mean, min, prod, sqrt, std, sum, transpose, var, where)",
        "   ^^^",
    );
    assert_render(
        "a.foo()",
        3,
        "unknown method \"foo\" of a (methods: dot, max, mean, min, prod, std, sum, transpose, \
         var; attributes: T)",
        "  ^^^",
    );
    assert_render(
        "a.shape",
        3,
        "unknown attribute \"shape\" of a (attributes: T; methods: dot, max, mean, min, prod, \
         std, sum, transpose, var)",
        "  ^^^^^",
    );
    assert_render(
        "np.e + np.tau",
        11,
        "unknown function or constant \"tau\" (functions: abs, absolute, amax, amin, dot, exp, \
         log, matmul, max, mean, min, prod, sqrt, std, sum, transpose, var, where; \
         constants: e, inf, nan, pi)",
        "          ^^^",
    );
    assert_render(
        "a.sqrt()",
        3,
        "arrays have no method \"sqrt\"; use np.sqrt(a)",
        "  ^^^^",
    );
    assert_render(
        "a.T()",
        3,
        "T is an attribute, not a method: write a.T",
        "  ^",
    );
    assert_render(
        "a.sum + 1",
        3,
        "method \"sum\" must be called: a.sum()",
        "  ^^^",
    );
    assert_render(
        "sum + 1",
        1,
        "function \"sum\" must be called, e.g. sum(a)",
        "^^^",
    );
    assert_render(
        "np.sum",
        4,
        "function \"sum\" must be called, e.g. np.sum(a)",
        "   ^^^",
    );
    assert_render(
        "np.inf(1)",
        4,
        "np.inf is a constant, not a function",
        "   ^^^",
    );
    assert_render(
        "a(1)",
        1,
        "a is an array, not a function, and cannot be called",
        "^",
    );
    assert_render(
        "(1).sum()",
        5,
        "(1) is a Python int, which has no method \"sum\"; use np.sum((1))",
        "    ^^^",
    );
    assert_render(
        "(1.5).T",
        7,
        "(1.5) is a Python float, which has no attribute \"T\"",
        "      ^",
    );
}

#[test]
fn syntax_errors() {
    assert_render(
        "(a + 1",
        7,
        "expected \")\" but found end of expression",
        "      ^",
    );
    assert_render(
        "a +",
        4,
        "expected an expression but found end of expression",
        "   ^",
    );
    assert_render(
        "a + * b",
        5,
        "expected an expression but found \"*\"",
        "    ^",
    );
    assert_render(
        "a b",
        3,
        "expected an operator or the end of the expression but found name \"b\"",
        "  ^",
    );
    assert_render(
        "a = b",
        3,
        "expected an operator or the end of the expression but found \"=\"; use == to compare",
        "  ^",
    );
    assert_render(
        "sum(a,, 0)",
        7,
        "expected an expression but found \",\"",
        "      ^",
    );
    assert_render(
        "sum(a 0)",
        7,
        "expected \",\" or \")\" but found number 0",
        "      ^",
    );
    assert_render("a[]", 3, "expected an expression but found \"]\"", "  ^");
    assert_render(
        "a.(b)",
        3,
        "expected an attribute name after \".\" but found \"(\"",
        "  ^",
    );
    assert_render(
        "a.1",
        2,
        "expected an operator or the end of the expression but found number .1",
        " ^^",
    );
    assert_render(
        "sum(axis=0, a)",
        13,
        "positional argument follows keyword argument axis=",
        "            ^",
    );
    assert_render(
        "a << 1",
        3,
        "shift operators << and >> are not supported",
        "  ^^",
    );
    assert_render("a 1e", 3, "invalid decimal literal", "  ^^");
}

#[test]
fn empty_expressions() {
    for src in ["", "   ", "# only a comment"] {
        let e = fail(src, &ins());
        assert_eq!(e.message, "empty expression", "{src:?}");
        assert_eq!(e.column, 1);
    }
    assert_eq!(
        fail("", &ins()).render(""),
        "at column 1: empty expression\n  \n  ^"
    );
}

#[test]
fn python_constructs_arrays_cannot_use() {
    assert_render(
        "a < b < a",
        7,
        "comparisons cannot be chained: Python turns \"a < b < ...\" into \"and\", which NumPy \
         arrays cannot evaluate; write (a < b) & (b < a)",
        "      ^",
    );
    assert_render(
        "a > 0 and p",
        7,
        "\"and\" needs a single truth value, which an array does not have; use & and put \
         parentheses around comparisons, e.g. (a > 0) & (b > 0)",
        "      ^^^",
    );
    assert_render(
        "not p",
        1,
        "\"not\" needs a single truth value, which an array does not have; use ~",
        "^^^",
    );
    assert_render(
        "a if p else b",
        3,
        "conditional expressions are not supported; use where(condition, x, y)",
        "  ^^",
    );
    assert_render(
        "[0, 1]",
        1,
        "list literals are not supported; for several axes use a tuple, e.g. axis=(0, 1)",
        "^",
    );
    assert_render(
        "a + (1, 2)",
        5,
        "a tuple is only allowed as the axis of a reduction, e.g. sum(a, axis=(0, 1)); got (1, 2)",
        "    ^^^^^^",
    );
    assert_render(
        "a + None",
        5,
        "None is only allowed as axis=None or as a part of a slice",
        "    ^^^^",
    );
    assert_render(
        "a[...]",
        3,
        "Ellipsis (...) is not supported; write \":\" for each axis",
        "  ^^^",
    );
}

#[test]
fn dtype_errors() {
    assert_render(
        "p - p",
        3,
        "NumPy does not support - on two booleans (p and p are bool); use ^ for exclusive or",
        "  ^",
    );
    assert_render(
        "-p",
        1,
        "NumPy does not support unary - on booleans and p is bool; use ~p for logical not",
        "^",
    );
    assert_render(
        "p & a",
        5,
        "operator & needs bool or integer operands, but a has dtype float64",
        "    ^",
    );
    assert_render(
        "i | 0.5",
        5,
        "operator | needs bool or integer operands, but 0.5 is a Python float",
        "    ^^^",
    );
    assert_render(
        "i + 3000000000",
        5,
        "Python integer 3000000000 is out of bounds for int32 (-2147483648 to 2147483647)",
        "    ^^^^^^^^^^",
    );
    assert_render(
        "i ** -2",
        6,
        "integers cannot be raised to negative integer powers (i computes in int32); use a float \
         exponent such as -2.0",
        "     ^^",
    );
    assert_render(
        "a + 1 // 0",
        5,
        "integer division or modulo by zero in \"1 // 0\"",
        "    ^^^^^^",
    );
}

#[test]
fn shape_errors() {
    assert_render(
        "a + b",
        1,
        "cannot broadcast a (shape (3, 4)) with b (shape (5,)) in \"a + b\"",
        "^^^^^",
    );
    assert_render(
        "a.sum(axis=0) @ b",
        1,
        "cannot matmul a.sum(axis=0) (shape (4,)) with b (shape (5,)) in \"a.sum(axis=0) @ b\": \
         the last axis of a.sum(axis=0) has length 4 but the first axis of b has length 5",
        "^^^^^^^^^^^^^^^^^",
    );
    assert_render(
        "a[3]",
        3,
        "index 3 is out of bounds for axis 0 of a, which has length 3",
        "  ^",
    );
    assert_render(
        "a[:, 1:2:-1]",
        6,
        "negative slice steps are not supported (in 1:2:-1 on axis 1 of a)",
        "     ^^^^^^",
    );
}

#[test]
fn axis_and_argument_errors() {
    assert_render(
        "a.sum(axis=2)",
        12,
        "axis 2 is out of bounds for array of dimension 2 (a has shape (3, 4))",
        "           ^",
    );
    assert_render(
        "np.mean(a, axis=-3)",
        17,
        "axis -3 is out of bounds for array of dimension 2 (a has shape (3, 4))",
        "                ^^",
    );
    assert_render(
        "a.sum(axis=(0, -2))",
        16,
        "duplicate value in axis: -2 is axis 0 of a (dimension 2), which is already listed",
        "               ^^",
    );
    assert_render(
        "a.sum(axis=1.5)",
        12,
        "axis must be None, an integer or a tuple of integers, but 1.5 is a Python float",
        "           ^^^",
    );
    assert_render(
        "a.sum(foo=1)",
        7,
        "a.sum() got an unexpected keyword argument \"foo\" (it accepts axis, keepdims)",
        "      ^^^",
    );
    assert_render(
        "a.mean(ddof=1)",
        8,
        "a.mean() got an unexpected keyword argument \"ddof\" (it accepts axis, keepdims)",
        "       ^^^^",
    );
    assert_render(
        "a.sum(axis=0, axis=1)",
        15,
        "a.sum() got multiple values for argument \"axis\"",
        "              ^^^^",
    );
    assert_render(
        "np.sum(a, 0, axis=1)",
        14,
        "sum() got multiple values for argument \"axis\"",
        "             ^^^^",
    );
    assert_render(
        "sum(a, 0, True)",
        11,
        "sum() takes at most 2 positional arguments (a, axis) but 3 were given",
        "          ^^^^",
    );
    assert_render(
        "sqrt(a, a)",
        9,
        "sqrt() takes exactly 1 argument (x) but 2 were given",
        "        ^",
    );
    assert_render(
        "where(p, a)",
        1,
        "where() takes exactly 3 arguments (condition, x, y) but 2 were given",
        "^^^^^^^^^^^",
    );
    assert_render(
        "sum(axis=0)",
        1,
        "sum() missing required argument \"a\"",
        "^^^^^^^^^^^",
    );
    assert_render(
        "exp(x=a)",
        5,
        "exp() takes no keyword arguments (got x=)",
        "    ^",
    );
    assert_render(
        "a.transpose(1, 0)",
        13,
        "a.transpose() takes exactly 0 arguments () but 2 were given",
        "            ^",
    );
    assert_render(
        "a.sum(keepdims=1)",
        16,
        "a.sum(): keepdims must be True or False, but 1 is a Python int",
        "               ^",
    );
    assert_render(
        "a.std(ddof=-1)",
        12,
        "a.std(): ddof must be a non-negative integer, but got -1",
        "           ^^",
    );
}

#[test]
fn multi_line_sources_render_the_offending_line() {
    let src = "where(p,\n      c, 0)";
    let e = fail(src, &ins());
    assert_eq!(e.column, 7);
    assert_eq!(
        e.render(src),
        "at column 7: unknown name \"c\" (inputs: a, b, i, p)\n        c, 0)\n        ^"
    );
}
