//! A CSV input may not hold a line break inside a value. Kask cuts CSV files into tasks at line
//! boundaries, and the CSV reader takes a quote that is never closed as a value running to the
//! end of what it reads: either way rows would vanish into one string without an error. So
//! every string column of a CSV scan is checked (whatever the task's own projection), and a
//! value holding a line break fails the task, which then names the file and line.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::Statistics;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::statistics::{ChildStats, StatisticsArgs};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};
use futures::StreamExt;

use crate::one_input::only_input;

/// The columns of a schema that hold text.
pub fn text_columns(schema: &SchemaRef) -> Vec<usize> {
    schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| {
            matches!(
                f.data_type(),
                DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
            )
        })
        .map(|(i, _)| i)
        .collect()
}

/// Passes batches on, failing at the first text value that holds a line break.
#[derive(Debug)]
pub struct NoLineBreaks {
    input: Arc<dyn ExecutionPlan>,
    columns: Vec<usize>,
}

impl NoLineBreaks {
    /// Checks every text column of `input`.
    pub fn new(input: Arc<dyn ExecutionPlan>) -> NoLineBreaks {
        let columns = text_columns(&input.schema());
        NoLineBreaks { input, columns }
    }
}

impl DisplayAs for NoLineBreaks {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "NoLineBreaks: columns={:?}", self.columns)
    }
}

fn check(batch: &RecordBatch, columns: &[usize]) -> Result<()> {
    for &c in columns {
        let a = batch.column(c);
        let broken = match a.data_type() {
            DataType::Utf8View => a.as_string_view().iter().flatten().any(has_break),
            DataType::Utf8 => a.as_string::<i32>().iter().flatten().any(has_break),
            DataType::LargeUtf8 => a.as_string::<i64>().iter().flatten().any(has_break),
            _ => false,
        };
        if broken {
            return Err(DataFusionError::Execution(format!(
                "a value of column {:?} holds a line break: a quote that is never closed, or a \
                 quoted value over several lines, which a CSV input cannot hold",
                batch.schema().field(c).name()
            )));
        }
    }
    Ok(())
}

fn has_break(s: &str) -> bool {
    memchr::memchr(b'\n', s.as_bytes()).is_some()
}

impl ExecutionPlan for NoLineBreaks {
    fn name(&self) -> &str {
        "NoLineBreaks"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
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
        Ok(Arc::new(NoLineBreaks::new(only_input(
            children,
            "NoLineBreaks",
        )?)))
    }

    // The scan's size passes through, so that DataFusion can tell a small CSV table from a
    // large one when it chooses how to join it.
    fn child_stats_requests(&self, partition: Option<usize>) -> Vec<ChildStats> {
        vec![ChildStats::At(partition)]
    }

    fn statistics_from_inputs(
        &self,
        input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        Ok(input_stats
            .first()
            .cloned()
            .unwrap_or_else(|| Arc::new(Statistics::new_unknown(&self.input.schema()))))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let stream = self.input.execute(partition, context)?;
        let schema = stream.schema();
        let columns = self.columns.clone();
        let checked = stream.map(move |b| b.and_then(|b| check(&b, &columns).map(|()| b)));
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, checked)))
    }
}
