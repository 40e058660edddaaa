//! The export step: one budgeted invocation exports a segment of a chunk in the held snapshot
//! (or, with per-chunk consistency once it is gone, its own), records the part's result
//! next to it, adds to the job's counters and says where the next invocation continues.

use super::{read_plan, result_key, to_json, ChunkItem, JobPlace, PartResult, PLAN_KEY};
use crate::cloud::jobstore::{Counters, JobStore};
use crate::error::{Error, Result};
use crate::model::chunk::Resume;
use crate::model::manifest::Consistency;
use crate::model::part::{segment_id, segment_key, ExportedPart};
use crate::pg::conn::ConnSpec;
use crate::pg::snapshot::{join_snapshot, open_snapshot};
use crate::pipeline::segment::{export_segment, Budget, PartTarget, SegmentSpec};
use crate::plan::refresh::Pending;
use serde::{Deserialize, Serialize};
use std::time::Instant;
use tokio_postgres::Client;

/// One export invocation's input: a chunk item plus where to continue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportStep {
    /// The chunk.
    #[serde(flatten)]
    pub item: ChunkItem,
    /// Segment number of this invocation (0 first).
    #[serde(default)]
    pub segment: u32,
    /// Where the previous invocation stopped.
    #[serde(default)]
    pub resume: Option<Resume>,
    /// A refresh's span: the ranges (or runs of them) an earlier invocation found differing
    /// and left to replace (absent: compare the span first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Vec<Pending>>,
    /// How much each invocation does, and what it may read.
    #[serde(flatten, default)]
    pub tuning: ExportTuning,
}

/// The request's export settings, carried along with every step of a chunk.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportTuning {
    /// Seconds of work per invocation before it hands over a continuation (absent: until
    /// the invocation's own deadline). Small values force continuations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_seconds: Option<u64>,
    /// Rows per keyset page (default 50,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_rows: Option<u64>,
    /// What to do when the job's snapshot is gone: fail (`snapshot`), or read a snapshot
    /// of this invocation's own and record it on the part (`per_chunk`).
    #[serde(default)]
    pub consistency: Consistency,
    /// Chunk exports the source takes at once, all jobs together: each invocation holds one
    /// of this many connection leases on the source while it reads (none: no leases).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_limit: Option<u32>,
}

/// One export invocation's output: the input for the next invocation when `resume` is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportStepResult {
    /// The chunk, and the segment the next invocation writes.
    #[serde(flatten)]
    pub next: ExportStep,
    /// The part this invocation wrote.
    pub part_id: String,
    /// Rows in it.
    pub rows: u64,
    /// False while the chunk needs another invocation.
    pub done: bool,
}

/// Records a segment's part next to it (the assembler's input) and adds it to the job's
/// counters; returns its id.
async fn record_part(
    place: JobPlace<'_>,
    job_id: &str,
    part: ExportedPart,
    last: bool,
) -> Result<String> {
    let delta = Counters {
        chunks_done: u64::from(last),
        parts_done: 0,
        rows: part.stats.rows,
        bytes: part.stats.bytes,
    };
    let result = PartResult { part, last };
    let key = result_key(&result.part.id);
    // Step Functions retries an invocation that died after writing its part (a kill, a
    // timeout before the reply) with the same input: the part and its result come out the
    // same, and the counters must not count them twice. A result already there with the same
    // contents was counted by the invocation that wrote it.
    let counted = match place.store.get(&key).await {
        Ok(old) => serde_json::from_slice::<PartResult>(&old)
            .is_ok_and(|old| old.part.stats == result.part.stats && old.last == last),
        Err(_) => false,
    };
    place.store.put(&key, &to_json(&result)).await?;
    if !counted {
        place.jobs.add(job_id, delta).await?;
    }
    Ok(result.part.id)
}

/// A source session in the job's snapshot, under the id its holders hold now (they relay it;
/// `snapshot`, the plan's, when the record has none); with per-chunk consistency, once that
/// is gone, in a snapshot of its own (returned, to be recorded on the part).
pub(super) async fn open_reader(
    source: &ConnSpec,
    snapshot: &str,
    jobs: &dyn JobStore,
    step: &ExportStep,
) -> Result<(Client, Option<String>)> {
    let app = format!("dbsync-{}-read", step.item.job_id);
    let current = jobs.get(&step.item.job_id).await?.and_then(|j| j.snapshot);
    match join_snapshot(source, current.as_deref().unwrap_or(snapshot), &app).await {
        Err(Error::SnapshotReleased(_)) if step.tuning.consistency == Consistency::PerChunk => {
            let (c, s) = open_snapshot(source, &app).await?;
            tracing::warn!(job = %step.item.job_id, chunk = %step.item.label, snapshot = %s,
                "the job's snapshot is gone; per-chunk consistency: this segment reads its own");
            Ok((c, Some(s)))
        }
        other => Ok((other?, None)),
    }
}

