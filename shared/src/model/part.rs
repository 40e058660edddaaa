//! Parts: what a part holds (rows, bytes, sha256 of the COPY text, measured as it streams),
//! the ids and store keys of chunk parts and their segments, one exported part as recorded
//! for the manifest, what loading a part did, and [`ByteSource`], the pull interface every
//! stream of COPY text (a source session, a gzip part) offers. Pure data and hashing.

use crate::error::Result;
use crate::model::chunk::Chunk;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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

    /// Rows so far.
    pub fn rows(&self) -> u64 {
        self.rows
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

/// The key of a chunk's part in a store.
pub fn part_key(chunk: &Chunk) -> String {
    format!("parts/{}.copy.gz", chunk.id())
}

/// The part id of segment `n` of a chunk exported in budgeted invocations.
pub fn segment_id(chunk: &Chunk, n: u32) -> String {
    format!("{}.s{n:04}", chunk.id())
}

/// The store key of segment `n` of a chunk.
pub fn segment_key(chunk: &Chunk, n: u32) -> String {
    format!("parts/{}.copy.gz", segment_id(chunk, n))
}

/// One part an export produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportedPart {
    /// The chunk it belongs to.
    pub chunk: Chunk,
    /// Part id (the ledger key): the chunk id, or a segment id.
    pub id: String,
    /// Store key.
    pub key: String,
    /// What it holds.
    pub stats: PartStats,
    /// Its size in the store.
    pub compressed_bytes: u64,
    /// The snapshot it read, when not the job's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
}

/// What happened to a part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadOutcome {
    /// Loaded now.
    Loaded(PartStats),
    /// The ledger says an earlier attempt of this job loaded it.
    AlreadyLoaded,
}

#[cfg(test)]
mod tests {
    use super::*;

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
