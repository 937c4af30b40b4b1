//! Decimal additions, subtractions and products without arrow's per-value overflow checks,
//! where no overflow can happen.
//!
//! Arrow computes every `Decimal128` `+`, `-` and `*` with checked 128-bit operations, value by
//! value through a fallible closure: in TPC-H Q1 (`l_extendedprice * (1 - l_discount) * (1 +
//! l_tax)`) that was about a quarter of the CPU samples. Yet when both operands' values fit in
//! 64 bits (as every price, quantity and rate does), their product and a sum of two rescaled
//! values fit in 127 bits and cannot overflow: the result is the same integer whether checked or
//! not. [`ExactDecimalExpr`] checks that per batch (one pass over each operand) and then
//! computes with plain 64×64→128-bit products; any batch with a wider value, and any operand of
//! another type, goes through arrow's own kernel, with its errors.
//!
//! Casts of integer operands to decimals get the same treatment ([`crate::widening_cast`]).
//!
//! A task applies [`exact_decimal_arithmetic`] to its stage's sub-plan after decoding it (the
//! expression is not one datafusion-proto knows, and the plan pod's plan is unchanged).

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Decimal128Array, new_empty_array};
use datafusion::arrow::compute::kernels::numeric;
use datafusion::arrow::compute::{binary, unary};
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, Operator};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{BinaryExpr, CastExpr};
use datafusion::physical_expr_common::datum::apply;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::projection::ProjectionExec;

use crate::operator_exprs::{changed, projection_rewritten};
use crate::widening_cast::WideningCastExpr;

/// The operations rewritten, with what each needs to compute its result from 64-bit values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Op {
    Mul,
    /// `left * l + right * r` (a subtraction negates `r`), rescaling both to the result's scale.
    Sum {
        l: i64,
        r: i64,
    },
}

/// `left op right` over `Decimal128` operands, equal to arrow's checked kernel.
#[derive(Debug, Clone, Eq)]
pub struct ExactDecimalExpr {
    left: Arc<dyn PhysicalExpr>,
    right: Arc<dyn PhysicalExpr>,
    operator: Operator,
    op: Op,
    /// The operands' types the fast path was chosen for, and the result's.
    types: [DataType; 3],
}

// By hand, as `BinaryExpr` does: a derive cannot compare `Arc<dyn PhysicalExpr>` fields
// (rust-lang/rust#78808).
impl PartialEq for ExactDecimalExpr {
    fn eq(&self, other: &Self) -> bool {
        self.left.eq(&other.left)
            && self.right.eq(&other.right)
            && self.operator == other.operator
            && self.op == other.op
            && self.types == other.types
    }
}

impl Hash for ExactDecimalExpr {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.left.hash(state);
        self.right.hash(state);
        self.operator.hash(state);
        self.op.hash(state);
        self.types.hash(state);
    }
}

impl ExactDecimalExpr {
    /// `left operator right` as an exact decimal expression, if both operands are `Decimal128`
    /// in `schema` and the operator is `+`, `-` or `*` with a result arrow can represent.
    pub fn try_new(
        left: &Arc<dyn PhysicalExpr>,
        operator: Operator,
        right: &Arc<dyn PhysicalExpr>,
        schema: &Schema,
    ) -> Option<Self> {
        let (lt, rt) = (left.data_type(schema).ok()?, right.data_type(schema).ok()?);
        let (DataType::Decimal128(_, s1), DataType::Decimal128(_, s2)) = (&lt, &rt) else {
            return None;
        };
        // The result's type is arrow's own (its kernel run on no rows), so the two paths agree.
        let kernel = match operator {
            Operator::Multiply => numeric::mul,
            Operator::Plus => numeric::add,
            Operator::Minus => numeric::sub,
            _ => return None,
        };
        let result = kernel(&new_empty_array(&lt), &new_empty_array(&rt))
            .ok()?
            .data_type()
            .clone();
        let DataType::Decimal128(_, scale) = result else {
            return None;
        };
        let op = match operator {
            Operator::Multiply if scale == s1.checked_add(*s2)? => Op::Mul,
            Operator::Multiply => return None,
            _ => {
                let l = ten_to(scale.checked_sub(*s1)?)?;
                let r = ten_to(scale.checked_sub(*s2)?)?;
                let r = if operator == Operator::Minus { -r } else { r };
                Op::Sum { l, r }
            }
        };
        Some(Self {
            left: Arc::clone(left),
            right: Arc::clone(right),
            operator,
            op,
            types: [lt, rt, result],
        })
    }

