use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, Int8Array, Int16Array, Int32Array, Int64Array, RecordBatch, UInt8Array,
    UInt16Array, UInt32Array, UInt64Array,
};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::ColumnarValue;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{CastExpr, Column, Literal};
use datafusion::physical_plan::{collect, displayable};
use datafusion::prelude::SessionContext;

use kask_relational::widening_cast::WideningCastExpr;

/// Every integer type's extremes, zero, small values and nulls.
fn columns() -> Vec<ArrayRef> {
    vec![
        Arc::new(Int8Array::from(vec![
            Some(i8::MIN),
            None,
            Some(-1),
            Some(0),
            Some(i8::MAX),
        ])),
        Arc::new(Int16Array::from(vec![
            Some(i16::MIN),
            Some(7),
            None,
            Some(i16::MAX),
        ])),
        Arc::new(Int32Array::from(vec![
            Some(i32::MIN),
            Some(-5),
            None,
            Some(0),
            Some(i32::MAX),
        ])),
        Arc::new(Int64Array::from(vec![
            Some(i64::MIN),
            Some(3),
            None,
            Some(i64::MAX),
        ])),
        Arc::new(UInt8Array::from(vec![Some(0), None, Some(u8::MAX)])),
        Arc::new(UInt16Array::from(vec![Some(0), Some(u16::MAX), None])),
        Arc::new(UInt32Array::from(vec![None, Some(1), Some(u32::MAX)])),
        Arc::new(UInt64Array::from(vec![Some(0), None, Some(u64::MAX)])),
    ]
}

/// `CAST(x AS Decimal128(precision, scale))` of column 0.
fn cast(precision: u8, scale: i8) -> CastExpr {
    CastExpr::new(
        Arc::new(Column::new("x", 0)),
        DataType::Decimal128(precision, scale),
        None,
    )
}

/// Each widening cast equals arrow's checked one, on whole and sliced arrays.
#[test]
fn widening_casts_equal_arrows_checked_ones() {
    for a in columns() {
        let schema = Schema::new(vec![Field::new("x", a.data_type().clone(), true)]);
        let digits: u8 = match a.data_type() {
            DataType::Int8 | DataType::UInt8 => 3,
            DataType::Int16 | DataType::UInt16 => 5,
            DataType::Int32 | DataType::UInt32 => 10,
            DataType::Int64 => 19,
            _ => 20,
        };
        for (precision, scale) in [(digits, 0), (digits + 2, 2), (38, 38 - digits as i8)] {
            let c = cast(precision, scale);
            let w = WideningCastExpr::try_new(&c, &schema)
                .unwrap_or_else(|| panic!("{} to ({precision}, {scale}) widens", a.data_type()));
            for input in [Arc::clone(&a), a.slice(1, a.len() - 1)] {
                let batch =
                    RecordBatch::try_new(Arc::new(schema.clone()), vec![Arc::clone(&input)])
                        .expect("batch");
                let got = w
                    .evaluate(&batch)
                    .expect("evaluates")
                    .into_array(input.len())
                    .expect("array");
                let want = cast_with_options(
                    &input,
                    &DataType::Decimal128(precision, scale),
                    &CastOptions {
                        safe: false,
                        ..Default::default()
                    },
                )
                .expect("arrow casts");
                assert_eq!(
                    got.as_ref(),
                    want.as_ref(),
                    "{} to ({precision}, {scale})",
                    a.data_type()
                );
                assert_eq!(got.data_type(), &DataType::Decimal128(precision, scale));
            }
        }
    }
}

