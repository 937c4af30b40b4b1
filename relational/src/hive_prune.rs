//! Skipping the folders of a Hive-partitioned input that a query's filters rule out: the
//! scan drops the files whose folder keys fail a filter, and the planner lists, cuts and plans
//! again with only the files some scan still reads, so that no task is set up for the others.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{FieldRef, Schema};
use datafusion::catalog::Session;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

/// Per file, whether its folder keys pass every filter (each reading only the keys). A key
/// value that makes a filter null fails it, as the filter drops such rows.
pub fn passing(
    keys: &[FieldRef],
    files: &[&PartitionedFile],
    filters: &[&Expr],
    state: &dyn Session,
) -> DfResult<Vec<bool>> {
    let schema = Arc::new(Schema::new(keys.to_vec()));
    let columns = keys
        .iter()
        .enumerate()
        .map(|(i, _)| {
            let values = files.iter().map(|f| {
                f.partition_values.get(i).cloned().ok_or_else(|| {
                    DataFusionError::Internal(format!("{} lacks a folder key", f.path()))
                })
            });
            ScalarValue::iter_to_array(values.collect::<DfResult<Vec<_>>>()?)
        })
        .collect::<DfResult<Vec<ArrayRef>>>()?;
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns)?;
    let df_schema = DFSchema::try_from(schema)?;
    let mut keep = vec![true; files.len()];
    for filter in filters {
        let expr = state.create_physical_expr((*filter).clone(), &df_schema)?;
        let result = expr.evaluate(&batch)?.into_array(files.len())?;
        let passed = result
            .as_boolean_opt()
            .ok_or_else(|| DataFusionError::Internal(format!("filter {filter} is not boolean")))?;
        for (i, k) in keep.iter_mut().enumerate() {
            *k &= passed.is_valid(i) && passed.value(i);
        }
    }
    Ok(keep)
}

/// The locations of every file that a scan in `plans` reads.
pub fn files_read<'a>(
    plans: impl IntoIterator<Item = &'a Arc<dyn ExecutionPlan>>,
) -> BTreeSet<String> {
    let mut read = BTreeSet::new();
    for plan in plans {
        let _ = plan.apply(|node| {
            if let Some(config) = node
                .downcast_ref::<DataSourceExec>()
                .and_then(|s| s.data_source().downcast_ref::<FileScanConfig>())
            {
                for group in &config.file_groups {
                    read.extend(group.iter().map(|f| f.object_meta.location.to_string()));
                }
            }
            Ok(TreeNodeRecursion::Continue)
        });
    }
    read
}
