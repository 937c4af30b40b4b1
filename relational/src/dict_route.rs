//! The way from a partial aggregation's group columns down to the Parquet scan that reads them,
//! and that scan planned again to read those columns as dictionaries (see
//! [`crate::dict_groups`]).
//!
//! The way passes only nodes that hand each row on as it is: projections that pick the column,
//! filters that test it only for nulls (a pandas `dropna`), and batch coalescers. Anything else
//! that reads the column would see a dictionary where its expression expects strings.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::metadata::DFParquetMetadata;
use datafusion::datasource::physical_plan::{
    FileGroup, FileScanConfig, FileScanConfigBuilder, ParquetSource,
};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::error::Result as DfResult;
use datafusion::execution::TaskContext;
use datafusion::parquet::arrow::parquet_to_arrow_schema;
use datafusion::parquet::basic::{Encoding, PageType};
use datafusion::parquet::file::metadata::{ColumnChunkMetaData, ParquetMetaData};
use datafusion::physical_expr::utils::{collect_columns, split_conjunction};
use datafusion::physical_expr::{PhysicalExpr, expressions::Column};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::expressions::{IsNotNullExpr, IsNullExpr};
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::projection::ProjectionExec;
use futures::FutureExt;
use tracing::debug;

use crate::lean_logic::LeanLogicExpr;

/// The type the scan reads a group column as: the codes of its column chunk's dictionary.
pub fn dictionary_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// The nodes between a partial aggregation and the Parquet scan its group columns come from.
#[derive(Debug, Clone)]
pub struct Route {
    /// The scan (a `DataSourceExec` of Parquet files).
    scan: Arc<dyn ExecutionPlan>,
    /// The nodes above the scan, the one over the scan first.
    above: Vec<Arc<dyn ExecutionPlan>>,
    /// The group columns' names in the files.
    columns: Vec<String>,
}

/// The route of columns `groups` of `input` (an aggregation's input) to a Parquet scan, when
/// each is a string column of the files that every node on the way hands on untouched.
pub fn route(input: &Arc<dyn ExecutionPlan>, groups: &[usize]) -> Option<Route> {
    let mut above = Vec::new();
    let mut plan = Arc::clone(input);
    let mut at = groups.to_vec();
    loop {
        if let Some(p) = plan.downcast_ref::<ProjectionExec>() {
            let mut next = Vec::with_capacity(at.len());
            for &i in &at {
                next.push(p.expr().get(i)?.expr.downcast_ref::<Column>()?.index());
            }
            // Any other output that reads a group column, even as it is, would get a dictionary.
            let plain = p
                .expr()
                .iter()
                .enumerate()
                .all(|(j, e)| at.contains(&j) || !reads_any(&e.expr, &next));
            if !plain {
                return None;
            }
            at = next;
        } else if let Some(f) = plan.downcast_ref::<FilterExec>() {
            if let Some(projection) = f.projection() {
                let next: Vec<usize> = at
                    .iter()
                    .map(|&i| projection.get(i).copied())
                    .collect::<Option<_>>()?;
                let plain = projection
                    .iter()
                    .enumerate()
                    .all(|(j, i)| at.contains(&j) || !next.contains(i));
                if !plain {
                    return None;
                }
                at = next;
            }
            if !tests_only_nulls_of(f.predicate(), &at) {
                return None;
            }
        } else if matches!(plan.name(), "CoalesceBatchesExec" | "SmallBatchesExec") {
        } else if plan.downcast_ref::<DataSourceExec>().is_some() {
            let columns = scan_columns(&plan, &at)?;
            above.reverse();
            return Some(Route {
                scan: plan,
                above,
                columns,
            });
        } else {
            return None;
        }
        let child = Arc::clone(plan.children().first()?);
        above.push(plan);
        plan = child;
    }
}

/// Whether `expr` reads any of the columns `at`.
fn reads_any(expr: &Arc<dyn PhysicalExpr>, at: &[usize]) -> bool {
    collect_columns(expr)
        .iter()
        .any(|c| at.contains(&c.index()))
}

