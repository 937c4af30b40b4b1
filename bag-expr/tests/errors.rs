//! Every compile error carries the position of the offending token, and
//! every evaluation error names what went wrong.

use kask_bag_expr::{CompileError, EvalError, RecordExpr};
use serde_json::{Value, json};

fn compile_error(sql: &str) -> CompileError {
    match RecordExpr::compile(sql) {
        Ok(_) => panic!("{sql:?} compiled but should not"),
        Err(e) => e,
    }
}

fn record() -> Value {
    json!({
        "name": "Ada", "n": 7, "score": 2.5, "flag": true, "tags": ["a", "b"],
        "big": 9_223_372_036_854_775_807_i64, "csv": "a,b", "badre": "(",
        "badpat": "ab\\", "obj": {"a": 1}
    })
}

fn eval_error(sql: &str) -> EvalError {
    let expr = RecordExpr::compile(sql).unwrap_or_else(|e| panic!("{sql:?} should compile: {e}"));
    match expr.eval(&record()) {
        Ok(v) => panic!("{sql:?} evaluated to {v} but should fail"),
        Err(e) => e,
    }
}

/// `(sql, line, column, fragment of the message)`.
const COMPILE_ERRORS: &[(&str, u64, u64, &str)] = &[
    (
        "foo(x)",
        1,
        1,
        "unknown function foo; known functions: abs, array_contains",
    ),
    ("n + Foo(x)", 1, 5, "unknown function Foo"),
    (
        "a b",
        1,
        3,
        "unexpected `b` after the end of the expression",
    ),
    ("x = 1;", 1, 6, "unexpected `;`"),
    ("a AS b", 1, 3, "unexpected `AS`"),
    (
        "x +",
        1,
        4,
        "syntax error: Expected: an expression, found: end of input",
    ),
    ("", 1, 1, "syntax error"),
    ("(a + b", 1, 7, "syntax error"),
    ("a = )", 1, 5, "syntax error"),
    ("'abc", 1, 1, "Unterminated string literal"),
    ("a +\n  foo(b)", 2, 3, "unknown function foo"),
    (
        "lower(a, b)",
        1,
        1,
        "function lower expects 1 argument, got 2",
    ),
    (
        "n + substring(x, 1, 2, 3)",
        1,
        5,
        "expects 2 or 3 arguments, got 4",
    ),
    (
        "concat()",
        1,
        1,
        "function concat expects at least 1 argument, got 0",
    ),
    (
        "regexp_replace(a, 'b')",
        1,
        1,
        "expects 3 or 4 arguments, got 2",
    ),
    (
        "floor(x, 2)",
        1,
        1,
        "function floor expects 1 argument, got 2",
    ),
    (
        "count(*)",
        1,
        1,
        "aggregate functions belong in frequencies/count/topk steps, not in an expression",
    ),
    (
        "1 + sum(x)",
        1,
        5,
        "aggregate functions belong in frequencies/count/topk steps",
    ),
    ("max(a)", 1, 1, "aggregate functions belong"),
    (
        "row_number() OVER ()",
        1,
        1,
        "window functions are not supported",
    ),
    ("lower(DISTINCT a)", 1, 1, "DISTINCT"),
    ("x IN (SELECT 1)", 1, 1, "subqueries"),
    ("(SELECT 1)", 1, 2, "unsupported SQL: subqueries"),
    ("a AND EXISTS (SELECT 1)", 1, 7, "unsupported SQL: EXISTS"),
    ("x = INTERVAL '1 day'", 1, 5, "unsupported SQL: INTERVAL"),
    ("DATE '2020-01-01'", 1, 1, "typed literals"),
    ("EXTRACT(YEAR FROM d)", 1, 1, "unsupported SQL: EXTRACT"),
    ("a & b", 1, 3, "unsupported operator &"),
    ("a ~ 'x'", 1, 3, "unsupported operator ~"),
    ("(a) | b", 1, 5, "unsupported operator |"),
    ("a + ~b", 1, 5, "unsupported operator ~"),
    (
        "CAST(x AS DATE)",
        1,
        11,
        "unsupported cast target type DATE",
    ),
    (
        "x::timestamp",
        1,
        4,
        "unsupported cast target type TIMESTAMP",
    ),
    (
        "regexp_like(x, '(')",
        1,
        16,
        "regexp_like: invalid regular expression",
    ),
    (
        "regexp_replace(x, 'a', 'b', 'q')",
        1,
        29,
        "unsupported regular expression flag 'q'",
    ),
    (
        "regexp_like(x, 'a', 'g')",
        1,
        21,
        "unsupported regular expression flag 'g'",
    ),
    (
        "x LIKE 'ab\\'",
        1,
        8,
        "LIKE pattern must not end with the escape character",
    ),
    (
        "x LIKE 'a' ESCAPE 'xy'",
        1,
        19,
        "ESCAPE must be a single character",
    ),
    ("1e400", 1, 1, "number 1e400 is out of range"),
    ("x[1:2]", 1, 2, "array slices are not supported"),
    ("x = $1", 1, 5, "unsupported literal $1"),
    ("ARRAY[1, 2]", 1, 1, "array constructors"),
    ("lower(x => 1)", 1, 1, "named arguments"),
];

