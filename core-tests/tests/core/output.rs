use datafusion::arrow::array::{Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use kask_api::Format;
use kask_core::output::*;
use std::sync::Arc;

fn batch(from: i64, to: i64) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, true),
        Field::new("s", DataType::Utf8, true),
    ]));
    let s: Vec<String> = (from..to).map(|i| format!("v{i}")).collect();
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(from..to)),
            Arc::new(StringArray::from_iter_values(s)),
        ],
    )
    .expect("batch")
}

#[test]
fn csv_batches_encoded_one_by_one_carry_one_header() {
    let mut e = TextEncoder::new(Format::Csv);
    let mut text = e.encode(&batch(0, 2)).expect("encode");
    text.extend(e.encode(&batch(2, 3)).expect("encode"));
    assert_eq!(
        String::from_utf8(text).expect("utf8"),
        "k,s\n0,v0\n1,v1\n2,v2\n"
    );
}

#[test]
fn json_batches_encoded_one_by_one_are_whole_lines() {
    let mut e = TextEncoder::new(Format::Json);
    let mut text = e.encode(&batch(0, 1)).expect("encode");
    text.extend(e.encode(&batch(1, 2)).expect("encode"));
    assert_eq!(
        String::from_utf8(text).expect("utf8"),
        "{\"k\":0,\"s\":\"v0\"}\n{\"k\":1,\"s\":\"v1\"}\n"
    );
}
