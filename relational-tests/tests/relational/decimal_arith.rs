use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, Decimal128Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Field, Schema};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{ColumnarValue, Operator};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{Column, Literal};
use datafusion::physical_plan::{ExecutionPlan, collect, displayable};
use datafusion::prelude::SessionContext;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use kask_relational::decimal_arith::{ExactDecimalExpr, exact_decimal_arithmetic};

/// Values of up to `digits` digits (some wider than 64 bits when `digits` > 18), a tenth null.
fn values(rng: &mut StdRng, n: usize, digits: u32) -> Vec<Option<i128>> {
    let bound = 10i128.pow(digits);
    (0..n)
        .map(|_| {
            rng.random_bool(0.9)
                .then(|| rng.random_range(-bound + 1..bound))
        })
        .collect()
}

/// The answer by plain checked arithmetic on the unscaled integers; `None` where it overflows.
fn reference(
    op: Operator,
    (a, s1): (Option<i128>, i8),
    (b, s2): (Option<i128>, i8),
) -> Option<Option<i128>> {
    let (Some(a), Some(b)) = (a, b) else {
        return Some(None);
    };
    let scale = s1.max(s2);
    let up = |v: i128, s: i8| v.checked_mul(10i128.pow(u32::try_from(scale - s).ok()?));
    Some(Some(match op {
        Operator::Multiply => a.checked_mul(b)?,
        Operator::Plus => up(a, s1)?.checked_add(up(b, s2)?)?,
        _ => up(a, s1)?.checked_sub(up(b, s2)?)?,
    }))
}

fn batch(
    a: &[Option<i128>],
    (p1, s1): (u8, i8),
    b: &[Option<i128>],
    (p2, s2): (u8, i8),
) -> RecordBatch {
    let col = |v: &[Option<i128>], p, s| -> Arc<dyn Array> {
        Arc::new(
            Decimal128Array::from(v.to_vec())
                .with_precision_and_scale(p, s)
                .expect("valid decimal type"),
        )
    };
    let schema = Schema::new(vec![
        Field::new("a", DataType::Decimal128(p1, s1), true),
        Field::new("b", DataType::Decimal128(p2, s2), true),
    ]);
    RecordBatch::try_new(Arc::new(schema), vec![col(a, p1, s1), col(b, p2, s2)])
        .expect("a batch of two columns")
}

#[test]
fn sums_differences_and_products_equal_plain_checked_arithmetic() {
    let mut rng = StdRng::seed_from_u64(7);
    let types = [
        ((15u8, 2i8), (15u8, 2i8)),
        ((15, 2), (20, 0)),
        ((31, 4), (16, 2)),
        ((38, 10), (38, 0)),
        ((18, 0), (18, 6)),
    ];
    for op in [Operator::Multiply, Operator::Plus, Operator::Minus] {
        for ((p1, s1), (p2, s2)) in types {
            // Narrow values (the fast path), and values up to 37 digits (arrow's path, which
            // overflows for some products).
            for digits in [15, 37] {
                let (a, b) = (
                    values(&mut rng, 500, digits.min(u32::from(p1))),
                    values(&mut rng, 500, digits.min(u32::from(p2))),
                );
                let batch = batch(&a, (p1, s1), &b, (p2, s2));
                let schema = batch.schema();
                let left: Arc<dyn PhysicalExpr> = Arc::new(Column::new("a", 0));
                let right: Arc<dyn PhysicalExpr> = Arc::new(Column::new("b", 1));
                let Some(expr) = ExactDecimalExpr::try_new(&left, op, &right, &schema) else {
                    panic!(
                        "{op} of Decimal128({p1},{s1}) and Decimal128({p2},{s2}) was not made exact"
                    );
                };
                let want: Option<Vec<Option<i128>>> = a
                    .iter()
                    .zip(&b)
                    .map(|(&x, &y)| reference(op, (x, s1), (y, s2)))
                    .collect();
                let got = expr.evaluate(&batch);
                match (want, got) {
                    (Some(want), Ok(ColumnarValue::Array(got))) => {
                        let got = got.as_primitive::<Decimal128Type>();
                        assert_eq!(
                            got.iter().collect::<Vec<_>>(),
                            want,
                            "{op} {p1},{s1} {p2},{s2}"
                        );
                        let DataType::Decimal128(_, scale) = got.data_type() else {
                            panic!("{op} gave {}", got.data_type());
                        };
                        let expected_scale = if op == Operator::Multiply {
                            s1 + s2
                        } else {
                            s1.max(s2)
                        };
                        assert_eq!(*scale, expected_scale);
                    }
                    (None, Err(e)) => assert!(e.to_string().contains("overflow"), "{e}"),
                    (want, got) => panic!(
                        "{op} {p1},{s1} {p2},{s2} digits {digits}: want {want:?}, got {got:?}"
                    ),
                }
            }
        }
    }
}

#[test]
fn scalar_operands_take_the_same_path_and_null_scalars_give_nulls() {
    let a = vec![Some(1234i128), None, Some(-99), Some(0)];
    let batch = batch(&a, (15, 2), &a, (15, 2));
    let schema = batch.schema();
    let column: Arc<dyn PhysicalExpr> = Arc::new(Column::new("a", 0));
    for (scalar, want) in [
        (
            Some(100i128),
            vec![Some(1234 - 100), None, Some(-199), Some(-100)],
        ),
        (None, vec![None, None, None, None]),
    ] {
        // `a - 1`, the literal a Decimal128(20,0) as the planner types an integer.
        let one: Arc<dyn PhysicalExpr> = Arc::new(Literal::new(ScalarValue::Decimal128(
            scalar.map(|v| v / 100),
            20,
            0,
        )));
        let expr =
            ExactDecimalExpr::try_new(&column, Operator::Minus, &one, &schema).expect("exact");
        let ColumnarValue::Array(got) = expr.evaluate(&batch).expect("evaluates") else {
            panic!("an array operand gives an array");
        };
        assert_eq!(
            got.as_primitive::<Decimal128Type>()
                .iter()
                .collect::<Vec<_>>(),
            want
        );
        assert_eq!(got.data_type(), &DataType::Decimal128(23, 2));
    }
}

