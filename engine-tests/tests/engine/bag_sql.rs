//! Bag expressions and DataFusion's SQL must not be two dialects that disagree: random typed
//! expressions over one record, evaluated by the bag evaluator and by DataFusion over a
//! one-row table holding the same values, agree wherever both give a value (an error on
//! either side, such as a division by zero or an overflow, is not compared).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use kask_worker::bag::expr::RecordExpr;
use proptest::prelude::*;
use serde_json::{Value, json};

/// One record: `a` an integer or null, `f` a float, `s` a string or null, `t` a string.
#[derive(Clone, Debug)]
struct Record {
    a: Option<i64>,
    f: f64,
    s: Option<String>,
    t: String,
}

fn record() -> impl Strategy<Value = Record> {
    (
        prop::option::weighted(0.8, -20i64..20),
        prop_oneof![-50.0..50.0f64, Just(0.0), Just(-1.5)],
        prop::option::weighted(0.8, "[a-cA-C %_]{0,5}"),
        "[a-c]{0,4}",
    )
        .prop_map(|(a, f, s, t)| Record { a, f, s, t })
}

fn int_expr() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("a".to_string()),
        (-5i64..6).prop_map(|v| v.to_string()),
        Just("length(t)".to_string()),
    ];
    leaf.prop_recursive(3, 16, 2, |inner| {
        prop_oneof![
            (
                inner.clone(),
                prop_oneof![Just("+"), Just("-"), Just("*"), Just("/"), Just("%")],
                inner.clone()
            )
                .prop_map(|(l, op, r)| format!("({l} {op} {r})")),
            inner.clone().prop_map(|e| format!("abs({e})")),
            inner.clone().prop_map(|e| format!("(- {e})")),
            (inner.clone(), inner.clone()).prop_map(|(l, r)| format!("coalesce({l}, {r})")),
            (bool_leaf(), inner.clone(), inner)
                .prop_map(|(c, l, r)| format!("CASE WHEN {c} THEN {l} ELSE {r} END")),
        ]
    })
}

fn float_expr() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("f".to_string()),
        Just("(f * 2.5)".to_string()),
        int_expr().prop_map(|i| format!("(f + {i})")),
        int_expr().prop_map(|i| format!("({i} / 2.0)")),
        Just("abs(f)".to_string()),
        Just("floor(f)".to_string()),
        Just("ceil(f)".to_string()),
    ]
}

fn str_expr() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("s".to_string()),
        Just("t".to_string()),
        Just("'xY'".to_string()),
        Just("''".to_string()),
    ];
    leaf.prop_recursive(2, 8, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(l, r)| format!("({l} || {r})")),
            inner.clone().prop_map(|e| format!("upper({e})")),
            inner.clone().prop_map(|e| format!("lower({e})")),
            inner.clone().prop_map(|e| format!("trim({e})")),
            inner.clone().prop_map(|e| format!("substr({e}, 2, 2)")),
            inner
                .clone()
                .prop_map(|e| format!("replace({e}, 'a', 'zz')")),
            (inner.clone(), inner).prop_map(|(l, r)| format!("coalesce({l}, {r})")),
        ]
    })
}

fn bool_leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("(a > 0)".to_string()),
        Just("(s = t)".to_string()),
        Just("(a IS NULL)".to_string()),
        Just("(s LIKE 'a%')".to_string()),
    ]
}

fn bool_expr() -> impl Strategy<Value = String> {
    let cmp = prop_oneof![
        Just("="),
        Just("<>"),
        Just("<"),
        Just("<="),
        Just(">"),
        Just(">=")
    ];
    let leaf = prop_oneof![
        (int_expr(), cmp.clone(), int_expr()).prop_map(|(l, op, r)| format!("({l} {op} {r})")),
        (str_expr(), cmp, str_expr()).prop_map(|(l, op, r)| format!("({l} {op} {r})")),
        int_expr().prop_map(|e| format!("({e} IS NULL)")),
        str_expr().prop_map(|e| format!("({e} IS NOT NULL)")),
        int_expr().prop_map(|e| format!("({e} IN (1, 2, -3))")),
        int_expr().prop_map(|e| format!("({e} BETWEEN -2 AND 7)")),
        (
            str_expr(),
            prop_oneof![Just("'a%'"), Just("'%b_'"), Just("'_'"), Just("'%'")]
        )
            .prop_map(|(e, p)| format!("({e} LIKE {p})")),
        (str_expr(), prop_oneof![Just("'A%'"), Just("'%c'")])
            .prop_map(|(e, p)| format!("({e} ILIKE {p})")),
    ];
    leaf.prop_recursive(2, 8, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(l, r)| format!("({l} AND {r})")),
            (inner.clone(), inner.clone()).prop_map(|(l, r)| format!("({l} OR {r})")),
            inner.prop_map(|e| format!("(NOT {e})")),
        ]
    })
}

