//! `AND` and `OR` that evaluate their right side on the rows that need it, cheaply.
//!
//! DataFusion already evaluates the right side of `a AND b` only on the rows where `a` holds
//! when those are few (a fifth or less; `OR` likewise where `a` does not hold), but it filters
//! every column of the batch to do so, and puts the answers back in place slice by slice,
//! copying each slice of the right side's result into a new array first. In TPC-H Q12 and Q19,
//! filters over `lineitem` whose first conditions keep a few rows in a hundred, that put-back
//! and its slices were 8–10% of the CPU samples. [`LeanLogicExpr`] filters only the columns
//! the right side reads and puts each answer in place bit by bit. Its results, nulls included,
//! are those of DataFusion's `BinaryExpr`, which it runs whenever it would not pre-select.
//!
//! A task applies [`lean_logic`] to its stage's filters after decoding them, as it does
//! [`crate::view_eq`].

use std::collections::BTreeSet;
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, BooleanArray, BooleanBufferBuilder, RecordBatch};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::compute::kernels::boolean::{and_kleene, or_kleene};
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::common::Result;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{ColumnarValue, Operator};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{BinaryExpr, Column};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::filter::FilterExec;

use crate::one_input::only_input;
use crate::operator_exprs::{changed, filter_rewritten};

/// DataFusion's threshold: the right side is pre-selected when at most this share of rows
/// needs it.
const PRE_SELECT: f64 = 0.2;

/// `left AND right` or `left OR right`, with `right` rewritten to read `columns` only.
#[derive(Debug, Clone, Eq)]
pub struct LeanLogicExpr {
    /// The expression as planned, which answers whenever nothing is pre-selected.
    plain: Arc<dyn PhysicalExpr>,
    left: Arc<dyn PhysicalExpr>,
    /// The right side over the batch projected to `columns`.
    right: Arc<dyn PhysicalExpr>,
    columns: Vec<usize>,
    and: bool,
}

// By hand, as `BinaryExpr` does: a derive cannot compare `Arc<dyn PhysicalExpr>` fields
// (rust-lang/rust#78808).
impl PartialEq for LeanLogicExpr {
    fn eq(&self, other: &Self) -> bool {
        self.plain.eq(&other.plain)
    }
}

impl Hash for LeanLogicExpr {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.plain.hash(state);
    }
}

impl LeanLogicExpr {
    /// The expression as planned.
    pub fn plain(&self) -> &Arc<dyn PhysicalExpr> {
        &self.plain
    }

    /// `b` made lean, if it is an `AND` or `OR` of two boolean expressions over `schema`.
    pub fn try_new(b: &BinaryExpr, schema: &Schema) -> Option<Self> {
        let boolean =
            |e: &Arc<dyn PhysicalExpr>| e.data_type(schema).ok() == Some(DataType::Boolean);
        if !(boolean(b.left()) && boolean(b.right())) {
            return None;
        }
        Self::of(b)
    }

    /// `b` made lean, if it is an `AND` or `OR` (of operands known to be boolean).
    fn of(b: &BinaryExpr) -> Option<Self> {
        let and = match b.op() {
            Operator::And => true,
            Operator::Or => false,
            _ => return None,
        };
        // The operands lean too; `plain` keeps the expression as planned, for display and for
        // the batches this cannot pre-select.
        let left = lean_operand(b.left());
        let right = lean_operand(b.right());
        let mut read = BTreeSet::new();
        right
            .apply(|e| {
                if let Some(c) = e.downcast_ref::<Column>() {
                    read.insert(c.index());
                }
                Ok(TreeNodeRecursion::Continue)
            })
            .ok()?;
        let columns: Vec<usize> = read.into_iter().collect();
        let right = right
            .transform_up(|e| {
                let Some(c) = e.downcast_ref::<Column>() else {
                    return Ok(Transformed::no(e));
                };
                let at = columns.binary_search(&c.index()).unwrap_or_default();
                Ok(Transformed::yes(
                    Arc::new(Column::new(c.name(), at)) as Arc<dyn PhysicalExpr>
                ))
            })
            .ok()?
            .data;
        Some(Self {
            plain: Arc::new(b.clone()),
            left,
            right,
            columns,
            and,
        })
    }

    /// The rows whose answer depends on the right side, when they are few enough to
    /// pre-select: those where the left side holds (for `AND`) or does not (`OR`), given that
    /// it is never null. `None` otherwise.
    fn pre_selected(&self, left: &BooleanArray) -> Option<BooleanArray> {
        if left.null_count() > 0 || left.is_empty() {
            return None;
        }
        let holds = left.values().count_set_bits();
        let needed = if self.and { holds } else { left.len() - holds };
        if needed == 0 || needed == left.len() || needed as f64 > PRE_SELECT * left.len() as f64 {
            return None;
        }
        let mask = if self.and {
            left.values().clone()
        } else {
            !left.values()
        };
        Some(BooleanArray::new(mask, None))
    }
}

