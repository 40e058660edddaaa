//! The changed-only refresh's decisions, without I/O: the units a plan is compared in (key
//! ranges, or whole tables without a key), the sample compared first, the tables most of
//! whose ranges differ, and what each table gets (left alone, ranges replaced, replaced
//! whole), reported per table. `pipeline::refresh` runs them.

use crate::model::catalog::Table;
use crate::model::chunk::{ChunkRange, Plan};
use crate::model::part::CopyFormat;
use serde::{Deserialize, Serialize};
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

impl RefreshReport {
    /// `table`'s differing ranges were narrowed: `rows_alike` of their source rows are in
    /// runs found alike, left alone.
    pub fn narrowed(&mut self, table: &str, rows_alike: u64) {
        if let Some(t) = self.tables.iter_mut().find(|t| t.table == table) {
            t.rows = t.rows.saturating_sub(rows_alike);
        }
    }
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
    /// Source rows in what was (or, in a dry run, would be) replaced: the differing ranges',
    /// less the runs of them found alike.
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

/// A range as `[lower, upper)` (`-`/`+` for an open end), or `whole`.
pub fn describe(r: &ChunkRange) -> String {
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

/// Rows of a sampled range compared where the table's one scan answers for the whole range
/// later anyway: the first of them in key order (the range's head). A change scattered in
/// the range shows there (1 % of rows changed: all but certainly), one clustered elsewhere
/// is left to the scan; the ranges themselves cost 0.4 s on each side of a 2 GB table
/// (index scans of 80k rows each) where nothing changed.
pub const HEAD_ROWS: usize = 2048;

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

/// The lower bounds of `ranges` after the first, when they are contiguous key ranges in
/// key order (each starts where the one before ends): what a one-scan comparison buckets by.
pub fn bounds_between<'a>(
    ranges: impl IntoIterator<Item = &'a ChunkRange>,
) -> Option<Vec<Vec<String>>> {
    let ranges: Vec<&ChunkRange> = ranges.into_iter().collect();
    let mut out = Vec::new();
    for pair in ranges.windows(2) {
        let (ChunkRange::Key { upper, .. }, ChunkRange::Key { lower, .. }) = (pair[0], pair[1])
        else {
            return None;
        };
        match (upper, lower) {
            (Some(u), Some(l)) if u == l => out.push(l.clone()),
            _ => return None,
        }
    }
    Some(out)
}

/// Key ranges in key order as one range: from the first's lower bound to the last's upper;
/// the whole table when they are not key ranges.
pub fn spanning(ranges: &[ChunkRange]) -> ChunkRange {
    match (ranges.first(), ranges.last()) {
        (Some(ChunkRange::Key { lower, .. }), Some(ChunkRange::Key { upper, .. })) => {
            ChunkRange::Key {
                lower: lower.clone(),
                upper: upper.clone(),
            }
        }
        _ => ChunkRange::Whole,
    }
}

/// A run of one table's refresh units that one serverless invocation compares and replaces
/// (the local refresh compares a table's units on a pool of workers instead).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    /// The table's index in the plan.
    pub table: usize,
    /// Its units' ranges, in key order (one `Whole` for a table compared whole).
    pub ranges: Vec<ChunkRange>,
}

impl Span {
    /// All of the span as one range ([`spanning`]).
    pub fn all(&self) -> ChunkRange {
        spanning(&self.ranges)
    }

    /// `schema.table ranges a-b of n` (the execution view's label), or `schema.table`.
    pub fn label(&self, plan: &Plan, first: usize, of: usize) -> String {
        let t = &plan.catalog.tables[self.table].name;
        match self.all() {
            ChunkRange::Whole => t.to_string(),
            _ => format!(
                "{t} ranges {}-{} of {of}",
                first + 1,
                first + self.ranges.len()
            ),
        }
    }
}