    /// The fast path's result, or `None` when a value is wider than 64 bits, an operand is null
    /// as a scalar, or an operand's type is not the one planned for.
    fn fast(&self, l: &ColumnarValue, r: &ColumnarValue) -> Option<ColumnarValue> {
        if l.data_type() != self.types[0] || r.data_type() != self.types[1] {
            return None;
        }
        // Operands that fit in 64 bits: a 64×64→128-bit product, or the sum of two such
        // products, cannot overflow 128 bits. One closure per case keeps each loop plain.
        match self.op {
            Op::Mul => self.fast_with(l, r, |a, b| i128::from(a) * i128::from(b)),
            Op::Sum { l: 1, r: 1 } => self.fast_with(l, r, |a, b| i128::from(a) + i128::from(b)),
            Op::Sum { l: 1, r: -1 } => self.fast_with(l, r, |a, b| i128::from(a) - i128::from(b)),
            Op::Sum { l: x, r: y } => self.fast_with(l, r, move |a, b| {
                i128::from(a) * i128::from(x) + i128::from(b) * i128::from(y)
            }),
        }
    }

    fn fast_with(
        &self,
        l: &ColumnarValue,
        r: &ColumnarValue,
        f: impl Fn(i64, i64) -> i128 + Copy,
    ) -> Option<ColumnarValue> {
        let f = move |a: i128, b: i128| f(a as i64, b as i64);
        let out = match (l, r) {
            (ColumnarValue::Array(a), ColumnarValue::Array(b)) => {
                let (a, b) = (a.as_primitive::<Decimal128Type>(), b.as_primitive());
                (narrow(a) && narrow(b)).then(|| binary(a, b, f).ok())??
            }
            (ColumnarValue::Array(a), ColumnarValue::Scalar(s)) => {
                let (a, s) = (a.as_primitive::<Decimal128Type>(), narrow_scalar(s)?);
                narrow(a).then(|| unary(a, |v| f(v, s)))?
            }
            (ColumnarValue::Scalar(s), ColumnarValue::Array(b)) => {
                let (s, b) = (narrow_scalar(s)?, b.as_primitive::<Decimal128Type>());
                narrow(b).then(|| unary(b, |v| f(s, v)))?
            }
            (ColumnarValue::Scalar(_), ColumnarValue::Scalar(_)) => return None,
        };
        let DataType::Decimal128(p, s) = self.types[2] else {
            return None;
        };
        let out: Decimal128Array = out.with_precision_and_scale(p, s).ok()?;
        Some(ColumnarValue::Array(Arc::new(out) as ArrayRef))
    }
}

/// 10 to the power `k`, when it fits in 64 bits.
fn ten_to(k: i8) -> Option<i64> {
    10i64.checked_pow(u32::try_from(k).ok()?)
}

/// Whether every value (null slots too) fits in 64 bits.
fn narrow(a: &Decimal128Array) -> bool {
    // A fold without an early exit, so that it vectorizes.
    !a.values()
        .iter()
        .fold(false, |wide, &v| wide | (i128::from(v as i64) != v))
}

/// A non-null scalar's value, when it fits in 64 bits.
fn narrow_scalar(s: &ScalarValue) -> Option<i128> {
    match s {
        ScalarValue::Decimal128(Some(v), _, _) if i128::from(*v as i64) == *v => Some(*v),
        _ => None,
    }
}

/// As [`BinaryExpr`] shows itself: a child operation that binds less tightly in parentheses.
impl fmt::Display for ExactDecimalExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let child = |f: &mut fmt::Formatter<'_>, e: &Arc<dyn PhysicalExpr>| {
            let op = match (e.downcast_ref::<BinaryExpr>(), e.downcast_ref::<Self>()) {
                (Some(b), _) => Some(*b.op()),
                (_, Some(x)) => Some(x.operator),
                _ => None,
            };
            match op.map(|o| o.precedence()) {
                Some(p) if p == 0 || p < self.operator.precedence() => write!(f, "({e})"),
                _ => write!(f, "{e}"),
            }
        };
        child(f, &self.left)?;
        write!(f, " {} ", self.operator)?;
        child(f, &self.right)
    }
}

