//! Results written in folders by column values (Hive partitioning, `partitionBy`): a task's
//! rows, sorted by the folder keys, go to `<dir>/<k1=v1>/<k2=v2>/part-N.<ext>`, one file per
//! folder, without the key columns.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::compute::kernels::partition::partition;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::StreamExt;

use crate::error::{Error, Result};
use crate::marker::TaskFile;
use crate::output::{FileWriter, plain_batch, plain_schema};
use crate::plan::hive::NULL_VALUE;
use crate::store::Store;
use kask_api::Format;

/// Drains `stream` (sorted by `keys`) into one file per folder of key values under `dir`.
/// Rows of a folder that comes back after another get a file of their own, so an unsorted
/// stream costs files, never rows.
pub async fn write_in_folders(
    store: &Store,
    dir: &str,
    format: Format,
    keys: &[String],
    mut stream: SendableRecordBatchStream,
    on_error: &(dyn Fn(datafusion::error::DataFusionError) -> Error + Sync),
) -> Result<Vec<TaskFile>> {
    let schema = plain_schema(&stream.schema());
    let key_at = keys
        .iter()
        .map(|k| {
            schema
                .index_of(k)
                .map_err(|_| Error::internal(format!("folder key {k:?} is not in the result")))
        })
        .collect::<Result<Vec<usize>>>()?;
    let rest: Vec<usize> = (0..schema.fields().len())
        .filter(|i| !key_at.contains(i))
        .collect();
    let file_schema = Arc::new(
        schema
            .project(&rest)
            .map_err(|e| Error::internal(e.to_string()))?,
    );
    let mut files = Vec::new();
    let mut open: Option<(String, FileWriter)> = None;
    while let Some(batch) = stream.next().await {
        let batch = plain_batch(batch.map_err(on_error)?, &schema)?;
        if batch.num_rows() == 0 {
            continue;
        }
        let key_columns: Vec<ArrayRef> = key_at.iter().map(|&i| batch.column(i).clone()).collect();
        let runs = partition(&key_columns).map_err(|e| Error::internal(e.to_string()))?;
        let values = batch
            .project(&rest)
            .map_err(|e| Error::internal(e.to_string()))?;
        for run in runs.ranges() {
            let folder = folder_of(keys, &key_columns, run.start)?;
            if open.as_ref().map(|(f, _)| f) != Some(&folder) {
                if let Some((_, w)) = open.take() {
                    files.push(w.finish().await?);
                }
                let path = format!("{dir}/{folder}/part-{}.{}", files.len(), format.extension());
                open = Some((folder, FileWriter::new(store, &path, format, &file_schema)?));
            }
            if let Some((_, w)) = open.as_mut() {
                w.write(&values.slice(run.start, run.end - run.start))
                    .await?;
            }
        }
    }
    if let Some((_, w)) = open {
        files.push(w.finish().await?);
    }
    Ok(files)
}

/// The folders of row `row`: `k1=v1/k2=v2`, values as Arrow prints them, escaped as Hive
/// escapes them; a null or empty value is Hive's null.
pub fn folder_of(keys: &[String], columns: &[ArrayRef], row: usize) -> Result<String> {
    let options = FormatOptions::default();
    let mut folders = Vec::with_capacity(keys.len());
    for (key, column) in keys.iter().zip(columns) {
        let value = if column.is_null(row) {
            String::new()
        } else {
            ArrayFormatter::try_new(column.as_ref(), &options)
                .map_err(|e| Error::internal(format!("printing folder key {key:?}: {e}")))?
                .value(row)
                .to_string()
        };
        let value = if value.is_empty() {
            NULL_VALUE.to_string()
        } else {
            escape(&value)
        };
        folders.push(format!("{}={value}", escape(key)));
    }
    Ok(folders.join("/"))
}

/// `%XX` for the characters Hive escapes in folder names (and `/`, which would make a folder).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let escaped = c.is_ascii_control()
            || matches!(
                c,
                '"' | '#' | '%' | '\'' | '*' | '/' | ':' | '=' | '?' | '\\' | '{' | '[' | ']' | '^'
            );
        if escaped {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}
