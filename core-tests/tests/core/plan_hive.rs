use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::ScalarValue;
use kask_api::Partitioning;
use kask_core::plan::hive::*;

#[test]
fn keys_come_from_folders_only_decoded_with_nulls() {
    assert_eq!(
        folder_keys(
            "lake/dt=2026-11-30/city=S%C3%A3o%20Paulo/k=__HIVE_DEFAULT_PARTITION__/part=1.parquet"
        ),
        vec![
            ("dt".to_string(), Some("2026-11-30".to_string())),
            ("city".to_string(), Some("São Paulo".to_string())),
            ("k".to_string(), None),
        ]
    );
    assert!(folder_keys("plain/a.parquet").is_empty());
    assert_eq!(
        folder_keys("x/k=%2/a"),
        vec![("k".into(), Some("%2".into()))]
    );
}

#[test]
fn detection_requires_the_same_keys_everywhere() {
    let hive = detect("t", &["e/dt=1/a.pq", "e/dt=22/b.pq"], None)
        .expect("ok")
        .expect("ok");
    assert_eq!(hive.columns, vec![Field::new("dt", DataType::Int64, false)]);
    assert_eq!(
        hive.values,
        vec![vec![Some("1".into())], vec![Some("22".into())]]
    );
    assert_eq!(detect("t", &["e/a.pq", "e/b.pq"], None).expect("ok"), None);
    assert_eq!(
        detect("t", &["e/dt=1/a.pq"], Some(Partitioning::None)).expect("ok"),
        None
    );
    let mixed = detect("t", &["e/dt=1/a.pq", "e/dt=2/x=1/b.pq"], None).expect_err("refused");
    assert!(mixed.to_string().contains("e/dt=2/x=1/b.pq"), "{mixed}");
    let plain = detect("t", &["e/a.pq"], Some(Partitioning::Hive)).expect_err("refused");
    assert!(
        plain.to_string().contains("no `key=value` folder"),
        "{plain}"
    );
    // One stray `a=b` folder among plain files is not partitioning.
    assert_eq!(
        detect("t", &["e/a.pq", "e/v=2/b.pq"], None).expect("ok"),
        None
    );
}

#[test]
fn the_outer_key_is_typed_from_every_folder_listed() {
    let mut keys = detect("t", &["e/dt=2026-11-30/h=1/a.pq"], None)
        .expect("ok")
        .expect("ok");
    assert_eq!(keys.columns[0].data_type(), &DataType::Date32);
    // A folder the filters skipped, named `latest`, makes the key a string, as it is
    // when every folder is read.
    retype_outermost(
        &mut keys,
        &[Some("2026-11-30".into()), Some("latest".into())],
    );
    assert_eq!(keys.columns[0], Field::new("dt", DataType::Utf8View, false));
    retype_outermost(&mut keys, &[None]);
    assert!(keys.columns[0].is_nullable());
    assert_eq!(keys.columns[1].data_type(), &DataType::Int64);
}

#[test]
fn types_are_integers_dates_or_strings() {
    assert_eq!(value_type(&[Some("1"), None, Some("-3")]), DataType::Int64);
    assert_eq!(value_type(&[Some("2026-02-28")]), DataType::Date32);
    assert_eq!(value_type(&[Some("2026-02-30")]), DataType::Utf8View);
    assert_eq!(value_type(&[Some("1"), Some("x")]), DataType::Utf8View);
    assert_eq!(value_type(&[None]), DataType::Utf8View);
    assert_eq!(
        scalar(Some("1970-01-02"), &DataType::Date32).expect("ok"),
        ScalarValue::Date32(Some(1))
    );
    assert_eq!(
        scalar(None, &DataType::Int64).expect("ok"),
        ScalarValue::Int64(None)
    );
}