/// A decimal without room for every value, a negative scale, or a non-integer input stays
/// arrow's cast.
#[test]
fn casts_that_could_fail_are_left_to_arrow() {
    let schema = Schema::new(vec![Field::new("x", DataType::Int32, true)]);
    assert!(WideningCastExpr::try_new(&cast(9, 0), &schema).is_none());
    assert!(WideningCastExpr::try_new(&cast(12, 3), &schema).is_none());
    assert!(WideningCastExpr::try_new(&cast(12, -1), &schema).is_none());
    assert!(WideningCastExpr::try_new(&cast(10, 0), &schema).is_some());
    let float = Schema::new(vec![Field::new("x", DataType::Float64, true)]);
    assert!(WideningCastExpr::try_new(&cast(38, 0), &float).is_none());
    let u64s = Schema::new(vec![Field::new("x", DataType::UInt64, true)]);
    assert!(WideningCastExpr::try_new(&cast(19, 0), &u64s).is_none());
}

/// A scalar input goes through arrow's cast, nulls included.
#[test]
fn scalars_are_cast_by_arrow() {
    let schema = Schema::new(vec![Field::new("x", DataType::Int32, true)]);
    let batch = RecordBatch::try_new(
        Arc::new(schema.clone()),
        vec![Arc::new(Int32Array::from(vec![1, 2])) as ArrayRef],
    )
    .expect("batch");
    for (v, want) in [(Some(42), Some(4200)), (None, None)] {
        let lit = Arc::new(Literal::new(ScalarValue::Int32(v)));
        let c = CastExpr::new(lit, DataType::Decimal128(12, 2), None);
        let w = WideningCastExpr::try_new(&c, &schema).expect("widens");
        let got = w.evaluate(&batch).expect("evaluates");
        let ColumnarValue::Scalar(s) = got else {
            panic!("a scalar");
        };
        assert_eq!(s, ScalarValue::Decimal128(want, 12, 2));
    }
}

/// TPC-H Q11's product through DataFusion's plan: the cast is rewritten, and the sum equals
/// a plain one.
#[tokio::test]
async fn a_plan_sums_a_decimal_times_an_integer_with_the_cast_rewritten() {
    let ctx = SessionContext::new();
    let qty: Vec<i32> = (0..5000).map(|i| (i * 7919) % 10_000 - 17).collect();
    let cost: Vec<i128> = (0..5000).map(|i| (i * 104_729) % 100_000).collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("qty", DataType::Int32, false),
        Field::new("cost", DataType::Decimal128(15, 2), false),
    ]));
    let costs = datafusion::arrow::array::Decimal128Array::from_iter_values(cost.iter().copied())
        .with_precision_and_scale(15, 2)
        .expect("decimal");
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![Arc::new(Int32Array::from(qty.clone())), Arc::new(costs)],
    )
    .expect("batch");
    ctx.register_batch("t", batch).expect("register");
    let plan = ctx
        .sql("SELECT sum(cost * qty) AS v FROM t")
        .await
        .expect("plans")
        .create_physical_plan()
        .await
        .expect("physical plan");
    let rewritten =
        kask_relational::decimal_arith::exact_decimal_arithmetic(plan).expect("rewrites");
    fn widening(e: &Arc<dyn PhysicalExpr>) -> bool {
        e.is::<WideningCastExpr>() || e.children().into_iter().any(widening)
    }
    fn uses(plan: &Arc<dyn datafusion::physical_plan::ExecutionPlan>) -> bool {
        use datafusion::physical_plan::aggregates::AggregateExec;
        let here = plan.downcast_ref::<AggregateExec>().is_some_and(|a| {
            a.aggr_expr()
                .iter()
                .any(|f| f.expressions().iter().any(widening))
        });
        here || plan.children().into_iter().any(uses)
    }
    assert!(
        uses(&rewritten),
        "a widening cast in:\n{}",
        displayable(rewritten.as_ref()).indent(true)
    );
    let batches = collect(rewritten, ctx.task_ctx()).await.expect("runs");
    let got = batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<datafusion::arrow::array::Decimal128Array>()
        .expect("decimal")
        .value(0);
    let want: i128 = qty
        .iter()
        .zip(&cost)
        .map(|(&q, &c)| i128::from(q) * c)
        .sum();
    assert_eq!(got, want);
}
