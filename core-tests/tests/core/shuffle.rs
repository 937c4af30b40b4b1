use datafusion::arrow::ipc::CompressionType;
use kask_core::shuffle::*;

#[test]
fn the_shuffle_compression_is_lz4_unless_named_and_a_wrong_name_is_an_error() {
    assert_eq!(
        compression_named(None),
        Ok(Some(CompressionType::LZ4_FRAME))
    );
    assert_eq!(compression_named(Some("none".into())), Ok(None));
    assert_eq!(
        compression_named(Some("zstd".into())),
        Ok(Some(CompressionType::ZSTD))
    );
    assert_eq!(
        compression_named(Some("lz".into())),
        Err("KASK_SHUFFLE_COMPRESSION=\"lz\": expected none, lz4 or zstd".into())
    );
}
