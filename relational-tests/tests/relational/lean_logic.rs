use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, BooleanArray, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{BinaryExpr, Column, Literal};
use datafusion::physical_plan::{ExecutionPlan, collect, displayable};
use datafusion::prelude::SessionContext;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use kask_relational::lean_logic::{LeanLogicExpr, lean_logic};

/// Columns `a`, `b` and `c` of values 0 to 99, `nulls` of them null.
fn batch(rng: &mut StdRng, rows: usize, nulls: f64) -> RecordBatch {
    let schema = Arc::new(Schema::new(
        ["a", "b", "c"]
            .map(|n| Field::new(n, DataType::Int64, true))
            .to_vec(),
    ));
    let mut column = || -> Arc<dyn Array> {
        Arc::new(Int64Array::from_iter((0..rows).map(|_| {
            (!rng.random_bool(nulls)).then(|| rng.random_range(0..100))
        })))
    };
    let columns = vec![column(), column(), column()];
    RecordBatch::try_new(schema, columns).expect("batch")
}

fn below(column: &str, index: usize, bound: i64) -> Arc<dyn PhysicalExpr> {
    Arc::new(BinaryExpr::new(
        Arc::new(Column::new(column, index)),
        Operator::Lt,
        Arc::new(Literal::new(ScalarValue::Int64(Some(bound)))),
    ))
}

fn op(l: Arc<dyn PhysicalExpr>, o: Operator, r: Arc<dyn PhysicalExpr>) -> Arc<dyn PhysicalExpr> {
    Arc::new(BinaryExpr::new(l, o, r))
}

fn answers(e: &dyn PhysicalExpr, b: &RecordBatch) -> BooleanArray {
    let out = e.evaluate(b).expect("evaluates");
    out.into_array(b.num_rows())
        .expect("an array")
        .as_boolean()
        .clone()
}

/// The lean form of `e`, its `AND`s and `OR`s rewritten from the inside out.
fn lean(e: &Arc<dyn PhysicalExpr>, schema: &Schema) -> Arc<dyn PhysicalExpr> {
    kask_relational::lean_logic::rewrite_expr(e, schema)
        .expect("rewrites")
        .data
}

#[test]
fn and_and_or_answer_as_datafusions_do_nulls_included() {
    let mut rng = StdRng::seed_from_u64(5);
    let mut preselected = 0;
    for case in 0..400 {
        let nulls = [0.0, 0.0, 0.1][case % 3];
        let rows = rng.random_range(1..3000);
        let b = batch(&mut rng, rows, nulls);
        // Bounds from 0 to 100 make the left side hold on none, few, most or all rows.
        let mut bound = || rng.random_range(0..=100);
        let (x, y, z) = (bound(), bound(), bound());
        let ops = [Operator::And, Operator::Or];
        let (o1, o2) = (ops[case % 2], ops[(case / 2) % 2]);
        let exprs = [
            op(below("a", 0, x), o1, below("b", 1, y)),
            op(
                op(below("a", 0, x), o1, below("b", 1, y)),
                o2,
                below("c", 2, z),
            ),
            op(
                below("c", 2, z),
                o2,
                op(below("b", 1, y), o1, below("a", 0, x)),
            ),
        ];
        for e in &exprs {
            let rewritten = lean(e, &b.schema());
            assert!(
                rewritten.downcast_ref::<LeanLogicExpr>().is_some(),
                "{rewritten}"
            );
            assert_eq!(
                answers(rewritten.as_ref(), &b),
                answers(e.as_ref(), &b),
                "{e} nulls {nulls}"
            );
        }
        let left = answers(below("a", 0, x).as_ref(), &b);
        let kept = left.true_count() as f64 / b.num_rows() as f64;
        preselected += usize::from(nulls == 0.0 && kept > 0.0 && kept <= 0.2);
    }
    assert!(
        preselected > 20,
        "the pre-selecting path ran in {preselected} cases"
    );
}

/// TPC-H Q19's shape of filter through DataFusion's own plan: rewritten, and the answer
/// equal to a plain count.
#[tokio::test]
async fn a_plan_computes_the_same_answer_with_its_logic_rewritten() {
    let ctx = SessionContext::new();
    let mut rng = StdRng::seed_from_u64(9);
    let b = batch(&mut rng, 5000, 0.05);
    ctx.register_batch("t", b.clone()).expect("register");
    let df = ctx
        .sql(
            "SELECT count(*) AS n FROM t WHERE a < 10 AND (b < 30 OR c < 5) \
             OR a > 95 AND b < 50",
        )
        .await
        .expect("plans");
    let plan = df.create_physical_plan().await.expect("physical plan");
    let rewritten = lean_logic(Arc::clone(&plan)).expect("rewrites");
    assert_eq!(
        displayable(rewritten.as_ref()).indent(true).to_string(),
        displayable(plan.as_ref()).indent(true).to_string(),
        "the plan reads the same"
    );
    let mut found = false;
    let mut stack: Vec<Arc<dyn ExecutionPlan>> = vec![Arc::clone(&rewritten)];
    while let Some(p) = stack.pop() {
        if let Some(f) = p.downcast_ref::<datafusion::physical_plan::filter::FilterExec>() {
            found |= f.predicate().downcast_ref::<LeanLogicExpr>().is_some();
        }
        stack.extend(p.children().into_iter().cloned());
    }
    assert!(found, "no lean logic in the filter");
    let batches = collect(rewritten, ctx.task_ctx()).await.expect("runs");
    let got = batches[0].column(0).as_primitive::<Int64Type>().value(0);
    let col = |i: usize| b.column(i).as_primitive::<Int64Type>().clone();
    let (a, bb, c) = (col(0), col(1), col(2));
    let v = |x: &Int64Array, i: usize| x.is_valid(i).then(|| x.value(i));
    let want = (0..b.num_rows())
        .filter(|&i| {
            let (a, b, c) = (v(&a, i), v(&bb, i), v(&c, i));
            // SQL's three-valued logic, kept rows being those that are true.
            let lt = |x: Option<i64>, k: i64| x.map(|x| x < k);
            let gt = |x: Option<i64>, k: i64| x.map(|x| x > k);
            let and = |p: Option<bool>, q: Option<bool>| match (p, q) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            };
            let or = |p: Option<bool>, q: Option<bool>| match (p, q) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            };
            or(
                and(lt(a, 10), or(lt(b, 30), lt(c, 5))),
                and(gt(a, 95), lt(b, 50)),
            ) == Some(true)
        })
        .count() as i64;
    assert_eq!(got, want);
}
