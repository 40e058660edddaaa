//! Chunking: how many chunks a table needs, boundaries from a sorted key sample, and the
//! keyset or CTID ranges they make. Pure.

use crate::model::chunk::{Chunk, ChunkRange, Plan};

/// How many chunks a table of `bytes` needs at `chunk_bytes` each (at least one).
pub fn chunk_count(bytes: i64, chunk_bytes: u64) -> usize {
    let bytes = bytes.max(0) as u64;
    let n = bytes.div_ceil(chunk_bytes.max(1));
    n.clamp(1, 100_000) as usize
}

/// A balanced job splits any table bigger than its share of the job (total / (workers x
/// this)), so that the largest table does not finish alone at the end. One: measured on the
/// benchmark, two loads into one table cost more than one (they contend on its primary key's
/// pages), so tables are split only where one of them would otherwise bound the wall time.
pub const CHUNKS_PER_WORKER: u64 = 1;
/// Balancing never makes chunks smaller than this: each chunk costs a transaction, a COPY
/// statement and two ledger rows.
pub const MIN_BALANCED_CHUNK: u64 = 16 * 1024 * 1024;
/// Tables of up to this many (estimated) rows get exact key quantiles by default; larger
/// ones are block-sampled (`TABLESAMPLE SYSTEM`).
pub const EXACT_KEYS_UP_TO: i64 = 2_000_000;
/// The first server version with TID range scans (a CTID range reads only its own pages).
pub const TID_RANGE_SCAN_VERSION: i32 = 140000;

/// How a job splits its tables into chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizing {
    /// The largest chunk, on disk at the source (`--chunk-size`).
    pub chunk_bytes: u64,
    /// Workers to keep busy: chunks shrink (not below [`MIN_BALANCED_CHUNK`]) to a worker's
    /// share of the data ([`CHUNKS_PER_WORKER`]). 0 or 1: the fixed size only.
    pub workers: usize,
    /// Split by heap pages even where there is a key: right when one snapshot reads every
    /// chunk (a sync); a TID range scan reads only its pages and needs no key sample. Jobs
    /// whose chunks resume by key or read their own snapshots (exports) split by key.
    pub by_heap: bool,
    /// Up to how many rows a table's key ranges come from exact quantiles (a read of its
    /// whole key) rather than a block sample: ranges of equal size.
    pub exact_keys_up_to: i64,
}

impl Sizing {
    /// Fixed-size chunks split by key: what exports and the serverless plan use.
    pub fn fixed(chunk_bytes: u64) -> Self {
        Sizing {
            chunk_bytes,
            workers: 0,
            by_heap: false,
            exact_keys_up_to: EXACT_KEYS_UP_TO,
        }
    }

    /// The chunk size for `total` bytes of data.
    pub fn chunk_bytes_for(&self, total: u64) -> u64 {
        let cap = self.chunk_bytes.max(1);
        if self.workers <= 1 {
            return cap;
        }
        let spread = total / (self.workers as u64 * CHUNKS_PER_WORKER);
        cap.min(spread.max(MIN_BALANCED_CHUNK))
    }
}

/// Keeps `want` evenly spaced values of a sorted sample, dropping repeats.
pub fn pick_quantiles(sorted: Vec<Vec<String>>, want: usize) -> Vec<Vec<String>> {
    if sorted.len() <= want {
        let mut v = sorted;
        v.dedup();
        return v;
    }
    let step = sorted.len() as f64 / (want as f64 + 1.0);
    let mut out: Vec<Vec<String>> = (1..=want)
        .map(|i| sorted[((i as f64 * step) as usize).min(sorted.len() - 1)].clone())
        .collect();
    out.dedup();
    out
}

/// Key ranges from sorted interior boundaries: `(-inf, b0), [b0, b1), ..., [bn, +inf)`.
pub fn key_ranges(bounds: &[Vec<String>]) -> Vec<ChunkRange> {
    if bounds.is_empty() {
        return vec![ChunkRange::Whole];
    }
    let mut out = Vec::with_capacity(bounds.len() + 1);
    let mut lower: Option<Vec<String>> = None;
    for b in bounds {
        out.push(ChunkRange::Key {
            lower: lower.take(),
            upper: Some(b.clone()),
        });
        lower = Some(b.clone());
    }
    out.push(ChunkRange::Key { lower, upper: None });
    out
}

/// CTID ranges splitting `pages` heap pages into `n` parts; the last is open-ended so pages
/// added after the estimate are still covered.
pub fn ctid_ranges(pages: u64, n: usize) -> Vec<ChunkRange> {
    if n <= 1 || pages < 2 {
        return vec![ChunkRange::Whole];
    }
    let n = (n as u64).min(pages);
    let per = pages.div_ceil(n);
    let mut out = Vec::new();
    let mut start = 0;
    while start < pages {
        let end = start + per;
        out.push(ChunkRange::Ctid {
            lower: (start > 0).then_some(start),
            upper: (end < pages).then_some(end),
        });
        start = end;
    }
    out
}

