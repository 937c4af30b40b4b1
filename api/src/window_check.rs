//! Validation of the `window` step: one operation per column, with only the options it takes.

use crate::spec::{RankMethod, Window, WindowColumn};
use crate::validate::Errors;

/// Checks a `window` step at `at` (its field path, ending in `.window`).
pub(crate) fn check_window(w: &Window, at: &str, e: &mut Errors) {
    if w.columns.is_empty() {
        e.add(
            format!("{at}.columns"),
            "needs at least one column, e.g. {avg3: {column: v, rolling: 3, agg: mean}}",
        );
    }
    for (field, list) in [("by", &w.by), ("orderBy", &w.order_by)] {
        if list.iter().any(String::is_empty) {
            e.add(format!("{at}.{field}"), "a column name is empty");
        }
    }
    for (name, c) in &w.columns {
        let at = format!("{at}.columns.{name}");
        if name.is_empty() {
            e.add(&at, "the new column needs a name");
        }
        check_column(w, c, &at, e);
    }
}

fn check_column(w: &Window, c: &WindowColumn, at: &str, e: &mut Errors) {
    if c.column.is_empty() {
        e.add(format!("{at}.column"), "needs the column to compute from");
    }
    let ops = [
        ("rolling", c.rolling.is_some()),
        ("expanding", c.expanding == Some(true)),
        ("cum", c.cum.is_some()),
        ("shift", c.shift.is_some()),
        ("diff", c.diff.is_some()),
        ("rank", c.rank.is_some()),
    ];
    let set: Vec<&str> = ops.iter().filter(|(_, s)| *s).map(|(k, _)| *k).collect();
    match set.as_slice() {
        [] => e.add(
            at,
            "needs one of rolling, expanding, cum, shift, diff or rank",
        ),
        [_] => {}
        many => e.add(
            at,
            format!("sets {}; one column takes one operation", many.join(", ")),
        ),
    }
    let framed = c.rolling.is_some() || c.expanding == Some(true);
    if framed && c.agg.is_none() {
        e.add(
            format!("{at}.agg"),
            "a rolling or expanding window needs agg: sum, mean, min, max, count, std or var",
        );
    }
    if !framed && c.agg.is_some() {
        e.add(
            format!("{at}.agg"),
            "is only for rolling and expanding windows",
        );
    }
    if !framed && c.min_periods.is_some() {
        e.add(
            format!("{at}.minPeriods"),
            "is only for rolling and expanding windows",
        );
    }
    if c.rolling == Some(0) {
        e.add(format!("{at}.rolling"), "a window needs at least one row");
    }
    if let (Some(n), Some(m)) = (c.rolling, c.min_periods)
        && m > n
    {
        e.add(
            format!("{at}.minPeriods"),
            format!("{m} is more than the window's {n} rows"),
        );
    }
    if c.ascending.is_some() && c.rank.is_none() {
        e.add(format!("{at}.ascending"), "is only for rank");
    }
    let ordered = c.rank.is_none() || c.rank == Some(RankMethod::First);
    if ordered && w.order_by.is_empty() && set.len() == 1 {
        e.add(
            at,
            format!(
                "{} needs the window's orderBy: a distributed table's rows have no order of their own",
                set[0]
            ),
        );
    }
}
