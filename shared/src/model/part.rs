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

/// A COPY stream's format: PostgreSQL's text format (every part and manifest), or its
/// binary one (the streaming sync, for tables whose column types allow it on both sides).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CopyFormat {
    /// `FORMAT text`: rows end in newlines.
    #[default]
    Text,
    /// `FORMAT binary`: a header, length-prefixed tuples, a trailer.
    Binary,
}

/// Counts rows and bytes and hashes a COPY stream as it passes.
#[derive(Default)]
pub struct Tally {
    hasher: Sha256,
    rows: u64,
    bytes: u64,
    counter: RowCounter,
}

impl Tally {
    /// A tally of a stream in `format`.
    pub fn new(format: CopyFormat) -> Self {
        Tally {
            counter: RowCounter::new(format),
            ..Tally::default()
        }
    }

    /// Takes in a buffer.
    pub fn feed(&mut self, buf: &[u8]) {
        self.hasher.update(buf);
        self.bytes += buf.len() as u64;
        self.rows += self.counter.feed(buf);
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

/// Counts the rows of a COPY stream however the buffers cut it. In text COPY every row ends
/// in `\n` and embedded newlines are escaped, so newlines are rows; binary COPY is framed,
/// and its tuples are counted.
#[derive(Debug, Default)]
pub struct RowCounter {
    binary: Option<BinaryRows>,
}

impl RowCounter {
    /// A counter of a stream in `format`.
    pub fn new(format: CopyFormat) -> Self {
        RowCounter {
            binary: (format == CopyFormat::Binary).then(BinaryRows::default),
        }
    }

    /// Reads a buffer; returns the rows that ended (text) or started (binary) in it.
    pub fn feed(&mut self, buf: &[u8]) -> u64 {
        match &mut self.binary {
            Some(b) => b.feed(buf),
            None => count_newlines(buf),
        }
    }
}

/// Newlines in `buf`. Counted into a byte per block of 255 so the compiler keeps 32 lanes of
/// bytes in a vector register; a plain `filter().count()` widens every byte to 64 bits and
/// cost 5 % of an export's CPU.
fn count_newlines(buf: &[u8]) -> u64 {
    buf.chunks(255)
        .map(|block| {
            block
                .iter()
                .fold(0u8, |n, &b| n.wrapping_add(u8::from(b == b'\n'))) as u64
        })
        .sum()
}

/// What the binary row counter reads next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Frame {
    /// The 11-byte signature, flags and header-extension length (19 bytes).
    #[default]
    Header,
    /// A tuple's field count (2 bytes; -1 is the trailer).
    FieldCount,
    /// A field's length (4 bytes; -1 is NULL), with this many fields left after it.
    FieldLen(u16),
}

/// Counts the tuples of binary COPY data however the buffers cut it: a few bytes of state.
/// After a trailer, what follows is read as the header of another stream.
#[derive(Debug, Default)]
struct BinaryRows {
    frame: Frame,
    /// The bytes of the current fixed-size frame so far.
    acc: Vec<u8>,
    /// Bytes of field data (or header extension) still to pass over.
    skip: u64,
}

impl BinaryRows {
    /// Reads a buffer; returns the tuples that started in it.
    fn feed(&mut self, mut buf: &[u8]) -> u64 {
        let mut rows = 0;
        while !buf.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(buf.len() as u64);
                self.skip -= n;
                buf = &buf[n as usize..];
                continue;
            }
            let want = match self.frame {
                Frame::Header => 19,
                Frame::FieldCount => 2,
                Frame::FieldLen(_) => 4,
            };
            let take = (want - self.acc.len()).min(buf.len());
            self.acc.extend_from_slice(&buf[..take]);
            buf = &buf[take..];
            if self.acc.len() < want {
                continue;
            }
            let n = |b: &[u8]| i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            self.frame = match self.frame {
                Frame::Header => {
                    self.skip = n(&self.acc[15..19]).max(0) as u64;
                    Frame::FieldCount
                }
                Frame::FieldCount => match i16::from_be_bytes([self.acc[0], self.acc[1]]) {
                    -1 => Frame::Header,
                    0 => {
                        rows += 1;
                        Frame::FieldCount
                    }
                    fields => {
                        rows += 1;
                        Frame::FieldLen(fields.max(1) as u16 - 1)
                    }
                },
                Frame::FieldLen(left) => {
                    self.skip = n(&self.acc).max(0) as u64;
                    if left == 0 {
                        Frame::FieldCount
                    } else {
                        Frame::FieldLen(left - 1)
                    }
                }
            };
            self.acc.clear();
        }
        rows
    }
}

/// A source of COPY data, pulled a buffer at a time.
#[async_trait::async_trait]
pub trait ByteSource: Send {
    /// The next buffer, or None at the end.
    async fn next_bytes(&mut self) -> Result<Option<Bytes>>;

    /// The format of what it yields: text unless it says otherwise.
    fn format(&self) -> CopyFormat {
        CopyFormat::Text
    }
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

    #[test]
    fn newlines_are_counted_exactly_across_blocks_and_where_every_byte_is_one() {
        for len in [0, 1, 254, 255, 256, 510, 511, 4096, 70_000] {
            assert_eq!(count_newlines(&vec![b'\n'; len]), len as u64, "{len}");
            let mixed: Vec<u8> = (0..len)
                .map(|i| if i % 3 == 0 { b'\n' } else { b'x' })
                .collect();
            assert_eq!(count_newlines(&mixed), len.div_ceil(3) as u64, "{len}");
        }
    }

    /// Binary COPY of three rows: (1, 'a\n'), (NULL, ''), a row with zero fields (a table
    /// whose columns are all generated), then the trailer.
    fn binary_copy() -> Vec<u8> {
        let mut b = b"PGCOPY\n\xff\r\n\0".to_vec();
        b.extend([0, 0, 0, 0, 0, 0, 0, 4]); // flags, then a 4-byte header extension
        b.extend(b"ext!");
        b.extend(2i16.to_be_bytes());
        b.extend(4i32.to_be_bytes());
        b.extend(1i32.to_be_bytes());
        b.extend(2i32.to_be_bytes());
        b.extend(b"a\n");
        b.extend(2i16.to_be_bytes());
        b.extend((-1i32).to_be_bytes());
        b.extend(0i32.to_be_bytes());
        b.extend(0i16.to_be_bytes());
        b.extend((-1i16).to_be_bytes());
        b
    }

    #[test]
    fn a_binary_tally_counts_tuples_not_newlines_however_the_buffers_cut_the_stream() {
        let data = binary_copy();
        for cut in 1..data.len() {
            let mut t = Tally::new(CopyFormat::Binary);
            for piece in data.chunks(cut) {
                t.feed(piece);
            }
            assert_eq!(t.rows(), 3, "buffers of {cut} bytes");
        }
        // Two streams one after the other (pages of one part) count as one.
        let mut t = Tally::new(CopyFormat::Binary);
        t.feed(&[data.clone(), data].concat());
        assert_eq!(t.rows(), 6);
    }
}
