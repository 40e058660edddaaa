//! One S3 object assembled from byte runs and other objects of the same bucket by a
//! multipart upload: runs of an object that fill a whole part are copied server-side
//! (`UploadPartCopy`, no Lambda holds them); the rest is gathered in memory until a part is
//! [`MIN_PART`] bytes (S3's minimum for every part but the last), reading only what fills it.
//! Resumable: when the deadline comes, the state (upload id, where it is, the parts done) is
//! saved beside the object and the next call carries on from it.

use super::s3::S3Store;
use super::PartStore;
use crate::aws::sdk_error;
use crate::error::{Error, Result};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// S3's smallest part (every part but the last).
pub const MIN_PART: u64 = 5 * 1024 * 1024;
/// S3's largest part copy.
const MAX_COPY: u64 = 5 * 1024 * 1024 * 1024;
/// S3's most parts in one upload.
const MAX_PARTS: usize = 10_000;

/// What goes into the object, in order.
#[derive(Debug, Clone)]
pub enum Source {
    /// These bytes.
    Bytes(Vec<u8>),
    /// The whole object at `key` (a bucket key), `size` bytes long.
    Object {
        /// The object's key in the bucket.
        key: String,
        /// Its size, as recorded (a different size is refused).
        size: u64,
    },
}

/// Where a composition is, saved between calls.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ComposeState {
    /// The multipart upload.
    pub upload_id: String,
    /// The next source to write.
    pub source: usize,
    /// How far into it.
    pub offset: u64,
    /// Parts uploaded: number and ETag.
    pub parts: Vec<(i32, String)>,
}

/// A composition in progress: its state and the bytes gathered for the next part.
struct Composer<'a> {
    store: &'a S3Store,
    key: String,
    state: ComposeState,
    pending: Vec<u8>,
}

