//! The service's refresh (`"mode": "refresh"`): the plan step groups the ranges into spans
//! and checks the target ([`refresh_items`]); one invocation per span compares it with the
//! target in the job's snapshot and replaces the ranges that differ, handing what is left
//! to the next when its time runs out ([`refresh_step`]); the assembler checks that every
//! span finished and reads the sequences ([`assemble_refresh`]); the finalize step sets
//! them, analyzes what changed and ends the job ([`finish_refresh`]). No part is written:
//! the data goes from the source's snapshot straight into the target.

use super::assemble::sequences_once_complete;
use super::export::{open_reader, with_lease};
use super::{read_plan, to_json, ChunkItem, ExportStep, ExportStepResult, JobPlace};
use crate::cloud::jobstore::{Counters, JobChange, JobStatus, Phase};
use crate::error::{Error, Result, Role};
use crate::model::catalog::Sequence;
use crate::model::options::Analyze;
use crate::parts::PartStore;
use crate::pg::conn::ConnSpec;
use crate::pipeline::progress::NoProgress;
use crate::pipeline::refresh::span::{refresh_span, SpanJob, SpanOutcome};
use crate::pipeline::refresh::{set_up_spans, settle, Settle, SpanSetup};
use crate::plan::refresh::{report_of_spans, RefreshReport, RefreshSetup, SpanTotals};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Store key of the spans and the target as the plan step checked it.
pub const REFRESH_KEY: &str = "refresh.json";
/// Store key of what the assembler found: every span's totals and the sequences.
pub const REFRESHED_KEY: &str = "refreshed.json";
/// Store key of the refresh's report per table (written by the finalize step, for people).
pub const REPORT_KEY: &str = "refresh-report.json";

/// Store key of the result of a span's `segment`th invocation.
fn span_result_key(span: usize, segment: u32) -> String {
    format!("spans/{span:06}.{segment:04}.json")
}

/// What one invocation on a span records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpanResult {
    /// The span's position in [`RefreshSetup::spans`].
    pub span: usize,
    /// The invocation.
    pub segment: u32,
    /// What it did.
    pub outcome: SpanOutcome,
}

/// The refresh's chunk list: one item per span of the plan (`item.chunk` is the span's
/// position), after `target` passed a sync's checks and allows replica mode; writes what
/// every span's invocation needs ([`REFRESH_KEY`]).
pub async fn refresh_items(s: SpanSetup<'_>, store: &dyn PartStore) -> Result<Vec<ChunkItem>> {
    let (plan, job_id) = (s.plan, s.job_id);
    let (setup, spans) = set_up_spans(s).await?;
    store.put(REFRESH_KEY, &to_json(&setup)).await?;
    Ok(spans
        .iter()
        .enumerate()
        .map(|(i, (span, first, of))| ChunkItem {
            job_id: job_id.to_string(),
            table: span.table,
            chunk: i,
            label: span.label(plan, *first, *of),
        })
        .collect())
}

async fn read_json<T: for<'de> Deserialize<'de>>(store: &dyn PartStore, key: &str) -> Result<T> {
    let data = store.get(key).await?;
    serde_json::from_slice(&data).map_err(|e| Error::JobData {
        path: store.location(key),
        message: format!("unreadable: {e}"),
    })
}

/// One invocation on a span: compares it (or continues the ranges an earlier invocation
/// left), replaces what differs until `deadline` (and the step's budget), records what it
/// did next to the job and adds it to the job's counters. Holds one of the source's
/// connection leases as an export does.
pub async fn refresh_step(
    source: &ConnSpec,
    target: &ConnSpec,
    snapshot: &str,
    place: JobPlace<'_>,
    step: &ExportStep,
    deadline: Instant,
) -> Result<ExportStepResult> {
    let work = refresh_span_of(source, target, snapshot, place, step, deadline);
    with_lease(source, place, step, deadline, work).await
}

async fn refresh_span_of(
    source: &ConnSpec,
    target: &ConnSpec,
    snapshot: &str,
    place: JobPlace<'_>,
    step: &ExportStep,
    mut deadline: Instant,
) -> Result<ExportStepResult> {
    let store = place.store;
    let plan = read_plan(store).await?;
    let setup: RefreshSetup = read_json(store, REFRESH_KEY).await?;
    let at = step.item.chunk;
    let span = setup.spans.get(at).ok_or_else(|| Error::JobData {
        path: store.location(REFRESH_KEY),
        message: format!("has no span {}", step.item.label),
    })?;
    let (src, _) = open_reader(source, snapshot, place.jobs, step).await?;
    let app = format!("dbsync-{}-refresh", step.item.job_id);
    let mut tgt = target.connect(Role::Target, &app).await?;
    let table = plan.catalog.tables[span.table].name.to_string();
    place.jobs.progress(&step.item.job_id, &table, 0).await?;
    if let Some(b) = step.tuning.budget_seconds {
        deadline = deadline.min(Instant::now() + std::time::Duration::from_secs(b));
    }
    let job = SpanJob {
        plan: &plan,
        setup: &setup,
        span,
        label: &step.item.label,
        job_id: &step.item.job_id,
        pending: step.pending.clone(),
        deadline,
    };
    let outcome = refresh_span(&src, &mut tgt, job).await?;
    let done = outcome.pending.is_empty();
    let (rows, pending) = (outcome.rows, outcome.pending.clone());
    let result = SpanResult {
        span: at,
        segment: step.segment,
        outcome,
    };
    let key = record_span(place, &step.item.job_id, &result).await?;
    Ok(ExportStepResult {
        next: ExportStep {
            item: step.item.clone(),
            segment: step.segment + 1,
            resume: None,
            pending: (!done).then_some(pending),
            tuning: step.tuning.clone(),
        },
        part_id: key,
        rows,
        done,
    })
}

