//! Job graphs: several outputs over shared views. A view that two or more outputs use,
//! directly or through other views, is computed once: its plan is cut into stages of its
//! own, whose last stage keeps its rows in the shuffle (one partition per task), and the
//! queries that use it read it from there through a [`StageTable`]. A view that only one
//! output uses stays inline in that output's plan, where DataFusion can push filters into it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_expr::Partitioning;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use kask_api::SqlJob;

use super::errors::query_error;
use super::exchange::{ReadMode, ShuffleReaderExec, ShuffleSource};
use crate::tables::columns;
use kask_core::error::Result;

/// The names (lower case) of the tables and views `query` uses.
fn references(ctx: &SessionContext, at: &str, query: &str) -> Result<BTreeSet<String>> {
    let state = ctx.state();
    let dialect = state.config().options().sql_parser.dialect;
    let statement = state
        .sql_to_statement(query, &dialect)
        .map_err(|e| query_error(ctx, at, &e))?;
    let refs = state
        .resolve_table_references(&statement)
        .map_err(|e| query_error(ctx, at, &e))?;
    Ok(refs
        .iter()
        .map(|r| r.table().to_ascii_lowercase())
        .collect())
}

/// The views that two or more of the job's results use, directly or through other views:
/// the ones to compute once. A job with one query has none.
pub fn shared_views(ctx: &SessionContext, sql: &SqlJob) -> Result<BTreeSet<String>> {
    if sql.outputs.len() < 2 {
        return Ok(BTreeSet::new());
    }
    let views: BTreeMap<String, &str> = sql
        .views
        .iter()
        .map(|(n, _)| (n.to_ascii_lowercase(), n.as_str()))
        .collect();
    // What each view uses, in declaration order (a view may use only the views before it,
    // so one pass in order closes the relation).
    let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, query) in &sql.views {
        let at = format!("spec.sql.views.{name}");
        let mut all = BTreeSet::new();
        for r in references(ctx, &at, query)? {
            if views.contains_key(&r) {
                all.extend(uses.get(&r).cloned().unwrap_or_default());
                all.insert(r);
            }
        }
        uses.insert(name.to_ascii_lowercase(), all);
    }
    let mut users: BTreeMap<String, usize> = BTreeMap::new();
    for (name, out) in &sql.outputs {
        let at = format!("spec.sql.outputs.{name}.query");
        let mut all = BTreeSet::new();
        for r in references(ctx, &at, &out.query)? {
            if views.contains_key(&r) {
                all.extend(uses.get(&r).cloned().unwrap_or_default());
                all.insert(r);
            }
        }
        for v in all {
            *users.entry(v).or_default() += 1;
        }
    }
    Ok(users
        .into_iter()
        .filter(|(_, n)| *n >= 2)
        .map(|(v, _)| v)
        .collect())
}

/// A view computed by an earlier stage: each of that stage's tasks kept its rows as one
/// partition, and a scan reads task `p`'s rows as its partition `p`.
#[derive(Debug)]
pub struct StageTable {
    stage: usize,
    tasks: usize,
    schema: SchemaRef,
    source: Arc<dyn ShuffleSource>,
}

impl StageTable {
    /// The rows of stage `stage`, which has `tasks` tasks.
    pub fn new(
        stage: usize,
        tasks: usize,
        schema: SchemaRef,
        source: Arc<dyn ShuffleSource>,
    ) -> Self {
        StageTable {
            stage,
            tasks: tasks.max(1),
            schema,
            source,
        }
    }
}

#[async_trait]
impl TableProvider for StageTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let reader: Arc<dyn ExecutionPlan> = Arc::new(ShuffleReaderExec::new(
            self.stage,
            ReadMode::Map,
            Arc::clone(&self.schema),
            Partitioning::UnknownPartitioning(self.tasks),
            Arc::clone(&self.source),
        ));
        match projection {
            Some(indices) => columns(reader, indices),
            None => Ok(reader),
        }
    }
}
