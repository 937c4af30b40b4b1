//! Casts of integers to decimals wide enough for every integer of their type, without
//! arrow's per-value checks.
//!
//! SQL multiplies a decimal by an integer column by casting the integer to a decimal first
//! (TPC-H Q11's `ps_supplycost * ps_availqty`: an `Int32` to `Decimal128(10, 0)`). Arrow casts
//! each value with a checked multiplication by the scale's power of ten and then checks it
//! against the precision: 19% of the CPU samples of a scan of `partsupp` summing that product.
//! When the decimal has at least as many integer digits as the widest value of the integer
//! type (10 for `Int32`), no value can fail either check, so [`WideningCastExpr`] computes
//! `v × 10^scale` plainly. Other casts are left to arrow.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, ArrowPrimitiveType, AsArray, Decimal128Array};
use datafusion::arrow::datatypes::{
    DataType, Decimal128Type, Int8Type, Int16Type, Int32Type, Int64Type, Schema, UInt8Type,
    UInt16Type, UInt32Type, UInt64Type,
};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{Result, internal_err};
use datafusion::logical_expr::ColumnarValue;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::CastExpr;

/// `CAST(input AS Decimal128(precision, scale))` of an integer `input` that always fits.
#[derive(Debug, Clone, Eq)]
pub struct WideningCastExpr {
    input: Arc<dyn PhysicalExpr>,
    from: DataType,
    precision: u8,
    scale: i8,
}

// By hand, as `CastExpr` does: a derive cannot compare `Arc<dyn PhysicalExpr>` fields.
impl PartialEq for WideningCastExpr {
    fn eq(&self, other: &Self) -> bool {
        self.input.eq(&other.input)
            && self.from == other.from
            && self.precision == other.precision
            && self.scale == other.scale
    }
}

impl Hash for WideningCastExpr {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.input.hash(state);
        self.from.hash(state);
        self.precision.hash(state);
        self.scale.hash(state);
    }
}

/// The most decimal digits of a value of an integer type.
fn digits(t: &DataType) -> Option<i16> {
    Some(match t {
        DataType::Int8 | DataType::UInt8 => 3,
        DataType::Int16 | DataType::UInt16 => 5,
        DataType::Int32 | DataType::UInt32 => 10,
        DataType::Int64 => 19,
        DataType::UInt64 => 20,
        _ => return None,
    })
}

impl WideningCastExpr {
    /// `cast` as a widening cast, when it casts an integer of `schema` to a `Decimal128`
    /// with a non-negative scale and room for all the integer type's digits.
    pub fn try_new(cast: &CastExpr, schema: &Schema) -> Option<Self> {
        let from = cast.expr().data_type(schema).ok()?;
        let DataType::Decimal128(precision, scale) = *cast.cast_type() else {
            return None;
        };
        let room = i16::from(precision) - i16::from(scale);
        (scale >= 0 && room >= digits(&from)?).then(|| Self {
            input: Arc::clone(cast.expr()),
            from,
            precision,
            scale,
        })
    }

    fn target(&self) -> DataType {
        DataType::Decimal128(self.precision, self.scale)
    }

    fn widened(&self, a: &ArrayRef) -> Result<ArrayRef> {
        // 10^scale fits: scale ≤ precision − digits ≤ 38 − 3.
        let m = 10i128.pow(u32::try_from(self.scale).unwrap_or(0));
        fn by<T: ArrowPrimitiveType>(a: &ArrayRef, f: impl Fn(T::Native) -> i128) -> Decimal128Array
        where
            T::Native: Copy,
        {
            a.as_primitive::<T>().unary::<_, Decimal128Type>(f)
        }
        let out = match self.from {
            DataType::Int8 => by::<Int8Type>(a, |v| i128::from(v) * m),
            DataType::Int16 => by::<Int16Type>(a, |v| i128::from(v) * m),
            DataType::Int32 => by::<Int32Type>(a, |v| i128::from(v) * m),
            DataType::Int64 => by::<Int64Type>(a, |v| i128::from(v) * m),
            DataType::UInt8 => by::<UInt8Type>(a, |v| i128::from(v) * m),
            DataType::UInt16 => by::<UInt16Type>(a, |v| i128::from(v) * m),
            DataType::UInt32 => by::<UInt32Type>(a, |v| i128::from(v) * m),
            DataType::UInt64 => by::<UInt64Type>(a, |v| i128::from(v) * m),
            ref other => return internal_err!("a widening cast from {other}"),
        };
        Ok(Arc::new(
            out.with_precision_and_scale(self.precision, self.scale)?,
        ))
    }
}

impl fmt::Display for WideningCastExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CAST({} AS {})", self.input, self.target())
    }
}

impl PhysicalExpr for WideningCastExpr {
    fn data_type(&self, _input_schema: &Schema) -> Result<DataType> {
        Ok(self.target())
    }

    fn nullable(&self, input_schema: &Schema) -> Result<bool> {
        self.input.nullable(input_schema)
    }

    fn evaluate(&self, batch: &RecordBatch) -> Result<ColumnarValue> {
        match self.input.evaluate(batch)? {
            ColumnarValue::Array(a) if *a.data_type() == self.from => {
                Ok(ColumnarValue::Array(self.widened(&a)?))
            }
            // A scalar, or an input of another type than planned: arrow's cast.
            other => other.cast_to(&self.target(), None),
        }
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        vec![&self.input]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn PhysicalExpr>>,
    ) -> Result<Arc<dyn PhysicalExpr>> {
        let input = crate::one_input::only_input(children, "a widening cast")?;
        Ok(Arc::new(Self {
            input,
            ..(*self).clone()
        }))
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CAST(")?;
        self.input.fmt_sql(f)?;
        write!(f, " AS {})", self.target())
    }
}
