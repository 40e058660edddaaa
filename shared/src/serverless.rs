//! The serverless pipeline's steps, each one function a Lambda handler calls: state moves
//! between invocations only through the part store (plan, chunk list, parts, per-part results)
//! and the job store (snapshot id, totals, counters). Handlers resolve credentials and
//! settings; nothing here knows about Lambda or Step Functions.

use crate::conn::ConnSpec;
use crate::copy_out::{export_segment, Budget};
use crate::error::{Error, Result};
use crate::job::{build_plan, join_snapshot, segment_id, segment_key, ExportedPart};
use crate::jobs::{Counters, JobChange, JobStore, Phase};
use crate::plan::{Plan, Resume};
use crate::scope::Scope;
use crate::store::PartStore;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Store key of the plan (catalog, FK order, chunks).
pub const PLAN_KEY: &str = "plan.json";
/// Store key of the chunk list the export Map reads its items from.
pub const CHUNKS_KEY: &str = "chunks.json";

/// The object key, within `bucket`, of `key` in `store` - what a Distributed Map's
/// ItemReader needs.
pub fn bucket_key(store: &dyn PartStore, bucket: &str, key: &str) -> String {
    store
        .location(key)
        .trim_start_matches(&format!("s3://{bucket}/"))
        .to_string()
}

/// Store key of the result record of a part.
pub fn result_key(part_id: &str) -> String {
    format!("results/{part_id}.json")
}

/// What an export invocation records next to its part, for the assembler.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartResult {
    /// The part.
    pub part: ExportedPart,
    /// The chunk's last segment: the chunk is complete.
    pub last: bool,
}

/// One item of the export Map: a chunk to export, labelled for the console.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkItem {
    /// The job.
    pub job_id: String,
    /// Table index in the plan.
    pub table: usize,
    /// Chunk position within the table.
    pub chunk: usize,
    /// `schema.table #n`, shown in the execution view.
    pub label: String,
}

/// What planning found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSummary {
    /// Tables in scope.
    pub tables: usize,
    /// Chunks to export.
    pub chunks: usize,
    /// Where the chunk list is, in the store.
    pub chunks_key: String,
}

/// Plans the job inside the held snapshot and writes the plan and the chunk list to the store
/// (Step Functions state is capped at 256 KiB: thousands of chunks never travel inline).
pub async fn plan_job(
    source: &ConnSpec,
    snapshot: &str,
    store: &dyn PartStore,
    jobs: &dyn JobStore,
    job_id: &str,
    scope: &Scope,
    chunk_bytes: u64,
) -> Result<PlanSummary> {
    let client = join_snapshot(source, snapshot, &format!("dbsync-{job_id}-plan")).await?;
    let plan = build_plan(&client, scope, chunk_bytes).await?;
    store.put(PLAN_KEY, &to_json(&plan)).await?;
    let items: Vec<ChunkItem> = plan
        .chunks
        .iter()
        .map(|c| ChunkItem {
            job_id: job_id.to_string(),
            table: c.table,
            chunk: c.seq,
            label: format!("{} #{}", plan.catalog.tables[c.table].name, c.seq),
        })
        .collect();
    store.put(CHUNKS_KEY, &to_json(&items)).await?;
    jobs.update(
        job_id,
        JobChange {
            phase: Some(Phase::Exporting),
            totals: Some((plan.chunks.len() as u64, 0)),
            ..Default::default()
        },
    )
    .await?;
    Ok(PlanSummary {
        tables: plan.catalog.tables.len(),
        chunks: plan.chunks.len(),
        chunks_key: CHUNKS_KEY.to_string(),
    })
}

