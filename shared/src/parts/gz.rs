//! The gzip framing of parts: COPY text in, counted and hashed, compressed in pieces and
//! streamed to a store ([`GzPartSink`]); a part read back as COPY text in bounded pieces
//! whatever the compression ratio ([`GzPartSource`]).

use crate::error::{Error, Result};
use crate::model::part::{ByteSource, PartStats, Tally};
use crate::parts::{PartStore, PartWriter};
use bytes::Bytes;
use flate2::write::GzEncoder;
use std::io::Write;

/// Small rows are gathered up to this many bytes before they are compressed.
const GATHER: usize = 128 * 1024;
/// A large row is compressed this many bytes at a time.
const SLICE: usize = 1 << 20;

/// A gzip part being written: COPY text in, counted and hashed, compressed in pieces.
pub struct GzPartSink<'a> {
    writer: Box<dyn PartWriter>,
    enc: GzEncoder<Vec<u8>>,
    pending: Vec<u8>,
    tally: Tally,
    compressed: u64,
    store: &'a dyn PartStore,
    key: &'a str,
}

impl<'a> GzPartSink<'a> {
    /// Starts a part under `key` at gzip `level`.
    pub async fn create(store: &'a dyn PartStore, key: &'a str, level: u32) -> Result<Self> {
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

    /// Compresses `data` and uploads the compressed buffer once it is full.
    async fn compress(&mut self, data: &[u8]) -> Result<()> {
        self.enc.write_all(data).map_err(|e| self.gz_err(e))?;
        if self.enc.get_ref().len() >= 1 << 20 {
            self.writer.write(self.enc.get_ref()).await?;
            self.compressed += self.enc.get_ref().len() as u64;
            self.enc.get_mut().clear();
        }
        Ok(())
    }

    /// Compresses what is pending.
    async fn flush(&mut self) -> Result<()> {
        let pending = std::mem::take(&mut self.pending);
        self.compress(&pending).await?;
        self.pending = pending;
        self.pending.clear();
        Ok(())
    }

    /// Takes everything `src` yields. COPY hands over one row at a time; a deflate call per
    /// ~100-byte row costs more than the compression itself, so small rows are gathered
    /// first. A large row (a big value) is compressed straight from COPY's own buffer, a
    /// slice at a time, so no second copy of it is ever held.
    pub async fn feed(&mut self, src: &mut dyn ByteSource) -> Result<()> {
        while let Some(buf) = src.next_bytes().await? {
            self.tally.feed(&buf);
            if buf.len() >= GATHER {
                self.flush().await?;
                for piece in buf.chunks(SLICE) {
                    self.compress(piece).await?;
                }
                continue;
            }
            self.pending.extend_from_slice(&buf);
            if self.pending.len() >= GATHER {
                self.flush().await?;
            }
        }
        Ok(())
    }

    /// Makes the part visible; returns what it holds and its compressed size.
    pub async fn finish(mut self) -> Result<(PartStats, u64)> {
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
            source: Some(Box::new(e)),
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
        let store = crate::parts::LocalStore::new(&dir);
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
        let store = crate::parts::LocalStore::new(&dir);
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b"1\tabc\n2\tdef\n").expect("gzip");
        let gz = enc.finish().expect("gzip");
        store.put("p.gz", &gz[..gz.len() - 6]).await.expect("put");
        let mut src = GzPartSource::open(&store, "p.gz").await.expect("open");
        let err = read_all(&mut src).await.expect_err("truncated");
        assert!(err.to_string().contains("not a valid gzip part"), "{err}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
