//! Writes a final-stage task's rows as one output file under the task attempt's own prefix;
//! the commit step gives it its final name.

use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::csv::WriterBuilder as CsvWriterBuilder;
use datafusion::arrow::json::LineDelimitedWriter;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::AsyncArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::StreamExt;
use object_store::ObjectStoreExt;
use object_store::buffered::BufWriter;

use super::marker::TaskFile;
use crate::error::{Error, Result};
use crate::store::Store;
use kask_api::Format;

/// Parquet files are written with row groups of this many rows, small enough for readers to
/// split and large enough to compress well.
const ROW_GROUP_ROWS: usize = 1024 * 1024;

fn write_err(path: &str, e: impl std::fmt::Display) -> Error {
    Error::Output {
        path: path.to_string(),
        message: format!("writing failed: {e}"),
    }
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
    let schema = stream.schema();
    let mut rows = 0u64;
    match format {
        Format::Zarr => Err(Error::internal("a table written as Zarr")),
        Format::Parquet => {
            let mut writer: Option<AsyncArrowWriter<BufWriter>> = None;
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(on_error)?;
                if batch.num_rows() == 0 {
                    continue;
                }
                rows += batch.num_rows() as u64;
                if writer.is_none() {
                    let props = WriterProperties::builder()
                        .set_compression(Compression::SNAPPY)
                        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
                        .build();
                    let sink = BufWriter::new(Arc::clone(&store.inner), store.path(&path));
                    writer = Some(
                        AsyncArrowWriter::try_new(sink, schema.clone(), Some(props))
                            .map_err(|e| write_err(&path, e))?,
                    );
                }
                if let Some(w) = writer.as_mut() {
                    w.write(&batch).await.map_err(|e| write_err(&path, e))?;
                }
            }
            let Some(w) = writer else { return Ok(vec![]) };
            w.close().await.map_err(|e| write_err(&path, e))?;
            let bytes = store
                .inner
                .head(&store.path(&path))
                .await
                .map_err(|e| store.err(format!("reading {path}"), e))?
                .size;
            Ok(vec![TaskFile {
                path,
                rows,
                bytes,
                partitions: vec![],
            }])
        }
        Format::Csv | Format::Json => {
            let mut batches: Vec<RecordBatch> = Vec::new();
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(on_error)?;
                rows += batch.num_rows() as u64;
                if batch.num_rows() > 0 {
                    batches.push(batch);
                }
            }
            if rows == 0 {
                return Ok(vec![]);
            }
            let buf = encode_text(format, &batches).map_err(|e| write_err(&path, e))?;
            let bytes = buf.len() as u64;
            store.put(&path, Bytes::from(buf)).await?;
            Ok(vec![TaskFile {
                path,
                rows,
                bytes,
                partitions: vec![],
            }])
        }
    }
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
pub async fn write_empty(
    store: &Store,
    path: &str,
    format: Format,
    schema: datafusion::arrow::datatypes::SchemaRef,
) -> Result<u64> {
    let buf = match format {
        Format::Parquet => {
            let mut buf = Vec::new();
            let mut w = datafusion::parquet::arrow::ArrowWriter::try_new(&mut buf, schema, None)
                .map_err(|e| write_err(path, e))?;
            w.flush().map_err(|e| write_err(path, e))?;
            w.close().map_err(|e| write_err(path, e))?;
            buf
        }
        Format::Csv => {
            let header: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
            format!("{}\n", header.join(",")).into_bytes()
        }
        Format::Json => Vec::new(),
        Format::Zarr => return Err(Error::internal("a table written as Zarr")),
    };
    let n = buf.len() as u64;
    store.put(path, Bytes::from(buf)).await?;
    Ok(n)
}
