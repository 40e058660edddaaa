//! Streaming a chunk out of the source: `COPY (SELECT ...) TO STDOUT` in text format, counted
//! and hashed as it passes, optionally gzip-compressed into a part. Never holds more than a
//! buffer of data in memory, whatever the table size.

use crate::catalog::Table;
use crate::error::{Error, Result, Role};
use crate::plan::ChunkRange;
use crate::store::PartStore;
use bytes::Bytes;
use flate2::write::GzEncoder;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Write;
use tokio_postgres::Client;

/// What a part holds, as measured on the uncompressed COPY text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartStats {
    /// Rows (lines of COPY text).
    pub rows: u64,
    /// Uncompressed bytes.
    pub bytes: u64,
    /// sha256 of the uncompressed bytes, hex.
    pub sha256: String,
}

/// Counts rows and bytes and hashes COPY text as it streams.
pub struct Tally {
    hasher: Sha256,
    rows: u64,
    bytes: u64,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            hasher: Sha256::new(),
            rows: 0,
            bytes: 0,
        }
    }
}

impl Tally {
    /// Takes in a buffer. In text COPY every row ends in `\n` and embedded newlines are
    /// escaped, so newlines are rows.
    pub fn feed(&mut self, buf: &[u8]) {
        self.hasher.update(buf);
        self.bytes += buf.len() as u64;
        self.rows += buf.iter().filter(|&&b| b == b'\n').count() as u64;
    }

    /// The totals.
    pub fn finish(self) -> PartStats {
        let digest = self.hasher.finalize();
        let mut sha256 = String::with_capacity(64);
        for b in digest {
            sha256.push_str(&format!("{b:02x}"));
        }
        PartStats {
            rows: self.rows,
            bytes: self.bytes,
            sha256,
        }
    }
}

/// A source of COPY text, pulled a buffer at a time.
#[async_trait::async_trait]
pub trait ByteSource: Send {
    /// The next buffer, or None at the end.
    async fn next_bytes(&mut self) -> Result<Option<Bytes>>;
}

/// COPY text straight from a source session.
pub struct CopyOutSource {
    stream: std::pin::Pin<Box<tokio_postgres::CopyOutStream>>,
    context: String,
}

impl CopyOutSource {
    /// Starts `COPY ... TO STDOUT` for one chunk of `table`.
    pub async fn start(
        client: &Client,
        table: &Table,
        range: &ChunkRange,
        context: String,
    ) -> Result<Self> {
        let sql = crate::plan::copy_out_sql(table, range);
        let stream = client
            .copy_out(sql.as_str())
            .await
            .map_err(|e| Error::pg(Role::Source, context.clone(), e))?;
        Ok(CopyOutSource {
            stream: Box::pin(stream),
            context,
        })
    }
}

#[async_trait::async_trait]
impl ByteSource for CopyOutSource {
    async fn next_bytes(&mut self) -> Result<Option<Bytes>> {
        match self.stream.next().await {
            None => Ok(None),
            Some(Ok(b)) => Ok(Some(b)),
            Some(Err(e)) => Err(Error::pg(Role::Source, self.context.clone(), e)),
        }
    }
}

/// Exports one chunk into a gzip part under `key`; returns what it holds.
pub async fn export_chunk(
    client: &Client,
    table: &Table,
    range: &ChunkRange,
    context: String,
    store: &dyn PartStore,
    key: &str,
    level: u32,
) -> Result<(PartStats, u64)> {
    let mut src = CopyOutSource::start(client, table, range, context).await?;
    let mut writer = store.create(key).await?;
    let mut tally = Tally::default();
    let mut enc = GzEncoder::new(Vec::with_capacity(1 << 20), flate2::Compression::new(level));
    let mut compressed = 0u64;
    let gz_err = |e: std::io::Error| Error::io(store.location(key), e);
    // COPY hands over one row at a time; a deflate call per ~100-byte row costs more than the
    // compression itself, so rows are gathered into larger pieces first.
    let mut pending: Vec<u8> = Vec::with_capacity(128 * 1024 + 64 * 1024);
    loop {
        let next = src.next_bytes().await?;
        if let Some(buf) = &next {
            tally.feed(buf);
            pending.extend_from_slice(buf);
            if pending.len() < 128 * 1024 {
                continue;
            }
        }
        enc.write_all(&pending).map_err(gz_err)?;
        pending.clear();
        if enc.get_ref().len() >= 1 << 20 {
            writer.write(enc.get_ref()).await?;
            compressed += enc.get_ref().len() as u64;
            enc.get_mut().clear();
        }
        if next.is_none() {
            break;
        }
    }
    let rest = enc.finish().map_err(gz_err)?;
    compressed += rest.len() as u64;
    writer.write(&rest).await?;
    writer.finish().await?;
    Ok((tally.finish(), compressed))
}

