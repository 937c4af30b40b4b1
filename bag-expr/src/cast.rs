//! `CAST` / `TRY_CAST` conversions between JSON kinds.

use serde_json::Value;

use crate::value::{Num, Res, as_num, describe, float_value, to_text};

/// The kinds an expression can be cast to; SQL's many spellings map onto these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CastTarget {
    /// INT, INTEGER, BIGINT, SMALLINT...: a 64-bit integer.
    Int,
    /// DOUBLE, FLOAT, REAL, DECIMAL, NUMERIC...: a 64-bit float.
    Float,
    /// VARCHAR, TEXT, STRING, CHAR...
    Text,
    /// BOOLEAN, BOOL.
    Bool,
}

impl CastTarget {
    /// The SQL name used in messages.
    fn name(self) -> &'static str {
        match self {
            CastTarget::Int => "integer",
            CastTarget::Float => "double",
            CastTarget::Text => "text",
            CastTarget::Bool => "boolean",
        }
    }
}

/// Converts `v`; NULL stays NULL, impossible conversions are errors
/// (which `TRY_CAST` turns into NULL).
pub(crate) fn cast(v: &Value, target: CastTarget) -> Res<Value> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    let fail = || format!("cannot cast {} to {}", describe(v), target.name());
    match target {
        CastTarget::Int => match v {
            Value::Number(n) => match Num::of(n) {
                Num::Int(i) => Ok(Value::from(i)),
                Num::Float(f) => float_to_int(f).map(Value::from).ok_or_else(fail),
            },
            Value::String(s) => s.trim().parse::<i64>().map(Value::from).map_err(|_| fail()),
            Value::Bool(b) => Ok(Value::from(i64::from(*b))),
            _ => Err(fail()),
        },
        CastTarget::Float => match v {
            Value::Number(n) => float_value(Num::of(n).as_f64(), "cast"),
            Value::String(s) => match s.trim().parse::<f64>() {
                Ok(f) if f.is_finite() => float_value(f, "cast"),
                _ => Err(fail()),
            },
            Value::Bool(b) => float_value(if *b { 1.0 } else { 0.0 }, "cast"),
            _ => Err(fail()),
        },
        CastTarget::Text => to_text(v).map(Value::String).ok_or_else(fail),
        CastTarget::Bool => match v {
            Value::Bool(_) => Ok(v.clone()),
            Value::Number(_) => {
                let n = as_num(v).ok_or_else(fail)?;
                Ok(Value::Bool(n.as_f64() != 0.0))
            }
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "t" | "1" | "yes" | "y" | "on" => Ok(Value::Bool(true)),
                "false" | "f" | "0" | "no" | "n" | "off" => Ok(Value::Bool(false)),
                _ => Err(fail()),
            },
            _ => Err(fail()),
        },
    }
}

/// SQL rounds (half away from zero) when a float becomes an integer.
fn float_to_int(f: f64) -> Option<i64> {
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    let r = f.round();
    (-TWO_POW_63..TWO_POW_63).contains(&r).then_some(r as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn float_to_int_rounds_half_away_from_zero() {
        assert_eq!(cast(&json!(2.5), CastTarget::Int), Ok(json!(3)));
        assert_eq!(cast(&json!(-2.5), CastTarget::Int), Ok(json!(-3)));
        assert_eq!(cast(&json!(2.4), CastTarget::Int), Ok(json!(2)));
        assert!(cast(&json!(1e19), CastTarget::Int).is_err());
    }

    #[test]
    fn text_of_structures_is_compact_json() {
        assert_eq!(
            cast(&json!([1, "a"]), CastTarget::Text),
            Ok(json!("[1,\"a\"]"))
        );
        assert_eq!(
            cast(&json!({"a": true}), CastTarget::Text),
            Ok(json!("{\"a\":true}"))
        );
    }
}