#[test]
fn compile_errors_have_positions() {
    let mut failures = Vec::new();
    for (sql, line, column, fragment) in COMPILE_ERRORS {
        match RecordExpr::compile(sql) {
            Ok(_) => failures.push(format!("{sql:?}: compiled")),
            Err(e) if e.line != *line || e.column != *column || !e.message.contains(fragment) => {
                failures.push(format!(
                    "{sql:?}: got {}:{} {:?}",
                    e.line, e.column, e.message
                ));
            }
            Err(_) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn compile_error_display_names_the_column() {
    let e = compile_error("foo(x)");
    assert!(
        e.to_string()
            .starts_with("at column 1: unknown function foo"),
        "{e}"
    );
    let e = compile_error("a  b");
    assert_eq!(
        e.to_string(),
        "at column 4: unexpected `b` after the end of the expression"
    );
}

#[test]
fn columns_count_characters_not_bytes() {
    let e = compile_error("'héé' || foo(x)");
    assert_eq!((e.line, e.column), (1, 10));
}

#[test]
fn deep_nesting_is_rejected_not_a_stack_overflow() {
    // A 1 MiB stack, half of a default Rust worker thread's, and a debug
    // build: the allowed depth must compile and evaluate within it.
    let worker = std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(|| {
            let sql = format!("1{}", " + 1".repeat(2000));
            let e = compile_error(&sql);
            assert!(e.message.contains("nested too deeply"), "{e}");
            for (op, expected) in [("+", json!(251)), ("||", json!("1".repeat(251)))] {
                let sql = format!("1{}", format!(" {op} 1").repeat(250));
                let expr = RecordExpr::compile(&sql).expect("250 terms compile");
                assert_eq!(expr.eval(&json!({})).expect("evaluates"), expected);
            }
            let sql = format!("n = 0{}", " OR n = 1".repeat(250));
            let expr = RecordExpr::compile(&sql).expect("250 terms compile");
            assert!(expr.matches(&json!({"n": 1})).expect("evaluates"));
            let e = compile_error(&format!("{}1{}", "abs(".repeat(300), ")".repeat(300)));
            assert!(e.message.contains("nested too deeply"), "{e}");
        })
        .expect("spawn a worker thread");
    worker.join().expect("no stack overflow");
}

/// `(sql, exact message)`.
const EVAL_ERRORS: &[(&str, &str)] = &[
    ("name + 1", r#"cannot apply + to string "Ada" and number 1"#),
    ("'ab' + 1", r#"cannot apply + to string "ab" and number 1"#),
    ("flag * 2", "cannot apply * to boolean true and number 2"),
    (
        "n - tags",
        r#"cannot apply - to number 7 and array ["a","b"]"#,
    ),
    ("-name", r#"cannot apply unary - to string "Ada""#),
    ("+name", r#"cannot apply unary + to string "Ada""#),
    ("n / 0", "division by zero"),
    ("n % 0", "division by zero"),
    ("score / 0", "division by zero"),
    ("n / 0.0", "division by zero"),
    ("big + 1", "integer overflow in 9223372036854775807 + 1"),
    ("-big - 2", "integer overflow in -9223372036854775807 - 2"),
    ("big * 2", "integer overflow in 9223372036854775807 * 2"),
    (
        "-9223372036854775808 / -1",
        "integer overflow in -9223372036854775808 / -1",
    ),
    (
        "-(-9223372036854775808)",
        "integer overflow in -(-9223372036854775808)",
    ),
    ("1e308 * 10", "result of * is not a finite number"),
    ("n = 'x'", r#"cannot apply = to number 7 and string "x""#),
    ("n < name", r#"cannot apply < to number 7 and string "Ada""#),
    ("flag <> 1", "cannot apply <> to boolean true and number 1"),
    (
        "tags < tags",
        r#"cannot apply < to array ["a","b"] and array ["a","b"]"#,
    ),
    (
        "tags = obj",
        r#"cannot apply = to array ["a","b"] and object {"a":1}"#,
    ),
    (
        "name IN (1, 2)",
        r#"cannot apply IN to string "Ada" and number 1"#,
    ),
    (
        "n BETWEEN 'a' AND 'b'",
        r#"cannot apply BETWEEN to number 7 and string "a""#,
    ),
    (
        "n IS DISTINCT FROM 'x'",
        r#"cannot apply IS DISTINCT FROM to number 7 and string "x""#,
    ),
    (
        "CASE n WHEN 'x' THEN 1 END",
        r#"cannot apply CASE to number 7 and string "x""#,
    ),
    (
        "CASE WHEN n THEN 1 END",
        "CASE WHEN expects a boolean, found number 7",
    ),
    ("flag AND n", "AND expects a boolean, found number 7"),
    (
        "name OR flag",
        r#"OR expects a boolean, found string "Ada""#,
    ),
    ("NOT name", r#"NOT expects a boolean, found string "Ada""#),
    ("n IS TRUE", "IS TRUE expects a boolean, found number 7"),
    ("n LIKE 'a'", "cannot apply LIKE to number 7"),
    (
        "name ILIKE n",
        r#"cannot apply ILIKE to string "Ada" and number 7"#,
    ),
    (
        "name LIKE badpat",
        "LIKE pattern must not end with the escape character",
    ),
    (
        "CAST('abc' AS INT)",
        r#"cannot cast string "abc" to integer"#,
    ),
    (
        "CAST('1.5' AS INT)",
        r#"cannot cast string "1.5" to integer"#,
    ),
    (
        "CAST(1e19 AS BIGINT)",
        "cannot cast number 1e+19 to integer",
    ),
    (
        "CAST(tags AS INT)",
        r#"cannot cast array ["a","b"] to integer"#,
    ),
    ("CAST('x' AS DOUBLE)", r#"cannot cast string "x" to double"#),
    (
        "CAST('maybe' AS BOOLEAN)",
        r#"cannot cast string "maybe" to boolean"#,
    ),
    ("sqrt(-1)", "sqrt of a negative number"),
    ("exp(1000)", "result of exp is not a finite number"),
    ("ln(0)", "cannot take logarithm of zero"),
    ("log10(-1)", "cannot take logarithm of a negative number"),
    (
        "power(0, -1)",
        "zero raised to a negative power is undefined",
    ),
    ("power(2, 64)", "integer overflow in power(2, 64)"),
    ("power(-8, 0.5)", "result of power is not a finite number"),
    (
        "abs(-9223372036854775808)",
        "integer overflow in abs(-9223372036854775808)",
    ),
    (
        "lower(n)",
        "lower expects a string as argument 1, found number 7",
    ),
    (
        "substr(name, 'x')",
        r#"substr expects an integer as argument 2, found string "x""#,
    ),
    (
        "substr(name, 1, -1)",
        "negative substring length not allowed",
    ),
    (
        "round(score, 1.5)",
        "round expects an integer as argument 2, found number 1.5",
    ),
    (
        "abs(name)",
        r#"abs expects a number as argument 1, found string "Ada""#,
    ),
    (
        "cardinality(name)",
        r#"cardinality expects an array as argument 1, found string "Ada""#,
    ),
    (
        "split_part(csv, ',', 0)",
        "split_part field position must not be zero",
    ),
    (
        "repeat('x', 100000000)",
        "repeat: result would be too large",
    ),
    ("lpad('x', 100000000)", "lpad: result would be too large"),
    (
        "greatest(1, 'a')",
        r#"cannot apply GREATEST to string "a" and number 1"#,
    ),
    (
        "regexp_like(name, badre)",
        "regexp_like: invalid regular expression",
    ),
    (
        "regexp_like(name, 'a', name)",
        "regexp_like: unsupported regular expression flag 'A'",
    ),
    (
        "tags[1.5]",
        "array index must be an integer, found number 1.5",
    ),
    (
        "tags[flag]",
        "subscript must be an integer or a string, found boolean true",
    ),
];

#[test]
fn eval_errors_name_the_problem() {
    let mut failures = Vec::new();
    for (sql, expected) in EVAL_ERRORS {
        let result = RecordExpr::compile(sql).map(|e| e.eval(&record()));
        match result {
            Err(e) => failures.push(format!("{sql:?}: compile error {e}")),
            Ok(Ok(v)) => failures.push(format!("{sql:?}: evaluated to {v}")),
            Ok(Err(e)) if e.message.starts_with(expected) && e.sql == *sql => {}
            Ok(Err(e)) => failures.push(format!("{sql:?}: got {:?}", e.message)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn eval_error_display_includes_the_sql() {
    let e = eval_error("name + 1");
    assert_eq!(
        e.to_string(),
        r#"cannot apply + to string "Ada" and number 1 in "name + 1""#
    );
}

#[test]
fn filters_must_be_boolean() {
    let expr = RecordExpr::compile("n").expect("compiles");
    let e = expr
        .matches(&record())
        .expect_err("a number is not a filter result");
    assert_eq!(e.message, "a filter must be a boolean, found number 7");
    let expr = RecordExpr::compile("name").expect("compiles");
    let e = expr
        .matches(&record())
        .expect_err("a string is not a filter result");
    assert_eq!(
        e.message,
        r#"a filter must be a boolean, found string "Ada""#
    );
}

#[test]
fn try_cast_only_swallows_cast_errors() {
    let e = eval_error("TRY_CAST(n / 0 AS INT)");
    assert_eq!(e.message, "division by zero");
}

#[test]
fn long_values_are_shortened_in_messages() {
    let expr = RecordExpr::compile("s + 1").expect("compiles");
    let e = expr
        .eval(&json!({"s": "x".repeat(10_000)}))
        .expect_err("string + number fails");
    assert!(e.message.len() < 200, "{}", e.message);
}