/// Waits for the snapshot holder running beside the plan to publish its snapshot on the job
/// record; refuses when the job stops first or nothing is published before `deadline`.
pub async fn await_snapshot(
    jobs: &dyn JobStore,
    job_id: &str,
    deadline: Instant,
) -> Result<String> {
    let waited = Instant::now();
    loop {
        match jobs.get(job_id).await? {
            Some(j) if j.snapshot.is_some() => return Ok(j.snapshot.unwrap_or_default()),
            Some(j)
                if matches!(
                    j.status,
                    crate::jobs::JobStatus::Failed | crate::jobs::JobStatus::Cancelled
                ) =>
            {
                return Err(Error::Incomplete {
                    job: job_id.to_string(),
                    missing: vec![format!(
                        "the source snapshot (job {} before it was published)",
                        j.status.as_str()
                    )],
                })
            }
            Some(_) => {}
            None => {
                return Err(Error::Io {
                    path: format!("job {job_id}"),
                    message: "no such job".into(),
                    retryable: false,
                })
            }
        }
        if Instant::now() >= deadline {
            return Err(Error::Io {
                path: format!("job {job_id}"),
                message: format!(
                    "the snapshot holder published no snapshot within {} s",
                    waited.elapsed().as_secs()
                ),
                retryable: false,
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// JSON bytes of our own plain data types, which always serialise.
fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// Reads the plan a [`plan_job`] wrote.
pub async fn read_plan(store: &dyn PartStore) -> Result<Plan> {
    let data = store.get(PLAN_KEY).await?;
    serde_json::from_slice(&data).map_err(|e| Error::Manifest {
        path: store.location(PLAN_KEY),
        message: format!("unreadable plan: {e}"),
    })
}

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
    pub consistency: crate::api::Consistency,
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

/// Exports one segment of a chunk in the held snapshot until `deadline`, records its result
/// next to the part (durably, so the assembler needs no Map results), adds to the job's
/// counters, and returns where to continue.
pub async fn export_step(
    source: &ConnSpec,
    snapshot: &str,
    store: &dyn PartStore,
    jobs: &dyn JobStore,
    step: &ExportStep,
    mut deadline: Instant,
    compress_level: u32,
) -> Result<ExportStepResult> {
    let plan = read_plan(store).await?;
    let chunk = plan
        .chunks
        .iter()
        .find(|c| c.table == step.item.table && c.seq == step.item.chunk)
        .cloned()
        .ok_or_else(|| Error::Manifest {
            path: store.location(PLAN_KEY),
            message: format!("has no chunk {}", step.item.label),
        })?;
    let table = &plan.catalog.tables[chunk.table];
    let app = format!("dbsync-{}-read", step.item.job_id);
    let (client, own_snapshot) = match join_snapshot(source, snapshot, &app).await {
        Err(Error::SnapshotReleased(_))
            if step.tuning.consistency == crate::api::Consistency::PerChunk =>
        {
            let (c, s) = crate::job::open_snapshot(source, &app).await?;
            tracing::warn!(job = %step.item.job_id, chunk = %step.item.label, snapshot = %s,
                "the job's snapshot is gone; per-chunk consistency: this segment reads its own");
            (c, Some(s))
        }
        other => (other?, None),
    };
    if let Some(b) = step.tuning.budget_seconds {
        deadline = deadline.min(Instant::now() + std::time::Duration::from_secs(b));
    }
    let key = segment_key(&chunk, step.segment);
    let seg = export_segment(
        &client,
        table,
        &chunk.range,
        step.resume.as_ref(),
        Budget {
            deadline,
            page_rows: step.tuning.page_rows.unwrap_or(50_000).max(1),
            page_blocks: 1_000,
        },
        format!(
            "exporting {} of {}",
            segment_id(&chunk, step.segment),
            table.name
        ),
        store,
        &key,
        compress_level,
    )
    .await?;
    let part = ExportedPart {
        id: segment_id(&chunk, step.segment),
        key,
        stats: seg.stats.clone(),
        compressed_bytes: seg.compressed_bytes,
        chunk,
        snapshot: own_snapshot,
    };
    let done = seg.resume.is_none();
    let result = PartResult { part, last: done };
    store
        .put(&result_key(&result.part.id), &to_json(&result))
        .await?;
    let part = result.part;
    jobs.add(
        &step.item.job_id,
        Counters {
            chunks_done: u64::from(done),
            parts_done: 0,
            rows: seg.stats.rows,
            bytes: seg.stats.bytes,
        },
    )
    .await?;
    Ok(ExportStepResult {
        next: ExportStep {
            item: step.item.clone(),
            segment: step.segment + 1,
            resume: seg.resume,
            tuning: step.tuning.clone(),
        },
        part_id: part.id,
        rows: seg.stats.rows,
        done,
    })
}

/// Assembles the job: reads every part's result from the store, checks that every planned
/// chunk got its last segment, reads the sequences (after the data, so never behind it),
/// writes the manifest and moves the job to importing with its part total.
pub async fn assemble_job(
    source: &ConnSpec,
    store: &dyn PartStore,
    jobs: &dyn JobStore,
    job_id: &str,
    snapshot: &str,
) -> Result<crate::manifest::Manifest> {
    let started = Instant::now();
    let plan = read_plan(store).await?;
    let mut parts = Vec::new();
    let mut complete = std::collections::BTreeSet::new();
    for key in store.list("results/").await? {
        let data = store.get(&key).await?;
        let r: PartResult = serde_json::from_slice(&data).map_err(|e| Error::Manifest {
            path: store.location(&key),
            message: format!("unreadable part result: {e}"),
        })?;
        if r.last {
            complete.insert((r.part.chunk.table, r.part.chunk.seq));
        }
        parts.push(r.part);
    }
    let missing: Vec<String> = plan
        .chunks
        .iter()
        .filter(|c| !complete.contains(&(c.table, c.seq)))
        .map(|c| format!("{} #{}", plan.catalog.tables[c.table].name, c.seq))
        .collect();
    if !missing.is_empty() {
        return Err(Error::Incomplete {
            job: job_id.to_string(),
            missing,
        });
    }
    let client = source
        .connect(crate::Role::Source, &format!("dbsync-{job_id}-asm"))
        .await?;
    let mut sequences = plan.catalog.sequences.clone();
    crate::catalog::read_sequence_values(&client, crate::Role::Source, &mut sequences).await?;
    let n_parts = parts.len() as u64;
    let m = crate::job::assemble(
        &plan,
        job_id.to_string(),
        crate::jobs::now_rfc3339(),
        snapshot.to_string(),
        parts,
        sequences,
        std::collections::BTreeMap::from([(
            "assemble".to_string(),
            started.elapsed().as_millis() as u64,
        )]),
    );
    store.put(crate::manifest::KEY, &m.to_json()).await?;
    jobs.update(
        job_id,
        JobChange {
            phase: Some(Phase::Importing),
            totals: Some((plan.chunks.len() as u64, n_parts)),
            // Every chunk is exported: the snapshot holder may let go.
            exports_done: Some(true),
            ..Default::default()
        },
    )
    .await?;
    Ok(m)
}

/// Prepares the target for the import Map (pre-flight checks, truncate, drops; see
/// [`crate::job::prepare_import`]) and returns the waves of part ids.
pub async fn prepare_step(
    target: &ConnSpec,
    store: &dyn PartStore,
    opts: &crate::job::Options,
) -> Result<crate::job::ImportPlan> {
    let m = crate::manifest::Manifest::read(store).await?;
    crate::job::prepare_import(target, &m, opts).await
}

/// One import invocation: loads one part (exactly once) and adds it to the job's counters
/// when it was loaded now.
pub async fn import_step(
    target: &ConnSpec,
    store: &dyn PartStore,
    jobs: &dyn JobStore,
    plan: &crate::job::ImportPlan,
    part_id: &str,
) -> Result<crate::copy_in::LoadOutcome> {
    let m = crate::manifest::Manifest::read(store).await?;
    let mut client = crate::job::connect_part_loader(target, plan).await?;
    let outcome = crate::job::import_part(&mut client, &m, part_id, store).await?;
    if let crate::copy_in::LoadOutcome::Loaded(s) = &outcome {
        jobs.add(
            &m.job_id,
            Counters {
                chunks_done: 0,
                parts_done: 1,
                rows: s.rows,
                bytes: s.bytes,
            },
        )
        .await?;
    }
    Ok(outcome)
}

/// Finishes the job: [`crate::job::finalize_import`], then the rows the ledger recorded per
/// table are checked against the manifest, the job marked succeeded and the target's lock
/// released. Idempotent.
pub async fn finalize_job(
    target: &ConnSpec,
    store: &dyn PartStore,
    jobs: &dyn JobStore,
    lock_key: Option<&str>,
) -> Result<()> {
    let m = crate::manifest::Manifest::read(store).await?;
    jobs.update(
        &m.job_id,
        JobChange {
            phase: Some(Phase::Finalizing),
            ..Default::default()
        },
    )
    .await?;
    crate::job::finalize_import(target, &m).await?;
    let client = target
        .connect(crate::Role::Target, &format!("dbsync-{}-check", m.job_id))
        .await?;
    let loaded: std::collections::BTreeMap<String, i64> =
        crate::ledger::loaded_rows(&client, &m.job_id)
            .await?
            .into_iter()
            .map(|(t, _, rows)| (t, rows))
            .collect();
    let differences: Vec<String> = m
        .tables
        .iter()
        .filter_map(|t| {
            let want: u64 = t.parts.iter().map(|p| p.stats.rows).sum();
            let got = loaded.get(&t.table.name.to_string()).copied().unwrap_or(0);
            (got as u64 != want)
                .then(|| format!("table {}: manifest {want} rows, ledger {got}", t.table.name))
        })
        .collect();
    if !differences.is_empty() {
        return Err(Error::VerifyMismatch { differences });
    }
    jobs.update(
        &m.job_id,
        JobChange {
            status: Some(crate::jobs::JobStatus::Succeeded),
            phase: Some(Phase::Done),
            ..Default::default()
        },
    )
    .await?;
    if let Some(k) = lock_key {
        jobs.release_target(k, &m.job_id).await?;
    }
    Ok(())
}

/// Finishes an export-only job: the manifest is written, nothing is loaded.
pub async fn finish_export(jobs: &dyn JobStore, job_id: &str) -> Result<()> {
    jobs.update(
        job_id,
        JobChange {
            status: Some(crate::jobs::JobStatus::Succeeded),
            phase: Some(Phase::Done),
            ..Default::default()
        },
    )
    .await
}

/// The Catch path: records the error on the job (stable name, message without secrets) and
/// releases the target's lock. The target stays resumable: its ledger knows what was done.
pub async fn fail_job(
    jobs: &dyn JobStore,
    job_id: &str,
    error: crate::jobs::JobError,
    lock_key: Option<&str>,
) -> Result<()> {
    // The first error recorded is the cause; a later one is its echo (a Map reports its
    // failed child as States.ExceedToleratedFailureThreshold, after the child recorded why).
    let first = match jobs.get(job_id).await? {
        Some(j) if j.error.is_some() => None,
        _ => Some(error),
    };
    jobs.update(
        job_id,
        JobChange {
            status: Some(crate::jobs::JobStatus::Failed),
            error: first,
            exports_done: Some(true),
            ..Default::default()
        },
    )
    .await?;
    if let Some(k) = lock_key {
        jobs.release_target(k, job_id).await?;
    }
    Ok(())
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
    /// What this invocation did, and the next step.
    #[serde(flatten)]
    pub result: ExportStepResult,
}

/// The plan function's input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanEvent {
    /// The job.
    pub job_id: String,
    /// Secrets Manager id of the source's credentials.
    pub source_secret: String,
    /// The held snapshot to plan in; absent: the one the job's snapshot holder (running
    /// beside this step) publishes on the job record, waited for.
    #[serde(default)]
    pub snapshot: Option<String>,
    /// Tables in scope.
    #[serde(default)]
    pub scope: Scope,
    /// Chunk size in bytes (default 256 MiB).
    #[serde(default)]
    pub chunk_bytes: Option<u64>,
}

/// The plan function's output: what the export Map's ItemReader reads, and what it passes on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanOutput {
    /// The job.
    pub job_id: String,
    /// Passed on to the exports.
    pub source_secret: String,
    /// Passed on to the exports.
    pub snapshot: String,
    /// Tables in scope.
    pub tables: usize,
    /// Chunks to export.
    pub chunks: usize,
    /// Bucket of the chunk list (ItemReader `Bucket`).
    pub items_bucket: String,
    /// Key of the chunk list (ItemReader `Key`).
    pub items_key: String,
}

/// The import-part function's input: one item of a wave's Distributed Map. Small on purpose
/// (Step Functions state is capped at 256 KiB): never the whole plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportPartEvent {
    /// Secrets Manager id of the target's credentials.
    pub target_secret: String,
    /// The job.
    pub job_id: String,
    /// Whether loads may run with `session_replication_role = replica` (from prepare).
    pub replica: bool,
    /// The part to load.
    pub part_id: String,
}

impl ImportPartEvent {
    /// The minimal plan a part load needs.
    pub fn plan(&self) -> crate::job::ImportPlan {
        crate::job::ImportPlan {
            job_id: self.job_id.clone(),
            waves: Vec::new(),
            replica: self.replica,
            already_done: false,
        }
    }
}

/// The prepare function's input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrepareEvent {
    /// The job.
    pub job_id: String,
    /// Secrets Manager id of the target's credentials.
    pub target_secret: String,
    /// Keep the target's secondary indexes during the load.
    #[serde(default)]
    pub keep_indexes: bool,
}

/// One wave of the import, for the outer Map (one wave at a time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaveRef {
    /// Position, from 0.
    pub index: usize,
    /// Parts in it.
    pub parts: usize,
    /// Bucket of its item list (ItemReader `Bucket`).
    pub items_bucket: String,
    /// Key of its item list, a JSON array of [`ImportPartEvent`] (ItemReader `Key`).
    pub items_key: String,
}

