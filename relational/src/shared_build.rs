//! A join that collects its build side whole runs that side in every task of its stage: TPC-H
//! q09's 17 `lineitem` tasks each scan all of `part` for its green parts. Tasks in one process
//! (`kask run`, a worker that runs several) compute it once: [`SharedBuildExec`] stands over
//! the build side, and the first task to run it keeps its rows for the others
//! ([`crate::process_cache`]). A join whose tasks share its hash table as well
//! ([`crate::shared_table`]) drops this node at run time; for the others, every task still
//! builds its own table from the kept rows. A task in a process of its own computes them as
//! before. The kept rows are held beside the
//! memory that DataFusion counts, so only a side of at most a sixteenth of the memory pool is
//! kept; each task computes a larger one itself.

use std::fmt;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::RecordBatch;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::MemoryLimit;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::common::collect;
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::joins::{HashJoinExec, NestedLoopJoinExec, PartitionMode};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties,
    SendableRecordBatchStream,
};
use futures::{StreamExt, TryStreamExt};

use super::exchange::ShuffleSource;
use super::process_cache::{Cell, ProcessCache};
use crate::one_input::only_input;

/// A build side's rows.
type Rows = Arc<Vec<RecordBatch>>;

/// `None`: too large to keep ([`SharedBuildExec::execute`]).
static BUILDS: ProcessCache<Option<Rows>> = ProcessCache::new();

/// Passes on its input's rows, computed once per process for all the tasks of its stage.
#[derive(Debug)]
pub struct SharedBuildExec {
    input: Arc<dyn ExecutionPlan>,
    stage: usize,
    /// Which of the stage's build sides (in the order [`share_builds`] found them).
    id: usize,
    source: Arc<dyn ShuffleSource>,
    /// The cells this task holds, so that the rows live while the task runs.
    held: Mutex<Vec<Arc<Cell<Option<Rows>>>>>,
}

impl SharedBuildExec {
    /// Build side `id` of stage `stage`, over `input`; `source` names the job the tasks run.
    pub fn new(
        input: Arc<dyn ExecutionPlan>,
        stage: usize,
        id: usize,
        source: Arc<dyn ShuffleSource>,
    ) -> SharedBuildExec {
        SharedBuildExec {
            input,
            stage,
            id,
            source,
            held: Mutex::default(),
        }
    }

    /// Its stage.
    pub fn stage(&self) -> usize {
        self.stage
    }

    /// Which build side of its stage it is.
    pub fn id(&self) -> usize {
        self.id
    }
}

impl DisplayAs for SharedBuildExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "SharedBuildExec: build side {} of stage {}, computed once per process",
            self.id, self.stage
        )
    }
}

impl ExecutionPlan for SharedBuildExec {
    fn name(&self) -> &str {
        "SharedBuildExec"
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
        Ok(Arc::new(SharedBuildExec::new(
            only_input(children, "SharedBuildExec")?,
            self.stage,
            self.id,
            Arc::clone(&self.source),
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let Some(scope) = self.source.scope() else {
            return self.input.execute(partition, context);
        };
        let cell = BUILDS.cell(format!("{scope} s{} b{} p{partition}", self.stage, self.id));
        if let Ok(mut held) = self.held.lock() {
            held.push(Arc::clone(&cell));
        }
        let input = Arc::clone(&self.input);
        let schema = input.schema();
        // Rows kept for other tasks are held beside what DataFusion counts: only a side small
        // next to the memory pool is kept; a larger one is computed by each task, as before.
        let keep_up_to = match context.memory_pool().memory_limit() {
            MemoryLimit::Finite(pool) => pool / 16,
            _ => usize::MAX,
        };
        let rows = futures::stream::once(async move {
            let mine: Arc<Mutex<Option<Rows>>> = Arc::default();
            let computed = Arc::clone(&mine);
            let (first, first_ctx) = (Arc::clone(&input), Arc::clone(&context));
            let kept = cell
                .get_or_try_init(|| async move {
                    let rows = Arc::new(collect(first.execute(partition, first_ctx)?).await?);
                    let bytes: usize = rows.iter().map(RecordBatch::get_array_memory_size).sum();
                    if bytes <= keep_up_to {
                        return Ok::<_, DataFusionError>(Some(rows));
                    }
                    if let Ok(mut m) = computed.lock() {
                        *m = Some(rows);
                    }
                    Ok(None)
                })
                .await?
                .clone();
            let own = mine.lock().ok().and_then(|mut m| m.take());
            match (kept, own) {
                (Some(rows), _) | (None, Some(rows)) => Ok::<Rows, DataFusionError>(rows),
                (None, None) => Ok(Arc::new(collect(input.execute(partition, context)?).await?)),
            }
        });
        let batches = rows
            .map_ok(|rows| futures::stream::iter((0..rows.len()).map(move |i| Ok(rows[i].clone()))))
            .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            schema,
            batches.boxed(),
        )))
    }
}

/// `root`, the sub-plan of stage `stage`, with the build side of every join that collects it
/// whole computed once per process, when the stage has several tasks.
pub fn share_builds(
    root: Arc<dyn ExecutionPlan>,
    stage: usize,
    source: &Arc<dyn ShuffleSource>,
) -> DfResult<Arc<dyn ExecutionPlan>> {
    if root.output_partitioning().partition_count() <= 1 {
        return Ok(root);
    }
    let mut next = 0;
    let shared = root.transform_up(|node| {
        let collects_left = node
            .downcast_ref::<HashJoinExec>()
            .is_some_and(|j| *j.partition_mode() == PartitionMode::CollectLeft)
            || node.is::<NestedLoopJoinExec>();
        let children = node.children();
        let Some(left) = children.first().copied() else {
            return Ok(Transformed::no(node));
        };
        if !collects_left
            || left.is::<SharedBuildExec>()
            || left.output_partitioning().partition_count() != 1
        {
            return Ok(Transformed::no(node));
        }
        let wrapped: Arc<dyn ExecutionPlan> = Arc::new(SharedBuildExec::new(
            Arc::clone(left),
            stage,
            next,
            Arc::clone(source),
        ));
        next += 1;
        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = children.into_iter().cloned().collect();
        inputs[0] = wrapped;
        Ok(Transformed::yes(Arc::clone(&node).replace_children(
            inputs,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )?))
    })?;
    Ok(shared.data)
}
