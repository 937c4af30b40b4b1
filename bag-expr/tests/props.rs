//! Property tests: integer arithmetic against Rust's checked operations,
//! string ordering against Rust's, LIKE against a naive reference matcher,
//! and no panics on arbitrary input.

use kask_bag_expr::{EvalError, RecordExpr};
use proptest::prelude::*;
use serde_json::{Value, json};

fn eval(sql: &str, a: impl Into<Value>, b: impl Into<Value>) -> Result<Value, EvalError> {
    RecordExpr::compile(sql)
        .expect("test SQL compiles")
        .eval(&json!({"a": a.into(), "b": b.into()}))
}

fn is_error(result: &Result<Value, EvalError>, prefix: &str) -> bool {
    matches!(result, Err(e) if e.message.starts_with(prefix))
}

/// Divisors biased towards 0, ±1 and the extremes, where the edge cases live.
fn divisor() -> impl Strategy<Value = i64> {
    prop_oneof![any::<i64>(), -2i64..=2, Just(i64::MIN), Just(i64::MAX)]
}

fn dividend() -> impl Strategy<Value = i64> {
    prop_oneof![any::<i64>(), Just(i64::MIN), Just(i64::MAX), -10i64..=10]
}

/// The obvious exponential-time LIKE matcher, for `%` and `_` without escapes.
fn reference_like(text: &[char], pattern: &[char]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some(('%', rest)) => (0..=text.len()).any(|i| reference_like(&text[i..], rest)),
        Some(('_', rest)) => !text.is_empty() && reference_like(&text[1..], rest),
        Some((c, rest)) => text.first() == Some(c) && reference_like(&text[1..], rest),
    }
}

const SQL_PIECES: &[&str] = &[
    "a",
    "b.c",
    "1",
    "2.5",
    "'x'",
    "''",
    "+",
    "-",
    "*",
    "/",
    "%",
    "||",
    "(",
    ")",
    ",",
    "=",
    "<",
    ">=",
    "<>",
    "AND",
    "OR",
    "NOT",
    "IS",
    "NULL",
    "TRUE",
    "LIKE",
    "ILIKE",
    "IN",
    "BETWEEN",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "CAST",
    "AS",
    "INT",
    "::",
    "lower(",
    "substr(",
    "coalesce(",
    "regexp_like(",
    "count(",
    "[1]",
    "['k']",
    "'a%'",
    "ESCAPE",
    "'('",
    "0",
    "é",
];

proptest! {
    #[test]
    fn add_sub_mul_match_checked_rust(a in dividend(), b in dividend()) {
        for (op, expected) in [("+", a.checked_add(b)), ("-", a.checked_sub(b)), ("*", a.checked_mul(b))] {
            let result = eval(&format!("a {op} b"), a, b);
            match expected {
                Some(v) => prop_assert_eq!(result, Ok(json!(v)), "{} {} {}", a, op, b),
                None => prop_assert!(is_error(&result, "integer overflow"), "{a} {op} {b}: {result:?}"),
            }
        }
    }

    #[test]
    fn div_and_mod_truncate_like_rust(a in dividend(), b in divisor()) {
        let quotient = eval("a / b", a, b);
        let remainder = eval("a % b", a, b);
        if b == 0 {
            prop_assert!(is_error(&quotient, "division by zero"), "{quotient:?}");
            prop_assert!(is_error(&remainder, "division by zero"), "{remainder:?}");
        } else {
            match a.checked_div(b) {
                Some(q) => prop_assert_eq!(quotient, Ok(json!(q))),
                None => prop_assert!(is_error(&quotient, "integer overflow"), "{quotient:?}"),
            }
            // Rust's `%` panics only for i64::MIN % -1, whose true value is 0.
            let expected = a.checked_rem(b).unwrap_or(0);
            prop_assert_eq!(remainder, Ok(json!(expected)));
        }
    }

    #[test]
    fn string_comparisons_match_rust_ordering(x in "\\PC{0,6}", y in "\\PC{0,6}") {
        let checks = [
            ("a < b", x < y),
            ("a <= b", x <= y),
            ("a > b", x > y),
            ("a >= b", x >= y),
            ("a = b", x == y),
            ("a <> b", x != y),
        ];
        for (sql, expected) in checks {
            prop_assert_eq!(eval(sql, x.as_str(), y.as_str()), Ok(json!(expected)), "{:?} vs {:?}", x, y);
        }
        prop_assert_eq!(eval("a = a", x.as_str(), 0), Ok(json!(true)));
    }

    #[test]
    fn like_agrees_with_reference(text in "[ab%_]{0,8}", pattern in "[ab%_]{0,7}") {
        let chars: Vec<char> = text.chars().collect();
        let pat: Vec<char> = pattern.chars().collect();
        let expected = reference_like(&chars, &pat);
        // Literal patterns are compiled once; field patterns at each evaluation.
        let literal = eval(&format!("a LIKE '{pattern}'"), text.as_str(), 0);
        prop_assert_eq!(literal, Ok(json!(expected)), "{:?} LIKE {:?}", text, pattern);
        let dynamic = eval("a LIKE b", text.as_str(), pattern.as_str());
        prop_assert_eq!(dynamic, Ok(json!(expected)));
        let negated = eval("a NOT LIKE b", text.as_str(), pattern.as_str());
        prop_assert_eq!(negated, Ok(json!(!expected)));
    }

    #[test]
    fn ilike_is_like_on_lowercase(text in "[abAB%_]{0,8}", pattern in "[abAB%_]{0,7}") {
        let expected = eval("lower(a) LIKE lower(b)", text.as_str(), pattern.as_str());
        prop_assert_eq!(eval("a ILIKE b", text.as_str(), pattern.as_str()), expected);
    }

    #[test]
    fn arbitrary_text_never_panics(sql in "\\PC{0,30}") {
        check_no_panic(&sql);
    }

    #[test]
    fn sql_token_soup_never_panics(pieces in prop::collection::vec(prop::sample::select(SQL_PIECES), 0..14)) {
        check_no_panic(&pieces.join(" "));
    }
}

/// Compiling either succeeds or points inside (or just past) the text, and
/// evaluating a compiled expression returns rather than panics.
fn check_no_panic(sql: &str) {
    match RecordExpr::compile(sql) {
        Ok(expr) => {
            let _ = expr.eval(&json!({"a": 1, "b": {"c": "x"}, "k": [1]}));
            let _ = expr.eval(&json!("line"));
            let _ = expr.fields();
        }
        Err(e) => {
            let lines: Vec<&str> = sql.split('\n').collect();
            let line = usize::try_from(e.line).expect("line fits usize");
            assert!(line >= 1 && line <= lines.len(), "{sql:?}: {e:?}");
            let width = u64::try_from(lines[line - 1].chars().count()).expect("width fits u64");
            assert!(e.column >= 1 && e.column <= width + 1, "{sql:?}: {e:?}");
        }
    }
}
