//! The Catch path's step: what the job took away from the target put back, the first error
//! recorded on the job, the target's lock released.

use crate::cloud::jobstore::{JobChange, JobError, JobStatus, JobStore};
use crate::error::Result;
use crate::pg::conn::ConnSpec;
use crate::pipeline::undo::{abandon, Abandoned};
use serde::{Deserialize, Serialize};

/// The Catch path: puts back what the job took away from `target` (indexes rebuilt, keys
/// re-added `NOT VALID`, triggers enabled, as a failed CLI load does; see [`abandon`]), then
/// records the error on the job (stable name, message without secrets) and releases the
/// target's lock, in that order, so no next job starts on a target still being put back. A
/// put-back that cannot run (the target unreachable) is logged and reported, never in the
/// way of the record: the target's ledger keeps what is owed and the next job adopts it.
/// For a failed chunk, `chunk_leases` (the source's `host:port/db` and the chunk's
/// [`lease_prefix`](super::lease_prefix)) names the connection leases its invocations held:
/// one that timed out or crashed never gave its own back, so they are given back here
/// rather than at their expiry. Only that chunk's: its invocations run one after another
/// and have all ended, while the job's other chunks may still be running.
pub async fn fail_job(
    jobs: &dyn JobStore,
    job_id: &str,
    error: JobError,
    lock_key: Option<&str>,
    target: Option<&ConnSpec>,
    chunk_leases: Option<(&str, &str)>,
) -> Result<FailOutput> {
    let mut leases_released = None;
    if let Some((endpoint, prefix)) = chunk_leases {
        match jobs.release_leases_of(endpoint, prefix).await {
            Ok(n) => leases_released = Some(n),
            Err(e) => tracing::warn!(job = job_id, endpoint, error = %e,
                "could not give the chunk's connection leases back; they expire by themselves"),
        }
    }
    let target_state = match target {
        None => None,
        Some(t) => Some(match abandon(t, job_id).await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(job = job_id, error = %e, "could not put the target back; its ledger keeps what the job took away and the next job adopts it");
                Abandoned::Unreachable {
                    error: e.to_string(),
                }
            }
        }),
    };
    if let Some(Abandoned::PutBack { failed }) = &target_state {
        if !failed.is_empty() {
            tracing::warn!(job = job_id, failed = ?failed, "some of what the job took away could not be put back; dbsync.jobs records it and the next job adopts it");
        }
    }
    // The first error recorded is the cause; a later one is its echo (a Map reports its
    // failed child as States.ExceedToleratedFailureThreshold, after the child recorded why).
    let first = match jobs.get(job_id).await? {
        Some(j) if j.error.is_some() => None,
        _ => Some(error),
    };
    jobs.update(
        job_id,
        JobChange {
            status: Some(JobStatus::Failed),
            error: first,
            exports_done: Some(true),
            ..Default::default()
        },
    )
    .await?;
    if let Some(k) = lock_key {
        jobs.release_target(k, job_id).await?;
    }
    Ok(FailOutput {
        job_id: job_id.to_string(),
        target_state,
        leases_released,
    })
}

/// The fail function's output (shown in the execution's history).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailOutput {
    /// The job.
    pub job_id: String,
    /// What was found and done on the target; absent when the job names none.
    pub target_state: Option<Abandoned>,
    /// Connection leases of the failed chunk given back; absent when the event names no chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leases_released: Option<usize>,
}

/// The fail function's input: the job and what Step Functions' Catch recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailEvent {
    /// The job.
    pub job_id: String,
    /// The target's lock key, released.
    #[serde(default)]
    pub lock_key: Option<String>,
    /// Secrets Manager id of the target's credentials, when the job loads one: what the job
    /// took away there is put back.
    #[serde(default)]
    pub target_secret: Option<String>,
    /// Secrets Manager id of the source's credentials and the failed chunk's label (the
    /// Map child's Catch path): the connection leases that chunk's invocations took on the
    /// source are given back.
    #[serde(default)]
    pub source_secret: Option<String>,
    /// See `source_secret`.
    #[serde(default)]
    pub chunk_label: Option<String>,
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