/// Whether every term of the conjunction `predicate` that reads any of the columns `at` is a
/// null test of a column, which holds of a dictionary's row as of its string.
fn tests_only_nulls_of(predicate: &Arc<dyn PhysicalExpr>, at: &[usize]) -> bool {
    // A task makes its filters' `AND`s lean before this rewrite; the terms are those planned.
    let predicate = match predicate.downcast_ref::<LeanLogicExpr>() {
        Some(lean) => lean.plain(),
        None => predicate,
    };
    split_conjunction(predicate)
        .into_iter()
        .all(|term| !reads_any(term, at) || is_null_test(term))
}

/// `x IS NULL` or `x IS NOT NULL` of a column.
fn is_null_test(term: &Arc<dyn PhysicalExpr>) -> bool {
    let arg = if let Some(e) = term.downcast_ref::<IsNotNullExpr>() {
        e.arg()
    } else if let Some(e) = term.downcast_ref::<IsNullExpr>() {
        e.arg()
    } else {
        return false;
    };
    arg.downcast_ref::<Column>().is_some()
}

/// The file column names of output columns `at` of `scan`, when it is a Parquet scan that reads
/// them as strings into those columns only, and whose pruning predicate only tests them for
/// nulls.
fn scan_columns(scan: &Arc<dyn ExecutionPlan>, at: &[usize]) -> Option<Vec<String>> {
    let config = files_of(scan)?;
    config.file_source().downcast_ref::<ParquetSource>()?;
    let file_schema = config.file_schema();
    let mut file_at = Vec::with_capacity(at.len());
    for &i in at {
        file_at.push(match config.file_source().projection() {
            Some(p) => p.as_ref().get(i)?.expr.downcast_ref::<Column>()?.index(),
            None => i,
        });
    }
    if let Some(p) = config.file_source().projection()
        && !p
            .as_ref()
            .iter()
            .enumerate()
            .all(|(j, e)| at.contains(&j) || !reads_any(&e.expr, &file_at))
    {
        return None;
    }
    // The pruning predicate may test the columns for nulls (a `dropna` pushed into the scan).
    if let Some(p) = config.file_source().filter()
        && !tests_only_nulls_of(&p, &file_at)
    {
        return None;
    }
    file_at
        .iter()
        .map(|&i| {
            // Past the file's columns are the folder keys, which are no column of the files.
            let field = file_schema.fields().get(i)?;
            matches!(
                field.data_type(),
                DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
            )
            .then(|| field.name().clone())
        })
        .collect()
}

fn files_of(scan: &Arc<dyn ExecutionPlan>) -> Option<&FileScanConfig> {
    scan.downcast_ref::<DataSourceExec>()?
        .data_source()
        .downcast_ref::<FileScanConfig>()
}

