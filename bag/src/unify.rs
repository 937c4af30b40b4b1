//! One schema for a bag's Parquet parts. Each final task infers its columns from the records it
//! holds, so parts can disagree: a field missing from one task's records, an integer in one
//! task and a float in another. The commit unifies them (as pandas would read the records
//! together) and rewrites the parts that differ, so that every part, and the manifest, have
//! the same columns with the same types.

use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{RecordBatch, new_null_array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use kask_core::error::{Error, Result};
use kask_core::marker::TaskMarker;
use kask_core::output::parquet_properties;
use kask_core::parts::Part;
use kask_core::plan::Plan;
use kask_core::store::Store;
use kask_core::store::checksum::crc32c;

/// The type two parts' types for one column unify to: the same type; the other one where a
/// part saw only nulls; float where integers meet floats; otherwise text.
pub fn unify_type(a: &DataType, b: &DataType) -> DataType {
    use DataType::*;
    match (a, b) {
        _ if a == b => a.clone(),
        (Null, t) | (t, Null) => t.clone(),
        (Int64, Float64) | (Float64, Int64) => Float64,
        _ => Utf8,
    }
}

/// The unified schema: columns in the order they first appear, every one nullable (a record
/// may lack any field).
pub fn unify(schemas: &[SchemaRef]) -> Schema {
    let mut fields: Vec<(String, DataType)> = Vec::new();
    for s in schemas {
        for f in s.fields() {
            match fields.iter_mut().find(|(n, _)| n == f.name()) {
                Some((_, t)) => *t = unify_type(t, f.data_type()),
                None => fields.push((f.name().clone(), f.data_type().clone())),
            }
        }
    }
    Schema::new(
        fields
            .into_iter()
            .map(|(n, t)| Field::new(n, t, true))
            .collect::<Vec<_>>(),
    )
}

/// A batch in the unified schema: columns cast, missing ones null.
pub fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => Ok(Arc::clone(c)),
            Some(c) => cast(c, f.data_type()).map_err(|e| {
                Error::internal(format!(
                    "casting column {:?} to {}: {e}",
                    f.name(),
                    f.data_type()
                ))
            }),
            None => Ok(new_null_array(f.data_type(), batch.num_rows())),
        })
        .collect::<Result<Vec<_>>>()?;
    RecordBatch::try_new(Arc::clone(schema), columns).map_err(|e| Error::internal(e.to_string()))
}

/// Unifies the parts' schemas (each task's, from its marker) and rewrites, under the job's
/// scratch space, the parts whose schema differs. Returns the unified schema.
pub async fn unify_parts(
    store: &Store,
    plan: &Plan,
    markers: &[TaskMarker],
    parts: &mut [Part],
) -> Result<SchemaRef> {
    let schema_of = |p: &Part| {
        p.task
            .and_then(|t| markers.iter().find(|m| m.task == t))
            .and_then(|m| m.schema.as_ref())
            .map(|s| s.schema())
    };
    let schemas: Vec<SchemaRef> = parts.iter().filter_map(schema_of).collect();
    let unified: SchemaRef = Arc::new(unify(&schemas));
    for (i, part) in parts.iter_mut().enumerate() {
        if schema_of(part).is_some_and(|s| s.fields() == unified.fields()) {
            continue;
        }
        let body = store.get(&part.from).await?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(body)
            .and_then(|b| b.build())
            .map_err(|e| Error::internal(format!("reading back {}: {e}", part.from)))?;
        let mut buf = Vec::new();
        let mut w =
            ArrowWriter::try_new(&mut buf, Arc::clone(&unified), Some(parquet_properties()))
                .map_err(|e| Error::internal(e.to_string()))?;
        for batch in reader {
            let batch =
                batch.map_err(|e| Error::internal(format!("reading back {}: {e}", part.from)))?;
            w.write(&conform(&batch, &unified)?)
                .map_err(|e| Error::internal(e.to_string()))?;
        }
        w.close().map_err(|e| Error::internal(e.to_string()))?;
        let from = format!("{}/unified/{i}.parquet", plan.scratch());
        part.bytes = buf.len() as u64;
        part.crc32c = Some(crc32c(&buf));
        store.put(&from, Bytes::from(buf)).await?;
        part.from = from;
    }
    Ok(unified)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(fields: &[(&str, DataType)]) -> SchemaRef {
        Arc::new(Schema::new(
            fields
                .iter()
                .map(|(n, t)| Field::new(*n, t.clone(), true))
                .collect::<Vec<_>>(),
        ))
    }

    #[test]
    fn parts_that_disagree_unify_as_pandas_reads_them_together() {
        let a = schema(&[("id", DataType::Int64), ("name", DataType::Utf8)]);
        let b = schema(&[("id", DataType::Float64), ("flag", DataType::Boolean)]);
        let c = schema(&[("id", DataType::Null), ("name", DataType::Int64)]);
        let u = unify(&[a, b, c]);
        let got: Vec<(String, DataType)> = u
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("id".into(), DataType::Float64),
                ("name".into(), DataType::Utf8),
                ("flag".into(), DataType::Boolean),
            ]
        );
        assert!(u.fields().iter().all(|f| f.is_nullable()));
    }
}
