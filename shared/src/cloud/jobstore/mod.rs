//! Job state: one record per job (request without secrets, status, phase, counters updated
//! atomically by each chunk and part, timings, error) and one lock per target so two jobs
//! never load the same target at once. A small trait with two implementations: DynamoDB for
//! the serverless build and memory for tests and single-process runs.

use crate::error::{Error, Result};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub mod contract;
pub mod dynamodb;
mod leases;
pub mod memory;

pub use dynamodb::DynamoJobStore;
pub use memory::MemoryJobStore;

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Accepted, not started.
    Queued,
    /// Running.
    Running,
    /// Finished, target identical to the source snapshot.
    Succeeded,
    /// Stopped by an error (see `error`).
    Failed,
    /// Stopped on request.
    Cancelled,
}

/// What a running job is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Reading the catalog, splitting chunks.
    Planning,
    /// Chunks being exported to parts.
    Exporting,
    /// Writing the manifest.
    Assembling,
    /// Parts being loaded into the target.
    Importing,
    /// Foreign keys, sequences, ANALYZE, checks.
    Finalizing,
    /// Nothing left to do.
    Done,
}

impl JobStatus {
    /// The stored text.
    pub fn as_str(&self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }
}

impl Phase {
    /// The stored text.
    pub fn as_str(&self) -> &'static str {
        match self {
            Phase::Planning => "planning",
            Phase::Exporting => "exporting",
            Phase::Assembling => "assembling",
            Phase::Importing => "importing",
            Phase::Finalizing => "finalizing",
            Phase::Done => "done",
        }
    }
}

fn parse_enum<T: serde::de::DeserializeOwned>(s: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
}

/// Work done so far; added to atomically.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Chunks exported.
    pub chunks_done: u64,
    /// Parts loaded.
    pub parts_done: u64,
    /// Rows moved.
    pub rows: u64,
    /// COPY text bytes moved.
    pub bytes: u64,
}

/// A recorded error: stable name and a message without secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobError {
    /// One of [`Error::KINDS`].
    pub name: String,
    /// What happened.
    pub message: String,
}

impl From<&Error> for JobError {
    fn from(e: &Error) -> Self {
        JobError {
            name: e.name().to_string(),
            message: e.to_string(),
        }
    }
}

/// One job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Id (also the Step Functions execution name).
    pub job_id: String,
    /// "sync" or "export".
    pub kind: String,
    /// Status.
    pub status: JobStatus,
    /// Phase.
    pub phase: Phase,
    /// The request as accepted (secret ids, never secret values).
    pub request: serde_json::Value,
    /// The target lock key, when the job loads a target.
    pub target: Option<String>,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// RFC 3339, UTC.
    pub updated_at: String,
    /// Chunks planned.
    pub chunks_total: u64,
    /// Parts to load.
    pub parts_total: u64,
    /// Work done.
    pub counters: Counters,
    /// Set when failed.
    pub error: Option<JobError>,
    /// The exported source snapshot every chunk export reads, while it is held.
    #[serde(default)]
    pub snapshot: Option<String>,
    /// Every chunk is exported: the snapshot holder may let go.
    #[serde(default)]
    pub exports_done: bool,
    /// Tables in scope.
    #[serde(default)]
    pub tables_total: u64,
    /// Tables whose every part is loaded into the target.
    #[serde(default)]
    pub tables_done: u64,
    /// The table the job last worked on (a chunk exported or a part loaded).
    #[serde(default)]
    pub current_table: Option<String>,
    /// The name of the job's current execution when it is not the job id (a retry's).
    #[serde(default)]
    pub execution: Option<String>,
    /// How many times the job was retried.
    #[serde(default)]
    pub retries: u64,
}

impl JobRecord {
    /// A new queued job.
    pub fn new(
        job_id: &str,
        kind: &str,
        request: serde_json::Value,
        target: Option<String>,
    ) -> Self {
        let now = now_rfc3339();
        JobRecord {
            job_id: job_id.to_string(),
            kind: kind.to_string(),
            status: JobStatus::Queued,
            phase: Phase::Planning,
            request,
            target,
            created_at: now.clone(),
            updated_at: now,
            chunks_total: 0,
            parts_total: 0,
            counters: Counters::default(),
            error: None,
            snapshot: None,
            exports_done: false,
            tables_total: 0,
            tables_done: 0,
            current_table: None,
            execution: None,
            retries: 0,
        }
    }

    /// The name of the job's current execution: the job id, or a retry's name.
    pub fn execution_name(&self) -> &str {
        self.execution.as_deref().unwrap_or(&self.job_id)
    }

