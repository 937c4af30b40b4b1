//! Filters that hand on the large batches they produce as they are.
//!
//! DataFusion's `FilterExec` gathers its output into batches of the session's batch size, and
//! once it holds a remainder (the end of a Parquet row group leaves one), it copies every later
//! batch into its buffer to cut full batches from it: a filter that keeps almost every row
//! copies almost every row once more. The `id1 IS NOT NULL` of a pandas-style groupby
//! (`dropna`) keeps all of them; in db-benchmark groupby q1 at 1e8 rows that copy was 17% of the
//! CPU samples (`perf`: `InProgressByteViewArray::copy_rows` under `FilterExecStream`).
//!
//! A task therefore runs each filter without its gathering ([`lean_filters`]) and puts
//! [`SmallBatchesExec`] above it, which hands on every batch of at least half the target as it
//! is and gathers only the smaller ones, so a selective filter's downstream still gets full
//! batches. A batch the filter keeps whole is the scan's own arrays (arrow's filter kernel
//! shares them when every row is kept).

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::compute::BatchCoalescer;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::Result as DfResult;
use datafusion::execution::TaskContext;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};

use crate::one_input::only_input;
use crate::queued_stream::{Queue, queued};

/// Hands on its input's batches of at least half of `target` rows as they are, and gathers
/// smaller ones into batches of `target` rows, keeping the rows' order.
#[derive(Debug)]
pub struct SmallBatchesExec {
    input: Arc<dyn ExecutionPlan>,
    target: usize,
}

impl SmallBatchesExec {
    /// Over `input`, gathering small batches into batches of `target` rows.
    pub fn new(input: Arc<dyn ExecutionPlan>, target: usize) -> SmallBatchesExec {
        SmallBatchesExec {
            input,
            target: target.max(1),
        }
    }
}

impl DisplayAs for SmallBatchesExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "SmallBatchesExec: gathers batches under {} rows into batches of {}",
            self.target / 2,
            self.target
        )
    }
}

impl ExecutionPlan for SmallBatchesExec {
    fn name(&self) -> &str {
        "SmallBatchesExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(SmallBatchesExec::new(
            only_input(children, "SmallBatchesExec")?,
            self.target,
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let schema = input.schema();
        let gather = Gather {
            small: BatchCoalescer::new(Arc::clone(&schema), self.target),
            big: self.target / 2,
            ready: VecDeque::new(),
        };
        Ok(queued(input, gather, schema))
    }
}

/// The batches of one partition on their way through [`SmallBatchesExec`].
struct Gather {
    small: BatchCoalescer,
    /// Batches of at least this many rows are handed on as they are.
    big: usize,
    /// Batches to hand on, in order.
    ready: VecDeque<RecordBatch>,
}

impl Queue for Gather {
    fn push(&mut self, batch: RecordBatch) -> DfResult<()> {
        if batch.num_rows() >= self.big {
            // The gathered rows came first, so they go first, however few.
            self.small.finish_buffered_batch()?;
            self.take_completed();
            self.ready.push_back(batch);
        } else {
            self.small.push_batch(batch)?;
            self.take_completed();
        }
        Ok(())
    }

    fn finish(&mut self) -> DfResult<()> {
        self.small.finish_buffered_batch()?;
        self.take_completed();
        Ok(())
    }

    fn ready(&mut self) -> &mut VecDeque<RecordBatch> {
        &mut self.ready
    }
}

impl Gather {
    fn take_completed(&mut self) {
        while let Some(b) = self.small.next_completed_batch() {
            self.ready.push_back(b);
        }
    }
}

/// `plan` with every `FilterExec` handing on its batches ungathered (its gathering target set
/// to one row, under which every non-empty batch passes straight through) below a
/// [`SmallBatchesExec`] with the filter's own target. Results and their order are unchanged.
pub fn lean_filters(plan: Arc<dyn ExecutionPlan>) -> DfResult<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        let Some(f) = node.downcast_ref::<FilterExec>() else {
            return Ok(Transformed::no(node));
        };
        if f.batch_size() <= 1 {
            return Ok(Transformed::no(node));
        }
        let target = f.batch_size();
        let ungathered: Arc<dyn ExecutionPlan> = Arc::new(f.with_batch_size(1)?);
        Ok(Transformed::yes(
            Arc::new(SmallBatchesExec::new(ungathered, target)) as Arc<dyn ExecutionPlan>,
        ))
    })
    .map(|t| t.data)
}
