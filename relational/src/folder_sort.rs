//! A result written in folders by column (`partitionBy`): each task sorts its rows by the
//! folder keys, then by the order they already had, so that its writer fills one folder at a
//! time and a sorted result stays sorted within each folder. The sort spills like any other.

use std::sync::Arc;

use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::DataType;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr};
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};

use kask_core::error::{Error, Result};

/// `root`, each of its partitions sorted by `keys` first; the keys are checked to be columns
/// of the result that can name a folder. `field` is the output's, for messages.
pub fn sorted_for_folders(
    root: Arc<dyn ExecutionPlan>,
    keys: &[String],
    field: &str,
) -> Result<Arc<dyn ExecutionPlan>> {
    if keys.is_empty() {
        return Ok(root);
    }
    let schema = root.schema();
    let at = format!("{field}.partitionBy");
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let mut ordering = Vec::new();
    for key in keys {
        let Ok(i) = schema.index_of(key) else {
            return Err(Error::spec(
                at.clone(),
                format!("{key:?} is not a column of the result; its columns are {names:?}"),
            ));
        };
        let dt = schema.field(i).data_type();
        if !names_a_folder(dt) {
            return Err(Error::spec(
                at.clone(),
                format!(
                    "{key:?} is {dt}; a folder is named by a number, string, date, time or boolean"
                ),
            ));
        }
        let nulls_first = SortOptions {
            descending: false,
            nulls_first: true,
        };
        ordering.push(PhysicalSortExpr::new(
            Arc::new(Column::new(key, i)),
            nulls_first,
        ));
    }
    if keys.len() >= names.len() {
        return Err(Error::spec(
            at,
            "names every column of the result; the files would hold none",
        ));
    }
    if let Some(had) = root.output_ordering() {
        ordering.extend(had.iter().cloned());
    }
    let ordering = LexOrdering::new(ordering)
        .ok_or_else(|| Error::internal("an empty ordering for folder keys"))?;
    Ok(Arc::new(
        SortExec::new(ordering, root).with_preserve_partitioning(true),
    ))
}

fn names_a_folder(dt: &DataType) -> bool {
    dt.is_primitive()
        || matches!(
            dt,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Boolean
        )
        || matches!(dt, DataType::Dictionary(_, v) if names_a_folder(v))
}