/// The spans of `plan`: each table's units in runs of at most `per_span` (a key range each;
/// a table compared whole is one span), each with its first unit's position in the table
/// and the table's number of units.
pub fn spans(plan: &Plan, per_span: usize) -> Vec<(Span, usize, usize)> {
    let mut by_table: BTreeMap<usize, Vec<ChunkRange>> = BTreeMap::new();
    for u in units(plan) {
        by_table.entry(u.table).or_default().push(u.range);
    }
    let mut out = Vec::new();
    for (table, ranges) in by_table {
        let of = ranges.len();
        for (k, run) in ranges.chunks(per_span.max(1)).enumerate() {
            let span = Span {
                table,
                ranges: run.to_vec(),
            };
            out.push((span, k * per_span.max(1), of));
        }
    }
    out
}

/// The service's range size and ranges per span for spans of `chunk_bytes`: ranges of a
/// sixteenth of it, at most `range_bytes` (so a span is at least 16 ranges: a change
/// replaces little of it, and small test chunks still make spans of many ranges).
pub fn span_sizes(chunk_bytes: u64, range_bytes: u64) -> (u64, usize) {
    let range = (chunk_bytes / 16).clamp(1, range_bytes.max(1));
    (range, (chunk_bytes / range).max(1) as usize)
}

/// A range of a span left to replace by the span's next invocation: a key range, one of
/// the span's or a run of one ([`crate::plan::narrow`]). Positions in the span's ranges are
/// what invocations handed over before narrowing; an execution under way across an update
/// of the functions still reads them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Pending {
    Range(ChunkRange),
    Position(usize),
}

impl Pending {
    /// The range this stands for in `span`; None for a position past its ranges.
    pub fn range_in(&self, span: &Span) -> Option<ChunkRange> {
        match self {
            Pending::Range(r) => Some(r.clone()),
            Pending::Position(i) => span.ranges.get(*i).cloned(),
        }
    }
}

/// Whether a span whose `differing` of `ranges` differ is replaced all at once (one
/// transaction; DELETE and COPY of the span) rather than range by range.
pub fn span_mostly_changed(differing: usize, ranges: usize, max_share: f64) -> bool {
    differing > 1 && differing as f64 > max_share * ranges as f64
}

/// What a serverless refresh's plan step hands every span's invocation, beside the plan:
/// the target as checked, so no invocation reads its catalog again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshSetup {
    /// The target's own description of each table, indexed like the plan's.
    pub target_tables: Vec<Option<Table>>,
    /// Each table's COPY format from source to target.
    pub formats: Vec<CopyFormat>,
    /// A span with more than this share of its ranges differing is replaced at once.
    pub max_share: f64,
    /// The spans, in the order of the chunk list's items.
    pub spans: Vec<Span>,
}

/// What one span's invocations found and did, summed ([`report_of_spans`]'s input).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpanTotals {
    pub compared: usize,
    pub differing: usize,
    /// Source rows copied into the target.
    pub rows: u64,
    /// The whole table was replaced (a unique value swapped with a range outside the span).
    #[serde(default)]
    pub whole_table: bool,
}

/// The service's refresh, per table, from its spans' totals (`done[i]` for `spans[i]`).
pub fn report_of_spans(plan: &Plan, spans: &[Span], done: &[SpanTotals]) -> RefreshReport {
    let mut report = RefreshReport::default();
    let mut by_table: BTreeMap<usize, (TableRefresh, bool)> = BTreeMap::new();
    for (span, d) in spans.iter().zip(done) {
        let (t, keyless) = by_table.entry(span.table).or_default();
        t.ranges += span.ranges.len();
        t.compared += d.compared;
        t.differing += d.differing;
        t.rows += d.rows;
        *keyless |= matches!(span.all(), ChunkRange::Whole) || d.whole_table;
        report.ranges_compared += d.compared;
        report.ranges_differing += d.differing;
    }
    for (ti, (mut t, keyless)) in by_table {
        t.table = plan.catalog.tables[ti].name.to_string();
        t.action = match () {
            _ if t.differing == 0 => "unchanged",
            _ if keyless => "whole",
            _ => "ranges",
        };
        report.tables.push(t);
    }
    report
}

#[cfg(test)]
#[path = "refresh_tests.rs"]
mod tests;