/// `e` made lean if it is an `AND` or `OR`, else as it is.
fn lean_operand(e: &Arc<dyn PhysicalExpr>) -> Arc<dyn PhysicalExpr> {
    match e.downcast_ref::<BinaryExpr>().and_then(LeanLogicExpr::of) {
        Some(lean) => Arc::new(lean),
        None => Arc::clone(e),
    }
}

/// `fill` everywhere but at the rows `mask` selects, which take `answers` in order.
fn scatter(mask: &BooleanArray, answers: &BooleanArray, fill: bool) -> BooleanArray {
    let n = mask.len();
    let mut values = BooleanBufferBuilder::new(n);
    values.append_n(n, fill);
    let mut valid = (answers.null_count() > 0).then(|| {
        let mut v = BooleanBufferBuilder::new(n);
        v.append_n(n, true);
        v
    });
    for (k, row) in mask.values().set_indices().enumerate() {
        values.set_bit(row, answers.values().value(k));
        if let Some(valid) = valid.as_mut() {
            valid.set_bit(row, answers.is_valid(k));
        }
    }
    BooleanArray::new(values.finish(), valid.map(|mut v| v.finish().into()))
}

impl fmt::Display for LeanLogicExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.plain)
    }
}

impl PhysicalExpr for LeanLogicExpr {
    fn data_type(&self, _input_schema: &Schema) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn nullable(&self, input_schema: &Schema) -> Result<bool> {
        self.plain.nullable(input_schema)
    }

    fn evaluate(&self, batch: &RecordBatch) -> Result<ColumnarValue> {
        let left = self.left.evaluate(batch)?;
        let ColumnarValue::Array(left_array) = &left else {
            return self.plain.evaluate(batch);
        };
        let Some(left_values) = left_array.as_boolean_opt() else {
            return self.plain.evaluate(batch);
        };
        let projected = batch.project(&self.columns)?;
        if let Some(mask) = self.pre_selected(left_values) {
            let selected = filter_record_batch(&projected, &mask)?;
            let answers = self.right.evaluate(&selected)?;
            let answers = answers.into_array(selected.num_rows())?;
            let Some(answers) = answers.as_boolean_opt() else {
                return Err(datafusion::error::DataFusionError::Internal(format!(
                    "a logical operator's right side gave {}",
                    answers.data_type()
                )));
            };
            let fill = !self.and;
            return Ok(ColumnarValue::Array(Arc::new(scatter(
                &mask, answers, fill,
            ))));
        }
        // Where the left side decides every row, as DataFusion does, the right is not read.
        if left_values.null_count() == 0 {
            let holds = left_values.values().count_set_bits();
            if (self.and && holds == 0) || (!self.and && holds == left_values.len()) {
                return Ok(left);
            }
        }
        let right = self.right.evaluate(&projected)?;
        let right = right.into_array(batch.num_rows())?;
        let Some(right) = right.as_boolean_opt() else {
            return self.plain.evaluate(batch);
        };
        let out = if self.and {
            and_kleene(left_values, right)?
        } else {
            or_kleene(left_values, right)?
        };
        Ok(ColumnarValue::Array(Arc::new(out)))
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        vec![&self.plain]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn PhysicalExpr>>,
    ) -> Result<Arc<dyn PhysicalExpr>> {
        // Rebuilt from the new plain form, so that both paths stay the same expression.
        let plain = only_input(children, "a lean AND/OR")?;
        Ok(
            match plain.downcast_ref::<BinaryExpr>().and_then(Self::of) {
                Some(lean) => Arc::new(lean),
                None => plain,
            },
        )
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.plain.fmt_sql(f)
    }
}

/// `expr` with each outermost `AND` or `OR` over `schema` made a [`LeanLogicExpr`] (whose
/// operands lean in turn).
pub fn rewrite_expr(
    expr: &Arc<dyn PhysicalExpr>,
    schema: &Schema,
) -> Result<Transformed<Arc<dyn PhysicalExpr>>> {
    Arc::clone(expr).transform_down(|e| {
        let Some(b) = e.downcast_ref::<BinaryExpr>() else {
            return Ok(Transformed::no(e));
        };
        Ok(match LeanLogicExpr::try_new(b, schema) {
            Some(l) => Transformed::new(
                Arc::new(l) as Arc<dyn PhysicalExpr>,
                true,
                TreeNodeRecursion::Jump,
            ),
            None => Transformed::no(e),
        })
    })
}

/// `plan` with the `AND`s and `OR`s of its filters evaluated by [`LeanLogicExpr`]. The plan's
/// schema and results are unchanged.
pub fn lean_logic(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        let rewritten = match node.downcast_ref::<FilterExec>() {
            Some(f) => filter_rewritten(f, rewrite_expr)?,
            None => None,
        };
        Ok(changed(node, rewritten))
    })
    .map(|t| t.data)
}