/// Records a span invocation's result and adds it to the job's counters, once: a retry of
/// an invocation that died after recording (same input) finds the same result there.
async fn record_span(place: JobPlace<'_>, job_id: &str, r: &SpanResult) -> Result<String> {
    let key = span_result_key(r.span, r.segment);
    let counted = match place.store.get(&key).await {
        Ok(old) => serde_json::from_slice::<SpanResult>(&old).is_ok_and(|old| old == *r),
        Err(_) => false,
    };
    place.store.put(&key, &to_json(r)).await?;
    if !counted {
        let delta = Counters {
            chunks_done: u64::from(r.outcome.pending.is_empty()),
            parts_done: 0,
            rows: r.outcome.rows,
            bytes: r.outcome.bytes,
        };
        place.jobs.add(job_id, delta).await?;
    }
    Ok(key)
}

/// What the assembler found ([`REFRESHED_KEY`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Refreshed {
    /// Tables in scope.
    pub tables: usize,
    /// Each span's totals, in the spans' order.
    pub spans: Vec<SpanTotals>,
    /// The source's sequences, read after every span finished.
    pub sequences: Vec<Sequence>,
}

/// Checks that every span's last invocation finished, reads the sequences (after the data,
/// so never behind it), records both ([`REFRESHED_KEY`]) and lets the snapshot go.
pub async fn assemble_refresh(
    source: &ConnSpec,
    place: JobPlace<'_>,
    job_id: &str,
) -> Result<Refreshed> {
    let JobPlace { store, jobs } = place;
    let plan = read_plan(store).await?;
    let setup: RefreshSetup = read_json(store, REFRESH_KEY).await?;
    let mut totals = vec![SpanTotals::default(); setup.spans.len()];
    let mut finished = vec![false; setup.spans.len()];
    for key in store.list("spans/").await?.into_iter().map(|o| o.key) {
        let r: SpanResult = read_json(store, &key).await?;
        let Some(t) = totals.get_mut(r.span) else {
            continue;
        };
        t.compared += r.outcome.compared;
        t.differing += r.outcome.differing;
        t.rows += r.outcome.rows;
        t.whole_table |= r.outcome.whole_table;
        finished[r.span] |= r.outcome.pending.is_empty();
    }
    let missing: Vec<String> = setup
        .spans
        .iter()
        .zip(&finished)
        .enumerate()
        .filter(|(_, (_, done))| !**done)
        .map(|(i, (s, _))| format!("{} span {}", plan.catalog.tables[s.table].name, i + 1))
        .collect();
    let sequences = sequences_once_complete(source, job_id, &plan, missing).await?;
    let done = Refreshed {
        tables: plan.catalog.tables.len(),
        spans: totals,
        sequences,
    };
    store.put(REFRESHED_KEY, &to_json(&done)).await?;
    let change = JobChange {
        phase: Some(Phase::Finalizing),
        // Every span is done: the snapshot holder may let go.
        exports_done: Some(true),
        ..Default::default()
    };
    jobs.update(job_id, change).await?;
    Ok(done)
}

/// Ends a refresh: sequences set, the tables that changed analyzed (as `analyze` says), the
/// report per table written ([`REPORT_KEY`]), the job marked succeeded and the target's
/// lock released. Idempotent.
pub async fn finish_refresh(
    target: &ConnSpec,
    place: JobPlace<'_>,
    job_id: &str,
    lock_key: Option<&str>,
    analyze: Analyze,
) -> Result<RefreshReport> {
    let JobPlace { store, jobs } = place;
    let plan = read_plan(store).await?;
    let setup: RefreshSetup = read_json(store, REFRESH_KEY).await?;
    let done: Refreshed = read_json(store, REFRESHED_KEY).await?;
    let report = report_of_spans(&plan, &setup.spans, &done.spans);
    let client = target
        .connect(Role::Target, &format!("dbsync-{job_id}-finish"))
        .await?;
    let end = Settle {
        target: &client,
        job_id,
        plan: &plan,
        report: &report,
        sequences: &done.sequences,
        analyze,
    };
    settle(end, &NoProgress).await?;
    store.put(REPORT_KEY, &to_json(&report)).await?;
    let last = report.tables.last().map(|t| t.table.clone());
    jobs.progress(
        job_id,
        &last.unwrap_or_default(),
        report.tables.len() as u64,
    )
    .await?;
    let change = JobChange {
        status: Some(JobStatus::Succeeded),
        phase: Some(Phase::Done),
        ..Default::default()
    };
    jobs.update(job_id, change).await?;
    if let Some(k) = lock_key {
        jobs.release_target(k, job_id).await?;
    }
    Ok(report)
}
