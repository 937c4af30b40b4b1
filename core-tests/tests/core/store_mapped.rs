use bytes::Bytes;
use kask_core::store::mapped::*;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{GetOptions, GetResultPayload, ObjectStore};

fn at(dir: &tempfile::TempDir, name: &str) -> Path {
    Path::from(
        dir.path()
            .join(name)
            .to_str()
            .expect("a UTF-8 temporary path"),
    )
}

/// Ranges come back as the file's bytes, overlapping, repeated and empty ones included, the
/// same as the local store reads them; the slices outlive the call and a rename over the
/// file (how Kask replaces files) leaves them as they were.
#[tokio::test]
async fn ranges_are_the_files_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(dir.path().join("f"), &bytes).expect("write");
    let ranges = [0..10, 4096..70_000, 5..5, 99_990..100_000, 0..100_000, 6..9];
    let got = Mapped::new()
        .get_ranges(&at(&dir, "f"), &ranges)
        .await
        .expect("read");
    let plain = LocalFileSystem::new()
        .get_ranges(&at(&dir, "f"), &ranges)
        .await
        .expect("plain read");
    assert_eq!(got, plain);
    for (r, b) in ranges.iter().zip(&got) {
        assert_eq!(b.as_ref(), &bytes[r.start as usize..r.end as usize]);
    }
    std::fs::write(dir.path().join("g"), b"other").expect("write");
    std::fs::rename(dir.path().join("g"), dir.path().join("f")).expect("rename");
    assert_eq!(got[1].as_ref(), &bytes[4096..70_000]);
}

/// Whole and ranged gets return the file's bytes (as a stream the caller need not read from
/// the file), with the local store's metadata and range; a head request reads nothing, and
/// a precondition that fails fails as it does there.
#[tokio::test]
async fn gets_are_the_files_bytes_with_the_local_stores_answer() {
    use object_store::{GetRange, ObjectStoreExt};
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes: Vec<u8> = (0..50_000u32).map(|i| (i * 13 % 241) as u8).collect();
    std::fs::write(dir.path().join("f"), &bytes).expect("write");
    let (store, f) = (Mapped::new(), at(&dir, "f"));
    let whole = store.get(&f).await.expect("get");
    assert!(matches!(whole.payload, GetResultPayload::Stream(_)));
    assert_eq!(whole.range, 0..50_000);
    assert_eq!(whole.meta.size, 50_000);
    assert_eq!(whole.bytes().await.expect("bytes").as_ref(), &bytes[..]);
    for range in [
        GetRange::Bounded(100..4_200),
        GetRange::Offset(49_000),
        GetRange::Suffix(8),
    ] {
        let opts = GetOptions {
            range: Some(range.clone()),
            ..Default::default()
        };
        let got = store.get_opts(&f, opts.clone()).await.expect("ranged get");
        let plain = LocalFileSystem::new()
            .get_opts(&f, opts)
            .await
            .expect("plain ranged get");
        assert_eq!(got.range, plain.range, "{range:?}");
        let (r, got) = (got.range.clone(), got.bytes().await.expect("bytes"));
        assert_eq!(got, plain.bytes().await.expect("plain bytes"), "{range:?}");
        assert_eq!(got.as_ref(), &bytes[r.start as usize..r.end as usize]);
    }
    assert_eq!(store.head(&f).await.expect("head").size, 50_000);
    let stale = GetOptions {
        if_match: Some("not-its-tag".into()),
        ..Default::default()
    };
    let err = store.get_opts(&f, stale.clone()).await.expect_err("stale");
    let plain = LocalFileSystem::new()
        .get_opts(&f, stale)
        .await
        .expect_err("plain stale");
    assert_eq!(err.to_string(), plain.to_string());
}

/// What a mapping cannot serve goes to the local store and fails as it does there: a
/// missing file is `NotFound`, a range past the end and a range in an empty file are
/// errors naming the file; empty ranges of an empty file are empty bytes.
#[tokio::test]
async fn what_cannot_be_mapped_fails_as_the_local_store_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("f"), b"0123456789").expect("write");
    std::fs::write(dir.path().join("empty"), b"").expect("write");
    let store = Mapped::new();
    let missing = store.get_ranges(&at(&dir, "nope"), &[0..1, 1..2]).await;
    assert!(
        matches!(missing, Err(object_store::Error::NotFound { .. })),
        "{missing:?}"
    );
    for (name, range) in [("f", 5..11), ("f", 11..12), ("empty", 0..1)] {
        let err = store
            .get_ranges(&at(&dir, name), &[0..1, range.clone()])
            .await
            .expect_err("past the end");
        let plain = LocalFileSystem::new()
            .get_ranges(&at(&dir, name), &[0..1, range])
            .await
            .expect_err("past the end, plain");
        assert_eq!(err.to_string(), plain.to_string());
    }
    let empty = store
        .get_ranges(&at(&dir, "empty"), &[0..0, 0..0])
        .await
        .expect("empty range");
    assert_eq!(empty, vec![Bytes::new(), Bytes::new()]);
}
