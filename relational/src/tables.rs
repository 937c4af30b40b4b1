//! DataFusion sessions for tasks, and the tables a task's logical plan starts from: a scan of
//! exactly the task's byte ranges, and an already-built physical plan.

use std::sync::Arc;

use async_trait::async_trait;
use std::collections::HashMap;

use datafusion::arrow::datatypes::{FieldRef, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::common::stats::Precision;
use datafusion::common::{Statistics, project_schema};
use datafusion::datasource::TableType;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::file_compression_type::FileCompressionType;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use datafusion::datasource::table_schema::TableSchema;
use datafusion::error::Result as DfResult;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::TableProviderFilterPushDown;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::projection::ProjectionExpr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::prelude::{SessionConfig, SessionContext};
use kask_core::plan::hive;

use super::csv_guard;
use datafusion::execution::memory_pool::MemoryLimit;
use kask_api::Format;
use kask_core::plan::listing::{input_compression, object_meta};
use kask_core::plan::{Fragment, InputPlan};
use kask_core::store::Store;

pub use kask_core::store::STORE_URL;

/// A session for one task: one partition (tasks are the parallelism), case-sensitive column
/// names as pandas users expect, and the store's shared runtime.
pub fn session(store: &Store) -> SessionContext {
    let mut config = SessionConfig::new()
        .with_target_partitions(1)
        .with_batch_size(batch_size(store));
    config.options_mut().sql_parser.enable_ident_normalization = false;
    SessionContext::new_with_config_rt(config, Arc::clone(&store.runtime))
}

/// A scan of some byte ranges of an input's files.
#[derive(Debug)]
pub struct ScanTable {
    schema: SchemaRef,
    format: Format,
    delimiter: u8,
    header: bool,
    compression: FileCompressionType,
    /// The folder keys' columns of a Hive-partitioned input (the last of `schema`).
    keys: Vec<FieldRef>,
    /// How many of `keys`, outermost first, have values: all but while the planner probes
    /// which outer folders a query reads, whose stand-ins know only the outer keys.
    known: usize,
    /// One group of file ranges per partition of the scan.
    groups: Vec<Vec<PartitionedFile>>,
    /// The bytes of every group: an estimate of the table's size, by which DataFusion joins
    /// a small table by collecting it whole instead of shuffling both sides.
    bytes: usize,
}

impl ScanTable {
    /// The scan of `fragments` of `input`, as one partition.
    pub fn new(
        store: &Store,
        input: &InputPlan,
        fragments: &[Fragment],
    ) -> kask_core::error::Result<Self> {
        Self::grouped(store, input, &[fragments.to_vec()])
    }

    /// The bytes the scan reads: an estimate of the table's size.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The scan of `input` with one partition per task, each reading that task's fragments.
    pub fn grouped(
        store: &Store,
        input: &InputPlan,
        tasks: &[Vec<Fragment>],
    ) -> kask_core::error::Result<Self> {
        let paths: Vec<String> = input.files.iter().map(|f| f.path.clone()).collect();
        let compression = match input.format {
            Format::Parquet => FileCompressionType::UNCOMPRESSED,
            _ => input_compression("", &paths)?,
        };
        let schema = input.schema.schema();
        let keys: Vec<FieldRef> =
            schema.fields()[schema.fields().len() - input.hive.len()..].to_vec();
        let values = hive_values(input, &keys)?;
        let known = input
            .files
            .iter()
            .map(|f| f.keys.len())
            .min()
            .unwrap_or(keys.len())
            .min(keys.len());
        let file = |f: &Fragment| -> kask_core::error::Result<PartitionedFile> {
            // From the store's path as it is: `PartitionedFile::new` would escape a `%`.
            let mut file = PartitionedFile::new_from_meta(object_meta(store, &f.path, f.size));
            if !keys.is_empty() {
                let v = values.get(f.path.as_str()).ok_or_else(|| {
                    kask_core::error::Error::internal(format!(
                        "{} is not a file of its input",
                        f.path
                    ))
                })?;
                file = file.with_partition_values(v.clone());
            }
            Ok(if f.is_whole_file() {
                file
            } else {
                file.with_range(f.start as i64, f.end as i64)
            })
        };
        let groups = tasks
            .iter()
            .map(|t| t.iter().map(file).collect())
            .collect::<kask_core::error::Result<_>>()?;
        let bytes = tasks
            .iter()
            .flatten()
            .map(|f| {
                usize::try_from(f.end.min(f.size).saturating_sub(f.start)).unwrap_or(usize::MAX)
            })
            .fold(0usize, usize::saturating_add);
        Ok(ScanTable {
            bytes,
            keys,
            known,
            schema,
            format: input.format,
            delimiter: input
                .csv
                .delimiter
                .as_bytes()
                .first()
                .copied()
                .unwrap_or(b','),
            header: input.csv.header,
            compression,
            groups,
        })
    }

    /// The columns read from the files: all but the folder keys.
    fn file_schema(&self) -> SchemaRef {
        let files = &self.schema.fields()[..self.schema.fields().len() - self.keys.len()];
        Arc::new(Schema::new_with_metadata(
            files.to_vec(),
            self.schema.metadata().clone(),
        ))
    }

    /// Whether `filter` reads only folder keys, so that it holds or fails for whole files. A
    /// volatile filter (`random()`) gives each row its own answer, so it decides no file.
    fn on_keys_only(&self, filter: &Expr) -> bool {
        let refs = filter.column_refs();
        !refs.is_empty()
            && !filter.is_volatile()
            && refs
                .iter()
                .all(|c| self.keys.iter().any(|k| k.name() == &c.name))
    }

    /// Whether `filter` reads only keys that have values (see [`ScanTable::known`]).
    fn on_known_keys_only(&self, filter: &Expr) -> bool {
        self.on_keys_only(filter)
            && filter
                .column_refs()
                .iter()
                .all(|c| self.keys[..self.known].iter().any(|k| k.name() == &c.name))
    }

    /// The file groups without the files whose folder keys fail one of `filters`: each group
    /// stays (a task whose files are all skipped reads nothing). A filter that cannot be
    /// evaluated here skips nothing; the filter above the scan still applies to every row.
    fn pruned(&self, state: &dyn Session, filters: &[Expr]) -> Vec<Vec<PartitionedFile>> {
        let on_keys: Vec<&Expr> = filters
            .iter()
            .filter(|f| self.on_known_keys_only(f))
            .collect();
        if on_keys.is_empty() {
            return self.groups.clone();
        }
        let files: Vec<&PartitionedFile> = self.groups.iter().flatten().collect();
        let keep =
            match super::hive_prune::passing(&self.keys[..self.known], &files, &on_keys, state) {
                Ok(keep) => keep,
                Err(e) => {
                    tracing::warn!(error = %e, "folder-key filters not evaluated; every file read");
                    return self.groups.clone();
                }
            };
        let mut at = 0;
        self.groups
            .iter()
            .map(|g| {
                let kept = g
                    .iter()
                    .zip(&keep[at..at + g.len()])
                    .filter(|(_, k)| **k)
                    .map(|(f, _)| f.clone())
                    .collect();
                at += g.len();
                kept
            })
            .collect()
    }

    fn file_format(&self, state: &dyn Session) -> Arc<dyn FileFormat> {
        match self.format {
            Format::Parquet => Arc::new(
                ParquetFormat::default().with_options(state.table_options().parquet.clone()),
            ),
            Format::Csv => Arc::new(
                CsvFormat::default()
                    .with_has_header(self.header)
                    .with_delimiter(self.delimiter)
                    .with_file_compression_type(self.compression),
            ),
            // Listing refuses Zarr inputs for tables, so a scan never sees one.
            Format::Json | Format::Zarr => {
                Arc::new(JsonFormat::default().with_file_compression_type(self.compression))
            }
        }
    }
}

#[async_trait]
impl TableProvider for ScanTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Inexact: the filter stays above the scan, so a file kept by mistake loses no row.
        Ok(filters
            .iter()
            .map(|f| {
                if self.on_keys_only(f) {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let groups = self.pruned(state, filters);
        if groups.iter().all(Vec::is_empty) {
            return Ok(Arc::new(EmptyExec::new(project_schema(
                &self.schema,
                projection,
            )?)));
        }
        // A CSV scan reads every text column, for the line-break check, whatever the task
        // projects; the projection is applied after the check.
        let guarded = self.format == Format::Csv;
        let read: Option<Vec<usize>> = match projection {
            Some(p) if guarded => {
                let mut all = p.clone();
                all.extend(
                    csv_guard::text_columns(&self.schema)
                        .into_iter()
                        .filter(|c| !p.contains(c)),
                );
                Some(all)
            }
            other => other.cloned(),
        };
        let format = self.file_format(state);
        let source = format.file_source(
            TableSchema::builder(self.file_schema())
                .with_table_partition_cols(self.keys.clone())
                .build(),
        );
        let conf = FileScanConfigBuilder::new(ObjectStoreUrl::parse(STORE_URL)?, source)
            .with_projection_indices(read.clone())?
            .with_file_groups(groups.into_iter().map(FileGroup::new).collect())
            .with_limit(limit)
            .with_file_compression_type(self.compression)
            .with_statistics(
                Statistics::new_unknown(&self.schema)
                    .with_total_byte_size(Precision::Inexact(self.bytes)),
            )
            .build();
        let scan = format.create_physical_plan(state, conf).await?;
        if !guarded {
            return Ok(scan);
        }
        let checked: Arc<dyn ExecutionPlan> = Arc::new(csv_guard::NoLineBreaks::new(scan));
        match (projection, read) {
            (Some(wanted), Some(read)) if read.len() > wanted.len() => {
                let first: Vec<usize> = (0..wanted.len()).collect();
                columns(checked, &first)
            }
            _ => Ok(checked),
        }
    }
}

/// Each file's folder-key values as scalars of the keys' types, by path.
fn hive_values<'a>(
    input: &'a InputPlan,
    keys: &[FieldRef],
) -> kask_core::error::Result<HashMap<&'a str, Vec<ScalarValue>>> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    input
        .files
        .iter()
        .map(|f| {
            // A key without a value (a probe's stand-in for a folder) reads as null.
            let values = keys
                .iter()
                .enumerate()
                .map(|(i, k)| {
                    let v = f.keys.get(i).and_then(Option::as_deref);
                    hive::scalar(v, k.data_type())
                })
                .collect::<kask_core::error::Result<Vec<_>>>()?;
            Ok((f.path.as_str(), values))
        })
        .collect()
}

/// Columns `indices` of `plan`, under their own names.
pub fn columns(
    plan: Arc<dyn ExecutionPlan>,
    indices: &[usize],
) -> DfResult<Arc<dyn ExecutionPlan>> {
    let schema = plan.schema();
    let exprs = indices.iter().map(|&i| {
        let name = schema.field(i).name();
        ProjectionExpr::new(Arc::new(Column::new(name, i)), name.clone())
    });
    Ok(Arc::new(ProjectionExec::try_new(exprs, plan)?))
}

/// Rows per batch: `KASK_BATCH_SIZE`, else 65536, fewer in a small memory budget (at least
/// DataFusion's default of 8192): a sort or join inserts a batch at a time into its share of
/// the pool, so batches stay about a 256th of the pool at 64-byte rows. 65536 measured on
/// db-benchmark join q5 (2 cores): 8.6 s at 8192, 7.5 s at 65536; groupby questions unchanged.
pub fn batch_size(store: &Store) -> usize {
    let pool = match store.runtime.memory_pool.memory_limit() {
        MemoryLimit::Finite(pool) => pool,
        _ => usize::MAX,
    };
    std::env::var("KASK_BATCH_SIZE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or_else(|| (pool / (64 * 256)).clamp(8192, 65536))
}
