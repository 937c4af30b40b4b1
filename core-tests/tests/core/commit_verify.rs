#[test]
fn csv_records_count_quoted_newlines_as_data() {
    assert_eq!(kask_core::commit::verify::csv_records(b"a,b\n1,2\n"), 2);
    assert_eq!(
        kask_core::commit::verify::csv_records(b"a,b\n1,\"x\ny\"\n3,4"),
        3
    );
    assert_eq!(kask_core::commit::verify::csv_records(b""), 0);
}
