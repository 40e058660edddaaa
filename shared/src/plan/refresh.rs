//! The changed-only refresh's decisions, without I/O: the units a plan is compared in (key
//! ranges, or whole tables without a key), the sample compared first, the tables most of
//! whose ranges differ, and what each table gets (left alone, ranges replaced, replaced
//! whole), reported per table. `pipeline::refresh` runs them.

use crate::model::chunk::{ChunkRange, Plan};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// The share of a table's ranges that may differ before it is replaced whole, by default.
pub const DEFAULT_MAX_SHARE: f64 = 0.5;

/// What the refresh found and did, per table.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RefreshReport {
    /// Ranges fingerprinted on both sides.
    pub ranges_compared: usize,
    /// Ranges that differed.
    pub ranges_differing: usize,
    /// Tables as found, in the plan's order.
    pub tables: Vec<TableRefresh>,
    /// Most of the data differed: a full sync ran (or, in a dry run, would run) instead.
    pub full_sync: bool,
}

/// One table's outcome.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TableRefresh {
    /// The table.
    pub table: String,
    /// Its ranges (1 for a table compared whole).
    pub ranges: usize,
    /// Ranges compared (a sample only, when the sample decided).
    pub compared: usize,
    /// Ranges that differed.
    pub differing: usize,
    /// `unchanged`, `ranges` (the differing ones replaced) or `whole`.
    pub action: &'static str,
    /// Source rows in what was (or, in a dry run, would be) replaced.
    pub rows: u64,
}

/// A unit of comparison or replacement: a key range of a table, or a whole table.
#[derive(Debug, Clone)]
pub struct Unit {
    pub table: usize,
    pub range: ChunkRange,
}

impl Unit {
    pub fn what(&self, plan: &Plan) -> String {
        let t = &plan.catalog.tables[self.table].name;
        match &self.range {
            ChunkRange::Whole => format!("table {t}"),
            r => format!("range {} of {t}", describe(r)),
        }
    }
}

fn describe(r: &ChunkRange) -> String {
    match r {
        ChunkRange::Key { lower, upper } => format!(
            "[{}, {})",
            lower.as_ref().map_or("-".into(), |l| l.join(",")),
            upper.as_ref().map_or("+".into(), |u| u.join(","))
        ),
        _ => "whole".into(),
    }
}

/// Autovacuum's default `autovacuum_analyze_scale_factor` and `_threshold`: a refreshed
/// table whose replaced rows stay under this share of it keeps its statistics (they still
/// describe it; autovacuum analyzes it when its own count of changed rows says so).
const ANALYZE_SHARE: f64 = 0.1;
const ANALYZE_ROWS: f64 = 50.0;

impl TableRefresh {
    /// Whether the refresh analyzes the table after it (`always`: `--analyze on`): when it
    /// was replaced whole, never analyzed, or more of it was replaced than autovacuum
    /// would let pass. An ANALYZE samples the whole table: on the 2 GB table it costs more
    /// than replacing the 1.5 % of it that changed.
    pub fn needs_analyze(&self, est_rows: i64, always: bool) -> bool {
        match self.action {
            "unchanged" => false,
            "ranges" if !always && est_rows > 0 => {
                self.rows as f64 > ANALYZE_ROWS + ANALYZE_SHARE * est_rows as f64
            }
            _ => true,
        }
    }
}

/// What a comparison found.
pub struct Compared {
    pub unit: usize,
    pub differs: bool,
    pub source_rows: u64,
}

/// The units of `plan`: each key range of a table whose chunks are all key ranges, else the
/// whole table (heap page ranges mean nothing on the other side).
pub fn units(plan: &Plan) -> Vec<Unit> {
    let mut out = Vec::new();
    for (i, t) in plan.catalog.tables.iter().enumerate() {
        let ranges: Vec<&ChunkRange> = plan
            .chunks
            .iter()
            .filter(|c| c.table == i)
            .map(|c| &c.range)
            .collect();
        let keyed = t.key.is_some()
            && !ranges.is_empty()
            && ranges.iter().all(|r| matches!(r, ChunkRange::Key { .. }));
        if keyed {
            out.extend(ranges.into_iter().map(|r| Unit {
                table: i,
                range: r.clone(),
            }));
        } else {
            out.push(Unit {
                table: i,
                range: ChunkRange::Whole,
            });
        }
    }
    out
}

