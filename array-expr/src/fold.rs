//! Python scalars and Python's own arithmetic on them, which runs before NumPy ever sees the value.

use crate::dtype::DType;
use crate::parse::Prefix;
use crate::tree::{BinaryOp, Scalar};

/// A Python scalar; under NEP 50 it is "weak" and adapts to the array dtype it meets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum PyScalar {
    Bool(bool),
    /// Python ints are unbounded; i128 covers every literal and intermediate we accept.
    Int(i128),
    Float(f64),
}

/// NEP 50 compares a weak scalar with an array by kind only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Category {
    Bool,
    Int,
    Float,
}

pub(crate) fn category(d: DType) -> Category {
    match d {
        DType::Bool => Category::Bool,
        DType::I32 | DType::I64 => Category::Int,
        DType::F32 | DType::F64 => Category::Float,
    }
}

impl PyScalar {
    pub(crate) fn category(self) -> Category {
        match self {
            PyScalar::Bool(_) => Category::Bool,
            PyScalar::Int(_) => Category::Int,
            PyScalar::Float(_) => Category::Float,
        }
    }

    /// Python's type name, for messages.
    pub(crate) fn type_name(self) -> &'static str {
        match self {
            PyScalar::Bool(_) => "bool",
            PyScalar::Int(_) => "int",
            PyScalar::Float(_) => "float",
        }
    }

    /// The dtype NumPy 2 gives the scalar when no array decides (int64 for Python ints on 64-bit Linux).
    pub(crate) fn default_dtype(self) -> DType {
        match self {
            PyScalar::Bool(_) => DType::Bool,
            PyScalar::Int(_) => DType::I64,
            PyScalar::Float(_) => DType::F64,
        }
    }

    fn as_int(self) -> Option<i128> {
        match self {
            PyScalar::Bool(b) => Some(i128::from(b)),
            PyScalar::Int(v) => Some(v),
            PyScalar::Float(_) => None,
        }
    }

    fn as_f64(self) -> f64 {
        match self {
            PyScalar::Bool(b) => f64::from(u8::from(b)),
            PyScalar::Int(v) => v as f64,
            PyScalar::Float(v) => v,
        }
    }

    /// Converts to a value of `dtype`; fails when an int does not fit, as NumPy 2 raises OverflowError.
    pub(crate) fn to_scalar(self, dtype: DType) -> Result<Scalar, String> {
        match dtype {
            DType::Bool => Ok(Scalar::Bool(match self {
                PyScalar::Bool(b) => b,
                PyScalar::Int(v) => v != 0,
                PyScalar::Float(v) => v != 0.0,
            })),
            DType::I32 | DType::I64 => {
                let Some(v) = self.as_int() else {
                    return Err(format!("cannot convert a Python float to {dtype}"));
                };
                let fits = match dtype {
                    DType::I32 => i32::try_from(v).is_ok(),
                    _ => i64::try_from(v).is_ok(),
                };
                let (lo, hi) = match dtype {
                    DType::I32 => (i128::from(i32::MIN), i128::from(i32::MAX)),
                    _ => (i128::from(i64::MIN), i128::from(i64::MAX)),
                };
                match i64::try_from(v) {
                    Ok(v) if fits => Ok(Scalar::Int(v)),
                    _ => Err(format!(
                        "Python integer {v} is out of bounds for {dtype} ({lo} to {hi})"
                    )),
                }
            }
            DType::F32 => Ok(Scalar::Float(f64::from(self.as_f64() as f32))),
            DType::F64 => Ok(Scalar::Float(self.as_f64())),
        }
    }
}

/// Python's unary `-`, `+`, `~` on a Python scalar.
pub(crate) fn unary(op: Prefix, a: PyScalar) -> Result<PyScalar, String> {
    let too_large = || "integer result is too large".to_string();
    match (op, a) {
        (_, PyScalar::Float(v)) => match op {
            Prefix::Neg => Ok(PyScalar::Float(-v)),
            Prefix::Pos => Ok(a),
            Prefix::Invert => Err("bad operand type for unary ~: 'float'".to_string()),
        },
        (Prefix::Neg, _) => a
            .as_int()
            .and_then(i128::checked_neg)
            .map(PyScalar::Int)
            .ok_or_else(too_large),
        // Python's bools are ints here: +True == 1 and ~True == -2.
        (Prefix::Pos, _) => a.as_int().map(PyScalar::Int).ok_or_else(too_large),
        (Prefix::Invert, _) => a.as_int().map(|v| PyScalar::Int(!v)).ok_or_else(too_large),
    }
}