/// The prepare function's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrepareOutput {
    /// The job.
    pub job_id: String,
    /// Passed on.
    pub target_secret: String,
    /// The import had finished before: nothing to load.
    pub already_done: bool,
    /// How many waves (the state machine's loop bound).
    pub wave_count: usize,
    /// The waves, in order.
    pub waves: Vec<WaveRef>,
}

/// Prepares the target (see [`prepare_step`]) and writes each wave's items to the store.
pub async fn prepare_job(
    target: &ConnSpec,
    store: &dyn PartStore,
    bucket: &str,
    event: &PrepareEvent,
) -> Result<PrepareOutput> {
    let opts = crate::job::Options {
        keep_indexes: event.keep_indexes,
        ..Default::default()
    };
    let plan = prepare_step(target, store, &opts).await?;
    let mut waves = Vec::new();
    for (index, wave) in plan.waves.iter().enumerate() {
        let items: Vec<ImportPartEvent> = wave
            .iter()
            .map(|part_id| ImportPartEvent {
                target_secret: event.target_secret.clone(),
                job_id: plan.job_id.clone(),
                replica: plan.replica,
                part_id: part_id.clone(),
            })
            .collect();
        let key = format!("waves/{index:04}.json");
        store.put(&key, &to_json(&items)).await?;
        waves.push(WaveRef {
            index,
            parts: items.len(),
            items_bucket: bucket.to_string(),
            items_key: bucket_key(store, bucket, &key),
        });
    }
    Ok(PrepareOutput {
        job_id: plan.job_id,
        target_secret: event.target_secret.clone(),
        already_done: plan.already_done,
        wave_count: waves.len(),
        waves,
    })
}

