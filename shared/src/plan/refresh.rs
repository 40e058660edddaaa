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

/// The units compared first (about eight of each table with more than [`SAMPLE_ABOVE`]
/// ranges) and the rest (the other units of those tables, every unit of the others).
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
        let step = idx.len() / 8;
        for (k, &i) in idx.iter().enumerate() {
            if k % step == 0 {
                first.push(i);
            } else {
                rest.push(i);
            }
        }
    }
    (first, rest)
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