/// Python's binary operator on two Python scalars.
pub(crate) fn binary(op: BinaryOp, a: PyScalar, b: PyScalar) -> Result<PyScalar, String> {
    use BinaryOp::{And, Or, Xor};
    if op.is_comparison() {
        let result = match (a.as_int(), b.as_int()) {
            (Some(x), Some(y)) => compare(op, x, y),
            _ => compare(op, a.as_f64(), b.as_f64()),
        };
        return Ok(PyScalar::Bool(result));
    }
    if matches!(op, And | Or | Xor) {
        if let (PyScalar::Bool(x), PyScalar::Bool(y)) = (a, b) {
            return Ok(PyScalar::Bool(bitwise(op, u8::from(x), u8::from(y)) != 0));
        }
        return match (a.as_int(), b.as_int()) {
            (Some(x), Some(y)) => Ok(PyScalar::Int(bitwise(op, x, y))),
            _ => Err(format!(
                "unsupported operand types for {}: '{}' and '{}'",
                op.symbol(),
                a.type_name(),
                b.type_name()
            )),
        };
    }
    match (a.as_int(), b.as_int()) {
        (Some(x), Some(y)) => int_arith(op, x, y),
        _ => float_arith(op, a.as_f64(), b.as_f64()).map(PyScalar::Float),
    }
}

fn compare<T: PartialOrd>(op: BinaryOp, x: T, y: T) -> bool {
    match op {
        BinaryOp::Eq => x == y,
        BinaryOp::Ne => x != y,
        BinaryOp::Lt => x < y,
        BinaryOp::Le => x <= y,
        BinaryOp::Gt => x > y,
        _ => x >= y,
    }
}

fn bitwise<T>(op: BinaryOp, x: T, y: T) -> T
where
    T: std::ops::BitAnd<Output = T> + std::ops::BitOr<Output = T> + std::ops::BitXor<Output = T>,
{
    match op {
        BinaryOp::And => x & y,
        BinaryOp::Or => x | y,
        _ => x ^ y,
    }
}

fn int_arith(op: BinaryOp, x: i128, y: i128) -> Result<PyScalar, String> {
    let too_large = || "integer result is too large".to_string();
    let by_zero = || "integer division or modulo by zero".to_string();
    let v = match op {
        BinaryOp::Add => x.checked_add(y).ok_or_else(too_large)?,
        BinaryOp::Sub => x.checked_sub(y).ok_or_else(too_large)?,
        BinaryOp::Mul => x.checked_mul(y).ok_or_else(too_large)?,
        BinaryOp::Div if y == 0 => return Err("division by zero".to_string()),
        BinaryOp::Div => return Ok(PyScalar::Float(x as f64 / y as f64)),
        BinaryOp::FloorDiv | BinaryOp::Mod if y == 0 => return Err(by_zero()),
        BinaryOp::FloorDiv => {
            let q = x.checked_div(y).ok_or_else(too_large)?;
            // Rust truncates toward zero; Python floors, which differs when the signs differ.
            if x % y != 0 && ((x < 0) != (y < 0)) {
                q - 1
            } else {
                q
            }
        }
        BinaryOp::Mod => {
            let r = x.checked_rem(y).ok_or_else(too_large)?;
            if r != 0 && ((r < 0) != (y < 0)) {
                r + y
            } else {
                r
            }
        }
        BinaryOp::Pow => return int_pow(x, y),
        _ => return Err(format!("unsupported operator {}", op.symbol())),
    };
    Ok(PyScalar::Int(v))
}

fn int_pow(x: i128, y: i128) -> Result<PyScalar, String> {
    if y < 0 {
        // Python gives a float for a negative integer exponent.
        if x == 0 {
            return Err("0.0 cannot be raised to a negative power".to_string());
        }
        return Ok(PyScalar::Float((x as f64).powf(y as f64)));
    }
    let v = match x {
        0 | 1 => {
            if y == 0 {
                1
            } else {
                x
            }
        }
        -1 => {
            if y % 2 == 0 {
                1
            } else {
                -1
            }
        }
        _ => u32::try_from(y)
            .ok()
            .and_then(|e| x.checked_pow(e))
            .ok_or_else(|| "integer result is too large".to_string())?,
    };
    Ok(PyScalar::Int(v))
}

fn float_arith(op: BinaryOp, x: f64, y: f64) -> Result<f64, String> {
    match op {
        BinaryOp::Add => Ok(x + y),
        BinaryOp::Sub => Ok(x - y),
        BinaryOp::Mul => Ok(x * y),
        BinaryOp::Div if y == 0.0 => Err("float division by zero".to_string()),
        BinaryOp::Div => Ok(x / y),
        BinaryOp::FloorDiv if y == 0.0 => Err("float floor division by zero".to_string()),
        BinaryOp::Mod if y == 0.0 => Err("float modulo by zero".to_string()),
        BinaryOp::FloorDiv => Ok(floor_divmod(x, y).0),
        BinaryOp::Mod => Ok(floor_divmod(x, y).1),
        BinaryOp::Pow => float_pow(x, y),
        _ => Err(format!("unsupported operator {}", op.symbol())),
    }
}

