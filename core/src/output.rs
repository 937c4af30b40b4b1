//! Writes a final-stage task's rows as one output file under the task attempt's own prefix;
//! the commit step gives it its final name.

use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::compute::cast;
use datafusion::arrow::csv::WriterBuilder as CsvWriterBuilder;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::json::LineDelimitedWriter;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::AsyncArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::StreamExt;

use crate::error::{Error, Result, store_failure};
use crate::marker::TaskFile;
use crate::store::Store;
use crate::store::checksum::crc32c;
use crate::store::upload::Upload;
use kask_api::Format;

/// Parquet files are written with row groups of this many rows, small enough for readers to
/// split and large enough to compress well.
const ROW_GROUP_ROWS: usize = 1024 * 1024;

/// A writer's error: the store's failure (retryable), or the encoder's.
fn write_err(store: &Store, path: &str, e: impl std::error::Error + 'static) -> Error {
    match store_failure(&e) {
        Some(why) => store.err_text(format!("writing {path}"), why),
        None => encode_err(path, e),
    }
}

/// An encoder's error (rows that cannot be written in the format).
fn encode_err(path: &str, e: impl std::fmt::Display) -> Error {
    Error::Output {
        path: path.to_string(),
        message: format!("writing failed: {e}"),
    }
}

/// Result columns in plain Arrow types: string and binary views (which DataFusion computes
/// with) become `Utf8` and `Binary`, so that a result's types do not depend on the path its
/// rows took, and every reader knows them.
pub fn plain_schema(schema: &SchemaRef) -> SchemaRef {
    if !schema.fields().iter().any(|f| is_view(f.data_type())) {
        return Arc::clone(schema);
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_data_type(plain(f.data_type())))
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

fn is_view(dt: &DataType) -> bool {
    matches!(dt, DataType::Utf8View | DataType::BinaryView)
}

fn plain(dt: &DataType) -> DataType {
    match dt {
        DataType::Utf8View => DataType::Utf8,
        DataType::BinaryView => DataType::Binary,
        other => other.clone(),
    }
}

/// A batch in `schema`'s plain types ([`plain_schema`]).
fn plain_batch(batch: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    if batch.schema().fields() == schema.fields() {
        return Ok(batch);
    }
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| cast(c, f.data_type()))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::internal(format!("casting a result to plain types: {e}")))?;
    RecordBatch::try_new(Arc::clone(schema), columns).map_err(|e| Error::internal(e.to_string()))
}

/// Drains `stream` into `<dir>/part.<ext>`; no file when there are no rows. `on_error` turns
/// an execution error into a task error with context.
pub async fn write_output(
    store: &Store,
    dir: &str,
    format: Format,
    mut stream: SendableRecordBatchStream,
    on_error: &(dyn Fn(datafusion::error::DataFusionError) -> Error + Sync),
) -> Result<Vec<TaskFile>> {
    let path = format!("{dir}/part.{}", format.extension());
    let schema = plain_schema(&stream.schema());
    let mut rows = 0u64;
    match format {
        Format::Zarr => Err(Error::internal("a table written as Zarr")),
        Format::Parquet => {
            let mut writer: Option<AsyncArrowWriter<Upload>> = None;
            while let Some(batch) = stream.next().await {
                let batch = plain_batch(batch.map_err(on_error)?, &schema)?;
                if batch.num_rows() == 0 {
                    continue;
                }
                rows += batch.num_rows() as u64;
                if writer.is_none() {
                    writer = Some(
                        AsyncArrowWriter::try_new(
                            Upload::new(store, &path),
                            schema.clone(),
                            Some(parquet_properties()),
                        )
                        .map_err(|e| write_err(store, &path, e))?,
                    );
                }
                if let Some(w) = writer.as_mut() {
                    w.write(&batch)
                        .await
                        .map_err(|e| write_err(store, &path, e))?;
                }
            }
            let Some(mut w) = writer else {
                return Ok(vec![]);
            };
            w.finish().await.map_err(|e| write_err(store, &path, e))?;
            let upload = w.into_inner();
            Ok(vec![TaskFile {
                path,
                rows,
                bytes: upload.bytes(),
                crc32c: Some(upload.crc32c()),
                partitions: vec![],
            }])
        }
        Format::Csv | Format::Json => {
            let mut batches: Vec<RecordBatch> = Vec::new();
            while let Some(batch) = stream.next().await {
                let batch = plain_batch(batch.map_err(on_error)?, &schema)?;
                rows += batch.num_rows() as u64;
                if batch.num_rows() > 0 {
                    batches.push(batch);
                }
            }
            if rows == 0 {
                return Ok(vec![]);
            }
            let buf = encode_text(format, &batches).map_err(|e| encode_err(&path, e))?;
            Ok(vec![put_file(store, path, rows, Bytes::from(buf)).await?])
        }
    }
}

/// How kask writes Parquet: Snappy, row groups of [`ROW_GROUP_ROWS`].
pub fn parquet_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build()
}

/// Writes a whole file and describes it, with its checksum.
pub async fn put_file(store: &Store, path: String, rows: u64, body: Bytes) -> Result<TaskFile> {
    let file = TaskFile {
        rows,
        bytes: body.len() as u64,
        crc32c: Some(crc32c(&body)),
        partitions: vec![],
        path,
    };
    store.put(&file.path, body).await?;
    Ok(file)
}

/// CSV (with a header) or JSON lines.
pub fn encode_text(
    format: Format,
    batches: &[RecordBatch],
) -> std::result::Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    if format == Format::Csv {
        let mut w = CsvWriterBuilder::new().with_header(true).build(&mut buf);
        for b in batches {
            w.write(b).map_err(|e| e.to_string())?;
        }
    } else {
        let mut w = LineDelimitedWriter::new(&mut buf);
        for b in batches {
            w.write(b).map_err(|e| e.to_string())?;
        }
        w.finish().map_err(|e| e.to_string())?;
    }
    Ok(buf)
}

/// An output file holding no rows, only the schema, so that readers of an empty result still
/// see its columns.
pub fn empty_file(
    path: &str,
    format: Format,
    schema: datafusion::arrow::datatypes::SchemaRef,
) -> Result<Bytes> {
    let schema = plain_schema(&schema);
    let buf = match format {
        Format::Parquet => {
            let mut buf = Vec::new();
            let mut w = datafusion::parquet::arrow::ArrowWriter::try_new(&mut buf, schema, None)
                .map_err(|e| encode_err(path, e))?;
            w.flush().map_err(|e| encode_err(path, e))?;
            w.close().map_err(|e| encode_err(path, e))?;
            buf
        }
        Format::Csv => {
            let header: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
            format!("{}\n", header.join(",")).into_bytes()
        }
        Format::Json => Vec::new(),
        Format::Zarr => return Err(Error::internal("a table written as Zarr")),
    };
    Ok(Bytes::from(buf))
}
