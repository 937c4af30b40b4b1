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
pub fn plain_batch(batch: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
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
    let mut writer: Option<FileWriter> = None;
    while let Some(batch) = stream.next().await {
        let batch = plain_batch(batch.map_err(on_error)?, &schema)?;
        if batch.num_rows() == 0 {
            continue;
        }
        if writer.is_none() {
            writer = Some(FileWriter::new(store, &path, format, &schema)?);
        }
        if let Some(w) = writer.as_mut() {
            w.write(&batch).await?;
        }
    }
    match writer {
        Some(w) => Ok(vec![w.finish().await?]),
        None => Ok(vec![]),
    }
}

/// One output file being written: its rows are encoded and uploaded in parts as they come,
/// so that a result is never held whole.
pub struct FileWriter {
    store: Store,
    path: String,
    rows: u64,
    encoder: Encoder,
}

enum Encoder {
    Parquet(Box<AsyncArrowWriter<Upload>>),
    Text(TextEncoder, Box<Upload>),
}

impl FileWriter {
    /// A writer of `path` in `format`, for rows of `schema` (plain types, [`plain_schema`]).
    pub fn new(store: &Store, path: &str, format: Format, schema: &SchemaRef) -> Result<Self> {
        let encoder = match format {
            Format::Zarr => return Err(Error::internal("a table written as Zarr")),
            Format::Parquet => Encoder::Parquet(Box::new(
                AsyncArrowWriter::try_new(
                    Upload::new(store, path),
                    Arc::clone(schema),
                    Some(parquet_properties()),
                )
                .map_err(|e| write_err(store, path, e))?,
            )),
            Format::Csv | Format::Json => {
                Encoder::Text(TextEncoder::new(format), Box::new(Upload::new(store, path)))
            }
        };
        Ok(FileWriter {
            store: store.clone(),
            path: path.to_string(),
            rows: 0,
            encoder,
        })
    }

    /// Appends a batch.
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.rows += batch.num_rows() as u64;
        let (store, path) = (&self.store, self.path.as_str());
        match &mut self.encoder {
            Encoder::Parquet(w) => w.write(batch).await.map_err(|e| write_err(store, path, e)),
            Encoder::Text(encoder, upload) => {
                let bytes = encoder.encode(batch).map_err(|e| encode_err(path, e))?;
                upload
                    .put(Bytes::from(bytes))
                    .await
                    .map_err(|e| write_err(store, path, e))
            }
        }
    }

    /// Finishes the file and describes it, with its checksum.
    pub async fn finish(self) -> Result<TaskFile> {
        let (store, path) = (&self.store, self.path.as_str());
        let upload = match self.encoder {
            Encoder::Parquet(mut w) => {
                w.finish().await.map_err(|e| write_err(store, path, e))?;
                w.into_inner()
            }
            Encoder::Text(_, mut upload) => {
                upload
                    .finish()
                    .await
                    .map_err(|e| write_err(store, path, e))?;
                *upload
            }
        };
        Ok(TaskFile {
            rows: self.rows,
            bytes: upload.bytes(),
            crc32c: Some(upload.crc32c()),
            partitions: vec![],
            window: 0,
            samples: vec![],
            path: self.path,
        })
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
        window: 0,
        samples: vec![],
        path,
    };
    store.put(&file.path, body).await?;
    Ok(file)
}

/// Encodes batches one at a time as CSV (the header before the first) or JSON lines.
pub struct TextEncoder {
    format: Format,
    header_written: bool,
}

impl TextEncoder {
    /// An encoder for `format` (CSV or JSON lines).
    pub fn new(format: Format) -> TextEncoder {
        TextEncoder {
            format,
            header_written: false,
        }
    }

    /// The bytes of one batch, to be appended after the previous batches' bytes.
    pub fn encode(&mut self, batch: &RecordBatch) -> std::result::Result<Vec<u8>, String> {
        let mut buf = Vec::new();
        if self.format == Format::Csv {
            let mut w = CsvWriterBuilder::new()
                .with_header(!self.header_written)
                .build(&mut buf);
            w.write(batch).map_err(|e| e.to_string())?;
            self.header_written = true;
        } else {
            let mut w = LineDelimitedWriter::new(&mut buf);
            w.write(batch).map_err(|e| e.to_string())?;
            w.finish().map_err(|e| e.to_string())?;
        }
        Ok(buf)
    }
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