/// The finalize function's input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalizeEvent {
    /// The job.
    pub job_id: String,
    /// Secrets Manager id of the target's credentials; absent for an export-only job, which
    /// is then simply marked succeeded (its manifest is in S3).
    #[serde(default)]
    pub target_secret: Option<String>,
    /// The target's lock key, released when done.
    #[serde(default)]
    pub lock_key: Option<String>,
}

/// The fail function's input: the job and what Step Functions' Catch recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailEvent {
    /// The job.
    pub job_id: String,
    /// The target's lock key, released.
    #[serde(default)]
    pub lock_key: Option<String>,
    /// Catch's `$.error`: `{"Error": name, "Cause": text}`.
    pub error: CaughtError,
}

/// Step Functions' record of a caught error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaughtError {
    /// The error name (our stable names for our errors; `States.*` for the service's own).
    #[serde(rename = "Error")]
    pub error: String,
    /// Its cause: for a Lambda error, the JSON of its `errorMessage` / `errorType`.
    #[serde(rename = "Cause", default)]
    pub cause: String,
}

impl CaughtError {
    /// The message to record: the Lambda's `errorMessage` when the cause is one, else the text.
    pub fn message(&self) -> String {
        serde_json::from_str::<serde_json::Value>(&self.cause)
            .ok()
            .and_then(|v| {
                v.get("errorMessage")
                    .and_then(|m| m.as_str())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| self.cause.clone())
    }
}

/// The import-part function's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportPartOutput {
    /// The part.
    pub part_id: String,
    /// Loaded now (false: an earlier delivery had loaded it).
    pub loaded: bool,
    /// Rows loaded now.
    pub rows: u64,
}

/// The hold-snapshot function's input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldSnapshotEvent {
    /// The job.
    pub job_id: String,
    /// Secrets Manager id of the source's credentials.
    pub source_secret: String,
    /// How long to hold at most (the invocation's own time limit caps it too).
    #[serde(default)]
    pub window_seconds: Option<u64>,
}

/// The hold-snapshot function's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldSnapshotOutput {
    /// The job.
    pub job_id: String,
    /// The snapshot that was held.
    pub snapshot: String,
    /// Why it was let go.
    pub released: crate::snapshot::Released,
}

/// The assemble function's input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssembleEvent {
    /// The job.
    pub job_id: String,
    /// Secrets Manager id of the source's credentials (sequences are read after the data).
    pub source_secret: String,
    /// The snapshot the exports read, recorded in the manifest.
    pub snapshot: String,
}

/// The assemble function's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssembleOutput {
    /// The job.
    pub job_id: String,
    /// Tables in the manifest.
    pub tables: usize,
    /// Parts in the manifest.
    pub parts: usize,
    /// Where the manifest is, in the job's folder.
    pub manifest: String,
}
