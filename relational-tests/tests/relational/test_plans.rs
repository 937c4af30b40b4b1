//! Plans for these tests: a build side that counts its runs, a source that only names
//! its job, and finding a node of a plan by name.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::error::Result as DfResult;
use datafusion::execution::TaskContext;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};

use kask_core::error::{Error, Result};
use kask_core::marker::TaskMarker;
use kask_core::shuffle::SliceReader;
use kask_relational::exchange::ShuffleSource;
use kask_relational::key_filter::KeyBloom;
use kask_relational::shares::Shares;
use kask_relational::skew::SharedJoin;

/// A source that only names its job, `.0`.
#[derive(Debug)]
pub struct Named(pub &'static str);

#[async_trait]
impl ShuffleSource for Named {
    async fn maps(&self, _stage: usize) -> Result<Vec<TaskMarker>> {
        Err(Error::internal("no shuffles here"))
    }
    async fn open(&self, _map: TaskMarker, _partitions: Range<usize>) -> Result<SliceReader> {
        Err(Error::internal("no shuffles here"))
    }
    async fn shares(&self, _join: SharedJoin, _partitions: usize) -> Result<Arc<Shares>> {
        Err(Error::internal("no shuffles here"))
    }
    async fn next(&self, _slice: &mut SliceReader) -> Result<Option<RecordBatch>> {
        Err(Error::internal("no shuffles here"))
    }
    fn scope(&self) -> Option<String> {
        Some(self.0.into())
    }
    async fn key_filter(&self, _stage: usize) -> Result<Option<Arc<KeyBloom>>> {
        Ok(None)
    }
}

/// `rows`, counting in `runs` how often they are run.
#[derive(Debug)]
pub struct Counted {
    rows: Arc<dyn ExecutionPlan>,
    runs: Arc<AtomicUsize>,
}

impl Counted {
    pub fn new(rows: Arc<dyn ExecutionPlan>, runs: Arc<AtomicUsize>) -> Counted {
        Counted { rows, runs }
    }
}

impl DisplayAs for Counted {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "Counted")
    }
}

impl ExecutionPlan for Counted {
    fn name(&self) -> &str {
        "Counted"
    }
    fn properties(&self) -> &Arc<PlanProperties> {
        self.rows.properties()
    }
    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }
    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }
    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }
    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        self.rows.execute(partition, context)
    }
}

/// The last node named `name` in `plan` (walked from the root down), if any.
pub fn node_named(plan: &Arc<dyn ExecutionPlan>, name: &str) -> Option<Arc<dyn ExecutionPlan>> {
    let mut found = None;
    plan.apply(|n| {
        if n.name() == name {
            found = Some(Arc::clone(n));
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .expect("walked");
    found
}
