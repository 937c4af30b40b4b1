//! Dynamic typing rules shared by operators and functions: numeric
//! coercion, comparison, truthiness and the text form of values.

use std::cmp::Ordering;

use serde_json::{Number, Value};

/// Errors inside evaluation are plain messages; the public API attaches the SQL text.
pub(crate) type Res<T> = Result<T, String>;

/// Longest rendering of a value inside an error message, so that a huge
/// record field does not swamp the log line.
const MAX_SHOWN: usize = 60;

/// A JSON number split the way SQL arithmetic needs it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Num {
    /// Anything that fits in i64 exactly.
    Int(i64),
    /// Fractional, exponent-written, or beyond the i64 range.
    Float(f64),
}

impl Num {
    /// Reads a JSON number; integral floats like `3.0` stay floats on purpose.
    pub(crate) fn of(n: &Number) -> Num {
        match n.as_i64() {
            Some(i) => Num::Int(i),
            None => Num::Float(n.as_f64().unwrap_or(f64::NAN)),
        }
    }

    /// The value as a float, for operations that mix kinds.
    pub(crate) fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }
}

/// The number inside a JSON value, if it is one.
pub(crate) fn as_num(v: &Value) -> Option<Num> {
    match v {
        Value::Number(n) => Some(Num::of(n)),
        _ => None,
    }
}

/// Wraps a float result, rejecting what JSON cannot represent.
pub(crate) fn float_value(f: f64, what: &str) -> Res<Value> {
    Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| format!("result of {what} is not a finite number"))
}

/// The SQL-ish name of a JSON value's kind, used in error messages.
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Kind plus a shortened rendering, e.g. `string "ab"`, so messages show
/// what was actually found in the record.
pub(crate) fn describe(v: &Value) -> String {
    if v.is_null() {
        return "null".to_string();
    }
    let mut shown = v.to_string();
    if shown.chars().count() > MAX_SHOWN {
        shown = shown.chars().take(MAX_SHOWN).collect::<String>() + "…";
    }
    format!("{} {shown}", kind(v))
}

/// The message for an operator applied to operands of the wrong kinds.
pub(crate) fn mismatch(op: &str, a: &Value, b: &Value) -> String {
    format!("cannot apply {op} to {} and {}", describe(a), describe(b))
}

/// Reads a boolean operand with SQL's three values; `ctx` names the consumer.
pub(crate) fn truth(ctx: &str, v: &Value) -> Res<Option<bool>> {
    match v {
        Value::Bool(b) => Ok(Some(*b)),
        Value::Null => Ok(None),
        other => Err(format!(
            "{ctx} expects a boolean, found {}",
            describe(other)
        )),
    }
}

/// The text form used by `||`, `concat` and casts to text; `None` for NULL.
pub(crate) fn to_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Array(_) | Value::Object(_) => Some(v.to_string()),
    }
}

/// Orders an i64 against an f64 exactly, without the rounding that a
/// conversion of either side would introduce.
fn int_float_cmp(i: i64, f: f64) -> Ordering {
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    if f.is_nan() {
        return Ordering::Less;
    }
    if f >= TWO_POW_63 {
        return Ordering::Less;
    }
    if f < -TWO_POW_63 {
        return Ordering::Greater;
    }
    let whole = f.trunc();
    // In range and integral, so the conversion is exact.
    match i.cmp(&(whole as i64)) {
        Ordering::Equal => 0.0f64.partial_cmp(&(f - whole)).unwrap_or(Ordering::Equal),
        other => other,
    }
}

/// Numeric ordering across integers and floats.
pub(crate) fn num_cmp(a: Num, b: Num) -> Ordering {
    match (a, b) {
        (Num::Int(x), Num::Int(y)) => x.cmp(&y),
        (Num::Int(x), Num::Float(y)) => int_float_cmp(x, y),
        (Num::Float(x), Num::Int(y)) => int_float_cmp(y, x).reverse(),
        (Num::Float(x), Num::Float(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
    }
}

/// Structural JSON equality where numbers compare by value (`1 = 1.0`).
pub(crate) fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => num_cmp(Num::of(x), Num::of(y)) == Ordering::Equal,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, p)| y.get(k).is_some_and(|q| json_eq(p, q)))
        }
        _ => a == b,
    }
}

