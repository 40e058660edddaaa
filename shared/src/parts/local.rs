//! The local-directory part store: the CLI's default. Objects are files under a root; a
//! write goes to a temporary name and is renamed into place when finished.

use super::{PartStore, PartWriter, StoredObject};
use crate::error::{Error, Result};
use async_trait::async_trait;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

/// Parts in a directory.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// A store rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalStore { root: root.into() }
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        // Keys are ours (manifest, parts/...), but a manifest read from disk could carry
        // anything: never let one escape the root.
        if key.split('/').any(|p| p == ".." || p.is_empty()) || key.starts_with('/') {
            return Err(Error::Io {
                path: key.to_string(),
                message: "part key escapes the store directory".into(),
                retryable: false,
                source: None,
            });
        }
        Ok(self.root.join(key))
    }
}

struct LocalWriter {
    file: Option<tokio::io::BufWriter<tokio::fs::File>>,
    tmp: PathBuf,
    dest: PathBuf,
}

impl Drop for LocalWriter {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[async_trait]
impl PartWriter for LocalWriter {
    async fn write(&mut self, data: &[u8]) -> Result<()> {
        let f = self.file.as_mut().ok_or_else(|| {
            Error::io(
                self.dest.display().to_string(),
                std::io::Error::other("writer already finished"),
            )
        })?;
        f.write_all(data)
            .await
            .map_err(|e| Error::io(self.tmp.display().to_string(), e))
    }

    async fn finish(mut self: Box<Self>) -> Result<()> {
        let Some(mut f) = self.file.take() else {
            return Ok(());
        };
        let path = self.tmp.display().to_string();
        let done = async {
            f.flush().await.map_err(|e| Error::io(&path, e))?;
            f.get_mut()
                .sync_data()
                .await
                .map_err(|e| Error::io(&path, e))?;
            drop(f);
            tokio::fs::rename(&self.tmp, &self.dest)
                .await
                .map_err(|e| Error::io(self.dest.display().to_string(), e))
        }
        .await;
        // A full disk often shows only at the flush: never leave the half-written file behind.
        if done.is_err() {
            let _ = tokio::fs::remove_file(&self.tmp).await;
        }
        done
    }
}

async fn ensure_parent(p: &Path) -> Result<()> {
    if let Some(dir) = p.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| Error::io(dir.display().to_string(), e))?;
    }
    Ok(())
}

#[async_trait]
impl PartStore for LocalStore {
    async fn create(&self, key: &str) -> Result<Box<dyn PartWriter>> {
        let dest = self.path(key)?;
        ensure_parent(&dest).await?;
        let tmp = dest.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
        let file = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| Error::io(tmp.display().to_string(), e))?;
        Ok(Box::new(LocalWriter {
            file: Some(tokio::io::BufWriter::with_capacity(1 << 20, file)),
            tmp,
            dest,
        }))
    }

    async fn open(&self, key: &str) -> Result<Box<dyn tokio::io::AsyncRead + Send + Unpin>> {
        let p = self.path(key)?;
        let f = tokio::fs::File::open(&p)
            .await
            .map_err(|e| Error::io(p.display().to_string(), e))?;
        Ok(Box::new(f))
    }

    async fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        let mut w = self.create(key).await?;
        w.write(data).await?;
        w.finish().await
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>> {
        let p = self.path(key)?;
        tokio::fs::read(&p)
            .await
            .map_err(|e| Error::io(p.display().to_string(), e))
    }

    async fn existing(&self) -> Result<Vec<String>> {
        let mut rd = match tokio::fs::read_dir(&self.root).await {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(self.root.display().to_string(), e)),
        };
        let mut out = Vec::new();
        while let Some(entry) = rd
            .next_entry()
            .await
            .map_err(|e| Error::io(self.root.display().to_string(), e))?
        {
            out.push(entry.file_name().to_string_lossy().into_owned());
        }
        out.sort();
        Ok(out)
    }

    async fn clear(&self) -> Result<()> {
        match tokio::fs::remove_dir_all(&self.root).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::io(self.root.display().to_string(), e))
            }
            _ => Ok(()),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<StoredObject>> {
        let dir = self.path(prefix.trim_end_matches('/'))?;
        let mut out = Vec::new();
        let mut rd = match tokio::fs::read_dir(&dir).await {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::io(dir.display().to_string(), e)),
        };
        while let Some(entry) = rd
            .next_entry()
            .await
            .map_err(|e| Error::io(dir.display().to_string(), e))?
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            // Unfinished writes (temporary names) are not objects yet.
            if !name.contains(".tmp-") {
                let meta = entry
                    .metadata()
                    .await
                    .map_err(|e| Error::io(dir.display().to_string(), e))?;
                out.push(StoredObject {
                    key: format!("{}/{name}", prefix.trim_end_matches('/')),
                    size: meta.len(),
                });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn location(&self, key: &str) -> String {
        self.root.join(key).display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unfinished_part_leaves_nothing_behind() {
        let dir = std::env::temp_dir().join(format!("dbsync-store-{}", uuid::Uuid::new_v4()));
        let store = LocalStore::new(&dir);
        let mut w = store.create("parts/a.gz").await.expect("create");
        w.write(b"half").await.expect("write");
        drop(w);
        assert!(store.get("parts/a.gz").await.is_err());
        let left: Vec<_> = std::fs::read_dir(dir.join("parts")).expect("dir").collect();
        assert!(left.is_empty());
        store.put("parts/a.gz", b"whole").await.expect("put");
        assert_eq!(store.get("parts/a.gz").await.expect("get"), b"whole");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn listing_shows_finished_objects_only_sorted_by_key() {
        let dir = std::env::temp_dir().join(format!("dbsync-list-{}", uuid::Uuid::new_v4()));
        let store = LocalStore::new(&dir);
        store.put("results/b.json", b"1").await.expect("put");
        store.put("results/a.json", b"1").await.expect("put");
        let mut unfinished = store.create("results/c.json").await.expect("create");
        unfinished.write(b"half").await.expect("write");
        assert_eq!(
            store
                .list("results/")
                .await
                .expect("list")
                .into_iter()
                .map(|o| (o.key, o.size))
                .collect::<Vec<_>>(),
            vec![
                ("results/a.json".to_string(), 1),
                ("results/b.json".to_string(), 1)
            ]
        );
        drop(unfinished);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_folder_never_written_lists_empty_rather_than_failing() {
        let dir = std::env::temp_dir().join(format!("dbsync-list-{}", uuid::Uuid::new_v4()));
        let store = LocalStore::new(&dir);
        assert!(store.list("nothing/").await.expect("list").is_empty());
    }

    #[tokio::test]
    async fn keys_cannot_escape_the_root() {
        let store = LocalStore::new("/tmp/x");
        assert!(store.get("../etc/passwd").await.is_err());
        assert!(store.get("/etc/passwd").await.is_err());
    }
}
