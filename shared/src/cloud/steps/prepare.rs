//! The prepare step: the target's pre-flight checks and the start of the import, then each
//! wave's part list written to the store for the import Map's ItemReader.

use super::{bucket_key, job_manifest, to_json, ImportPartEvent, JobPlace, SCHEMA_KEY};
use crate::cloud::jobstore::{JobChange, JobStatus, Phase};
use crate::error::{Error, Result, Role};
use crate::model::manifest::Manifest;
use crate::model::options::Analyze;
use crate::pg::conn::ConnSpec;
use crate::pg::ledger;
use crate::pipeline::{begin_import, ImportOptions};
use serde::{Deserialize, Serialize};

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
    /// How each loaded table gets statistics (default `copy`; `true`/`false` as before).
    #[serde(default)]
    pub analyze: Analyze,
    /// Load into shadow tables, swapped in by the finalize step in one transaction.
    #[serde(default)]
    pub atomic: bool,
    /// First create the tables the target lacks, from what the plan step read.
    #[serde(default)]
    pub create_schema: bool,
    /// The job whose export is loaded, when not this one (a load `from` an export, a retry).
    #[serde(default)]
    pub data_job_id: Option<String>,
    /// The job backing the target up (`"backup": true`): nothing is emptied until it has
    /// succeeded.
    #[serde(default)]
    pub backup_job_id: Option<String>,
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
    /// The target's backup is still being taken: nothing was done; the state machine waits
    /// and prepares again.
    #[serde(default)]
    pub backup_pending: bool,
}

/// The job record's totals when it loads another job's export (its own export set them
/// otherwise); the phase either way.
async fn record_start(place: JobPlace<'_>, m: &Manifest, event: &PrepareEvent) -> Result<()> {
    let loads_other = event
        .data_job_id
        .as_ref()
        .is_some_and(|d| *d != event.job_id);
    let parts: usize = m.tables.iter().map(|t| t.parts.len()).sum();
    let change = JobChange {
        phase: Some(Phase::Importing),
        totals: loads_other.then_some((0, parts as u64)),
        tables_total: loads_other.then_some(m.tables.len() as u64),
        ..Default::default()
    };
    place.jobs.update(&event.job_id, change).await
}

/// Whether the target's backup (if the job asked for one) is taken, and recorded in the
/// target's ledger once it is. A backup job that failed or was cancelled stops this job
/// before anything in the target changed.
async fn backup_taken(
    target: &ConnSpec,
    place: JobPlace<'_>,
    bucket: &str,
    event: &PrepareEvent,
) -> Result<bool> {
    let Some(backup) = &event.backup_job_id else {
        return Ok(true);
    };
    let job = place
        .jobs
        .get(backup)
        .await?
        .ok_or_else(|| Error::NoSuchJob(backup.clone()))?;
    match job.status {
        JobStatus::Succeeded => {}
        JobStatus::Queued | JobStatus::Running => return Ok(false),
        JobStatus::Failed | JobStatus::Cancelled => {
            let why = job
                .error
                .map(|e| format!(": {}", e.message))
                .unwrap_or_default();
            return Err(Error::JobEnded {
                job: backup.clone(),
                status: format!("{}{why}", job.status.as_str()),
                waiting_for: "the target was backed up; nothing in it was changed".into(),
            });
        }
    }
    let location = format!("s3://{bucket}/jobs/{backup}");
    let mut c = target.connect(Role::Target, "dbsync-prepare").await?;
    ledger::ensure(&mut c).await?;
    ledger::record_backup(&c, &event.job_id, &location, backup).await?;
    Ok(true)
}

/// Prepares the target for the import Map (pre-flight checks, truncate, drops; see
/// [`begin_import`]) and writes each wave's part list to the store.
pub async fn prepare(
    target: &ConnSpec,
    place: JobPlace<'_>,
    bucket: &str,
    event: &PrepareEvent,
) -> Result<PrepareOutput> {
    if !backup_taken(target, place, bucket, event).await? {
        return Ok(PrepareOutput {
            job_id: event.job_id.clone(),
            target_secret: event.target_secret.clone(),
            already_done: false,
            wave_count: 0,
            waves: Vec::new(),
            backup_pending: true,
        });
    }
    let store = place.store;
    let opts = ImportOptions {
        keep_indexes: event.keep_indexes,
        analyze: event.analyze,
        atomic: event.atomic,
        ..Default::default()
    };
    let m = job_manifest(store, &event.job_id).await?;
    record_start(place, &m, event).await?;
    if event.create_schema {
        let data = store.get(SCHEMA_KEY).await?;
        let wanted = serde_json::from_slice(&data).map_err(|e| Error::JobData {
            path: store.location(SCHEMA_KEY),
            message: format!("unreadable schema: {e}"),
        })?;
        crate::pipeline::bootstrap::create_from(target, &wanted).await?;
    }
    let plan = begin_import(target, &m, store, &opts).await?;
    let mut waves = Vec::new();
    for (index, wave) in plan.waves.iter().enumerate() {
        let items: Vec<ImportPartEvent> = wave
            .iter()
            .map(|part_id| ImportPartEvent {
                target_secret: event.target_secret.clone(),
                job_id: plan.job_id.clone(),
                replica: plan.replica,
                part_id: part_id.clone(),
                shadow: plan.shadow,
                data_job_id: event.data_job_id.clone(),
            })
            .collect();
        // Per job: loads of one export into several targets share its folder.
        let key = format!("waves/{}/{index:04}.json", event.job_id);
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
        backup_pending: false,
    })
}