/// A chunk's share of its table's size on disk: what scheduling and progress go by. The first
/// chunks take one byte more each for the remainder, so a table's shares add up to its size
/// whatever its chunk count (a price must not move with how the sampled bounds fell).
pub fn estimated_bytes(plan: &Plan, chunk: &Chunk) -> u64 {
    let t = &plan.catalog.tables[chunk.table];
    let n = plan
        .chunks
        .iter()
        .filter(|c| c.table == chunk.table)
        .count()
        .max(1) as u64;
    let bytes = t.bytes.max(0) as u64;
    bytes / n + u64::from((chunk.seq as u64) < bytes % n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_balanced_job_splits_tables_bigger_than_a_workers_share_but_not_below_the_floor() {
        let mib = 1024 * 1024;
        let s = Sizing {
            chunk_bytes: 256 * mib,
            workers: 2,
            by_heap: true,
            exact_keys_up_to: EXACT_KEYS_UP_TO,
        };
        assert_eq!(s.chunk_bytes_for(256 * mib), 128 * mib);
        assert_eq!(s.chunk_bytes_for(10 * mib), MIN_BALANCED_CHUNK);
        assert_eq!(s.chunk_bytes_for(100 * 1024 * mib), 256 * mib);
        assert_eq!(
            Sizing::fixed(256 * mib).chunk_bytes_for(256 * mib),
            256 * mib
        );
        // --chunk-size stays the ceiling, also below the floor.
        let small = Sizing {
            chunk_bytes: 64 * 1024,
            ..s
        };
        assert_eq!(small.chunk_bytes_for(256 * mib), 64 * 1024);
    }

    #[test]
    fn a_tables_chunk_shares_add_up_to_its_size_whatever_the_chunk_count() {
        use crate::model::catalog::Table;
        use crate::model::chunk::FkOrder;
        let mut t = Table::for_tests("app", "t");
        t.bytes = 1_000_003;
        for n in 1..=7 {
            let plan = Plan {
                order: FkOrder {
                    levels: vec![0],
                    cyclic: vec![],
                },
                chunks: (0..n)
                    .map(|seq| Chunk {
                        table: 0,
                        seq,
                        range: ChunkRange::Whole,
                    })
                    .collect(),
                ..Plan::for_tests(vec![t.clone()])
            };
            let shares: Vec<u64> = plan
                .chunks
                .iter()
                .map(|c| estimated_bytes(&plan, c))
                .collect();
            assert_eq!(shares.iter().sum::<u64>(), 1_000_003, "{n} chunks");
            let (lo, hi) = (shares.iter().min(), shares.iter().max());
            assert!(hi.zip(lo).is_some_and(|(h, l)| h - l <= 1), "{shares:?}");
        }
    }

    #[test]
    fn chunk_count_rounds_up_and_is_at_least_one() {
        assert_eq!(chunk_count(0, 100), 1);
        assert_eq!(chunk_count(100, 100), 1);
        assert_eq!(chunk_count(101, 100), 2);
        assert_eq!(chunk_count(-1, 100), 1);
    }

    #[test]
    fn key_ranges_are_open_at_both_ends_and_contiguous() {
        let b = vec![vec!["10".to_string()], vec!["20".to_string()]];
        let r = key_ranges(&b);
        assert_eq!(r.len(), 3);
        assert_eq!(
            r[0],
            ChunkRange::Key {
                lower: None,
                upper: Some(vec!["10".into()])
            }
        );
        assert_eq!(
            r[2],
            ChunkRange::Key {
                lower: Some(vec!["20".into()]),
                upper: None
            }
        );
        assert_eq!(key_ranges(&[]), vec![ChunkRange::Whole]);
    }

    #[test]
    fn quantiles_drop_repeated_boundaries() {
        let s: Vec<Vec<String>> = ["a", "a", "a", "a", "b", "b", "c", "c"]
            .iter()
            .map(|v| vec![v.to_string()])
            .collect();
        let q = pick_quantiles(s, 3);
        let mut d = q.clone();
        d.dedup();
        assert_eq!(q, d);
        assert!(q.len() <= 3);
    }

    #[test]
    fn ctid_ranges_cover_every_page_and_the_last_is_open() {
        let r = ctid_ranges(10, 3);
        assert_eq!(
            r.first(),
            Some(&ChunkRange::Ctid {
                lower: None,
                upper: Some(4)
            })
        );
        assert_eq!(
            r.last(),
            Some(&ChunkRange::Ctid {
                lower: Some(8),
                upper: None
            })
        );
        assert_eq!(ctid_ranges(1, 5), vec![ChunkRange::Whole]);
        assert_eq!(ctid_ranges(100, 1), vec![ChunkRange::Whole]);
    }
}
