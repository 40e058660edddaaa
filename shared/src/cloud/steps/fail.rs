//! The Catch path's step: the first error recorded on the job, the target's lock released.

use crate::cloud::jobstore::{JobChange, JobError, JobStatus, JobStore};
use crate::error::Result;
use serde::{Deserialize, Serialize};

/// The Catch path: records the error on the job (stable name, message without secrets) and
/// releases the target's lock. The target stays resumable: its ledger knows what was done.
pub async fn fail_job(
    jobs: &dyn JobStore,
    job_id: &str,
    error: JobError,
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
    Ok(())
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
