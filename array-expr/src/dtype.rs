//! Element types and NumPy's promotion between two arrays.

use std::fmt;

/// An element type, ordered as NumPy promotes within a kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    /// `bool`.
    Bool,
    /// `int32`.
    I32,
    /// `int64`.
    I64,
    /// `float32`.
    F32,
    /// `float64`.
    F64,
}

impl DType {
    /// Every dtype, in promotion order.
    pub const ALL: [DType; 5] = [DType::Bool, DType::I32, DType::I64, DType::F32, DType::F64];

    /// NumPy's name for the dtype.
    pub fn name(self) -> &'static str {
        match self {
            DType::Bool => "bool",
            DType::I32 => "int32",
            DType::I64 => "int64",
            DType::F32 => "float32",
            DType::F64 => "float64",
        }
    }

    /// True for float32 and float64.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }

    /// True for int32 and int64; bool does not count as an integer here.
    pub fn is_int(self) -> bool {
        matches!(self, DType::I32 | DType::I64)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// NumPy's result_type for two array operands (no scalars): bool<i32<i64; f32 with i32/i64 -> f64; f32+f64 -> f64; bool with anything -> the other.
pub fn promote(a: DType, b: DType) -> DType {
    match (a, b) {
        _ if a == b => a,
        (DType::Bool, other) | (other, DType::Bool) => other,
        (x, y) if x.is_int() == y.is_int() => x.max(y),
        // float32 cannot hold every int32 exactly, so NumPy goes to float64 for any int/float mix.
        _ => DType::F64,
    }
}

#[cfg(test)]
mod tests {
    use super::DType::{Bool, F32, F64, I32, I64};
    use super::*;

    #[test]
    fn promotion_table_matches_numpy() {
        // Upper triangle of np.result_type over the five dtypes, written out from NumPy 2.
        let table = [
            (Bool, Bool, Bool),
            (Bool, I32, I32),
            (Bool, I64, I64),
            (Bool, F32, F32),
            (Bool, F64, F64),
            (I32, I32, I32),
            (I32, I64, I64),
            (I32, F32, F64),
            (I32, F64, F64),
            (I64, I64, I64),
            (I64, F32, F64),
            (I64, F64, F64),
            (F32, F32, F32),
            (F32, F64, F64),
            (F64, F64, F64),
        ];
        for (a, b, want) in table {
            assert_eq!(promote(a, b), want, "{a} with {b}");
            assert_eq!(promote(b, a), want, "{b} with {a}");
        }
    }

    #[test]
    fn names_and_kinds() {
        let names: Vec<_> = DType::ALL.iter().map(|d| d.name()).collect();
        assert_eq!(names, ["bool", "int32", "int64", "float32", "float64"]);
        assert!(I32.is_int() && I64.is_int() && !Bool.is_int() && !F32.is_int());
        assert!(F32.is_float() && F64.is_float() && !I64.is_float() && !Bool.is_float());
        assert_eq!(F32.to_string(), "float32");
    }
}