    /// Overall progress, 0-100: exporting counts for the first half, loading for the second.
    pub fn progress_pct(&self) -> f64 {
        let frac = |done: u64, total: u64| {
            if total == 0 {
                0.0
            } else {
                (done as f64 / total as f64).min(1.0)
            }
        };
        match self.status {
            JobStatus::Succeeded => 100.0,
            // A load of an earlier export exports nothing: its parts are all of it.
            _ if self.kind == IMPORT_KIND => {
                100.0 * frac(self.counters.parts_done, self.parts_total)
            }
            _ => {
                50.0 * frac(self.counters.chunks_done, self.chunks_total)
                    + 50.0 * frac(self.counters.parts_done, self.parts_total)
            }
        }
    }
}

/// The kind of a job that loads an earlier job's export (`POST /syncs` with `"from"`).
pub const IMPORT_KIND: &str = "import";

/// The kind of a job that backs up a target before another job loads it (`"backup": true`).
pub const BACKUP_KIND: &str = "backup";

/// The kind of a job that writes a SQL dump (`"mode": "dump"`).
pub const DUMP_KIND: &str = "dump";

/// A change to a job's status fields (counters change through [`JobStore::add`]).
#[derive(Debug, Clone, Default)]
pub struct JobChange {
    /// New status.
    pub status: Option<JobStatus>,
    /// New phase.
    pub phase: Option<Phase>,
    /// Chunks and parts planned.
    pub totals: Option<(u64, u64)>,
    /// The error that stopped it.
    pub error: Option<JobError>,
    /// The snapshot id now held for the job.
    pub snapshot: Option<String>,
    /// Set when every chunk is exported.
    pub exports_done: Option<bool>,
    /// Tables in scope.
    pub tables_total: Option<u64>,
    /// A retry starts as this execution: recorded, counted, and the last error cleared (the
    /// retry's own failure is the one to show).
    pub retry: Option<String>,
}

/// Current time, RFC 3339 UTC.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// Current time, seconds since the epoch.
pub fn now_epoch() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Where job state lives.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Records a new job; fails if the id exists.
    async fn create(&self, job: &JobRecord) -> Result<()>;
    /// Reads a job.
    async fn get(&self, job_id: &str) -> Result<Option<JobRecord>>;
    /// The most recent jobs, newest first.
    async fn recent(&self, limit: usize) -> Result<Vec<JobRecord>>;
    /// Changes status fields.
    async fn update(&self, job_id: &str, change: JobChange) -> Result<()>;
    /// Adds to the counters atomically (parallel chunks and parts call it concurrently).
    async fn add(&self, job_id: &str, delta: Counters) -> Result<()>;
    /// Takes the target's lock for `ttl_secs`, or fails with [`Error::TargetLocked`] while
    /// another job holds an unexpired one. Taking it again by the same job extends it.
    async fn lock_target(&self, target: &str, job_id: &str, ttl_secs: u64) -> Result<()>;
    /// Releases the target's lock if this job holds it.
    async fn release_target(&self, target: &str, job_id: &str) -> Result<()>;
    /// Takes one of `limit` connection leases on `endpoint` (`host:port/db`) for `holder`
    /// (a chunk export) for `ttl_secs`: false while `limit` unexpired holders have one.
    /// Taking it again refreshes it; a holder that died lets go when its lease expires.
    async fn acquire_lease(
        &self,
        endpoint: &str,
        holder: &str,
        limit: u32,
        ttl_secs: u64,
    ) -> Result<bool>;
    /// Gives a lease back (nothing when `holder` has none).
    async fn release_lease(&self, endpoint: &str, holder: &str) -> Result<()>;
    /// Gives back every lease on `endpoint` whose holder starts with `prefix` (the Fail
    /// path's clean-up for an invocation that died holding one); returns how many.
    async fn release_leases_of(&self, endpoint: &str, prefix: &str) -> Result<usize>;
    /// Records the table the job is working on and how many tables are done; a count lower
    /// than the recorded one (a slower parallel part reporting late) is ignored.
    async fn progress(&self, job_id: &str, current_table: &str, tables_done: u64) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_counts_export_for_half_and_loading_for_the_other_half() {
        let mut j = JobRecord::new("j", "sync", serde_json::json!({}), None);
        j.chunks_total = 4;
        j.parts_total = 4;
        j.counters.chunks_done = 4;
        j.counters.parts_done = 2;
        assert_eq!(j.progress_pct(), 75.0);
        j.status = JobStatus::Succeeded;
        assert_eq!(j.progress_pct(), 100.0);
    }
}