/// `/` kept, everything else outside RFC 3986's unreserved set percent-encoded: the form
/// `x-amz-copy-source` needs for keys with spaces or unicode (table names).
fn encode_copy_source(bucket: &str, key: &str) -> String {
    let mut out = format!("{bucket}/");
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl Composer<'_> {
    fn next_number(&self) -> Result<i32> {
        if self.state.parts.len() >= MAX_PARTS {
            return Err(Error::config(
                "dump",
                format!("{} needs more than S3's {MAX_PARTS} parts", self.key),
            ));
        }
        Ok(self.state.parts.len() as i32 + 1)
    }

    /// Uploads what is gathered as the next part.
    async fn flush(&mut self) -> Result<()> {
        let n = self.next_number()?;
        let body = std::mem::take(&mut self.pending);
        let out = self
            .store
            .client()
            .upload_part()
            .bucket(self.store.bucket())
            .key(&self.key)
            .upload_id(&self.state.upload_id)
            .part_number(n)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| sdk_error(&self.key, "uploading a part of the dump", e))?;
        self.state
            .parts
            .push((n, out.e_tag().unwrap_or_default().to_string()));
        Ok(())
    }

    /// Copies `[from, to)` of the object `source` as the next part, server-side.
    async fn copy(&mut self, source: &str, from: u64, to: u64) -> Result<()> {
        let n = self.next_number()?;
        let out = self
            .store
            .client()
            .upload_part_copy()
            .bucket(self.store.bucket())
            .key(&self.key)
            .upload_id(&self.state.upload_id)
            .part_number(n)
            .copy_source(encode_copy_source(self.store.bucket(), source))
            .copy_source_range(format!("bytes={from}-{}", to - 1))
            .send()
            .await
            .map_err(|e| sdk_error(source, "copying into the dump", e))?;
        let etag = out
            .copy_part_result()
            .and_then(|r| r.e_tag())
            .unwrap_or_default();
        self.state.parts.push((n, etag.to_string()));
        Ok(())
    }

    /// Reads `[from, to)` of the object `source` into the next part.
    async fn gather(&mut self, source: &str, from: u64, to: u64) -> Result<()> {
        let out = self
            .store
            .client()
            .get_object()
            .bucket(self.store.bucket())
            .key(source)
            .range(format!("bytes={from}-{}", to - 1))
            .send()
            .await
            .map_err(|e| sdk_error(source, "reading into the dump", e))?;
        let data = out
            .body
            .collect()
            .await
            .map_err(|e| Error::Io {
                path: source.to_string(),
                message: format!("reading into the dump: {e}"),
                retryable: true,
                source: Some(Box::new(e)),
            })?
            .into_bytes();
        if data.len() as u64 != to - from {
            return Err(Error::Io {
                path: source.to_string(),
                message: format!(
                    "is shorter than the manifest says ({} of {} bytes from {from})",
                    data.len(),
                    to - from
                ),
                retryable: false,
                source: None,
            });
        }
        self.pending.extend_from_slice(&data);
        Ok(())
    }

    /// Whether a call may stop here: nothing gathered (the state says it all), the deadline
    /// passed, and this call or an earlier one made a part.
    fn may_stop(&self, deadline: Instant) -> bool {
        self.pending.is_empty() && Instant::now() >= deadline && !self.state.parts.is_empty()
    }

    /// Writes `[offset, size)` of an object: copied where a whole part can be, read where
    /// it fills the part being gathered. True when it stopped for the deadline (the state's
    /// offset says where to go on).
    async fn object(&mut self, key: &str, size: u64, deadline: Instant) -> Result<bool> {
        while self.state.offset < size {
            let at = self.state.offset;
            if self.pending.is_empty() && size - at >= MIN_PART {
                let to = size.min(at + MAX_COPY);
                self.copy(key, at, to).await?;
                self.state.offset = to;
            } else {
                let want = MIN_PART.saturating_sub(self.pending.len() as u64).max(1);
                let to = size.min(at + want);
                self.gather(key, at, to).await?;
                self.state.offset = to;
                if self.pending.len() as u64 >= MIN_PART {
                    self.flush().await?;
                }
            }
            if self.may_stop(deadline) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn complete(self) -> Result<()> {
        let parts: Vec<CompletedPart> = self
            .state
            .parts
            .iter()
            .map(|(n, etag)| CompletedPart::builder().part_number(*n).e_tag(etag).build())
            .collect();
        self.store
            .client()
            .complete_multipart_upload()
            .bucket(self.store.bucket())
            .key(&self.key)
            .upload_id(&self.state.upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| sdk_error(&self.key, "completing the dump", e))?;
        Ok(())
    }
}

impl S3Store {
    /// Composes `sources` into the store's `key`, carrying on from the state saved at
    /// `state_key` by an earlier call. Stops between parts once `deadline` has passed,
    /// saving its state: `Ok(false)`, call again. `Ok(true)` once the object is complete.
    pub async fn compose(
        &self,
        key: &str,
        sources: &[Source],
        state_key: &str,
        deadline: Instant,
    ) -> Result<bool> {
        let state = match self.get(state_key).await {
            Ok(saved) => serde_json::from_slice(&saved).map_err(|e| Error::JobData {
                path: self.location(state_key),
                message: format!("unreadable dump state: {e}"),
            })?,
            Err(_) => ComposeState {
                upload_id: self.start_upload(key).await?,
                ..Default::default()
            },
        };
        let mut c = Composer {
            store: self,
            key: self.object_key(key),
            state,
            pending: Vec::new(),
        };
        while c.state.source < sources.len() {
            let stopped = match &sources[c.state.source] {
                Source::Bytes(b) => {
                    c.pending.extend_from_slice(b);
                    if c.pending.len() as u64 >= MIN_PART {
                        c.flush().await?;
                    }
                    false
                }
                Source::Object { key, size } => c.object(key, *size, deadline).await?,
            };
            if !stopped {
                c.state.source += 1;
                c.state.offset = 0;
            }
            if stopped || c.may_stop(deadline) {
                self.put(state_key, &serde_json::to_vec(&c.state).unwrap_or_default())
                    .await?;
                return Ok(false);
            }
        }
        if !c.pending.is_empty() || c.state.parts.is_empty() {
            c.flush().await?;
        }
        c.complete().await?;
        Ok(true)
    }

    async fn start_upload(&self, key: &str) -> Result<String> {
        let out = self
            .client()
            .create_multipart_upload()
            .bucket(self.bucket())
            .key(self.object_key(key))
            .content_type("application/gzip")
            .send()
            .await
            .map_err(|e| sdk_error(&self.location(key), "starting the dump's upload", e))?;
        Ok(out.upload_id().unwrap_or_default().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_source_keeps_slashes_and_encodes_spaces_and_unicode() {
        assert_eq!(
            encode_copy_source("b", "jobs/j/parts/Weird Schema.ünï #1.copy.gz"),
            "b/jobs/j/parts/Weird%20Schema.%C3%BCn%C3%AF%20%231.copy.gz"
        );
    }
}