/// A table with more ranges than this is first compared on a sample of them.
const SAMPLE_ABOVE: usize = 16;

/// Above this share of the data to replace whole, the refresh is a full sync instead.
pub const FULL_SYNC_SHARE: f64 = 0.5;

/// Ranges of a table compared first: few enough that the sample costs little next to a
/// full sync (it runs before one when most ranges differ), enough to tell "most differ".
const SAMPLED: usize = 6;

/// The units compared first ([`SAMPLED`] of each table with more than [`SAMPLE_ABOVE`]
/// ranges, evenly spread) and the rest (the other units of those tables, every unit of the others).
pub fn sample(units: &[Unit]) -> (Vec<usize>, Vec<usize>) {
    let mut per_table: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, u) in units.iter().enumerate() {
        per_table.entry(u.table).or_default().push(i);
    }
    let (mut first, mut rest) = (Vec::new(), Vec::new());
    for idx in per_table.values() {
        if idx.len() <= SAMPLE_ABOVE {
            rest.extend(idx);
            continue;
        }
        let picked: BTreeSet<usize> = (0..SAMPLED).map(|k| k * idx.len() / SAMPLED).collect();
        for (k, &i) in idx.iter().enumerate() {
            if picked.contains(&k) {
                first.push(i);
            } else {
                rest.push(i);
            }
        }
    }
    (first, rest)
}

/// Whether `tables`, replaced whole, are most of the data: a full sync does that faster
/// (TRUNCATE, indexes rebuilt after, every chunk in parallel), so the refresh becomes one.
pub fn most_of_the_data(plan: &Plan, tables: impl IntoIterator<Item = usize>) -> bool {
    let bytes: i64 = tables
        .into_iter()
        .map(|t| plan.catalog.tables[t].bytes.max(0))
        .sum();
    bytes as f64 > FULL_SYNC_SHARE * plan.catalog.total_bytes().max(1) as f64
}

/// Tables of many ranges whose sample differs in more than `max_share` of it.
pub fn mostly_changed(units: &[Unit], found: &[Compared], max_share: f64) -> BTreeSet<usize> {
    let mut seen: BTreeMap<usize, (usize, usize, usize)> = BTreeMap::new();
    for u in units {
        seen.entry(u.table).or_default().0 += 1;
    }
    for c in found {
        let e = seen.entry(units[c.unit].table).or_default();
        e.1 += 1;
        e.2 += usize::from(c.differs);
    }
    seen.into_iter()
        .filter(|(_, (ranges, sampled, differ))| {
            *ranges > SAMPLE_ABOVE && (*differ as f64) > max_share * (*sampled as f64)
        })
        .map(|(t, _)| t)
        .collect()
}

