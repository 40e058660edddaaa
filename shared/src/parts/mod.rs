//! Part stores: where exported parts and manifests live. A small trait so the same pipeline
//! writes to a local directory or S3 (the serverless build, or `s3://` on the command line).
//! Writes are atomic: a part is visible under its key only after `finish`, so a re-run export
//! replaces it whole. Also the gzip framing of parts ([`gz`]) and one S3 object composed of
//! others ([`compose`], the serverless SQL dump). May import `model` and the
//! base modules (`error`, `aws`); never `pg`, `plan`, `pipeline` or `cloud`.

use crate::error::Result;
use crate::model::manifest::{Manifest, KEY as MANIFEST_KEY};
use async_trait::async_trait;

pub mod compose;
pub mod gz;
pub mod local;
pub mod s3;

pub use local::LocalStore;
pub use s3::{S3Settings, S3Store};

/// A store for a location: `s3://bucket/prefix` or a local directory.
pub async fn open_store(location: &str, s3: &S3Settings) -> Result<std::sync::Arc<dyn PartStore>> {
    if location.starts_with("s3://") {
        Ok(std::sync::Arc::new(S3Store::connect(location, s3).await?))
    } else {
        Ok(std::sync::Arc::new(LocalStore::new(location)))
    }
}

/// A place parts are written to and read from.
#[async_trait]
pub trait PartStore: Send + Sync {
    /// Starts writing an object; it appears under `key` when the writer finishes.
    async fn create(&self, key: &str) -> Result<Box<dyn PartWriter>>;
    /// Opens an object for streaming reads.
    async fn open(&self, key: &str) -> Result<Box<dyn tokio::io::AsyncRead + Send + Unpin>>;
    /// Writes a small object whole (manifests).
    async fn put(&self, key: &str, data: &[u8]) -> Result<()>;
    /// Reads a small object whole.
    async fn get(&self, key: &str) -> Result<Vec<u8>>;
    /// The objects under `prefix` (a folder such as `results/`), sorted by key.
    async fn list(&self, prefix: &str) -> Result<Vec<StoredObject>>;
    /// Where a key lives, for messages (path or URL; never credentials).
    fn location(&self, key: &str) -> String;
    /// What the location already holds (a directory's entries of any kind, a prefix's
    /// objects), by key: empty for a new or empty location. An export checks it so that it
    /// never writes over another.
    async fn existing(&self) -> Result<Vec<String>>;
    /// Removes everything the location holds (`--force`).
    async fn clear(&self) -> Result<()>;
}

/// An object in a store, as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    /// Its key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
}

/// A streaming writer for one object. Dropping it without `finish` discards the object.
#[async_trait]
pub trait PartWriter: Send {
    /// Appends bytes.
    async fn write(&mut self, data: &[u8]) -> Result<()>;
    /// Makes the object visible under its key.
    async fn finish(self: Box<Self>) -> Result<()>;
}

/// Checks, before anything is loaded, that the export in `store` is whole: the manifest
/// agrees with itself and every part it lists is there with the size it says.
pub async fn check_export(store: &dyn PartStore, m: &Manifest) -> Result<()> {
    let mut problems = m.problems();
    let folders: std::collections::BTreeSet<&str> = m
        .tables
        .iter()
        .flat_map(|t| &t.parts)
        .map(|p| p.key.rsplit_once('/').map_or("", |(dir, _)| dir))
        .collect();
    let mut sizes = std::collections::BTreeMap::new();
    for dir in folders {
        for o in store.list(&format!("{dir}/")).await? {
            sizes.insert(o.key, o.size);
        }
    }
    for t in &m.tables {
        for p in &t.parts {
            match sizes.get(&p.key) {
                None => problems.push(format!(
                    "part {} of {} is missing ({})",
                    p.id,
                    t.table.name,
                    store.location(&p.key)
                )),
                Some(&size) if size != p.compressed_bytes => problems.push(format!(
                    "part {} of {} is {size} bytes but the manifest says {} ({})",
                    p.id,
                    t.table.name,
                    p.compressed_bytes,
                    store.location(&p.key)
                )),
                Some(_) => {}
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(crate::error::Error::ExportBroken {
            location: store.location(""),
            problems,
        })
    }
}

/// Reads every part of the export in `store` (`parallel` at a time) and checks what the
/// manifest says of it: a whole gzip stream, and its rows, bytes and sha256 of COPY text.
/// Run before a load changes anything, so a damaged export stops the job while the target
/// is untouched. Every damaged part is named with its table and what differs.
pub async fn check_contents(store: &dyn PartStore, m: &Manifest, parallel: usize) -> Result<()> {
    type Check<'a> =
        std::pin::Pin<Box<dyn std::future::Future<Output = Option<String>> + Send + 'a>>;
    let mut items = Vec::new();
    for t in &m.tables {
        for p in &t.parts {
            items.push((t.table.name.to_string(), p));
        }
    }
    let mut problems = Vec::new();
    // A few parts at a time: boxed so the futures stay Send whatever borrows they hold.
    for batch in items.chunks(parallel.max(1)) {
        let mut checks: Vec<Check<'_>> = Vec::with_capacity(batch.len());
        for (table, p) in batch {
            checks.push(Box::pin(async move {
                check_part(store, p).await.err().map(|why| {
                    format!(
                        "part {} of {table} ({}): {why}",
                        p.id,
                        store.location(&p.key)
                    )
                })
            }));
        }
        problems.extend(
            futures_util::future::join_all(checks)
                .await
                .into_iter()
                .flatten(),
        );
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(crate::error::Error::ExportBroken {
            location: store.location(""),
            problems,
        })
    }
}

/// Reads one part whole and compares it with its manifest entry; the reason it fails.
async fn check_part(
    store: &dyn PartStore,
    p: &crate::model::manifest::PartEntry,
) -> std::result::Result<(), String> {
    use crate::model::part::{ByteSource, Tally};
    let mut src = gz::GzPartSource::open(store, &p.key)
        .await
        .map_err(|e| e.to_string())?;
    let mut tally = Tally::default();
    while let Some(buf) = src.next_bytes().await.map_err(|e| e.to_string())? {
        tally.feed(&buf);
    }
    let got = tally.finish();
    let want = &p.stats;
    if got == *want {
        return Ok(());
    }
    Err(format!(
        "the manifest says {} rows, {} bytes, sha256 {}; the part holds {} rows, {} bytes, sha256 {}",
        want.rows, want.bytes, want.sha256, got.rows, got.bytes, got.sha256
    ))
}

/// Reads and checks the manifest of an export in `store`.
pub async fn read_manifest(store: &dyn PartStore) -> Result<Manifest> {
    let data = store.get(MANIFEST_KEY).await?;
    Manifest::from_json(&data, &store.location(MANIFEST_KEY))
}
