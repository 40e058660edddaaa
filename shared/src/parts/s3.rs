//! The S3 part store: parts and manifests as objects under `s3://bucket/prefix/`. Writes
//! stream through a multipart upload in fixed-size parts (one `PutObject` when the object is
//! small), so memory stays at one part per writer whatever the part's size; an unfinished
//! upload is aborted. Reads stream the object body. Works with S3-compatible endpoints
//! (path-style addressing when an endpoint is given).

use super::{PartStore, PartWriter, StoredObject};
use crate::error::{Error, Result};
use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;

/// Smallest part S3 accepts (except the last).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;

/// How to reach S3 and how large upload parts are.
#[derive(Clone, Debug, Default)]
pub struct S3Settings {
    /// Endpoint, region and credential overrides.
    pub aws: crate::aws::AwsSettings,
    /// Multipart part size in bytes (at least [`MIN_PART_SIZE`]; default 8 MiB).
    pub part_size: Option<usize>,
}

/// Parts in an S3 bucket under a prefix.
#[derive(Clone, Debug)]
pub struct S3Store {
    client: Client,
    bucket: String,
    prefix: String,
    part_size: usize,
}

/// Splits `s3://bucket/prefix` into bucket and prefix (without trailing slash).
pub fn parse_s3_url(url: &str) -> Result<(String, String)> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| Error::config("store", format!("{url:?} is not an s3:// URL")))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.len() < 3 {
        return Err(Error::config(
            "store",
            format!("{url:?} has no valid bucket name"),
        ));
    }
    Ok((bucket.to_string(), prefix.trim_matches('/').to_string()))
}

/// Builds an S3 client from the shared SDK configuration, with path-style addressing for
/// custom endpoints and checksums only where S3 requires them (emulators reject the SDK's
/// default ones).
pub async fn client(settings: &crate::aws::AwsSettings) -> Client {
    client_from(&crate::aws::sdk_config(settings).await, settings)
}

/// As [`client`], from an SDK configuration already loaded (one load per cold start).
pub fn client_from(sdk: &aws_config::SdkConfig, settings: &crate::aws::AwsSettings) -> Client {
    let mut b = aws_sdk_s3::config::Builder::from(sdk)
        .request_checksum_calculation(aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired);
    if settings.custom_endpoint() {
        b = b.force_path_style(true);
    }
    Client::from_conf(b.build())
}

impl S3Store {
    /// A store at `s3://bucket/prefix`.
    pub async fn connect(url: &str, settings: &S3Settings) -> Result<Self> {
        let (bucket, prefix) = parse_s3_url(url)?;
        let part_size = settings.part_size.unwrap_or(8 * 1024 * 1024);
        if part_size < MIN_PART_SIZE {
            return Err(Error::config(
                "part size",
                format!("{part_size} is below S3's minimum of 5 MiB"),
            ));
        }
        Ok(S3Store {
            client: client(&settings.aws).await,
            bucket,
            prefix,
            part_size,
        })
    }

    /// A store from an existing client (clients are built once per cold start).
    pub fn with_client(client: Client, url: &str, part_size: usize) -> Result<Self> {
        let (bucket, prefix) = parse_s3_url(url)?;
        Ok(S3Store {
            client,
            bucket,
            prefix,
            part_size: part_size.max(MIN_PART_SIZE),
        })
    }

    /// The S3 client.
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    async fn get_body(&self, key: &str) -> Result<ByteStream> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.object_key(key))
            .send()
            .await
            .map_err(|e| crate::aws::sdk_error(&self.location(key), "reading", e))?;
        Ok(out.body)
    }

    /// The bucket key of the store's `key`.
    pub fn object_key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }
}

struct S3Writer {
    client: Client,
    bucket: String,
    key: String,
    location: String,
    part_size: usize,
    buf: Vec<u8>,
    upload_id: Option<String>,
    parts: Vec<CompletedPart>,
    done: bool,
}

impl S3Writer {
    async fn upload_part(&mut self, data: Vec<u8>) -> Result<()> {
        if self.upload_id.is_none() {
            let out = self
                .client
                .create_multipart_upload()
                .bucket(&self.bucket)
                .key(&self.key)
                .send()
                .await
                .map_err(|e| crate::aws::sdk_error(&self.location, "starting the upload", e))?;
            self.upload_id = out.upload_id().map(str::to_string);
        }
        let n = self.parts.len() as i32 + 1;
        let out = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(self.upload_id.as_deref().unwrap_or_default())
            .part_number(n)
            .body(ByteStream::from(data))
            .send()
            .await
            .map_err(|e| {
                crate::aws::sdk_error(&self.location, &format!("uploading part {n}"), e)
            })?;
        self.parts.push(
            CompletedPart::builder()
                .part_number(n)
                .set_e_tag(out.e_tag().map(str::to_string))
                .build(),
        );
        Ok(())
    }
}

