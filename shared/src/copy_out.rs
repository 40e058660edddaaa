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
        Self::start_sql(client, &crate::plan::copy_out_sql(table, range), context).await
    }

    /// Starts a given `COPY ... TO STDOUT` statement.
    pub async fn start_sql(client: &Client, sql: &str, context: String) -> Result<Self> {
        let stream = client
            .copy_out(sql)
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

/// A gzip part being written: COPY text in, counted and hashed, compressed in pieces.
struct GzPartSink<'a> {
    writer: Box<dyn crate::store::PartWriter>,
    enc: GzEncoder<Vec<u8>>,
    pending: Vec<u8>,
    tally: Tally,
    compressed: u64,
    store: &'a dyn PartStore,
    key: &'a str,
}

impl<'a> GzPartSink<'a> {
    async fn create(store: &'a dyn PartStore, key: &'a str, level: u32) -> Result<Self> {
        Ok(GzPartSink {
            writer: store.create(key).await?,
            enc: GzEncoder::new(Vec::with_capacity(1 << 20), flate2::Compression::new(level)),
            pending: Vec::with_capacity(128 * 1024 + 64 * 1024),
            tally: Tally::default(),
            compressed: 0,
            store,
            key,
        })
    }

    fn gz_err(&self, e: std::io::Error) -> Error {
        Error::io(self.store.location(self.key), e)
    }

    /// Compresses what is pending and uploads full buffers.
    async fn flush(&mut self) -> Result<()> {
        self.enc
            .write_all(&self.pending)
            .map_err(|e| self.gz_err(e))?;
        self.pending.clear();
        if self.enc.get_ref().len() >= 1 << 20 {
            self.writer.write(self.enc.get_ref()).await?;
            self.compressed += self.enc.get_ref().len() as u64;
            self.enc.get_mut().clear();
        }
        Ok(())
    }

    /// Takes everything `src` yields. COPY hands over one row at a time; a deflate call per
    /// ~100-byte row costs more than the compression itself, so rows are gathered first.
    async fn feed(&mut self, src: &mut dyn ByteSource) -> Result<()> {
        while let Some(buf) = src.next_bytes().await? {
            self.tally.feed(&buf);
            self.pending.extend_from_slice(&buf);
            if self.pending.len() >= 128 * 1024 {
                self.flush().await?;
            }
        }
        Ok(())
    }

    /// Makes the part visible; returns what it holds and its compressed size.
    async fn finish(mut self) -> Result<(PartStats, u64)> {
        self.flush().await?;
        let rest = self
            .enc
            .finish()
            .map_err(|e| Error::io(self.store.location(self.key), e))?;
        self.compressed += rest.len() as u64;
        self.writer.write(&rest).await?;
        self.writer.finish().await?;
        Ok((self.tally.finish(), self.compressed))
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
    let mut sink = GzPartSink::create(store, key, level).await?;
    sink.feed(&mut src).await?;
    sink.finish().await
}

/// How much one invocation may do before it hands over a continuation.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Stop starting new pages after this instant.
    pub deadline: std::time::Instant,
    /// Rows per page of a keyed table.
    pub page_rows: u64,
    /// Heap pages per page of a table without a key.
    pub page_blocks: u64,
}

/// What one budgeted export of (part of) a chunk produced.
#[derive(Debug, Clone)]
pub struct Segment {
    /// What the part holds.
    pub stats: PartStats,
    /// Its size in the store.
    pub compressed_bytes: u64,
    /// Where the next invocation continues; None when the chunk is complete.
    pub resume: Option<crate::plan::Resume>,
}

/// Exports a chunk page by page in key order (heap order without a key) into one part,
/// starting at `resume`, until the chunk is done or `budget.deadline` has passed after a
/// page: then the part is closed and the continuation returned. The first page always runs,
/// so every invocation makes progress. Pages of one chunk must read one snapshot.
#[allow(clippy::too_many_arguments)]
pub async fn export_segment(
    client: &Client,
    table: &Table,
    range: &ChunkRange,
    resume: Option<&crate::plan::Resume>,
    budget: Budget,
    context: String,
    store: &dyn PartStore,
    key: &str,
    level: u32,
) -> Result<Segment> {
    use crate::plan::{self, Resume};
    let mut sink = GzPartSink::create(store, key, level).await?;
    let resume = match &table.key {
        Some(k) => {
            let mut after: Option<Vec<String>> = match resume {
                Some(Resume::Key { after }) => Some(after.clone()),
                _ => None,
            };
            loop {
                let end = client
                    .query_opt(
                        plan::page_end_sql(table, k, range, after.as_deref(), budget.page_rows)
                            .as_str(),
                        &[],
                    )
                    .await
                    .map_err(|e| Error::pg(Role::Source, context.clone(), e))?
                    .map(|r| {
                        (0..k.columns.len())
                            .map(|i| r.get::<_, String>(i))
                            .collect::<Vec<String>>()
                    });
                let sql =
                    plan::key_page_copy_sql(table, k, range, after.as_deref(), end.as_deref());
                let mut src = CopyOutSource::start_sql(client, &sql, context.clone()).await?;
                sink.feed(&mut src).await?;
                match end {
                    None => break None,
                    Some(e) if std::time::Instant::now() >= budget.deadline => {
                        break Some(Resume::Key { after: e })
                    }
                    Some(e) => after = Some(e),
                }
            }
        }
        None => {
            let (lower, upper) = match range {
                ChunkRange::Ctid { lower, upper } => (lower.unwrap_or(0), *upper),
                _ => (0, None),
            };
            let mut from = match resume {
                Some(Resume::Ctid { from_page }) => *from_page,
                _ => lower,
            };
            // Heap pages now; pages added later hold only rows the snapshot cannot see.
            let blocks: i64 = client
                .query_one(
                    "SELECT (pg_relation_size($1::text::regclass) / current_setting('block_size')::int8)::int8",
                    &[&table.name.sql()],
                )
                .await
                .map_err(|e| Error::pg(Role::Source, context.clone(), e))?
                .get(0);
            let end = upper.unwrap_or(blocks.max(0) as u64);
            loop {
                let to = from + budget.page_blocks.max(1);
                // The last page of an open-ended chunk stays open, as the plan's ranges do.
                let last = to >= end;
                let sql =
                    plan::ctid_page_copy_sql(table, from, if last { upper } else { Some(to) });
                let mut src = CopyOutSource::start_sql(client, &sql, context.clone()).await?;
                sink.feed(&mut src).await?;
                if last {
                    break None;
                }
                from = to;
                if std::time::Instant::now() >= budget.deadline {
                    break Some(Resume::Ctid { from_page: from });
                }
            }
        }
    };
    let (stats, compressed_bytes) = sink.finish().await?;
    Ok(Segment {
        stats,
        compressed_bytes,
        resume,
    })
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
