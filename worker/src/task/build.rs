//! Builds the DataFusion plan of one task of a stage: its source (a scan of its byte ranges,
//! or its shuffle partitions), the stage's operations, and the map-side half of the sink.
//!
//! The planner runs the same code over empty sources to learn each stage's schema and to
//! report unknown columns and bad expressions before any task runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{MemTable, provider_as_source};
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder, SortExpr};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use tokio::sync::OnceCell;

use super::aggregate::{self, GroupSpec};
use super::steps::column;
use super::tables::ScanTable;
use super::{merge, steps};
use crate::error::{Error, Result};
use crate::plan::{Fragment, Op, Partial, Plan, Sink, Stage, StageSource};
use crate::store::Store;
use kask_api::{Sort, StepRef};

/// What one task reads.
#[derive(Default, Debug)]
pub struct TaskData {
    /// Input stages: the task's byte ranges.
    pub fragments: Vec<Fragment>,
    /// Shuffle stages: the task's partition (the left side, for a join).
    pub left: Vec<RecordBatch>,
    /// Join stages: the right side's partition.
    pub right: Vec<RecordBatch>,
}

/// A task's physical plan, and what the planner learns from it.
pub struct Built {
    /// The plan whose output goes to the sink.
    pub exec: Arc<dyn ExecutionPlan>,
    /// The schema entering a partial aggregation in the sink.
    pub sink_input_schema: Option<SchemaRef>,
    /// The key columns of a partial groupby or distinct in the sink.
    pub group_keys: Option<Vec<String>>,
    /// The columns entering a partial distinct.
    pub distinct_columns: Vec<String>,
}

/// One input's rows, loaded at most once.
type InputCell = Arc<OnceCell<Arc<Vec<RecordBatch>>>>;

/// What the tasks of one run share: inputs read whole (the right side of a broadcast merge),
/// loaded once per process, and how often each task's output had to be made again.
#[derive(Default)]
pub struct InputCache {
    cells: Mutex<HashMap<String, InputCell>>,
    recoveries: Mutex<HashMap<(usize, usize), u32>>,
}

impl InputCache {
    /// Counts one more re-run of task `task` of stage `stage` in this run; returns the count.
    pub fn count_recovery(&self, stage: usize, task: usize) -> u32 {
        let mut r = self
            .recoveries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = r.entry((stage, task)).or_default();
        *n += 1;
        *n
    }
}

/// Builds task plans for one plan and store.
pub struct Builder<'a> {
    /// The task's session.
    pub ctx: &'a SessionContext,
    /// The plan.
    pub plan: &'a Plan,
    /// The job's store.
    pub store: &'a Store,
    /// Whole inputs; `None` at plan time, when every source is empty.
    pub inputs: Option<&'a InputCache>,
}

fn step_path(i: usize) -> String {
    format!("spec.dataframe.pipeline[{i}]")
}

fn mem_plan(schema: SchemaRef, batches: Vec<RecordBatch>) -> Result<LogicalPlanBuilder> {
    let table = MemTable::try_new(schema, vec![batches])
        .map_err(|e| Error::internal(format!("shuffle data does not match its schema: {e}")))?;
    Ok(LogicalPlanBuilder::scan(
        "t",
        provider_as_source(Arc::new(table)),
        None,
    )?)
}

