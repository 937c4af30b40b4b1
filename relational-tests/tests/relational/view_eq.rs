use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, BooleanArray, RecordBatch, StringViewArray};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{BinaryExpr, Column, Literal};
use datafusion::physical_plan::{ExecutionPlan, collect, displayable};
use datafusion::prelude::SessionContext;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use kask_relational::view_eq::{ViewEqExpr, equal_to, view_equalities};

/// Strings of 0 to 20 bytes over a small alphabet, so that many share lengths and prefixes;
/// a tenth null.
fn strings(rng: &mut StdRng, n: usize) -> Vec<Option<String>> {
    (0..n)
        .map(|_| {
            rng.random_bool(0.9).then(|| {
                let len = rng.random_range(0..=20);
                (0..len)
                    .map(|_| ['a', 'b', 'é'][rng.random_range(0..3)])
                    .collect()
            })
        })
        .collect()
}

#[test]
fn equality_with_a_constant_is_a_plain_comparison_of_the_strings() {
    let mut rng = StdRng::seed_from_u64(7);
    let values = strings(&mut rng, 4000);
    let array = StringViewArray::from_iter(values.iter().map(|v| v.as_deref()));
    let sliced = array.slice(1000, 2000);
    let mut constants: Vec<String> = values.iter().flatten().take(300).cloned().collect();
    constants.extend(["", "a", "abababababab", "abababababababab", "zzz"].map(String::from));
    for constant in &constants {
        for (array, from) in [(&array, 0), (&sliced, 1000)] {
            let got = equal_to(array, constant);
            for i in 0..array.len() {
                // Null rows are the caller's to mask; their value is the view's, unchecked.
                if let Some(v) = &values[from + i] {
                    assert_eq!(got.value(i), v == constant, "{v:?} = {constant:?}");
                }
            }
        }
    }
}

fn batch(values: &[Option<&str>]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("s", DataType::Utf8View, true),
        Field::new("t", DataType::Utf8, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringViewArray::from_iter(values.iter().copied())),
            Arc::new(datafusion::arrow::array::StringArray::from(values.to_vec())),
        ],
    )
    .expect("batch")
}

#[test]
fn the_expression_answers_as_arrows_comparison_does_nulls_included() {
    let rows = [
        Some("MAIL"),
        None,
        Some("SHIP"),
        Some("DELIVER IN PERSON"),
        Some(""),
    ];
    let b = batch(&rows);
    let schema = b.schema();
    let s: Arc<dyn PhysicalExpr> = Arc::new(Column::new("s", 0));
    for constant in ["MAIL", "DELIVER IN PERSON", "", "X"] {
        let c: Arc<dyn PhysicalExpr> = Arc::new(Literal::new(ScalarValue::Utf8View(Some(
            constant.to_string(),
        ))));
        for op in [Operator::Eq, Operator::NotEq] {
            for (l, r) in [(&s, &c), (&c, &s)] {
                let ours = ViewEqExpr::try_new(l, op, r, &schema).expect("a view comparison");
                let theirs = BinaryExpr::new(Arc::clone(l), op, Arc::clone(r));
                let eval = |e: &dyn PhysicalExpr| -> BooleanArray {
                    let out = e.evaluate(&b).expect("evaluates");
                    out.into_array(b.num_rows())
                        .expect("array")
                        .as_boolean()
                        .clone()
                };
                assert_eq!(eval(&ours), eval(&theirs), "s {op} {constant:?}");
            }
        }
    }
    // Only string views against a constant.
    let t: Arc<dyn PhysicalExpr> = Arc::new(Column::new("t", 1));
    let c: Arc<dyn PhysicalExpr> = Arc::new(Literal::new("MAIL".into()));
    assert!(ViewEqExpr::try_new(&t, Operator::Eq, &c, &schema).is_none());
    assert!(ViewEqExpr::try_new(&s, Operator::Lt, &c, &schema).is_none());
    assert!(ViewEqExpr::try_new(&s, Operator::Eq, &s, &schema).is_none());
}

fn uses_view_eq(plan: &Arc<dyn ExecutionPlan>) -> bool {
    let mut found = false;
    let mut stack = vec![Arc::clone(plan)];
    while let Some(p) = stack.pop() {
        if let Some(f) = p.downcast_ref::<datafusion::physical_plan::filter::FilterExec>() {
            found |= format!("{:?}", f.predicate()).contains("ViewEqExpr");
        }
        stack.extend(p.children().into_iter().cloned());
    }
    found
}

/// TPC-H Q12's filter through DataFusion's own plan: rewritten, and the answer equal to a
/// plain count.
#[tokio::test]
async fn a_plan_computes_the_same_answer_with_its_string_comparisons_rewritten() {
    let ctx = SessionContext::new();
    let modes = ["MAIL", "SHIP", "AIR", "REG AIR", "TRUCK", "FOB", "RAIL"];
    let mut rng = StdRng::seed_from_u64(3);
    let rows: Vec<Option<&str>> = (0..5000)
        .map(|_| {
            rng.random_bool(0.95)
                .then(|| modes[rng.random_range(0..modes.len())])
        })
        .collect();
    ctx.register_batch("t", batch(&rows)).expect("register");
    let df = ctx
        .sql("SELECT s, count(*) AS n FROM t WHERE s IN ('MAIL', 'SHIP') OR s = 'REG AIR' GROUP BY s ORDER BY s")
        .await
        .expect("plans");
    let plan = df.create_physical_plan().await.expect("physical plan");
    let rewritten = view_equalities(Arc::clone(&plan)).expect("rewrites");
    assert!(
        uses_view_eq(&rewritten),
        "no view comparison in:\n{}",
        displayable(rewritten.as_ref()).indent(true)
    );
    let batches = collect(rewritten, ctx.task_ctx()).await.expect("runs");
    let mut got = Vec::new();
    for b in &batches {
        let (s, n) = (
            b.column(0).as_string_view(),
            b.column(1).as_primitive::<Int64Type>(),
        );
        for i in 0..b.num_rows() {
            got.push((s.value(i).to_string(), n.value(i)));
        }
    }
    let want: Vec<(String, i64)> = ["MAIL", "REG AIR", "SHIP"]
        .iter()
        .map(|m| {
            (
                m.to_string(),
                rows.iter().filter(|r| **r == Some(*m)).count() as i64,
            )
        })
        .collect();
    assert_eq!(got, want);
}