/// Reads a gzip part back as COPY text, in pieces of about [`OUT_PIECE`] bytes whatever the
/// compression ratio: input goes to the decoder in small slices, so one read of highly
/// compressible data never inflates into a large buffer.
pub struct GzPartSource {
    reader: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
    decoder: flate2::write::GzDecoder<Vec<u8>>,
    input: Vec<u8>,
    pos: usize,
    len: usize,
    done: bool,
    location: String,
}

/// Decoded bytes handed out at a time.
const OUT_PIECE: usize = 256 * 1024;
/// Compressed bytes given to the decoder at a time (deflate expands at most ~1000:1).
const IN_SLICE: usize = 1024;

impl GzPartSource {
    /// Opens `key` in `store`.
    pub async fn open(store: &dyn PartStore, key: &str) -> Result<Self> {
        Ok(GzPartSource {
            reader: store.open(key).await?,
            decoder: flate2::write::GzDecoder::new(Vec::with_capacity(OUT_PIECE + 64 * 1024)),
            input: vec![0; 64 * 1024],
            pos: 0,
            len: 0,
            done: false,
            location: store.location(key),
        })
    }

    fn corrupt(&self, e: std::io::Error) -> Error {
        Error::Io {
            path: self.location.clone(),
            message: format!("not a valid gzip part: {e}"),
            retryable: false,
        }
    }

    fn take_output(&mut self) -> Option<Bytes> {
        let out = std::mem::replace(
            self.decoder.get_mut(),
            Vec::with_capacity(OUT_PIECE + 64 * 1024),
        );
        (!out.is_empty()).then(|| Bytes::from(out))
    }
}

#[async_trait::async_trait]
impl ByteSource for GzPartSource {
    async fn next_bytes(&mut self) -> Result<Option<Bytes>> {
        use tokio::io::AsyncReadExt;
        loop {
            if self.decoder.get_ref().len() >= OUT_PIECE {
                return Ok(self.take_output());
            }
            if self.pos < self.len {
                let end = (self.pos + IN_SLICE).min(self.len);
                let n = self
                    .decoder
                    .write(&self.input[self.pos..end])
                    .map_err(|e| self.corrupt(e))?;
                if n == 0 {
                    // Bytes after the end of the gzip stream.
                    return Err(
                        self.corrupt(std::io::Error::other("trailing data after the gzip stream"))
                    );
                }
                self.pos += n;
                continue;
            }
            if self.done {
                return Ok(self.take_output());
            }
            let n = self
                .reader
                .read(&mut self.input)
                .await
                .map_err(|e| Error::io(&self.location, e))?;
            if n == 0 {
                self.done = true;
                self.decoder.try_finish().map_err(|e| self.corrupt(e))?;
            } else {
                self.pos = 0;
                self.len = n;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_all(src: &mut GzPartSource) -> Result<(Vec<u8>, usize)> {
        let mut all = Vec::new();
        let mut largest = 0;
        while let Some(b) = src.next_bytes().await? {
            largest = largest.max(b.len());
            all.extend_from_slice(&b);
        }
        Ok((all, largest))
    }

    #[tokio::test]
    async fn a_highly_compressible_part_is_read_back_in_bounded_pieces() {
        let dir = std::env::temp_dir().join(format!("dbsync-gz-{}", uuid::Uuid::new_v4()));
        let store = crate::store::LocalStore::new(&dir);
        let text = vec![b' '; 50 * 1024 * 1024];
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&text).expect("gzip");
        store
            .put("p.gz", &enc.finish().expect("gzip"))
            .await
            .expect("put");
        let mut src = GzPartSource::open(&store, "p.gz").await.expect("open");
        let (all, largest) = read_all(&mut src).await.expect("read");
        assert_eq!(all.len(), text.len());
        assert!(largest < 2 * OUT_PIECE, "a piece of {largest} bytes");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_truncated_part_is_reported_as_not_valid_gzip() {
        let dir = std::env::temp_dir().join(format!("dbsync-gz-{}", uuid::Uuid::new_v4()));
        let store = crate::store::LocalStore::new(&dir);
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b"1\tabc\n2\tdef\n").expect("gzip");
        let gz = enc.finish().expect("gzip");
        store.put("p.gz", &gz[..gz.len() - 6]).await.expect("put");
        let mut src = GzPartSource::open(&store, "p.gz").await.expect("open");
        let err = read_all(&mut src).await.expect_err("truncated");
        assert!(err.to_string().contains("not a valid gzip part"), "{err}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn tally_counts_rows_by_newlines_and_hashes_the_text() {
        let mut t = Tally::default();
        t.feed(b"1\ta\\nb\n");
        t.feed(b"2\t\\N\n");
        let s = t.finish();
        assert_eq!(s.rows, 2);
        assert_eq!(s.bytes, 12);
        assert_eq!(s.sha256.len(), 64);
        let mut whole = Tally::default();
        whole.feed(b"1\ta\\nb\n2\t\\N\n");
        assert_eq!(whole.finish().sha256, s.sha256);
    }
}