/// Python's float divmod: the remainder takes the divisor's sign and the quotient is floored.
fn floor_divmod(x: f64, y: f64) -> (f64, f64) {
    let mut rem = x % y;
    let mut quot = (x - rem) / y;
    if rem != 0.0 {
        if (y < 0.0) != (rem < 0.0) {
            rem += y;
            quot -= 1.0;
        }
    } else {
        rem = 0.0f64.copysign(y);
    }
    let floored = if quot != 0.0 {
        let f = quot.floor();
        // (x - rem) / y can land just below an integer; round it back up as CPython does.
        if quot - f > 0.5 { f + 1.0 } else { f }
    } else {
        0.0f64.copysign(x / y)
    };
    (floored, rem)
}

fn float_pow(x: f64, y: f64) -> Result<f64, String> {
    if x == 0.0 && y < 0.0 {
        return Err("0.0 cannot be raised to a negative power".to_string());
    }
    if x < 0.0 && y.is_finite() && y.fract() != 0.0 {
        return Err(
            "a negative number raised to a fractional power is complex in Python".to_string(),
        );
    }
    let v = x.powf(y);
    if v.is_infinite() && x.is_finite() && y.is_finite() {
        return Err("result of ** is too large for a float".to_string());
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::PyScalar::{Bool, Float, Int};
    use super::*;

    #[test]
    fn floor_division_and_modulo_follow_python() {
        // Values from CPython: 7 // -2 == -4, 7 % -2 == -1, -7 // 2 == -4, -7 % 2 == 1.
        let cases = [
            (7, -2, -4, -1),
            (-7, 2, -4, 1),
            (7, 2, 3, 1),
            (-7, -2, 3, -1),
        ];
        for (x, y, q, r) in cases {
            assert_eq!(binary(BinaryOp::FloorDiv, Int(x), Int(y)), Ok(Int(q)));
            assert_eq!(binary(BinaryOp::Mod, Int(x), Int(y)), Ok(Int(r)));
        }
        // CPython: -7.5 // 2 == -4.0, -7.5 % 2 == 0.5, 7.5 % -2 == -0.5.
        assert_eq!(
            binary(BinaryOp::FloorDiv, Float(-7.5), Int(2)),
            Ok(Float(-4.0))
        );
        assert_eq!(binary(BinaryOp::Mod, Float(-7.5), Int(2)), Ok(Float(0.5)));
        assert_eq!(binary(BinaryOp::Mod, Float(7.5), Int(-2)), Ok(Float(-0.5)));
    }

    #[test]
    fn python_types_of_results() {
        assert_eq!(binary(BinaryOp::Add, Bool(true), Bool(true)), Ok(Int(2)));
        assert_eq!(
            binary(BinaryOp::And, Bool(true), Bool(false)),
            Ok(Bool(false))
        );
        assert_eq!(binary(BinaryOp::Xor, Int(6), Bool(true)), Ok(Int(7)));
        assert_eq!(binary(BinaryOp::Div, Int(1), Int(2)), Ok(Float(0.5)));
        assert_eq!(binary(BinaryOp::Pow, Int(2), Int(-1)), Ok(Float(0.5)));
        assert_eq!(binary(BinaryOp::Pow, Int(-1), Int(1_000_001)), Ok(Int(-1)));
        assert_eq!(binary(BinaryOp::Lt, Int(1), Float(1.5)), Ok(Bool(true)));
        assert_eq!(unary(Prefix::Invert, Bool(true)), Ok(Int(-2)));
        assert_eq!(unary(Prefix::Neg, Bool(true)), Ok(Int(-1)));
    }

    #[test]
    fn python_errors() {
        let err = |r: Result<PyScalar, String>| r.expect_err("Python raises here");
        assert_eq!(
            err(binary(BinaryOp::Div, Int(1), Int(0))),
            "division by zero"
        );
        assert!(err(binary(BinaryOp::And, Float(1.0), Int(1))).contains("'float' and 'int'"));
        assert!(err(binary(BinaryOp::Pow, Int(10), Int(400))).contains("too large"));
        assert!(err(binary(BinaryOp::Pow, Float(-8.0), Float(0.5))).contains("complex"));
        assert!(err(unary(Prefix::Invert, Float(1.0))).contains("unary ~"));
    }

    #[test]
    fn conversion_checks_integer_range() {
        assert_eq!(Int(5).to_scalar(DType::F32), Ok(Scalar::Float(5.0)));
        assert_eq!(
            Float(0.1).to_scalar(DType::F32),
            Ok(Scalar::Float(f64::from(0.1f32)))
        );
        assert_eq!(Int(0).to_scalar(DType::Bool), Ok(Scalar::Bool(false)));
        assert_eq!(Bool(true).to_scalar(DType::I32), Ok(Scalar::Int(1)));
        let msg = Int(1 << 31)
            .to_scalar(DType::I32)
            .expect_err("2**31 overflows int32");
        assert_eq!(
            msg,
            "Python integer 2147483648 is out of bounds for int32 (-2147483648 to 2147483647)"
        );
        assert!(Int(1 << 63).to_scalar(DType::I64).is_err());
        assert_eq!(
            Int(-(1 << 63)).to_scalar(DType::I64),
            Ok(Scalar::Int(i64::MIN))
        );
    }
}