impl Builder<'_> {
    fn step(&self, i: usize) -> Result<StepRef<'_>> {
        self.plan
            .dataframe()
            .pipeline
            .get(i)
            .and_then(|s| s.as_ref())
            .ok_or_else(|| {
                Error::internal(format!(
                    "the plan names pipeline step {i}, which the spec lacks"
                ))
            })
    }

    fn scan(&self, input: &str, fragments: &[Fragment]) -> Result<LogicalPlanBuilder> {
        let plan = self
            .plan
            .inputs
            .get(input)
            .ok_or_else(|| Error::internal(format!("the plan has no input {input:?}")))?;
        let table = ScanTable::new(self.store, plan, fragments)?;
        Ok(LogicalPlanBuilder::scan(
            "t",
            provider_as_source(Arc::new(table)),
            None,
        )?)
    }

    /// An input read whole, for a broadcast merge.
    async fn whole_input(&self, input: &str) -> Result<LogicalPlan> {
        let Some(cache) = self.inputs else {
            return Ok(self.scan(input, &[])?.build()?);
        };
        let cell = {
            let mut cells = cache
                .cells
                .lock()
                .map_err(|_| Error::internal("input cache poisoned"))?;
            cells.entry(input.to_string()).or_default().clone()
        };
        let batches = cell
            .get_or_try_init(|| async {
                let plan = &self.plan.inputs[input];
                let all: Vec<Fragment> = plan
                    .files
                    .iter()
                    .map(|f| Fragment {
                        path: f.path.clone(),
                        size: f.size,
                        start: 0,
                        end: f.size,
                    })
                    .collect();
                let lp = self.scan(input, &all)?.build()?;
                let df = self.ctx.execute_logical_plan(lp).await?;
                df.collect().await.map(Arc::new).map_err(|e| {
                    match crate::error::store_failure(&e) {
                        Some(why) => self.store.err_text(format!("reading input {input}"), why),
                        None => Error::input(input, super::df_message(&e)),
                    }
                })
            })
            .await?;
        let schema = self.plan.inputs[input].schema.schema();
        Ok(mem_plan(schema, batches.as_ref().clone())?.build()?)
    }

    async fn physical(&self, lp: LogicalPlanBuilder) -> Result<Arc<dyn ExecutionPlan>> {
        let lp = lp.build()?;
        Ok(self.ctx.state().create_physical_plan(&lp).await?)
    }

    fn sort(&self, lp: LogicalPlanBuilder, s: &Sort, at: &str) -> Result<LogicalPlanBuilder> {
        let exprs =
            s.by.iter()
                .zip(s.descending_per_key())
                .enumerate()
                .map(|(i, (c, desc))| {
                    // pandas puts missing values last in either direction.
                    Ok(SortExpr::new(
                        column(lp.schema(), c, &format!("{at}.sort.by[{i}]"))?,
                        !desc,
                        false,
                    ))
                })
                .collect::<Result<Vec<_>>>()?;
        lp.sort(exprs)
            .map_err(|e| Error::spec(at, super::df_message(&e)))
    }

    fn head(lp: LogicalPlanBuilder, n: u64) -> Result<LogicalPlanBuilder> {
        Ok(lp.limit(0, Some(n as usize))?)
    }

    /// The reduce side of a shuffle: plain rows, or the final half of an aggregation.
    fn shuffle_source(
        &self,
        from: &Stage,
        first_op: Option<&Op>,
        batches: Vec<RecordBatch>,
    ) -> Result<(LogicalPlanBuilder, bool)> {
        let schema = from.output_schema.schema();
        let final_spec = match first_op {
            Some(Op::FinalGroupBy { step }) => match self.step(*step)? {
                StepRef::GroupBy(g) => Some(GroupSpec::groupby(g, &step_path(*step))),
                _ => None,
            },
            Some(Op::FinalDistinct { step }) => match (self.step(*step)?, &from.sink) {
                (
                    StepRef::Distinct(d),
                    Sink::Shuffle {
                        partial: Partial::Distinct { columns, .. },
                        ..
                    },
                ) => Some(GroupSpec::distinct(d, columns, &step_path(*step))),
                _ => None,
            },
            _ => None,
        };
        match final_spec {
            None => Ok((mem_plan(schema, batches)?, false)),
            Some(spec) => {
                let input_schema = from
                    .sink_input_schema
                    .as_ref()
                    .ok_or_else(|| {
                        Error::internal(format!("stage {} has no partial input schema", from.name))
                    })?
                    .schema();
                let states = MemorySourceConfig::try_new_exec(&[batches], schema, None)?;
                Ok((aggregate::final_over(&spec, states, &input_schema)?, true))
            }
        }
    }

    /// Builds the task's plan.
    pub async fn build(&self, stage: &Stage, data: TaskData) -> Result<Built> {
        let mut ops: &[Op] = &stage.ops;
        let mut lp = match &stage.source {
            StageSource::Input { input } => self.scan(input, &data.fragments)?,
            StageSource::Shuffle { stage: from } => {
                let from = &self.plan.stages[*from];
                let (lp, consumed) = self.shuffle_source(from, ops.first(), data.left)?;
                if consumed {
                    ops = &ops[1..];
                }
                lp
            }
            StageSource::Array | StageSource::Sql { .. } => {
                return Err(Error::internal(
                    "an array or SQL stage in the dataframe engine",
                ));
            }
            StageSource::Join { left, right, step } => {
                let StepRef::Merge(m) = self.step(*step)? else {
                    return Err(Error::internal(format!("step {step} is not a merge")));
                };
                let l = mem_plan(self.plan.stages[*left].output_schema.schema(), data.left)?;
                let r = mem_plan(self.plan.stages[*right].output_schema.schema(), data.right)?
                    .build()?;
                merge::join(
                    l,
                    r,
                    m,
                    merge::Build::Auto,
                    &format!("{}.merge", step_path(*step)),
                )?
            }
        };

        for op in ops {
            lp = match op {
                Op::Step { step } => {
                    steps::apply(self.ctx, lp, self.step(*step)?, &step_path(*step))?
                }
                Op::Merge { step } => {
                    let StepRef::Merge(m) = self.step(*step)? else {
                        return Err(Error::internal(format!("step {step} is not a merge")));
                    };
                    let right = self.whole_input(&m.right).await?;
                    merge::join(
                        lp,
                        right,
                        m,
                        merge::Build::Right,
                        &format!("{}.merge", step_path(*step)),
                    )?
                }
                Op::GroupBy { step } | Op::FinalGroupBy { step } => {
                    let StepRef::GroupBy(g) = self.step(*step)? else {
                        return Err(Error::internal(format!("step {step} is not a groupby")));
                    };
                    aggregate::complete(self.ctx, lp, &GroupSpec::groupby(g, &step_path(*step)))
                        .await?
                }
                Op::Distinct { step } | Op::FinalDistinct { step } => {
                    let StepRef::Distinct(d) = self.step(*step)? else {
                        return Err(Error::internal(format!("step {step} is not a distinct")));
                    };
                    let cols = aggregate::columns_of(&lp);
                    aggregate::complete(
                        self.ctx,
                        lp,
                        &GroupSpec::distinct(d, &cols, &step_path(*step)),
                    )
                    .await?
                }
                Op::Sort { step } => {
                    let StepRef::Sort(s) = self.step(*step)? else {
                        return Err(Error::internal(format!("step {step} is not a sort")));
                    };
                    self.sort(lp, s, &step_path(*step))?
                }
                Op::Head { step } => {
                    let StepRef::Head(n) = self.step(*step)? else {
                        return Err(Error::internal(format!("step {step} is not a head")));
                    };
                    Self::head(lp, n)?
                }
                Op::BagRow { .. } | Op::BagWide { .. } | Op::BagFinal { .. } => {
                    return Err(Error::internal("a bag step in the dataframe engine"));
                }
            };
        }

        let partial = match &stage.sink {
            Sink::Output | Sink::Scratch => &Partial::None,
            Sink::Shuffle { partial, .. } => partial,
        };
        let plain = |exec| Built {
            exec,
            sink_input_schema: None,
            group_keys: None,
            distinct_columns: vec![],
        };
        let built = match partial {
            Partial::None => plain(self.physical(lp).await?),
            Partial::Limit { n } => plain(self.physical(Self::head(lp, *n)?).await?),
            Partial::Bag { .. } => {
                return Err(Error::internal("a bag state in the dataframe engine"));
            }
            Partial::TopK { step, n } => {
                let StepRef::Sort(s) = self.step(*step)? else {
                    return Err(Error::internal(format!("step {step} is not a sort")));
                };
                let sorted = self.sort(lp, s, &step_path(*step))?;
                plain(self.physical(Self::head(sorted, *n)?).await?)
            }
            Partial::GroupBy { step } => {
                let StepRef::GroupBy(g) = self.step(*step)? else {
                    return Err(Error::internal(format!("step {step} is not a groupby")));
                };
                let spec = GroupSpec::groupby(g, &step_path(*step));
                let (exec, input_schema) = aggregate::partial(self.ctx, lp, &spec).await?;
                Built {
                    exec,
                    sink_input_schema: Some(input_schema),
                    group_keys: Some(spec.keys().to_vec()),
                    distinct_columns: vec![],
                }
            }
            Partial::Distinct { step, .. } => {
                let StepRef::Distinct(d) = self.step(*step)? else {
                    return Err(Error::internal(format!("step {step} is not a distinct")));
                };
                let cols = aggregate::columns_of(&lp);
                let spec = GroupSpec::distinct(d, &cols, &step_path(*step));
                let (exec, input_schema) = aggregate::partial(self.ctx, lp, &spec).await?;
                Built {
                    exec,
                    sink_input_schema: Some(input_schema),
                    group_keys: Some(spec.keys().to_vec()),
                    distinct_columns: cols,
                }
            }
        };
        Ok(built)
    }
}

/// Whether a shuffle key must be hashed as float64 so that both sides of a merge agree.
pub fn needs_float_hash(a: &DataType, b: &DataType) -> bool {
    a != b && (a.is_floating() || b.is_floating()) && (a.is_numeric() && b.is_numeric())
}
