#[test]
fn crc32c_matches_the_standard_check_value() {
    // The check value of CRC-32C (Castagnoli) over "123456789", from RFC 3720.
    assert_eq!(
        kask_core::store::checksum::crc32c(b"123456789"),
        0xe306_9283
    );
    let split = kask_core::store::checksum::crc32c_append(
        kask_core::store::checksum::crc32c(b"1234"),
        b"56789",
    );
    assert_eq!(split, 0xe306_9283);
}
