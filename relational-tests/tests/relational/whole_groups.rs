use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Date32Array, Int64Array, StringArray, UInt32Array};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use datafusion::parquet::file::properties::WriterProperties;

use kask_relational::whole_groups::{disjoint_ranges, row_group_ranges};

#[test]
fn ranges_are_disjoint_when_no_two_partitions_overlap() {
    assert!(disjoint_ranges(&[
        Some((10, 19)),
        None,
        Some((0, 9)),
        Some((20, 20))
    ]));
    assert!(disjoint_ranges(&[]));
    assert!(disjoint_ranges(&[None, Some((5, 5))]));
    assert!(!disjoint_ranges(&[Some((0, 10)), Some((10, 20))]));
    assert!(!disjoint_ranges(&[Some((0, 100)), Some((40, 50))]));
    assert!(!disjoint_ranges(&[Some((3, 3)), Some((3, 3))]));
}

/// A Parquet file of `columns` in row groups of `rows_per_group`, and its metadata.
fn parquet(columns: Vec<(&str, ArrayRef)>, rows_per_group: usize) -> ParquetMetaData {
    let batch = RecordBatch::try_from_iter(columns).expect("batch");
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(rows_per_group))
        .build();
    let mut bytes = Vec::new();
    let mut w = ArrowWriter::try_new(&mut bytes, batch.schema(), Some(props)).expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
    ParquetMetaDataReader::new()
        .parse_and_finish(&bytes::Bytes::from(bytes))
        .expect("metadata")
}

fn ids(v: impl IntoIterator<Item = Option<i64>>) -> ArrayRef {
    Arc::new(Int64Array::from_iter(v))
}

#[test]
fn each_row_group_gives_its_lowest_and_highest_value() {
    let meta = parquet(vec![("id", ids((0..400).map(|i| Some(1000 - i))))], 100);
    assert_eq!(
        row_group_ranges(&meta, "id", None),
        Some(vec![(901, 1000), (801, 900), (701, 800), (601, 700)])
    );
    // Dates are signed 32-bit days.
    let days: ArrayRef = Arc::new(Date32Array::from_iter_values(-50..150));
    let meta = parquet(vec![("d", days)], 100);
    assert_eq!(
        row_group_ranges(&meta, "d", None),
        Some(vec![(-50, 49), (50, 149)])
    );
    // A column the file lacks has none.
    assert_eq!(row_group_ranges(&meta, "id", None), None);
}

#[test]
fn a_byte_range_reads_the_row_groups_whose_first_page_is_in_it() {
    let meta = parquet(vec![("id", ids((0..400).map(Some)))], 100);
    let starts: Vec<i64> = meta
        .row_groups()
        .iter()
        .map(|rg| {
            let c = rg.column(0);
            c.dictionary_page_offset()
                .unwrap_or_else(|| c.data_page_offset())
        })
        .collect();
    assert_eq!(
        row_group_ranges(&meta, "id", Some((starts[1], starts[3]))),
        Some(vec![(100, 199), (200, 299)])
    );
    assert_eq!(
        row_group_ranges(&meta, "id", Some((0, starts[1]))),
        Some(vec![(0, 99)])
    );
    assert_eq!(
        row_group_ranges(&meta, "id", Some((starts[3] + 1, i64::MAX))),
        Some(vec![])
    );
}

#[test]
fn nulls_unsigned_and_strings_have_no_usable_ranges() {
    let meta = parquet(
        vec![("id", ids((0..200).map(|i| (i != 150).then_some(i))))],
        100,
    );
    assert_eq!(
        row_group_ranges(&meta, "id", None),
        None,
        "a null in a row group"
    );
    let unsigned: ArrayRef = Arc::new(UInt32Array::from_iter_values(0..200));
    let meta = parquet(vec![("u", unsigned)], 100);
    assert_eq!(row_group_ranges(&meta, "u", None), None, "unsigned order");
    let names: ArrayRef = Arc::new(StringArray::from_iter_values(
        (0..200).map(|i| format!("{i:04}")),
    ));
    let meta = parquet(vec![("s", names)], 100);
    assert_eq!(row_group_ranges(&meta, "s", None), None, "strings");
}
