//! The `window` step: pandas' rolling, expanding, cumulative, shift, diff and rank operations,
//! written as SQL window expressions that an `assign` computes. Where SQL and pandas differ,
//! the expressions follow pandas: a window with fewer non-null values than `minPeriods` is
//! null, a running total is null where its value is null, ranks skip nulls and are floats, and
//! (with `dropna`) a row whose group key is null gets null.

use indexmap::IndexMap;

use kask_api::{CumOp, RankMethod, Window, WindowAgg, WindowColumn};

/// The new columns of a `window` step as `assign` expressions, in the step's order.
pub fn expressions(w: &Window) -> IndexMap<String, String> {
    w.columns
        .iter()
        .map(|(name, c)| {
            let value = column_expr(w, c);
            let value = if w.dropna && !w.by.is_empty() {
                let null_key: Vec<String> =
                    w.by.iter()
                        .map(|k| format!("{} IS NULL", quoted(k)))
                        .collect();
                format!(
                    "CASE WHEN {} THEN NULL ELSE {value} END",
                    null_key.join(" OR ")
                )
            } else {
                value
            };
            (name.clone(), value)
        })
        .collect()
}

/// A column name as an SQL identifier, whatever it holds.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `OVER (PARTITION BY <by> ORDER BY <order> <frame>)`.
fn over(by: &[String], order: &[String], frame: &str) -> String {
    let mut parts = Vec::new();
    if !by.is_empty() {
        let keys: Vec<String> = by.iter().map(|k| quoted(k)).collect();
        parts.push(format!("PARTITION BY {}", keys.join(", ")));
    }
    if !order.is_empty() {
        parts.push(format!("ORDER BY {}", order.join(", ")));
    }
    if !frame.is_empty() {
        parts.push(frame.to_string());
    }
    format!("OVER ({})", parts.join(" "))
}

fn column_expr(w: &Window, c: &WindowColumn) -> String {
    let v = quoted(&c.column);
    let order: Vec<String> = w
        .order_by
        .iter()
        .map(|o| format!("{} ASC NULLS LAST", quoted(o)))
        .collect();
    let unless_null = |e: String| format!("CASE WHEN {v} IS NULL THEN NULL ELSE {e} END");
    if let (Some(n), Some(agg)) = (c.rolling, c.agg) {
        let frame = format!("ROWS BETWEEN {} PRECEDING AND CURRENT ROW", n.max(1) - 1);
        return framed(
            &v,
            agg,
            &over(&w.by, &order, &frame),
            c.min_periods.unwrap_or(n),
        );
    }
    if let (Some(true), Some(agg)) = (c.expanding, c.agg) {
        let frame = over(&w.by, &order, "ROWS UNBOUNDED PRECEDING");
        return framed(&v, agg, &frame, c.min_periods.unwrap_or(1));
    }
    if let Some(op) = c.cum {
        let f = match op {
            CumOp::Sum => "sum",
            CumOp::Max => "max",
            CumOp::Min => "min",
        };
        let running = over(&w.by, &order, "ROWS UNBOUNDED PRECEDING");
        return unless_null(format!("{f}({v}) {running}"));
    }
    if let Some(n) = c.shift {
        return match n {
            0 => v,
            n if n > 0 => format!("lag({v}, {n}) {}", over(&w.by, &order, "")),
            n => format!("lead({v}, {}) {}", -i64::from(n), over(&w.by, &order, "")),
        };
    }
    if let Some(n) = c.diff {
        let before = match n {
            0 => v.clone(),
            n if n > 0 => format!("lag({v}, {n}) {}", over(&w.by, &order, "")),
            n => format!("lead({v}, {}) {}", -i64::from(n), over(&w.by, &order, "")),
        };
        return format!("CAST({v} AS DOUBLE) - CAST({before} AS DOUBLE)");
    }
    let method = c.rank.unwrap_or(RankMethod::Average);
    let dir = if c.ascending.unwrap_or(true) {
        "ASC"
    } else {
        "DESC"
    };
    let by_value = vec![format!("{v} {dir} NULLS LAST")];
    let ranked = over(&w.by, &by_value, "");
    // The highest rank of a value's ties: the group's values less those after them, which
    // the rank in the reverse order counts (nulls last both ways, so they count in neither).
    let reverse = if dir == "ASC" { "DESC" } else { "ASC" };
    let reversed = over(&w.by, &[format!("{v} {reverse} NULLS LAST")], "");
    let values = format!("count({v}) {}", over(&w.by, &[], ""));
    let highest = format!("({values} - rank() {reversed} + 1)");
    let rank = match method {
        RankMethod::Min => format!("rank() {ranked}"),
        RankMethod::Max => highest,
        RankMethod::Average => format!("(rank() {ranked} + {highest}) / 2.0"),
        RankMethod::Dense => format!("dense_rank() {ranked}"),
        RankMethod::First => {
            let then_order: Vec<String> = by_value.into_iter().chain(order).collect();
            format!("row_number() {}", over(&w.by, &then_order, ""))
        }
    };
    unless_null(format!("CAST({rank} AS DOUBLE)"))
}

/// A rolling or expanding aggregation, null when the window holds fewer than `min_periods`
/// non-null values; a float, as pandas gives.
fn framed(v: &str, agg: WindowAgg, over: &str, min_periods: u32) -> String {
    let f = match agg {
        WindowAgg::Sum => "sum",
        WindowAgg::Mean => "avg",
        WindowAgg::Min => "min",
        WindowAgg::Max => "max",
        WindowAgg::Count => "count",
        WindowAgg::Std => "stddev_samp",
        WindowAgg::Var => "var_samp",
    };
    let value = format!("CAST({f}({v}) {over} AS DOUBLE)");
    // pandas sums an empty window to 0 where SQL gives null.
    let value = if agg == WindowAgg::Sum {
        format!("COALESCE({value}, 0.0)")
    } else {
        value
    };
    if min_periods == 0 {
        return value;
    }
    // pandas counts a window's values towards `min_periods`, but for `count` itself its rows
    // (it counts the non-null flags, which are never null).
    let counted = if agg == WindowAgg::Count { "*" } else { v };
    format!("CASE WHEN count({counted}) {over} >= {min_periods} THEN {value} END")
}
