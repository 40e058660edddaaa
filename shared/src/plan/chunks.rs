//! Chunking: how many chunks a table needs, boundaries from a sorted key sample, and the
//! keyset or CTID ranges they make. Pure.

use crate::model::chunk::{Chunk, ChunkRange, Plan};

/// How many chunks a table of `bytes` needs at `chunk_bytes` each (at least one).
pub fn chunk_count(bytes: i64, chunk_bytes: u64) -> usize {
    let bytes = bytes.max(0) as u64;
    let n = bytes.div_ceil(chunk_bytes.max(1));
    n.clamp(1, 100_000) as usize
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

/// A chunk's share of its table's size on disk: what scheduling and progress go by.
pub fn estimated_bytes(plan: &Plan, chunk: &Chunk) -> u64 {
    let t = &plan.catalog.tables[chunk.table];
    let n = plan
        .chunks
        .iter()
        .filter(|c| c.table == chunk.table)
        .count()
        .max(1);
    t.bytes.max(0) as u64 / n as u64
}

#[cfg(test)]
mod tests {
    use super::*;

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
