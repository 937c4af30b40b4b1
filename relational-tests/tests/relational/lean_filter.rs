use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringViewArray};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{BinaryExpr, Column, IsNotNullExpr, Literal};
use datafusion::physical_plan::filter::FilterExecBuilder;
use datafusion::physical_plan::{ExecutionPlan, collect, displayable};
use datafusion::prelude::SessionContext;

use kask_relational::lean_filter::lean_filters;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("a", DataType::Int64, true),
        Field::new("s", DataType::Utf8View, true),
    ]))
}

/// Batches of the given sizes holding `a` = 0, 1, 2, ... in order (null where `null(a)`), and
/// `s` = "k{a % 7}".
fn batches(sizes: &[usize], null: impl Fn(i64) -> bool) -> Vec<RecordBatch> {
    let mut next = 0i64;
    sizes
        .iter()
        .map(|&n| {
            let a: Vec<i64> = (next..next + n as i64).collect();
            next += n as i64;
            let ints = Int64Array::from_iter(a.iter().map(|&v| (!null(v)).then_some(v)));
            let strs = StringViewArray::from_iter_values(a.iter().map(|v| format!("k{}", v % 7)));
            RecordBatch::try_new(schema(), vec![Arc::new(ints), Arc::new(strs)]).expect("batch")
        })
        .collect()
}

fn filter(
    input: Vec<RecordBatch>,
    predicate: Arc<dyn PhysicalExpr>,
    target: usize,
) -> Arc<dyn ExecutionPlan> {
    let source = MemorySourceConfig::try_new_exec(&[input], schema(), None).expect("source");
    Arc::new(
        FilterExecBuilder::new(predicate, source)
            .with_batch_size(target)
            .build()
            .expect("filter"),
    )
}

fn a_is_not_null() -> Arc<dyn PhysicalExpr> {
    Arc::new(IsNotNullExpr::new(Arc::new(Column::new("a", 0))))
}

/// `a % m = 0`.
fn a_divisible_by(m: i64) -> Arc<dyn PhysicalExpr> {
    let rem = Arc::new(BinaryExpr::new(
        Arc::new(Column::new("a", 0)),
        Operator::Modulo,
        Arc::new(Literal::new(ScalarValue::Int64(Some(m)))),
    ));
    Arc::new(BinaryExpr::new(
        rem,
        Operator::Eq,
        Arc::new(Literal::new(ScalarValue::Int64(Some(0)))),
    ))
}

async fn run(plan: Arc<dyn ExecutionPlan>) -> Vec<RecordBatch> {
    collect(plan, SessionContext::new().task_ctx())
        .await
        .expect("runs")
}

/// Every output row's `a` and `s`, in order.
fn rows(out: &[RecordBatch]) -> Vec<(Option<i64>, String)> {
    out.iter()
        .flat_map(|b| {
            let a = b.column(0).as_primitive::<Int64Type>();
            let s = b.column(1).as_string_view();
            (0..b.num_rows())
                .map(|i| (a.is_valid(i).then(|| a.value(i)), s.value(i).to_string()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The rows a plain loop keeps: `a` not null and `keep(a)`, in order.
fn reference(
    sizes: &[usize],
    null: impl Fn(i64) -> bool,
    keep: impl Fn(i64) -> bool,
) -> Vec<(Option<i64>, String)> {
    let total: usize = sizes.iter().sum();
    (0..total as i64)
        .filter(|&v| !null(v) && keep(v))
        .map(|v| (Some(v), format!("k{}", v % 7)))
        .collect()
}

#[tokio::test]
async fn a_filter_that_keeps_every_row_hands_on_the_input_arrays() {
    let sizes = [100, 30, 100, 7, 100];
    let input = batches(&sizes, |_| false);
    let plan = lean_filters(filter(input.clone(), a_is_not_null(), 64)).expect("rewrite");
    let out = run(plan).await;
    // The large batches pass as they are; each small one is handed on before the next large
    // one, so the order holds.
    let got: Vec<usize> = out.iter().map(RecordBatch::num_rows).collect();
    assert_eq!(got, vec![100, 30, 100, 7, 100]);
    for i in [0, 2, 4] {
        let (a_in, a_out) = (input[i].column(0).to_data(), out[i].column(0).to_data());
        assert_eq!(
            a_in.buffers()[0].as_ptr(),
            a_out.buffers()[0].as_ptr(),
            "batch {i} was copied"
        );
        let (s_in, s_out) = (input[i].column(1).to_data(), out[i].column(1).to_data());
        assert_eq!(s_in.buffers()[0].as_ptr(), s_out.buffers()[0].as_ptr());
    }
    assert_eq!(rows(&out), reference(&sizes, |_| false, |_| true));
}

#[tokio::test]
async fn a_selective_filter_gathers_its_small_batches_in_order() {
    let sizes = [50; 10];
    let plan =
        lean_filters(filter(batches(&sizes, |_| false), a_divisible_by(5), 64)).expect("rewrite");
    let out = run(plan).await;
    let got: Vec<usize> = out.iter().map(RecordBatch::num_rows).collect();
    assert_eq!(
        got,
        vec![64, 36],
        "ten batches of 10 kept rows, gathered to 64"
    );
    assert_eq!(rows(&out), reference(&sizes, |_| false, |v| v % 5 == 0));
    for b in &out {
        assert_eq!(b.schema(), schema());
        assert_eq!(b.column(1).data_type(), &DataType::Utf8View);
    }
}

#[tokio::test]
async fn large_and_small_outputs_mixed_keep_their_rows_and_order() {
    // Every third value null: `a IS NOT NULL AND a % 2 = 0` keeps a third of the rows, so
    // batches of 300 give large outputs (100 rows) and batches of 20 small ones.
    let sizes = [300, 20, 20, 300, 20, 300, 1, 20];
    let null = |v: i64| v % 3 == 0;
    let predicate = Arc::new(BinaryExpr::new(
        a_is_not_null(),
        Operator::And,
        a_divisible_by(2),
    ));
    let plan = lean_filters(filter(batches(&sizes, null), predicate, 128)).expect("rewrite");
    let out = run(plan).await;
    assert_eq!(rows(&out), reference(&sizes, null, |v| v % 2 == 0));
    assert!(out.iter().all(|b| b.num_rows() > 0));
}

#[test]
fn the_rewrite_puts_the_gathering_above_each_filter_once() {
    let plan = filter(batches(&[10], |_| false), a_is_not_null(), 64);
    let once = lean_filters(plan).expect("rewrite");
    let twice = lean_filters(Arc::clone(&once)).expect("rewrite");
    let text = displayable(twice.as_ref()).indent(true).to_string();
    assert_eq!(text.matches("SmallBatchesExec").count(), 1, "{text}");
    assert!(
        text.starts_with("SmallBatchesExec: gathers batches under 32 rows into batches of 64"),
        "{text}"
    );
    assert_eq!(once.schema(), schema());
}
