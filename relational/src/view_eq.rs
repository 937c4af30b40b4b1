//! String equality with a constant, compared view by view.
//!
//! Tables are read with string columns as `Utf8View`: each value has a 16-byte view holding its
//! length and its first four bytes, and the whole string when it has at most 12. Arrow's
//! comparison kernel still calls a closure per row that branches on both sides' buffers and
//! lengths; in TPC-H Q12 (`l_shipmode IN ('MAIL', 'SHIP')` over 60 million rows) that was 18%
//! of the CPU samples. Against a constant, one masked 128-bit comparison per row decides a
//! string of at most 12 bytes (and vectorizes); a longer one is decided by its length and
//! prefix, and only the rows that match them compare their bytes.
//!
//! A task applies [`view_equalities`] to its stage's sub-plan after decoding it, as it does
//! [`crate::decimal_arith`]: the expression is not one datafusion-proto knows.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, BooleanArray, StringViewArray};
use datafusion::arrow::buffer::BooleanBuffer;
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, Operator};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{BinaryExpr, Literal};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::projection::ProjectionExec;

use crate::one_input::only_input;
use crate::operator_exprs::{changed, filter_rewritten, projection_rewritten};

/// `value = constant` (or `<>`) over a `Utf8View` value.
#[derive(Debug, Clone, Eq)]
pub struct ViewEqExpr {
    value: Arc<dyn PhysicalExpr>,
    constant: String,
    negated: bool,
}

// By hand, as `BinaryExpr` does: a derive cannot compare `Arc<dyn PhysicalExpr>` fields
// (rust-lang/rust#78808).
impl PartialEq for ViewEqExpr {
    fn eq(&self, other: &Self) -> bool {
        self.value.eq(&other.value)
            && self.constant == other.constant
            && self.negated == other.negated
    }
}

impl Hash for ViewEqExpr {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.value.hash(state);
        self.constant.hash(state);
        self.negated.hash(state);
    }
}

impl ViewEqExpr {
    /// `left op right` as a view comparison, if `op` is `=` or `<>`, one side is a non-null
    /// string constant and the other a `Utf8View` expression over `schema`.
    pub fn try_new(
        left: &Arc<dyn PhysicalExpr>,
        op: Operator,
        right: &Arc<dyn PhysicalExpr>,
        schema: &Schema,
    ) -> Option<Self> {
        let negated = match op {
            Operator::Eq => false,
            Operator::NotEq => true,
            _ => return None,
        };
        let (value, constant) = match (constant_of(left), constant_of(right)) {
            (None, Some(c)) => (left, c),
            (Some(c), None) => (right, c),
            _ => return None,
        };
        (value.data_type(schema).ok()? == DataType::Utf8View).then(|| Self {
            value: Arc::clone(value),
            constant,
            negated,
        })
    }
}

/// The string a literal holds, if it is a non-null string.
fn constant_of(e: &Arc<dyn PhysicalExpr>) -> Option<String> {
    match e.downcast_ref::<Literal>()?.value() {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::Utf8View(Some(s))
        | ScalarValue::LargeUtf8(Some(s)) => Some(s.clone()),
        _ => None,
    }
}

/// Which rows of `array` equal `constant` (nulls aside: the result keeps the array's nulls).
pub fn equal_to(array: &StringViewArray, constant: &str) -> BooleanBuffer {
    let want = constant.as_bytes();
    let len = want.len();
    let views = array.views();
    // The low 32 bits of a view are the length; the next 96 bits hold a short string's bytes
    // (zero-padded, which arrow checks when it builds an array; the mask does not rely on it)
    // or a long string's first four.
    let mut head = [0u8; 16];
    head[..4].copy_from_slice(&(len as u32).to_le_bytes());
    let inline = len.min(12);
    head[4..4 + inline].copy_from_slice(&want[..inline]);
    let head = u128::from_le_bytes(head);
    if len <= 12 {
        let mask = if len == 12 {
            u128::MAX
        } else {
            (1u128 << (32 + 8 * len)) - 1
        };
        return BooleanBuffer::collect_bool(views.len(), |i| views[i] & mask == head);
    }
    // A long string's length and prefix decide most rows; the rest compare their bytes.
    let head = head as u64;
    BooleanBuffer::collect_bool(views.len(), |i| {
        views[i] as u64 == head && array.value(i).as_bytes() == want
    })
}

impl fmt::Display for ViewEqExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = if self.negated { "!=" } else { "=" };
        write!(f, "{} {op} {}", self.value, self.constant)
    }
}

impl PhysicalExpr for ViewEqExpr {
    fn data_type(&self, _input_schema: &Schema) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn nullable(&self, input_schema: &Schema) -> Result<bool> {
        self.value.nullable(input_schema)
    }

    fn evaluate(&self, batch: &RecordBatch) -> Result<ColumnarValue> {
        let value = self.value.evaluate(batch)?;
        let views = match &value {
            ColumnarValue::Array(array) => array.as_string_view_opt(),
            ColumnarValue::Scalar(_) => None,
        };
        let Some(array) = views else {
            // A constant on both sides after all, or not views: the plain comparison.
            let op = if self.negated {
                Operator::NotEq
            } else {
                Operator::Eq
            };
            let constant =
                ColumnarValue::Scalar(ScalarValue::Utf8View(Some(self.constant.clone())));
            return datafusion::physical_expr_common::datum::apply_cmp(op, &value, &constant);
        };
        let mut equal = equal_to(array, &self.constant);
        if self.negated {
            equal = !&equal;
        }
        Ok(ColumnarValue::Array(Arc::new(BooleanArray::new(
            equal,
            array.nulls().cloned(),
        ))))
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        vec![&self.value]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn PhysicalExpr>>,
    ) -> Result<Arc<dyn PhysicalExpr>> {
        let value = only_input(children, "a string comparison with a constant")?;
        Ok(Arc::new(Self {
            value,
            ..(*self).clone()
        }))
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value.fmt_sql(f)?;
        let op = if self.negated { "<>" } else { "=" };
        write!(f, " {op} '{}'", self.constant.replace('\'', "''"))
    }
}

/// `expr` with every string comparison with a constant over `schema`'s views made a
/// [`ViewEqExpr`].
fn rewrite_expr(
    expr: &Arc<dyn PhysicalExpr>,
    schema: &Schema,
) -> Result<Transformed<Arc<dyn PhysicalExpr>>> {
    Arc::clone(expr).transform_up(|e| {
        let Some(b) = e.downcast_ref::<BinaryExpr>() else {
            return Ok(Transformed::no(e));
        };
        Ok(
            match ViewEqExpr::try_new(b.left(), *b.op(), b.right(), schema) {
                Some(v) => Transformed::yes(Arc::new(v) as Arc<dyn PhysicalExpr>),
                None => Transformed::no(e),
            },
        )
    })
}

/// `plan` with the string comparisons with constants of its filters and projections computed
/// by [`ViewEqExpr`]. The plan's schema and results are unchanged.
pub fn view_equalities(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        let rewritten = if let Some(f) = node.downcast_ref::<FilterExec>() {
            filter_rewritten(f, rewrite_expr)?
        } else if let Some(p) = node.downcast_ref::<ProjectionExec>() {
            projection_rewritten(p, rewrite_expr)?
        } else {
            None
        };
        Ok(changed(node, rewritten))
    })
    .map(|t| t.data)
}
