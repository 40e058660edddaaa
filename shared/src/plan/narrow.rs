//! Narrowing a key range that differs (the refresh's bisection, one level): the range cut
//! at the source's keys into runs, and which of them to replace once each run's
//! fingerprints are known. Decisions only; the SQL is `pg::sample::keys_within` and
//! `pg::refresh`.

use crate::model::chunk::ChunkRange;

/// A differing range is cut into at most this many runs,
pub const PARTS: usize = 16;
/// each of at least this many rows: below that, one transaction for the range costs less
/// than the statements that narrow it.
pub const MIN_ROWS: i64 = 256;

/// `range` cut at `cuts` (key values inside it, in key order): the runs `[lower, cut1)`,
/// `[cut1, cut2)` .. `[cutN, upper)`, which hold every row of `range` exactly once. None when
/// `range` is not a key range or there is nothing to cut at.
pub fn cut(range: &ChunkRange, cuts: &[Vec<String>]) -> Option<Vec<ChunkRange>> {
    let ChunkRange::Key { lower, upper } = range else {
        return None;
    };
    if cuts.is_empty() {
        return None;
    }
    let lowers = std::iter::once(lower.clone()).chain(cuts.iter().cloned().map(Some));
    let uppers = cuts
        .iter()
        .cloned()
        .map(Some)
        .chain(std::iter::once(upper.clone()));
    Some(
        lowers
            .zip(uppers)
            .map(|(lower, upper)| ChunkRange::Key { lower, upper })
            .collect(),
    )
}

/// The runs to replace instead of their range, given whether each differs; None when the
/// range is better replaced whole: more than half of its runs differ (as many rows, more
/// transactions), or none does (the target changed since it was compared).
pub fn to_replace(runs: Vec<ChunkRange>, differs: &[bool]) -> Option<Vec<ChunkRange>> {
    let n = differs.iter().filter(|d| **d).count();
    if n == 0 || n * 2 > runs.len() || differs.len() != runs.len() {
        return None;
    }
    Some(
        runs.into_iter()
            .zip(differs)
            .filter(|(_, d)| **d)
            .map(|(r, _)| r)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(lower: Option<&str>, upper: Option<&str>) -> ChunkRange {
        ChunkRange::Key {
            lower: lower.map(|l| vec![l.to_string()]),
            upper: upper.map(|u| vec![u.to_string()]),
        }
    }

    #[test]
    fn a_range_is_cut_into_runs_that_cover_it_exactly_open_ends_kept() {
        let cuts = vec![vec!["20".to_string()], vec!["30".to_string()]];
        assert_eq!(
            cut(&key(None, Some("40")), &cuts),
            Some(vec![
                key(None, Some("20")),
                key(Some("20"), Some("30")),
                key(Some("30"), Some("40"))
            ])
        );
        assert_eq!(
            cut(&key(Some("10"), None), &cuts[..1]),
            Some(vec![key(Some("10"), Some("20")), key(Some("20"), None)])
        );
        assert_eq!(cut(&key(Some("10"), None), &[]), None);
        assert_eq!(cut(&ChunkRange::Whole, &cuts), None);
    }

    #[test]
    fn only_the_differing_runs_are_replaced_unless_most_or_none_differ() {
        let runs = || {
            (0..4)
                .map(|i| key(Some(&i.to_string()), None))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            to_replace(runs(), &[false, true, false, true]),
            Some(vec![key(Some("1"), None), key(Some("3"), None)])
        );
        assert_eq!(to_replace(runs(), &[true, true, true, false]), None);
        assert_eq!(to_replace(runs(), &[false; 4]), None);
    }
}