/// Per table: its ranges, those that differ, and what to do (the units to replace).
pub fn decide(
    plan: &Plan,
    units: &[Unit],
    found: &[Compared],
    early: &BTreeSet<usize>,
    max_share: f64,
) -> (RefreshReport, Vec<Unit>) {
    let mut report = RefreshReport {
        ranges_compared: found.len(),
        ..Default::default()
    };
    let mut by_table: BTreeMap<usize, (usize, bool, Vec<&Compared>)> = BTreeMap::new();
    for u in units {
        let e = by_table.entry(u.table).or_default();
        e.0 += 1;
        e.1 |= matches!(u.range, ChunkRange::Whole);
    }
    for c in found.iter().filter(|c| c.differs) {
        by_table.entry(units[c.unit].table).or_default().2.push(c);
    }
    let mut todo = Vec::new();
    for (&ti, (ranges, keyless, diff)) in &by_table {
        let whole =
            *keyless || early.contains(&ti) || (diff.len() as f64) > max_share * (*ranges as f64);
        let (action, rows) = match () {
            _ if diff.is_empty() => ("unchanged", 0),
            _ if whole => {
                todo.push(Unit {
                    table: ti,
                    range: ChunkRange::Whole,
                });
                ("whole", plan.catalog.tables[ti].est_rows.max(0) as u64)
            }
            _ => {
                todo.extend(diff.iter().map(|c| units[c.unit].clone()));
                ("ranges", diff.iter().map(|c| c.source_rows).sum())
            }
        };
        report.ranges_differing += diff.len();
        report.tables.push(TableRefresh {
            table: plan.catalog.tables[ti].name.to_string(),
            ranges: *ranges,
            compared: found.iter().filter(|c| units[c.unit].table == ti).count(),
            differing: diff.len(),
            action,
            rows,
        });
    }
    (report, todo)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_range(i: usize) -> ChunkRange {
        ChunkRange::Key {
            lower: (i > 0).then(|| vec![(i * 10).to_string()]),
            upper: Some(vec![((i + 1) * 10).to_string()]),
        }
    }

    /// Table 0 has `big` ranges, table 1 `small`.
    fn two_tables(big: usize, small: usize) -> Vec<Unit> {
        (0..big)
            .map(|i| (0, i))
            .chain((0..small).map(|i| (1, i)))
            .map(|(table, i)| Unit {
                table,
                range: key_range(i),
            })
            .collect()
    }

    fn found(which: &[usize], differing: impl Fn(usize) -> bool) -> Vec<Compared> {
        which
            .iter()
            .map(|&unit| Compared {
                unit,
                differs: differing(unit),
                source_rows: 1,
            })
            .collect()
    }

    #[test]
    fn a_table_is_analyzed_after_a_refresh_only_when_much_of_it_was_replaced() {
        let t = |action, rows| TableRefresh {
            action,
            rows,
            ..Default::default()
        };
        assert!(!t("unchanged", 0).needs_analyze(1000, true));
        assert!(t("whole", 10).needs_analyze(1000, false));
        assert!(
            !t("ranges", 150).needs_analyze(1000, false),
            "under 50 + 10 %"
        );
        assert!(t("ranges", 151).needs_analyze(1000, false));
        assert!(t("ranges", 1).needs_analyze(1000, true), "--analyze on");
        assert!(t("ranges", 1).needs_analyze(-1, false), "never analyzed");
    }

    #[test]
    fn the_sample_is_a_few_evenly_spread_ranges_of_each_table_of_many() {
        let units = two_tables(300, 5);
        let (first, rest) = sample(&units);
        assert_eq!(first, vec![0, 50, 100, 150, 200, 250]);
        assert_eq!(first.len() + rest.len(), units.len());
        assert!((300..305).all(|i| rest.contains(&i)), "small tables wait");
        let (first, _) = sample(&two_tables(17, 0));
        assert_eq!(first.len(), SAMPLED);
        let (first, rest) = sample(&two_tables(SAMPLE_ABOVE, 0));
        assert!(first.is_empty() && rest.len() == SAMPLE_ABOVE);
    }

    #[test]
    fn a_table_is_mostly_changed_when_more_than_the_share_of_its_sample_differs() {
        let units = two_tables(300, 5);
        let (first, _) = sample(&units);
        let all = found(&first, |_| true);
        assert_eq!(mostly_changed(&units, &all, 0.5), BTreeSet::from([0]));
        let half = found(&first, |u| u < 150);
        assert!(
            mostly_changed(&units, &half, 0.5).is_empty(),
            "3 of 6 is not more than half"
        );
        let small = found(&[300, 301, 302, 303, 304], |_| true);
        assert!(
            mostly_changed(&units, &small, 0.5).is_empty(),
            "never from a small table"
        );
    }
}
