//! The fallback for a join whose partition does not fit the task's budget: DataFusion's hash
//! join holds its build side in memory and cannot spill, so a task whose hash join ran out of
//! budget runs again with each partitioned hash join replaced by a sort-merge join over sorted
//! inputs, whose sorts spill and whose buffered side spills too. Only this task's sub-plan
//! changes: the stages, their exchanges and partitions stay the plan's.

use std::sync::Arc;

use datafusion::arrow::compute::SortOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::Result;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{LexOrdering, PhysicalExpr, PhysicalSortExpr};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode, SortMergeJoinExec};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::sorts::sort::SortExec;

/// `plan` with every partitioned hash join a sort-merge join, or `None` when it has none that
/// can be replaced (a broadcast join's build side is a whole table read by every task, and a
/// null-aware anti join has no sort-merge form).
pub fn sort_merge_joins(plan: &Arc<dyn ExecutionPlan>) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let rewritten = Arc::clone(plan).transform_up(|node| {
        let Some(hj) = node.downcast_ref::<HashJoinExec>() else {
            return Ok(Transformed::no(node));
        };
        let one_partition_each = |p: &Arc<dyn ExecutionPlan>| {
            p.properties().output_partitioning().partition_count() == 1
        };
        let replaceable = match hj.partition_mode() {
            PartitionMode::Partitioned => true,
            // A build side collected whole is only the same rows as a sorted partition when
            // both sides are one partition (a job that runs in one task).
            PartitionMode::CollectLeft => {
                one_partition_each(hj.left()) && one_partition_each(hj.right())
            }
            PartitionMode::Auto => false,
        };
        if !replaceable || hj.null_aware {
            return Ok(Transformed::no(node));
        }
        Ok(Transformed::yes(sort_merge(hj)?))
    })?;
    Ok(rewritten.transformed.then_some(rewritten.data))
}

/// The sort-merge join that gives the rows (and columns) `hj` gives.
fn sort_merge(hj: &HashJoinExec) -> Result<Arc<dyn ExecutionPlan>> {
    let on = hj.on().to_vec();
    let options = vec![SortOptions::default(); on.len()];
    let sorted = |input: &Arc<dyn ExecutionPlan>, keys: Vec<Arc<dyn PhysicalExpr>>| {
        let order = LexOrdering::new(
            keys.into_iter()
                .map(|k| PhysicalSortExpr::new(k, SortOptions::default())),
        );
        Ok::<_, datafusion::error::DataFusionError>(match order {
            Some(order) => {
                Arc::new(SortExec::new(order, Arc::clone(input)).with_preserve_partitioning(true))
                    as Arc<dyn ExecutionPlan>
            }
            None => Arc::clone(input),
        })
    };
    let left = sorted(hj.left(), on.iter().map(|(l, _)| Arc::clone(l)).collect())?;
    let right = sorted(hj.right(), on.iter().map(|(_, r)| Arc::clone(r)).collect())?;
    let smj: Arc<dyn ExecutionPlan> = Arc::new(SortMergeJoinExec::try_new(
        left,
        right,
        on,
        hj.filter().cloned(),
        *hj.join_type(),
        options,
        hj.null_equality(),
    )?);
    let Some(projection) = &hj.projection else {
        return Ok(smj);
    };
    let schema = smj.schema();
    let exprs: Vec<(Arc<dyn PhysicalExpr>, String)> = projection
        .iter()
        .map(|&i| {
            let name = schema.field(i).name().clone();
            (
                Arc::new(Column::new(&name, i)) as Arc<dyn PhysicalExpr>,
                name,
            )
        })
        .collect();
    Ok(Arc::new(ProjectionExec::try_new(exprs, smj)?))
}