fn any_expr() -> impl Strategy<Value = String> {
    prop_oneof![int_expr(), float_expr(), str_expr(), bool_expr()]
}

/// DataFusion's value of `expr` over the record, as JSON; `None` when it fails.
async fn datafusion_value(r: &Record, expr: &str) -> Option<Value> {
    let batch = RecordBatch::try_from_iter(vec![
        ("a", Arc::new(Int64Array::from(vec![r.a])) as ArrayRef),
        ("f", Arc::new(Float64Array::from(vec![r.f])) as ArrayRef),
        (
            "s",
            Arc::new(StringArray::from(vec![r.s.clone()])) as ArrayRef,
        ),
        (
            "t",
            Arc::new(StringArray::from(vec![r.t.clone()])) as ArrayRef,
        ),
    ])
    .expect("batch");
    let ctx = SessionContext::new();
    let table = MemTable::try_new(batch.schema(), vec![vec![batch]]).expect("table");
    ctx.register_table("r", Arc::new(table)).expect("register");
    let df = ctx.sql(&format!("SELECT {expr} AS v FROM r")).await.ok()?;
    let out = df.collect().await.ok()?;
    let b = out.first()?;
    let col = datafusion::arrow::compute::cast(
        b.column(0),
        &match b.column(0).data_type() {
            DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
            dt if dt.is_integer() => DataType::Int64,
            dt => dt.clone(),
        },
    )
    .ok()?;
    if col.is_null(0) {
        return Some(Value::Null);
    }
    let any = col.as_any();
    Some(if let Some(x) = any.downcast_ref::<Int64Array>() {
        json!(x.value(0))
    } else if let Some(x) = any.downcast_ref::<Float64Array>() {
        json!(x.value(0))
    } else if let Some(x) = any.downcast_ref::<StringArray>() {
        json!(x.value(0))
    } else if let Some(x) = any.downcast_ref::<BooleanArray>() {
        json!(x.value(0))
    } else {
        panic!("{expr}: DataFusion gave a {}", col.data_type())
    })
}

/// The same value and the same kind of value: an integer is not a float.
fn agree(bag: &Value, df: &Value) -> bool {
    match (bag, df) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) if bag.is_f64() && df.is_f64() => {
                    (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0)
                }
                _ => false,
            }
        }
        _ => bag == df,
    }
}

static RUNTIME: std::sync::LazyLock<tokio::runtime::Runtime> = std::sync::LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
});

#[test]
fn bag_expressions_agree_with_datafusion() {
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    let (compared, bag_only, df_only) = (
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    );
    let config = ProptestConfig {
        cases: 500,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let result = runner.run(&(record(), any_expr()), |(r, expr)| {
        let item = json!({"a": r.a, "f": r.f, "s": r.s, "t": r.t});
        let bag = RecordExpr::compile(&expr)
            .unwrap_or_else(|e| panic!("{expr}: the bag evaluator cannot compile it: {e}"))
            .eval(&item);
        let df = RUNTIME.block_on(datafusion_value(&r, &expr));
        match (bag, df) {
            (Ok(bag), Some(df)) => {
                compared.fetch_add(1, Relaxed);
                prop_assert!(
                    agree(&bag, &df),
                    "{expr} over {item}: bag {bag}, DataFusion {df}"
                );
            }
            (Ok(_), None) => {
                bag_only.fetch_add(1, Relaxed);
            }
            (Err(_), Some(_)) => {
                df_only.fetch_add(1, Relaxed);
            }
            (Err(_), None) => {}
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let (n, b, d) = (
        compared.into_inner(),
        bag_only.into_inner(),
        df_only.into_inner(),
    );
    eprintln!(
        "bag vs DataFusion: {n} compared, {b} only the bag evaluated, {d} only DataFusion did"
    );
    // Most expressions must be defined on both sides, or the comparison proves little.
    assert!(
        n >= 350,
        "only {n} of 500 expressions compared ({b} bag only, {d} DataFusion only)"
    );
}
