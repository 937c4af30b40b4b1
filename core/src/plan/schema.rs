//! Arrow schemas inside the JSON plan, as base64 of an Arrow IPC schema message, so every
//! task sees exactly the types the planner saw.

use std::io::Cursor;
use std::sync::Arc;

use base64::Engine as _;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A schema that serializes as base64 Arrow IPC.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanSchema(pub SchemaRef);

impl PlanSchema {
    /// The schema.
    pub fn schema(&self) -> SchemaRef {
        self.0.clone()
    }
}

impl From<SchemaRef> for PlanSchema {
    fn from(s: SchemaRef) -> Self {
        PlanSchema(s)
    }
}

fn encode(schema: &Schema) -> Result<String, String> {
    let mut buf = Vec::new();
    let mut w = StreamWriter::try_new(&mut buf, schema).map_err(|e| e.to_string())?;
    w.finish().map_err(|e| e.to_string())?;
    drop(w);
    Ok(base64::engine::general_purpose::STANDARD.encode(buf))
}

fn decode(text: &str) -> Result<Schema, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| e.to_string())?;
    let r = StreamReader::try_new(Cursor::new(bytes), None).map_err(|e| e.to_string())?;
    Ok(r.schema().as_ref().clone())
}

impl Serialize for PlanSchema {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        encode(&self.0)
            .map_err(serde::ser::Error::custom)?
            .serialize(s)
    }
}

impl<'de> Deserialize<'de> for PlanSchema {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        decode(&text)
            .map(|s| PlanSchema(Arc::new(s)))
            .map_err(serde::de::Error::custom)
    }
}