impl Route {
    /// Partition `partition` of the route's top node, planned again over a scan that reads the
    /// group columns as dictionaries; `None` when a file of the partition is not wholly
    /// dictionary-encoded in them (a column chunk that fell back to plain pages would be
    /// turned into a dictionary row by row) or its footer cannot be read (the plain plan then
    /// reports why).
    pub async fn dictionary_plan(
        &self,
        partition: usize,
        context: &Arc<TaskContext>,
    ) -> DfResult<Option<Arc<dyn ExecutionPlan>>> {
        let Some(config) = files_of(&self.scan) else {
            return Ok(None);
        };
        let Some(source) = config.file_source().downcast_ref::<ParquetSource>() else {
            return Ok(None);
        };
        let Some(group) = config.file_groups.get(partition) else {
            return Ok(None);
        };
        let runtime = context.runtime_env();
        let store = runtime.object_store(&config.object_store_url)?;
        let cache = runtime.cache_manager.get_file_metadata_cache();
        let mut files = Vec::with_capacity(group.len());
        for file in group.files() {
            let fetched = std::panic::AssertUnwindSafe(
                DFParquetMetadata::new(store.as_ref(), &file.object_meta)
                    .with_file_metadata_cache(Some(Arc::clone(&cache)))
                    .fetch_metadata(),
            )
            .catch_unwind()
            .await;
            let Ok(Ok(meta)) = fetched else {
                return Ok(None);
            };
            let Some(hinted) = self.hinted(file, &meta) else {
                debug!(
                    partition,
                    file = %file.object_meta.location,
                    columns = ?self.columns,
                    "grouped the plain way: the file does not hold the group columns wholly \
                     dictionary-encoded"
                );
                return Ok(None);
            };
            files.push(hinted);
        }
        let table = TableSchema::builder(self.with_dictionaries(config.file_schema()))
            .with_table_partition_cols(config.table_partition_cols().clone())
            .build();
        let mut parquet = ParquetSource::new(table)
            .with_table_parquet_options(source.table_parquet_options().clone());
        if let Some(p) = config.file_source().filter() {
            parquet = parquet.with_predicate(p);
        }
        if let Some(f) = source.parquet_file_reader_factory() {
            parquet = parquet.with_parquet_file_reader_factory(Arc::clone(f));
        }
        // The projection as column indices (the new source takes it again); a projection of
        // other expressions cannot be, and the partition is aggregated the plain way.
        let projection = config.file_source().projection().map(|p| {
            p.as_ref()
                .iter()
                .map(|e| e.expr.downcast_ref::<Column>().map(Column::index))
                .collect::<Option<Vec<usize>>>()
        });
        let projection = match projection {
            None => None,
            Some(Some(indices)) => Some(indices),
            Some(None) => return Ok(None),
        };
        let mut scan = FileScanConfigBuilder::from(config.clone())
            .with_source(Arc::new(parquet))
            .with_projection_indices(projection)?
            .with_file_groups(vec![FileGroup::new(files)])
            .build();
        scan.output_partitioning = None;
        let mut plan: Arc<dyn ExecutionPlan> = DataSourceExec::from_data_source(scan);
        for node in &self.above {
            plan = match node.downcast_ref::<ProjectionExec>() {
                // Given new children, a projection would keep the output schema it had.
                Some(p) => Arc::new(ProjectionExec::try_new(p.expr().iter().cloned(), plan)?),
                None => Arc::clone(node).replace_children(
                    vec![plan],
                    ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
                )?,
            };
        }
        Ok(Some(plan))
    }

    /// `schema` with the group columns read as dictionaries.
    fn with_dictionaries(&self, schema: &SchemaRef) -> SchemaRef {
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .map(|f| {
                if self.columns.contains(f.name()) {
                    f.as_ref().clone().with_data_type(dictionary_type())
                } else {
                    f.as_ref().clone()
                }
            })
            .collect();
        Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
    }

    /// `file` told to read the group columns as dictionaries, when its footer `meta` shows
    /// every chunk of them dictionary-encoded.
    fn hinted(&self, file: &PartitionedFile, meta: &ParquetMetaData) -> Option<PartitionedFile> {
        let schema = meta.file_metadata().schema_descr();
        for name in &self.columns {
            let at = (0..schema.num_columns()).find(|&i| {
                let column = schema.column(i);
                let path = column.path().parts();
                path.len() == 1 && &path[0] == name
            })?;
            if !meta
                .row_groups()
                .iter()
                .all(|rg| all_dictionary(rg.column(at)))
            {
                return None;
            }
        }
        let inferred =
            parquet_to_arrow_schema(schema, meta.file_metadata().key_value_metadata()).ok()?;
        let strings = self.columns.iter().all(|name| {
            inferred.field_with_name(name).is_ok_and(|f| {
                matches!(
                    f.data_type(),
                    DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
                )
            })
        });
        strings.then(|| {
            file.clone()
                .with_arrow_schema(self.with_dictionaries(&Arc::new(inferred)))
        })
    }
}

/// Whether every data page of `chunk` holds dictionary codes (by the page encoding statistics,
/// which say so; without them, no).
fn all_dictionary(chunk: &ColumnChunkMetaData) -> bool {
    let coded = |e: Encoding| matches!(e, Encoding::PLAIN_DICTIONARY | Encoding::RLE_DICTIONARY);
    if chunk.dictionary_page_offset().is_none() {
        return false;
    }
    if let Some(mask) = chunk.page_encoding_stats_mask() {
        return mask.is_only(Encoding::PLAIN_DICTIONARY) || mask.is_only(Encoding::RLE_DICTIONARY);
    }
    chunk.page_encoding_stats().is_some_and(|stats| {
        stats
            .iter()
            .filter(|s| matches!(s.page_type, PageType::DATA_PAGE | PageType::DATA_PAGE_V2))
            .all(|s| coded(s.encoding))
    })
}
