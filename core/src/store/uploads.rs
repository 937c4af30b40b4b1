//! Unfinished multipart uploads. On S3 a multipart upload that is never completed or aborted
//! keeps its parts, billed and invisible to LIST, until a lifecycle rule removes them. A job
//! aborts its own uploads when a task fails ([`super::upload`]); a process that died mid-upload
//! leaves them, so the cleanup of a job lists the uploads under its scratch prefix
//! (ListMultipartUploads, which object_store does not offer) and aborts each. MinIO lists
//! uploads only by their exact key, so every upload first writes a record of its key beside its
//! object (`<key>.uploading`), and the cleanup asks for each recorded key as well.
//!
//! GCS and Azure expire uncommitted uploads by themselves (after a week), and a local
//! directory keeps a staging file inside the attempt's own folder, removed with the scratch.

use std::sync::Arc;

use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey, AwsAuthorizer};
use object_store::client::{ClientOptions, HttpConnector, HttpRequestBody, ReqwestConnector};
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use serde::Deserialize;

use super::Store;
use crate::error::{Error, Result};

/// What listing an S3 bucket's multipart uploads needs: the store (for credentials and
/// aborting), the bucket's endpoint and region.
pub struct S3Access {
    store: Arc<AmazonS3>,
    bucket_endpoint: String,
    region: String,
    allow_http: bool,
}

impl std::fmt::Debug for S3Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Access")
            .field("bucket_endpoint", &self.bucket_endpoint)
            .field("region", &self.region)
            .finish()
    }
}

impl S3Access {
    /// From the builder the store was made with and the bucket (from the storage URL, which
    /// the builder parses only when it builds), resolving the bucket's endpoint as object_store
    /// does (path style unless virtual-hosted requests are asked for).
    pub fn new(store: Arc<AmazonS3>, builder: &AmazonS3Builder, bucket: &str) -> S3Access {
        let get = |k| builder.get_config_value(&k);
        let region = get(AmazonS3ConfigKey::Region).unwrap_or_else(|| "us-east-1".into());
        let virtual_hosted = get(AmazonS3ConfigKey::VirtualHostedStyleRequest)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let endpoint = get(AmazonS3ConfigKey::Endpoint);
        let bucket_endpoint = match (endpoint, virtual_hosted) {
            (Some(ep), true) => ep,
            (Some(ep), false) => format!("{}/{bucket}", ep.trim_end_matches('/')),
            (None, true) => format!("https://{bucket}.s3.{region}.amazonaws.com"),
            (None, false) => format!("https://s3.{region}.amazonaws.com/{bucket}"),
        };
        let allow_http = bucket_endpoint.starts_with("http://");
        S3Access {
            store,
            bucket_endpoint,
            region,
            allow_http,
        }
    }
}

/// One unfinished upload.
#[derive(Clone, Debug, PartialEq)]
pub struct PendingUpload {
    /// The object's key (full, from the bucket's root).
    pub key: String,
    /// S3's id of the upload.
    pub upload_id: String,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "PascalCase")]
struct ListResult {
    #[serde(default)]
    upload: Vec<ListedUpload>,
    #[serde(default)]
    is_truncated: bool,
    #[serde(default)]
    next_key_marker: Option<String>,
    #[serde(default)]
    next_upload_id_marker: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "PascalCase")]
struct ListedUpload {
    key: String,
    upload_id: String,
}

/// The suffix of an upload's record.
const RECORD: &str = ".uploading";

/// The record an upload of `rel` leaves beside it.
pub fn record_of(rel: &str) -> String {
    format!("{rel}{RECORD}")
}

impl Store {
    /// The unfinished multipart uploads under a relative prefix: those S3 lists under it, and
    /// those of the keys recorded there (S3 only; other stores have none to list).
    pub async fn pending_uploads(&self, prefix: &str) -> Result<Vec<PendingUpload>> {
        if self.s3.is_none() {
            return Ok(vec![]);
        }
        let mut all = self
            .list_uploads(&format!("{}/", self.path(prefix).as_ref()))
            .await?;
        for (rel, _) in self.list(prefix).await? {
            if let Some(key) = rel.strip_suffix(RECORD) {
                let full = self.path(key).as_ref().to_string();
                let exact = self.list_uploads(&full).await?;
                all.extend(exact.into_iter().filter(|u| u.key == full));
            }
        }
        all.sort_by(|a, b| (&a.key, &a.upload_id).cmp(&(&b.key, &b.upload_id)));
        all.dedup();
        Ok(all)
    }

    /// ListMultipartUploads with a key prefix (S3's own words: the full key).
    async fn list_uploads(&self, full: &str) -> Result<Vec<PendingUpload>> {
        let Some(s3) = &self.s3 else {
            return Ok(vec![]);
        };
        let fail = |what: &str, e: &dyn std::fmt::Display| Error::Storage {
            url: self.url.clone(),
            message: format!("listing unfinished uploads under {full}: {what}: {e}"),
        };
        let client = ReqwestConnector::default()
            .connect(&ClientOptions::new().with_allow_http(s3.allow_http))
            .map_err(|e| fail("connecting", &e))?;
        let credential = s3
            .store
            .credentials()
            .get_credential()
            .await
            .map_err(|e| fail("credentials", &e))?;
        let mut out = Vec::new();
        let mut markers: Option<(String, String)> = None;
        loop {
            let mut url =
                url::Url::parse(&format!("{}/", s3.bucket_endpoint.trim_end_matches('/')))
                    .map_err(|e| fail("the bucket's endpoint", &e))?;
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("uploads", "");
                q.append_pair("prefix", full);
                if let Some((key, id)) = &markers {
                    q.append_pair("key-marker", key);
                    q.append_pair("upload-id-marker", id);
                }
            }
            let mut request = http::Request::builder()
                .method(http::Method::GET)
                .uri(url.as_str())
                .body(HttpRequestBody::empty())
                .map_err(|e| fail("the request", &e))?;
            AwsAuthorizer::new(&credential, "s3", &s3.region).authorize(&mut request, None);
            let response = client
                .execute(request)
                .await
                .map_err(|e| fail("the request", &e))?;
            let status = response.status();
            let body = response
                .into_body()
                .bytes()
                .await
                .map_err(|e| fail("the response", &e))?;
            if !status.is_success() {
                let text = String::from_utf8_lossy(&body);
                return Err(fail(&format!("HTTP {status}"), &text.trim()));
            }
            let page: ListResult =
                quick_xml::de::from_reader(body.as_ref()).map_err(|e| fail("the response", &e))?;
            out.extend(page.upload.into_iter().map(|u| PendingUpload {
                key: u.key,
                upload_id: u.upload_id,
            }));
            match (
                page.is_truncated,
                page.next_key_marker,
                page.next_upload_id_marker,
            ) {
                (true, Some(k), Some(i)) => markers = Some((k, i)),
                _ => break,
            }
        }
        Ok(out)
    }

    /// Aborts every unfinished multipart upload under a relative prefix; returns how many.
    pub async fn abort_uploads(&self, prefix: &str) -> Result<usize> {
        let Some(s3) = &self.s3 else {
            return Ok(0);
        };
        let pending = self.pending_uploads(prefix).await?;
        for u in &pending {
            match s3
                .store
                .abort_multipart(
                    &Path::parse(&u.key).unwrap_or_else(|_| Path::from(u.key.as_str())),
                    &u.upload_id,
                )
                .await
            {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.err(format!("aborting the upload of {}", u.key), e)),
            }
        }
        Ok(pending.len())
    }
}
