//! A join that collects its build side whole builds its hash table in every task of its
//! stage: TPC-H q03's 17 `lineitem` tasks each hashed the same 1.5 million orders, a fifth of
//! the query's CPU. Tasks in one process share the table instead. DataFusion computes a
//! `CollectLeft` join's table once per join node and hands it to every partition that node
//! runs; a join rebuilt from another with `HashJoinExecBuilder::from` keeps that once-computed
//! table. So the first task of a stage to run here leaves its join in the process cache
//! ([`crate::process_cache`]), and each later task rebuilds its own join from it around its
//! own inputs: whichever task runs first computes the table, the others wait for it.
//!
//! Only joins that emit nothing once their probe side ends share: inner and right joins, and
//! semi, anti and mark joins of the probe side. The others track which build rows matched,
//! across the partitions of one plan, and every task's plan is its own.
//!
//! A table lives while a task holds it, and a little longer ([`LINGER`]) where memory is not
//! limited: the next task of a stage starts a moment after one ends, and when no other task
//! held the table then, it built it again (q03's table three times in 17 tasks). A failed
//! task forgets the tables it used ([`Held::forget`]), since DataFusion keeps a build side's
//! error as it keeps its table: a retried task builds again. So does a task dropped before it
//! ended ([`Held::finished`] not called): cancelled, or its runtime shut down, it may leave a
//! table whose build was cancelled with it, which would fail the task that ran next ("task
//! was cancelled"; the engine's chaos test met it when a run resumed at once after one killed).

use std::sync::Arc;
use std::time::Duration;

use datafusion::common::JoinType;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::Result as DfResult;
use datafusion::physical_plan::joins::{HashJoinExec, HashJoinExecBuilder, PartitionMode};
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties, displayable};

use super::process_cache::{Cell, ProcessCache};
use super::shared_build::SharedBuildExec;

/// The first join of each key, whose table the later ones share.
static TABLES: ProcessCache<Arc<dyn ExecutionPlan>> = ProcessCache::new();

/// A cell of [`TABLES`].
type Table = Arc<Cell<Arc<dyn ExecutionPlan>>>;

/// How long a task's tables outlive it where memory is not limited, for the task that
/// starts after it: the ending task commits and the next one decodes its plan meanwhile.
pub const LINGER: Duration = Duration::from_millis(250);

/// The tables a task shares, held while it runs so that tasks after it find them.
#[derive(Default)]
pub struct Held {
    tables: Vec<(String, Table)>,
    /// Whether the task ended with its tables whole ([`Held::finished`]).
    finished: bool,
}

impl Drop for Held {
    fn drop(&mut self) {
        if !self.finished {
            self.forget();
            return;
        }
        // Under a memory limit the table's memory goes back at once: it is counted in the
        // pool of the task that built it, which has ended.
        if self.tables.is_empty() || kask_core::memory::limited() {
            return;
        }
        let cells = std::mem::take(&mut self.tables);
        // A thread rather than a timer of the async runtime, which may have none.
        let _ = std::thread::Builder::new()
            .name("kask-table-linger".into())
            .spawn(move || {
                std::thread::sleep(LINGER);
                drop(cells);
            });
    }
}

impl Held {
    /// Lets later tasks build these tables again: a build side that failed stays failed in the
    /// join that ran it.
    pub fn forget(&self) {
        for (key, cell) in &self.tables {
            TABLES.forget(key, cell);
        }
    }

    /// Says that the task ended with its joins run through: its tables are whole, and stay a
    /// moment for the next task. Tables of a task dropped without this are forgotten.
    pub fn finished(&mut self) {
        self.finished = true;
    }

    /// How many joins share a table.
    pub fn len(&self) -> usize {
        self.tables.len()
    }

    /// Whether no join shares a table.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }
}

/// `root`, task `stage`'s sub-plan, with every join that may share its table built around
/// the table of the first task of this process to run it; `scope` names the job
/// ([`crate::exchange::ShuffleSource::scope`]). A stage of one task, or a plan without a
/// scope, is returned as it is.
pub fn share_tables(
    root: Arc<dyn ExecutionPlan>,
    stage: usize,
    scope: Option<String>,
) -> DfResult<(Arc<dyn ExecutionPlan>, Held)> {
    let mut held = Held::default();
    let Some(scope) = scope else {
        return Ok((root, held));
    };
    if root.output_partitioning().partition_count() <= 1 {
        return Ok((root, held));
    }
    let mut next = 0;
    let shared = root.transform_up(|node| {
        let Some(join) = node.downcast_ref::<HashJoinExec>() else {
            return Ok(Transformed::no(node));
        };
        if !shares_table(join) {
            return Ok(Transformed::no(node));
        }
        // The rows reach the table once per process here; keeping them beside it as well
        // would hold them twice.
        let left = match join.left().downcast_ref::<SharedBuildExec>() {
            Some(build) => Arc::clone(build.children()[0]),
            None => Arc::clone(join.left()),
        };
        let own = HashJoinExecBuilder::from(join)
            .with_new_children(vec![left.clone(), Arc::clone(join.right())])?
            .reset_state()
            .build_exec()?;
        let key = format!("{scope} s{stage} j{next}");
        next += 1;
        let cell = TABLES.cell(key.clone());
        let first = match cell.get() {
            Some(first) => Arc::clone(first),
            None => match cell.set(Arc::clone(&own)) {
                Ok(()) => return kept(own, key, cell, &mut held),
                Err(_) => match cell.get() {
                    Some(first) => Arc::clone(first),
                    None => return Ok(Transformed::yes(own)),
                },
            },
        };
        let Some(first_join) = first.downcast_ref::<HashJoinExec>() else {
            return Ok(Transformed::yes(own));
        };
        // The same stage of the same job decodes alike; anything else keeps its own table.
        if line(&first) != line(&own) {
            return Ok(Transformed::yes(own));
        }
        let mine = HashJoinExecBuilder::from(first_join)
            .with_new_children(vec![left, Arc::clone(join.right())])?
            .build_exec()?;
        kept(mine, key, cell, &mut held)
    })?;
    Ok((shared.data, held))
}

fn kept(
    node: Arc<dyn ExecutionPlan>,
    key: String,
    cell: Table,
    held: &mut Held,
) -> DfResult<Transformed<Arc<dyn ExecutionPlan>>> {
    held.tables.push((key, cell));
    Ok(Transformed::yes(node))
}

/// Whether `join`'s table may serve several tasks: built whole, and nothing to emit after
/// the probe side ends.
pub(crate) fn shares_table(join: &HashJoinExec) -> bool {
    *join.partition_mode() == PartitionMode::CollectLeft
        && matches!(
            *join.join_type(),
            JoinType::Inner
                | JoinType::Right
                | JoinType::RightSemi
                | JoinType::RightAnti
                | JoinType::RightMark
        )
}

/// The join, on one line.
pub fn line(plan: &Arc<dyn ExecutionPlan>) -> String {
    displayable(plan.as_ref()).one_line().to_string()
}