impl PhysicalExpr for ExactDecimalExpr {
    fn data_type(&self, _input_schema: &Schema) -> Result<DataType> {
        Ok(self.types[2].clone())
    }

    fn nullable(&self, input_schema: &Schema) -> Result<bool> {
        Ok(self.left.nullable(input_schema)? || self.right.nullable(input_schema)?)
    }

    fn evaluate(&self, batch: &RecordBatch) -> Result<ColumnarValue> {
        let l = self.left.evaluate(batch)?;
        let r = self.right.evaluate(batch)?;
        if let Some(out) = self.fast(&l, &r) {
            return Ok(out);
        }
        match self.operator {
            Operator::Multiply => apply(&l, &r, numeric::mul),
            Operator::Plus => apply(&l, &r, numeric::add),
            _ => apply(&l, &r, numeric::sub),
        }
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        vec![&self.left, &self.right]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn PhysicalExpr>>,
    ) -> Result<Arc<dyn PhysicalExpr>> {
        let [left, right] = <[_; 2]>::try_from(children).map_err(|c| {
            datafusion::error::DataFusionError::Internal(format!(
                "a decimal operation takes 2 operands, not {}",
                c.len()
            ))
        })?;
        Ok(Arc::new(Self {
            left,
            right,
            ..(*self).clone()
        }))
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.left.fmt_sql(f)?;
        write!(f, " {} ", self.operator)?;
        self.right.fmt_sql(f)
    }
}

/// `expr` with every decimal `+`, `-` and `*` over `schema`'s columns made exact and fast,
/// and every cast of an integer to a decimal that holds all its values made plain
/// ([`WideningCastExpr`]).
fn rewrite_expr(
    expr: &Arc<dyn PhysicalExpr>,
    schema: &Schema,
) -> Result<Transformed<Arc<dyn PhysicalExpr>>> {
    Arc::clone(expr).transform_up(|e| {
        if let Some(c) = e.downcast_ref::<CastExpr>() {
            return Ok(match WideningCastExpr::try_new(c, schema) {
                Some(w) => Transformed::yes(Arc::new(w) as Arc<dyn PhysicalExpr>),
                None => Transformed::no(e),
            });
        }
        let Some(b) = e.downcast_ref::<BinaryExpr>() else {
            return Ok(Transformed::no(e));
        };
        Ok(
            match ExactDecimalExpr::try_new(b.left(), *b.op(), b.right(), schema) {
                Some(exact) => Transformed::yes(Arc::new(exact) as Arc<dyn PhysicalExpr>),
                None => Transformed::no(e),
            },
        )
    })
}

/// `plan` with the decimal arithmetic of its projections and its aggregations' arguments
/// computed by [`ExactDecimalExpr`]. The plan's schema and results are unchanged.
pub fn exact_decimal_arithmetic(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        if let Some(p) = node.downcast_ref::<ProjectionExec>() {
            let rewritten = projection_rewritten(p, rewrite_expr)?;
            return Ok(changed(node, rewritten));
        }
        if let Some(a) = node.downcast_ref::<AggregateExec>() {
            // Only the modes that evaluate their arguments over their input's rows.
            if !matches!(
                a.mode(),
                AggregateMode::Partial | AggregateMode::Single | AggregateMode::SinglePartitioned
            ) {
                return Ok(Transformed::no(node));
            }
            let schema = a.input_schema();
            let mut changed = false;
            let mut aggregates = Vec::with_capacity(a.aggr_expr().len());
            for f in a.aggr_expr() {
                let mut args = Vec::new();
                let mut any = false;
                for arg in f.expressions() {
                    let t = rewrite_expr(&arg, &schema)?;
                    any |= t.transformed;
                    args.push(t.data);
                }
                let order_by = f.order_bys().iter().map(|s| Arc::clone(&s.expr)).collect();
                match any
                    .then(|| f.with_new_expressions(args, order_by))
                    .flatten()
                {
                    Some(rewritten) => {
                        changed = true;
                        aggregates.push(Arc::new(rewritten));
                    }
                    None => aggregates.push(Arc::clone(f)),
                }
            }
            if !changed {
                return Ok(Transformed::no(node));
            }
            let rewritten = a.with_new_aggr_exprs(aggregates);
            return Ok(Transformed::yes(
                Arc::new(rewritten) as Arc<dyn ExecutionPlan>
            ));
        }
        Ok(Transformed::no(node))
    })
    .map(|t| t.data)
}
