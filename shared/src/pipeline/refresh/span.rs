//! One serverless invocation's share of a refresh: a span of one table's key ranges (or a
//! table compared whole), fingerprinted on both sides in the job's snapshot (one scan per
//! side where the key allows), each range that differs narrowed to the runs of it that
//! differ and each of those replaced in one target transaction; the span at once when most
//! of it differs or a unique value moved between its ranges (the whole table when the value
//! moved from, or swapped with, a range outside the span). Runs left when the invocation's
//! time runs out are handed to the next one (the comparison is not repeated); a span run
//! again from the start finds the runs already replaced equal, so a retry after a kill
//! replaces nothing twice.

use super::compare::{narrow_range, range_pairs};
use super::moved_unique;
use crate::error::{Error, Result};
use crate::model::chunk::{ChunkRange, Plan};
use crate::pg::copy_out::CopyOutSource;
use crate::pg::{copy_in, ledger, refresh as sql, slice};
use crate::plan::refresh::{describe, span_mostly_changed, Pending, RefreshSetup, Span};
use serde::{Deserialize, Serialize};
use std::time::Instant;
use tokio_postgres::Client;

/// One invocation's work on a span.
pub struct SpanJob<'a> {
    pub plan: &'a Plan,
    pub setup: &'a RefreshSetup,
    pub span: &'a Span,
    /// The span's label, for messages.
    pub label: &'a str,
    /// The job, which the ledger records each replaced range under.
    pub job_id: &'a str,
    /// The ranges (or runs of them) an earlier invocation found differing and left to
    /// replace; None: compare first.
    pub pending: Option<Vec<Pending>>,
    /// Replace no further range once this has passed (at least one is replaced per call).
    pub deadline: Instant,
}

/// What an invocation did on its span.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpanOutcome {
    /// Ranges compared by this invocation (0 when it continued an earlier one's).
    pub compared: usize,
    /// Ranges found differing by this invocation.
    pub differing: usize,
    /// Ranges or runs of them replaced (the span at once counts its every range).
    pub replaced: usize,
    /// Source rows and bytes copied into the target.
    pub rows: u64,
    pub bytes: u64,
    /// The span was replaced at once.
    pub whole: bool,
    /// The whole table was (a unique value moved from, or swapped with, a range outside
    /// the span).
    #[serde(default)]
    pub whole_table: bool,
    /// Ranges or runs still to replace: another invocation continues with them.
    pub pending: Vec<Pending>,
}

/// Compares (unless continuing) and replaces the span's differing ranges, `src` reading
/// the job's snapshot, `tgt` the target.
pub async fn refresh_span(src: &Client, tgt: &mut Client, job: SpanJob<'_>) -> Result<SpanOutcome> {
    let mut out = SpanOutcome::default();
    let todo = match &job.pending {
        Some(p) => resolve(&job, p)?,
        None => {
            let t = &job.plan.catalog.tables[job.span.table];
            let theirs = job.setup.target_tables.get(job.span.table);
            let rows = sql::row_hashes(t, theirs.and_then(Option::as_ref));
            let c = sql::OnBoth {
                sides: sql::Sides {
                    source: src,
                    target: tgt,
                },
                table: t,
                hashes: &rows,
                what: job.label,
            };
            let d = differing(c, &job.span.ranges).await?;
            let n = job.span.ranges.len();
            out.compared = n;
            out.differing = d.len();
            if span_mostly_changed(d.len(), n, job.setup.max_share) {
                return replace_all_at_once(src, tgt, &job, out).await;
            }
            let mut runs = Vec::new();
            for i in d {
                runs.extend(narrow_range(c, &job.span.ranges[i]).await?.runs);
            }
            runs
        }
    };
    let mut clashed = Vec::new();
    for (k, range) in todo.iter().enumerate() {
        if k > 0 && Instant::now() >= job.deadline {
            let left = todo[k..].iter().chain(&clashed).cloned();
            out.pending = left.map(Pending::Range).collect();
            return Ok(out);
        }
        match replace(src, tgt, &job, range).await {
            Ok((rows, bytes)) => {
                out.replaced += 1;
                out.rows += rows;
                out.bytes += bytes;
            }
            Err(e) if moved_unique(&e) => clashed.push(range.clone()),
            Err(e) => return Err(e),
        }
    }
    if clashed.is_empty() {
        return Ok(out);
    }
    // A unique value moved between ranges of the span: replaced together, the old rows
    // are gone before the new ones go in.
    replace_all_at_once(src, tgt, &job, out).await
}

/// The ranges an earlier invocation left to replace.
fn resolve(job: &SpanJob<'_>, pending: &[Pending]) -> Result<Vec<ChunkRange>> {
    pending
        .iter()
        .map(|p| {
            p.range_in(job.span).ok_or_else(|| Error::JobData {
                path: job.label.to_string(),
                message: format!("the span has no range {p:?} to continue with"),
            })
        })
        .collect()
}

/// Replaces the whole span in one transaction. A unique value that still clashes moved from
/// a range outside the span not replaced yet (or is swapped with one, which no order of
/// ranges resolves): the whole table then, in one transaction. What clashes even so met
/// another invocation's replacement of the same rows: run again, it finds them equal
/// ([`Error::RangeClash`], retried).
async fn replace_all_at_once(
    src: &Client,
    tgt: &mut Client,
    job: &SpanJob<'_>,
    mut out: SpanOutcome,
) -> Result<SpanOutcome> {
    let mut tried = Vec::new();
    for range in [job.span.all(), ChunkRange::Whole] {
        if tried.contains(&range) {
            continue;
        }
        match replace(src, tgt, job, &range).await {
            Ok((rows, bytes)) => {
                out.whole = true;
                out.whole_table = range == ChunkRange::Whole;
                out.replaced = job.span.ranges.len();
                out.rows = rows;
                out.bytes = bytes;
                out.pending.clear();
                return Ok(out);
            }
            Err(e) if moved_unique(&e) => tried.push(range),
            Err(e) => return Err(e),
        }
    }
    Err(Error::RangeClash {
        table: job.plan.catalog.tables[job.span.table].name.to_string(),
        span: job.label.to_string(),
        message: "another invocation is replacing the same rows".into(),
    })
}

/// The positions of `ranges` (of the table `c` compares) whose fingerprints differ.
async fn differing(c: sql::OnBoth<'_>, ranges: &[ChunkRange]) -> Result<Vec<usize>> {
    let pairs = range_pairs(c, ranges).await?;
    Ok(pairs
        .iter()
        .enumerate()
        .filter(|(_, (s, d))| s != d)
        .map(|(i, _)| i)
        .collect())
}

/// Replaces `range` of the span's table in one target transaction: rows and bytes copied.
async fn replace(
    src: &Client,
    tgt: &mut Client,
    job: &SpanJob<'_>,
    range: &ChunkRange,
) -> Result<(u64, u64)> {
    let t = &job.plan.catalog.tables[job.span.table];
    let format = job
        .setup
        .formats
        .get(job.span.table)
        .copied()
        .unwrap_or_default();
    let what = job.label;
    let cond = slice::range_condition(t.key.as_ref(), range);
    let mut from =
        CopyOutSource::start_as(src, t, range, format, format!("copying {what}")).await?;
    let subject = format!("{what}: {}", describe(range));
    let key = ledger::PartKey {
        job_id: job.job_id,
        part_id: &subject,
    };
    let stats = copy_in::replace_rows(tgt, t, cond.as_deref(), &mut from, key).await?;
    Ok((stats.rows, stats.bytes))
}