/// Exports one segment of a chunk in the held snapshot until `deadline`, records its result
/// next to the part (durably, so the assembler needs no Map results), adds to the job's
/// counters, and returns where to continue. With a connection limit, it first takes one of
/// the source's connection leases ([`Error::ConnectionsBusy`] when none is free: the state
/// machine waits and retries) and gives it back however the segment ends; one that dies
/// lets its lease expire at its deadline.
pub async fn export_step(
    source: &ConnSpec,
    snapshot: &str,
    place: JobPlace<'_>,
    step: &ExportStep,
    deadline: Instant,
    compress_level: u32,
) -> Result<ExportStepResult> {
    let work = export_segment_of(source, snapshot, place, step, deadline, compress_level);
    with_lease(source, place, step, deadline, work).await
}

/// Runs `work` (a step reading the source) holding one of the source's connection leases
/// when the step has a connection limit ([`Error::ConnectionsBusy`] when none is free),
/// given back however it ends.
pub(super) async fn with_lease<T>(
    source: &ConnSpec,
    place: JobPlace<'_>,
    step: &ExportStep,
    deadline: Instant,
    work: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    let Some(limit) = step.tuning.connection_limit else {
        return work.await;
    };
    let endpoint = source.identity();
    let holder = step.item.lease_holder(step.segment);
    let ttl = deadline.saturating_duration_since(Instant::now()).as_secs() + 60;
    if !place
        .jobs
        .acquire_lease(&endpoint, &holder, limit, ttl)
        .await?
    {
        return Err(Error::ConnectionsBusy { endpoint, limit });
    }
    let done = work.await;
    if let Err(e) = place.jobs.release_lease(&endpoint, &holder).await {
        tracing::warn!(endpoint = %endpoint, holder = %holder, error = %e,
            "could not give the connection lease back; it expires by itself");
    }
    done
}

async fn export_segment_of(
    source: &ConnSpec,
    snapshot: &str,
    place: JobPlace<'_>,
    step: &ExportStep,
    mut deadline: Instant,
    compress_level: u32,
) -> Result<ExportStepResult> {
    let store = place.store;
    let plan = read_plan(store).await?;
    let chunk = plan
        .chunks
        .iter()
        .find(|c| c.table == step.item.table && c.seq == step.item.chunk)
        .cloned()
        .ok_or_else(|| Error::JobData {
            path: store.location(PLAN_KEY),
            message: format!("has no chunk {}", step.item.label),
        })?;
    let table = &plan.catalog.tables[chunk.table];
    let (client, own_snapshot) = open_reader(source, snapshot, place.jobs, step).await?;
    place
        .jobs
        .progress(&step.item.job_id, &table.name.to_string(), 0)
        .await?;
    if let Some(b) = step.tuning.budget_seconds {
        deadline = deadline.min(Instant::now() + std::time::Duration::from_secs(b));
    }
    let key = segment_key(&chunk, step.segment);
    let spec = SegmentSpec {
        table,
        range: &chunk.range,
        resume: step.resume.as_ref(),
        budget: Budget {
            deadline,
            page_rows: step.tuning.page_rows.unwrap_or(50_000).max(1),
            page_blocks: 1_000,
        },
        context: format!(
            "exporting {} of {}",
            segment_id(&chunk, step.segment),
            table.name
        ),
    };
    let target = PartTarget {
        store,
        key: &key,
        level: compress_level,
    };
    let seg = export_segment(&client, spec, target).await?;
    let part = ExportedPart {
        id: segment_id(&chunk, step.segment),
        key,
        stats: seg.stats.clone(),
        compressed_bytes: seg.compressed_bytes,
        chunk,
        snapshot: own_snapshot,
    };
    let done = seg.resume.is_none();
    let rows = seg.stats.rows;
    let part_id = record_part(place, &step.item.job_id, part, done).await?;
    Ok(ExportStepResult {
        next: ExportStep {
            item: step.item.clone(),
            segment: step.segment + 1,
            resume: seg.resume,
            pending: None,
            tuning: step.tuning.clone(),
        },
        part_id,
        rows,
        done,
    })
}

/// The export-chunk function's input: an export step, the source's secret id and the held
/// snapshot. Its output has the same shape plus the step's result, so the state machine's
/// loop feeds each output back in while `done` is false.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportChunkEvent {
    /// Secrets Manager id of the source's credentials.
    pub source_secret: String,
    /// The snapshot every export of the job reads.
    pub snapshot: String,
    /// Secrets Manager id of the data rules' hash key, when the job has hash rules.
    #[serde(default)]
    pub rules_key_secret: Option<String>,
    /// A refresh (`"mode": "refresh"`): the target's secret id; the item is a span to
    /// compare with the target and replace where it differs, no part is written.
    #[serde(default)]
    pub refresh_target_secret: Option<String>,
    /// The chunk and where to continue.
    #[serde(flatten)]
    pub step: ExportStep,
}

/// The export-chunk function's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportChunkOutput {
    /// Passed through for the next invocation.
    pub source_secret: String,
    /// Passed through for the next invocation.
    pub snapshot: String,
    /// Passed through for the next invocation.
    #[serde(default)]
    pub rules_key_secret: Option<String>,
    /// Passed through for the next invocation.
    #[serde(default)]
    pub refresh_target_secret: Option<String>,
    /// What this invocation did, and the next step.
    #[serde(flatten)]
    pub result: ExportStepResult,
}
