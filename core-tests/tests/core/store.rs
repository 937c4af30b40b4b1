use bytes::Bytes;
use kask_core::store::*;

/// A key holding `%` (Spark's escaped folder values) is written, listed and read back
/// under the same name, and is the name on disk.
#[tokio::test]
async fn keys_with_escapes_keep_their_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::local_dir(dir.path()).expect("store");
    let key = "t/city=S%C3%A3o%20Paulo/x~[1].txt";
    store
        .put(key, Bytes::from_static(b"hi"))
        .await
        .expect("put");
    let listed = store.list_versions("t").await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].0, key);
    assert_eq!(store.get(&listed[0].0).await.expect("get").as_ref(), b"hi");
    assert!(dir.path().join(key).exists());
}
