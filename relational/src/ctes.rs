//! Common table expressions that a query uses more than once are computed once, as
//! PostgreSQL does: DataFusion inlines a CTE wherever it is named, so TPC-H q15's `revenue0`
//! (an aggregation of a quarter of `lineitem`) would scan `lineitem` twice. A CTE named two or
//! more times (or marked `AS MATERIALIZED`) is planned on its own and read back by every use,
//! like a job graph's shared view ([`crate::graph`]); `AS NOT MATERIALIZED` keeps it inline.
//! Only the query's own `WITH` counts (not one inside a subquery), and not a recursive one nor
//! one that names its columns (`WITH r(a, b) AS …`).

use std::ops::ControlFlow;

use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    CteAsMaterialized, Ident, ObjectName, Query, SetExpr, Statement, visit_relations,
};

/// A query's CTEs to compute once, in the order they are declared, and the query without
/// them.
#[derive(Debug, PartialEq)]
pub struct SharedCtes {
    /// Each CTE's name (as SQL resolves it) and its own query, with the CTEs before it that
    /// it may use.
    pub ctes: Vec<(String, String)>,
    /// The query, its `WITH` without the CTEs computed once.
    pub rest: String,
}

/// A name as SQL resolves it: an unquoted identifier in lower case.
fn resolved(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_ascii_lowercase(),
    }
}

fn relation_name(name: &ObjectName) -> Option<String> {
    match name.0.as_slice() {
        [one] => one.as_ident().map(resolved),
        _ => None,
    }
}

/// The CTEs of `query` to compute once; `None` when there are none (or it cannot be read:
/// planning it whole then reports why). `taken` says whether a name is already a table or
/// view of the session, which a CTE of that name shadows: it stays inline.
pub fn shared_ctes(
    ctx: &SessionContext,
    query: &str,
    taken: &dyn Fn(&str) -> bool,
) -> Option<SharedCtes> {
    let state = ctx.state();
    let dialect = state.config().options().sql_parser.dialect;
    let DfStatement::Statement(statement) = state.sql_to_statement(query, &dialect).ok()? else {
        return None;
    };
    let Statement::Query(q) = *statement else {
        return None;
    };
    shared_in(&q, taken)
}

fn shared_in(q: &Query, taken: &dyn Fn(&str) -> bool) -> Option<SharedCtes> {
    let with = q.with.as_ref()?;
    if with.recursive {
        return None;
    }
    let mut uses = vec![0usize; with.cte_tables.len()];
    let names: Vec<String> = with
        .cte_tables
        .iter()
        .map(|c| resolved(&c.alias.name))
        .collect();
    let _ = visit_relations(q, |name| {
        if let Some(n) = relation_name(name)
            && let Some(i) = names.iter().position(|c| *c == n)
        {
            uses[i] += 1;
        }
        ControlFlow::<()>::Continue(())
    });
    let once: Vec<bool> = with
        .cte_tables
        .iter()
        .enumerate()
        .map(|(i, c)| match c.materialized {
            // Its column names are the alias's, which its query alone would lose.
            _ if !c.alias.columns.is_empty() => false,
            Some(CteAsMaterialized::NotMaterialized) => false,
            Some(CteAsMaterialized::Materialized) => !taken(&names[i]),
            None => uses[i] >= 2 && !taken(&names[i]),
        })
        .collect();
    if !once.iter().any(|&o| o) {
        return None;
    }
    let mut ctes = Vec::new();
    for (i, cte) in with.cte_tables.iter().enumerate() {
        if !once[i] {
            continue;
        }
        // The CTE's query with the inline CTEs declared before it, which it may use (those
        // computed once are tables by then).
        let mut own = (*cte.query).clone();
        let before: Vec<_> = with.cte_tables[..i]
            .iter()
            .zip(&once)
            .filter(|(_, o)| !**o)
            .map(|(c, _)| c.clone())
            .collect();
        if !before.is_empty() {
            if own.with.is_some() || !matches!(*own.body, SetExpr::Select(_) | SetExpr::Query(_)) {
                return None;
            }
            let mut w = with.clone();
            w.cte_tables = before;
            own.with = Some(w);
        }
        ctes.push((names[i].clone(), own.to_string()));
    }
    let mut rest = q.clone();
    let mut w = with.clone();
    w.cte_tables = with
        .cte_tables
        .iter()
        .zip(&once)
        .filter(|(_, o)| !**o)
        .map(|(c, _)| c.clone())
        .collect();
    rest.with = (!w.cte_tables.is_empty()).then_some(w);
    Some(SharedCtes {
        ctes,
        rest: rest.to_string(),
    })
}
