use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::array::{Date32Array, Int64Array, StringArray};
use kask_core::output_folders::*;
use kask_core::plan::hive::folder_keys;
use std::sync::Arc;

#[test]
fn folder_names_read_back_as_the_values() {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![Some("a/b=c%d é"), None, Some("")])),
        Arc::new(Int64Array::from(vec![Some(-3), Some(4), None])),
        Arc::new(Date32Array::from(vec![Some(20422), None, None])),
    ];
    let keys = ["s".to_string(), "n".to_string(), "d".to_string()];
    let first = folder_of(&keys, &columns, 0).expect("folder");
    assert_eq!(first, "s=a%2Fb%3Dc%25d é/n=-3/d=2025-11-30");
    let back = folder_keys(&format!("{first}/part.parquet"));
    assert_eq!(
        back,
        vec![
            ("s".into(), Some("a/b=c%d é".into())),
            ("n".into(), Some("-3".into())),
            ("d".into(), Some("2025-11-30".into())),
        ]
    );
    for row in [1, 2] {
        let nulls = folder_keys(&format!(
            "{}/x",
            folder_of(&keys, &columns, row).expect("f")
        ));
        assert_eq!(nulls[0].1, None, "null and empty strings are Hive's null");
    }
}