impl Drop for S3Writer {
    fn drop(&mut self) {
        // An upload that was started and not completed costs storage until aborted.
        if let (false, Some(id)) = (self.done, self.upload_id.take()) {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let (client, bucket, key) =
                    (self.client.clone(), self.bucket.clone(), self.key.clone());
                rt.spawn(async move {
                    let aborted = client
                        .abort_multipart_upload()
                        .bucket(&bucket)
                        .key(&key)
                        .upload_id(id)
                        .send()
                        .await;
                    // The bucket's lifecycle rule still ends it; say so rather than stay quiet.
                    if let Err(e) = aborted {
                        tracing::warn!(bucket = %bucket, key = %key, error = %e,
                            "could not abort an unfinished multipart upload");
                    }
                });
            }
        }
    }
}

#[async_trait]
impl PartWriter for S3Writer {
    async fn write(&mut self, data: &[u8]) -> Result<()> {
        self.buf.extend_from_slice(data);
        while self.buf.len() >= self.part_size {
            let rest = self.buf.split_off(self.part_size);
            let part = std::mem::replace(&mut self.buf, rest);
            self.upload_part(part).await?;
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<()> {
        let last = std::mem::take(&mut self.buf);
        if self.upload_id.is_none() {
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(&self.key)
                .body(ByteStream::from(last))
                .send()
                .await
                .map_err(|e| crate::aws::sdk_error(&self.location, "writing", e))?;
        } else {
            if !last.is_empty() {
                self.upload_part(last).await?;
            }
            self.client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(&self.key)
                .upload_id(self.upload_id.as_deref().unwrap_or_default())
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(std::mem::take(&mut self.parts)))
                        .build(),
                )
                .send()
                .await
                .map_err(|e| crate::aws::sdk_error(&self.location, "completing the upload", e))?;
        }
        self.done = true;
        Ok(())
    }
}

#[async_trait]
impl PartStore for S3Store {
    async fn create(&self, key: &str) -> Result<Box<dyn PartWriter>> {
        Ok(Box::new(S3Writer {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: self.object_key(key),
            location: self.location(key),
            part_size: self.part_size,
            buf: Vec::new(),
            upload_id: None,
            parts: Vec::new(),
            done: false,
        }))
    }

    async fn open(&self, key: &str) -> Result<Box<dyn tokio::io::AsyncRead + Send + Unpin>> {
        let body = self.get_body(key).await?;
        Ok(Box::new(Box::pin(body.into_async_read())))
    }

    async fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.object_key(key))
            .body(ByteStream::from(data.to_vec()))
            .send()
            .await
            .map_err(|e| crate::aws::sdk_error(&self.location(key), "writing", e))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>> {
        let data = self
            .get_body(key)
            .await?
            .collect()
            .await
            .map_err(|e| Error::Io {
                path: self.location(key),
                message: format!("reading: {e}"),
                retryable: true,
                source: Some(Box::new(e)),
            })?;
        Ok(data.into_bytes().to_vec())
    }

    async fn existing(&self) -> Result<Vec<String>> {
        Ok(self.list("").await?.into_iter().map(|o| o.key).collect())
    }

    async fn clear(&self) -> Result<()> {
        for o in self.list("").await? {
            self.client
                .delete_object()
                .bucket(&self.bucket)
                .key(self.object_key(&o.key))
                .send()
                .await
                .map_err(|e| crate::aws::sdk_error(&self.location(&o.key), "deleting", e))?;
        }
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<StoredObject>> {
        let full = self.object_key(prefix);
        let strip = self.object_key("");
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&full)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| crate::aws::sdk_error(&self.location(prefix), "listing", e))?;
            out.extend(page.contents().iter().filter_map(|o| {
                let k = o.key()?;
                Some(StoredObject {
                    key: k
                        .strip_prefix(strip.as_str())
                        .unwrap_or(k)
                        .trim_start_matches('/')
                        .to_string(),
                    size: o.size().unwrap_or(0).max(0) as u64,
                })
            }));
            match page.next_continuation_token() {
                Some(t) if page.is_truncated().unwrap_or(false) => token = Some(t.to_string()),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn location(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.object_key(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls_split_into_bucket_and_prefix() {
        assert_eq!(
            parse_s3_url("s3://dbsync-parts/nightly/2026-11-25/").expect("url"),
            ("dbsync-parts".to_string(), "nightly/2026-11-25".to_string())
        );
        assert_eq!(
            parse_s3_url("s3://bucket").expect("url"),
            ("bucket".to_string(), String::new())
        );
        assert!(parse_s3_url("/tmp/x").is_err());
        assert!(parse_s3_url("s3://ab/x").is_err());
    }
}