#[test]
fn other_types_are_left_to_datafusion() {
    let schema = Schema::new(vec![
        Field::new("i", DataType::Int64, true),
        Field::new("d", DataType::Decimal128(10, 2), true),
    ]);
    let i: Arc<dyn PhysicalExpr> = Arc::new(Column::new("i", 0));
    let d: Arc<dyn PhysicalExpr> = Arc::new(Column::new("d", 1));
    assert!(ExactDecimalExpr::try_new(&i, Operator::Multiply, &i, &schema).is_none());
    assert!(ExactDecimalExpr::try_new(&d, Operator::Divide, &d, &schema).is_none());
    assert!(ExactDecimalExpr::try_new(&d, Operator::Multiply, &d, &schema).is_some());
}

/// TPC-H Q1's arithmetic, in a projection and in an aggregation's arguments, through
/// DataFusion's own plan: rewritten, and the answer equal to a plain computation.
#[tokio::test]
async fn a_plan_computes_the_same_answer_with_its_decimal_arithmetic_rewritten() {
    let ctx = SessionContext::new();
    let rows = 3000;
    let mut rng = StdRng::seed_from_u64(11);
    let price: Vec<i128> = (0..rows)
        .map(|_| rng.random_range(90_000..10_500_000))
        .collect();
    let discount: Vec<i128> = (0..rows).map(|_| rng.random_range(0..=10)).collect();
    let tax: Vec<i128> = (0..rows).map(|_| rng.random_range(0..=8)).collect();
    let flag: Vec<&str> = (0..rows).map(|i| ["A", "N", "R"][i % 3]).collect();
    let dec = |v: &[i128]| -> Arc<dyn Array> {
        Arc::new(
            Decimal128Array::from_iter_values(v.iter().copied())
                .with_precision_and_scale(15, 2)
                .expect("decimal"),
        )
    };
    let schema = Arc::new(Schema::new(vec![
        Field::new("flag", DataType::Utf8, false),
        Field::new("price", DataType::Decimal128(15, 2), false),
        Field::new("discount", DataType::Decimal128(15, 2), false),
        Field::new("tax", DataType::Decimal128(15, 2), false),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(datafusion::arrow::array::StringArray::from(flag.clone())),
            dec(&price),
            dec(&discount),
            dec(&tax),
        ],
    )
    .expect("batch");
    ctx.register_batch("t", batch).expect("register");
    let df = ctx
        .sql(
            "SELECT flag, sum(price * (1 - discount)) AS a, sum(price * (1 - discount) * (1 + tax)) AS b \
             FROM t GROUP BY flag ORDER BY flag",
        )
        .await
        .expect("plans");
    let plan = df.create_physical_plan().await.expect("physical plan");
    let rewritten = exact_decimal_arithmetic(Arc::clone(&plan)).expect("rewrites");
    let shown = displayable(rewritten.as_ref()).indent(true).to_string();
    assert_eq!(
        shown,
        displayable(plan.as_ref()).indent(true).to_string(),
        "the plan reads the same"
    );
    assert!(
        uses_exact(&rewritten),
        "no exact decimal expression in:\n{shown}"
    );
    let batches = collect(rewritten, ctx.task_ctx()).await.expect("runs");
    let mut got = Vec::new();
    for b in &batches {
        let f = b.column(0).as_string::<i32>();
        let (a, s) = (
            b.column(1).as_primitive::<Decimal128Type>(),
            b.column(2).as_primitive::<Decimal128Type>(),
        );
        assert_eq!(a.data_type(), &DataType::Decimal128(38, 4));
        assert_eq!(s.data_type(), &DataType::Decimal128(38, 6));
        for i in 0..b.num_rows() {
            got.push((f.value(i).to_string(), a.value(i), s.value(i)));
        }
    }
    let mut want = Vec::new();
    for key in ["A", "N", "R"] {
        let (mut a, mut s) = (0i128, 0i128);
        for i in (0..rows).filter(|&i| flag[i] == key) {
            let net = price[i] * (100 - discount[i]);
            a += net;
            s += net * (100 + tax[i]);
        }
        want.push((key.to_string(), a, s));
    }
    assert_eq!(got, want);
}

fn uses_exact(plan: &Arc<dyn ExecutionPlan>) -> bool {
    use datafusion::physical_plan::aggregates::AggregateExec;
    use datafusion::physical_plan::projection::ProjectionExec;
    fn exact(e: &Arc<dyn PhysicalExpr>) -> bool {
        e.is::<ExactDecimalExpr>() || e.children().into_iter().any(exact)
    }
    let here = if let Some(p) = plan.downcast_ref::<ProjectionExec>() {
        p.expr().iter().any(|e| exact(&e.expr))
    } else if let Some(a) = plan.downcast_ref::<AggregateExec>() {
        a.aggr_expr()
            .iter()
            .any(|f| f.expressions().iter().any(exact))
    } else {
        false
    };
    here || plan.children().into_iter().any(uses_exact)
}