/// SQL ordering of two scalars: NULL gives `None`, mismatched kinds and
/// arrays or objects are errors naming `op`.
pub(crate) fn sql_cmp(op: &str, a: &Value, b: &Value) -> Res<Option<Ordering>> {
    match (a, b) {
        (Value::Null, _) | (_, Value::Null) => Ok(None),
        (Value::Number(x), Value::Number(y)) => Ok(Some(num_cmp(Num::of(x), Num::of(y)))),
        // Rust's str ordering is bytewise, which is what the spec asks for.
        (Value::String(x), Value::String(y)) => Ok(Some(x.as_str().cmp(y.as_str()))),
        (Value::Bool(x), Value::Bool(y)) => Ok(Some(x.cmp(y))),
        _ => Err(mismatch(op, a, b)),
    }
}

/// SQL equality: like [`sql_cmp`], but arrays and objects compare structurally.
pub(crate) fn sql_eq(op: &str, a: &Value, b: &Value) -> Res<Option<bool>> {
    match (a, b) {
        (Value::Null, _) | (_, Value::Null) => Ok(None),
        (Value::Array(_), Value::Array(_)) | (Value::Object(_), Value::Object(_)) => {
            Ok(Some(json_eq(a, b)))
        }
        _ => Ok(sql_cmp(op, a, b)?.map(|o| o == Ordering::Equal)),
    }
}

/// Binary arithmetic operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ArithOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Mod,
}

impl ArithOp {
    /// The operator as written in SQL, for messages.
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
            ArithOp::Mod => "%",
        }
    }
}

/// Applies an arithmetic operator with SQL rules: checked i64 for two
/// integers (division truncates), f64 as soon as one side is a float.
pub(crate) fn arith(op: ArithOp, a: &Value, b: &Value) -> Res<Value> {
    if a.is_null() || b.is_null() {
        return Ok(Value::Null);
    }
    let (Some(x), Some(y)) = (as_num(a), as_num(b)) else {
        return Err(mismatch(op.symbol(), a, b));
    };
    let sym = op.symbol();
    match (x, y) {
        (Num::Int(x), Num::Int(y)) => {
            let result = match op {
                ArithOp::Add => x.checked_add(y),
                ArithOp::Sub => x.checked_sub(y),
                ArithOp::Mul => x.checked_mul(y),
                ArithOp::Div | ArithOp::Mod if y == 0 => return Err("division by zero".into()),
                ArithOp::Div => x.checked_div(y),
                // i64::MIN % -1 is mathematically 0; only Rust's `%` panics on it.
                ArithOp::Mod => Some(x.wrapping_rem(y)),
            };
            result
                .map(Value::from)
                .ok_or_else(|| format!("integer overflow in {x} {sym} {y}"))
        }
        _ => {
            let (x, y) = (x.as_f64(), y.as_f64());
            let result = match op {
                ArithOp::Add => x + y,
                ArithOp::Sub => x - y,
                ArithOp::Mul => x * y,
                ArithOp::Div | ArithOp::Mod if y == 0.0 => return Err("division by zero".into()),
                ArithOp::Div => x / y,
                ArithOp::Mod => x % y,
            };
            float_value(result, sym)
        }
    }
}

/// Unary minus: checked for integers, since -i64::MIN does not exist.
pub(crate) fn negate(v: &Value) -> Res<Value> {
    match as_num(v) {
        _ if v.is_null() => Ok(Value::Null),
        Some(Num::Int(i)) => i
            .checked_neg()
            .map(Value::from)
            .ok_or_else(|| format!("integer overflow in -({i})")),
        Some(Num::Float(f)) => float_value(-f, "unary -"),
        None => Err(format!("cannot apply unary - to {}", describe(v))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn int_float_ordering_is_exact() {
        assert_eq!(
            num_cmp(Num::Int(i64::MAX), Num::Float(i64::MAX as f64)),
            Ordering::Less
        );
        assert_eq!(num_cmp(Num::Int(0), Num::Float(-0.5)), Ordering::Greater);
        assert_eq!(num_cmp(Num::Int(-1), Num::Float(-0.5)), Ordering::Less);
        assert_eq!(num_cmp(Num::Float(3.0), Num::Int(3)), Ordering::Equal);
        assert_eq!(
            num_cmp(Num::Int(i64::MIN), Num::Float(-1e300)),
            Ordering::Greater
        );
    }

    #[test]
    fn describe_truncates_long_values() {
        let long = "x".repeat(200);
        let shown = describe(&json!(long));
        assert!(shown.starts_with("string \"xxx"));
        assert!(shown.ends_with('…'));
        assert!(shown.chars().count() < 80);
        assert_eq!(describe(&json!(null)), "null");
    }

    #[test]
    fn structural_equality_compares_numbers_by_value() {
        assert!(json_eq(&json!([1, {"a": 2.0}]), &json!([1.0, {"a": 2}])));
        assert!(!json_eq(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
        assert!(!json_eq(&json!([1]), &json!(["1"])));
    }
}
