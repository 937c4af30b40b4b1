//! Sizes for DataFusion's choice of how to join.
//!
//! DataFusion collects a join's build side whole in every task when its statistics say it is
//! small, and otherwise shuffles both sides. A table scan has a size (its files), but the
//! output of a join has none: DataFusion estimates a join's rows only from its keys' distinct
//! counts, which no table here records. So in TPC-H's q21 the 4,000 suppliers of one nation, a
//! join of `nation` and `supplier`, were shuffled together with 38 million rows of `lineitem`
//! instead of being sent whole to the tasks that scan it.
//!
//! The physical planner here wraps each input of a join in a [`SizeHint`] carrying the
//! estimate that orders the joins ([`crate::join_order`]); as a plan node
//! ([`SizeHintExec`]) it reports that size as its statistics, and once DataFusion's optimizer
//! has chosen, [`DropSizeHints`] removes the nodes again, so stages never hold them.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::config::ConfigOptions;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchemaRef, DataFusionError, Result, Statistics};
use datafusion::execution::TaskContext;
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{
    Expr, Extension, LogicalPlan, UserDefinedLogicalNode, UserDefinedLogicalNodeCore,
};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::statistics::{ChildStats, StatisticsArgs};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};

use crate::estimate::estimated_bytes;
use crate::one_input::only_input;

/// A logical node that passes its input on and tells the physical planner its estimated size.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Hash)]
pub struct SizeHint {
    input: LogicalPlan,
    bytes: usize,
}

impl UserDefinedLogicalNodeCore for SizeHint {
    fn name(&self) -> &str {
        "SizeHint"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        self.input.schema()
    }

    fn expressions(&self) -> Vec<Expr> {
        Vec::new()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "SizeHint: bytes={}", self.bytes)
    }

    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, inputs: Vec<LogicalPlan>) -> Result<Self> {
        Ok(SizeHint {
            input: only_input(inputs, "SizeHint")?,
            bytes: self.bytes,
        })
    }
}

/// `plan` with each input of a join whose size can be estimated wrapped in a [`SizeHint`].
pub fn with_size_hints(plan: LogicalPlan) -> Result<LogicalPlan> {
    plan.transform_up(|node| {
        let LogicalPlan::Join(mut join) = node else {
            return Ok(Transformed::no(node));
        };
        let hinted = |input: &Arc<LogicalPlan>| {
            estimated_bytes(input).map(|bytes| {
                Arc::new(LogicalPlan::Extension(Extension {
                    node: Arc::new(SizeHint {
                        input: input.as_ref().clone(),
                        bytes,
                    }),
                }))
            })
        };
        let (left, right) = (hinted(&join.left), hinted(&join.right));
        let changed = left.is_some() || right.is_some();
        if let Some(l) = left {
            join.left = l;
        }
        if let Some(r) = right {
            join.right = r;
        }
        let node = LogicalPlan::Join(join);
        Ok(if changed {
            Transformed::yes(node)
        } else {
            Transformed::no(node)
        })
    })
    .map(|t| t.data)
}

/// Plans queries with their joins' inputs hinted ([`with_size_hints`]).
#[derive(Debug, Default)]
pub struct HintedPlanner;

#[async_trait]
impl QueryPlanner for HintedPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let hinted = with_size_hints(logical_plan.clone())?;
        DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(HintPlanner)])
            .create_physical_plan(&hinted, session)
            .await
    }
}

/// Plans a [`SizeHint`] as a [`SizeHintExec`].
struct HintPlanner;

#[async_trait]
impl ExtensionPlanner for HintPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn Session,
        _planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(hint) = node.as_any().downcast_ref::<SizeHint>() else {
            return Ok(None);
        };
        let [input] = physical_inputs else {
            return Err(DataFusionError::Internal(
                "SizeHint has one input".to_string(),
            ));
        };
        Ok(Some(Arc::new(SizeHintExec {
            input: Arc::clone(input),
            bytes: hint.bytes,
        })))
    }
}

/// Passes its input on; its statistics are the estimated size alone.
#[derive(Debug)]
pub struct SizeHintExec {
    input: Arc<dyn ExecutionPlan>,
    bytes: usize,
}

impl DisplayAs for SizeHintExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "SizeHintExec: bytes={}", self.bytes)
    }
}

impl ExecutionPlan for SizeHintExec {
    fn name(&self) -> &str {
        "SizeHintExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(SizeHintExec {
            input: only_input(children, "SizeHintExec")?,
            bytes: self.bytes,
        }))
    }

    fn child_stats_requests(&self, _partition: Option<usize>) -> Vec<ChildStats> {
        vec![ChildStats::Skip]
    }

    fn statistics_from_inputs(
        &self,
        _input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        Ok(Arc::new(
            Statistics::new_unknown(&self.input.schema())
                .with_total_byte_size(Precision::Inexact(self.bytes.max(1))),
        ))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        self.input.execute(partition, context)
    }
}

/// Removes every [`SizeHintExec`] once the joins are chosen.
#[derive(Debug, Default)]
pub struct DropSizeHints;

impl PhysicalOptimizerRule for DropSizeHints {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            Ok(match node.downcast_ref::<SizeHintExec>() {
                Some(hint) => Transformed::yes(Arc::clone(&hint.input)),
                None => Transformed::no(node),
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "kask_drop_size_hints"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// The session state's planner and physical rules with the hints in them.
pub fn install(
    builder: datafusion::execution::SessionStateBuilder,
) -> datafusion::execution::SessionStateBuilder {
    let mut rules = datafusion::physical_optimizer::optimizer::PhysicalOptimizer::new().rules;
    rules.push(Arc::new(DropSizeHints));
    rules.push(Arc::new(crate::group_top_k::PruneGroupTopK));
    builder
        .with_query_planner(Arc::new(HintedPlanner))
        .with_physical_optimizer_rules(rules)
}
