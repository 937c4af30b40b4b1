//! No orphaned uploads: a multipart upload that fails part-way is aborted by the writer, and
//! the uploads a crashed process left under a job's scratch space are aborted by its cleanup.

use std::time::Duration;

use bytes::Bytes;
use object_store::ObjectStoreExt;

use crate::faults::{FaultRates, FaultStore, Faults};
use crate::support::Lab;
use kask_worker::commit::cleanup::abandon;
use kask_worker::store::Store;
use kask_worker::store::upload::Upload;

/// Writes `bytes` through an upload whose parts all fail, and returns the error.
async fn failing_upload(store: &Store, path: &str, bytes: usize) -> String {
    let faults = Faults::new(
        1,
        FaultRates {
            multipart: 1.0,
            ..FaultRates::default()
        },
    );
    let failing = FaultStore::around(store, &faults);
    let mut upload = Upload::new(&failing, path);
    let chunk = Bytes::from(vec![7u8; 1 << 20]);
    let mut error = None;
    for _ in 0..bytes >> 20 {
        if let Err(e) = upload.put(chunk.clone()).await {
            error = Some(e.to_string());
            break;
        }
    }
    let error = match error {
        Some(e) => e,
        None => upload
            .finish()
            .await
            .expect_err("the parts fail")
            .to_string(),
    };
    drop(upload);
    // The abort runs on the runtime once the writer is dropped.
    tokio::time::sleep(Duration::from_millis(300)).await;
    error
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_upload_that_fails_part_way_leaves_no_staging_file() {
    let lab = Lab::local();
    let err = failing_upload(
        &lab.store,
        "out/_kask/job/attempts/0/0/a/part.parquet",
        24 << 20,
    )
    .await;
    assert!(err.contains("injected"), "{err}");
    let left: Vec<String> = lab
        .store
        .list("out")
        .await
        .expect("list")
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| !p.ends_with(".uploading"))
        .collect();
    assert!(left.is_empty(), "no part of the upload is left: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_upload_that_fails_part_way_is_aborted() {
    let Some(lab) = Lab::s3() else { return };
    let err = failing_upload(
        &lab.store,
        "out/_kask/job/attempts/0/0/a/part.parquet",
        24 << 20,
    )
    .await;
    assert!(err.contains("injected"), "{err}");
    let pending = lab
        .store
        .pending_uploads("out")
        .await
        .expect("list uploads");
    assert!(
        pending.is_empty(),
        "the failed upload was aborted: {pending:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cleanup_aborts_the_uploads_a_crashed_process_left() {
    let Some(lab) = Lab::s3() else { return };
    // A process that died mid-upload: parts uploaded, never completed nor aborted.
    let mut upload = Upload::new(&lab.store, "out/_kask/job-1/attempts/0/0/a/part.parquet");
    for _ in 0..12 {
        upload
            .put(Bytes::from(vec![1u8; 1 << 20]))
            .await
            .expect("a part");
    }
    std::mem::forget(upload);
    let other = lab.store.path("elsewhere/_kask/job-2/x");
    let mut unrelated = lab.store.inner.put_multipart(&other).await.expect("start");
    unrelated
        .put_part(vec![2u8; 5 << 20].into())
        .await
        .expect("a part");
    lab.put("elsewhere/_kask/job-2/x.uploading", Bytes::new())
        .await;
    assert_eq!(
        lab.store
            .pending_uploads("out/_kask/job-1")
            .await
            .expect("list")
            .len(),
        1
    );
    abandon(&lab.store, "out", "job-1", None)
        .await
        .expect("cleanup");
    assert!(
        lab.store
            .pending_uploads("out")
            .await
            .expect("list")
            .is_empty(),
        "the job's upload was aborted"
    );
    assert_eq!(
        lab.store
            .pending_uploads("elsewhere")
            .await
            .expect("list")
            .len(),
        1,
        "another job's upload is not touched"
    );
    assert!(
        lab.store
            .list("out/_kask/job-1")
            .await
            .expect("list")
            .is_empty(),
        "the scratch space, upload records included, is gone"
    );
    unrelated.abort().await.expect("tidy up");
}
