//! The finalize step: the import finished on the target, the ledger's rows checked against
//! the manifest, the job marked succeeded and its target lock released; or an export-only
//! job marked succeeded.

use super::{job_manifest, JobPlace};
use crate::cloud::jobstore::{JobChange, JobStatus, JobStore, Phase};
use crate::error::{Error, Result, Role};
use crate::model::options::{Analyze, Mode};
use crate::pg::conn::ConnSpec;
use crate::pg::ledger;
use crate::pipeline::{finalize_import_until, Finished};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tokio::time::Instant;

/// Finishes the job: [`finalize_import_until`] `until`, and once every finishing step is
/// done the rows the ledger recorded per table are checked against the manifest, the job
/// marked succeeded and the target's lock released. A finish not done by `until` answers
/// `done: false` (the state machine calls again; the step under way runs on). Idempotent.
pub async fn finalize_job(
    target: &ConnSpec,
    place: JobPlace<'_>,
    job_id: &str,
    lock_key: Option<&str>,
    until: Option<Instant>,
) -> Result<FinalizeOutput> {
    let JobPlace { store, jobs } = place;
    let m = job_manifest(store, job_id).await?;
    jobs.update(
        &m.job_id,
        JobChange {
            phase: Some(Phase::Finalizing),
            ..Default::default()
        },
    )
    .await?;
    if let Finished::Pending { done, steps, what } =
        finalize_import_until(target, &m, until).await?
    {
        tracing::info!(job = %m.job_id, done, steps, running = %what, "finish continues");
        return Ok(FinalizeOutput {
            done: false,
            steps_done: done as u64,
            steps: steps as u64,
            running: Some(what),
        });
    }
    let client = target
        .connect(Role::Target, &format!("dbsync-{}-check", m.job_id))
        .await?;
    let loaded: BTreeMap<String, i64> = ledger::loaded_rows(&client, &m.job_id)
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
            status: Some(JobStatus::Succeeded),
            phase: Some(Phase::Done),
            ..Default::default()
        },
    )
    .await?;
    if let Some(k) = lock_key {
        jobs.release_target(k, &m.job_id).await?;
    }
    Ok(FinalizeOutput::done())
}

/// Finishes an export-only job: the manifest is written, nothing is loaded; every table
/// is done.
pub async fn finish_export(jobs: &dyn JobStore, job_id: &str) -> Result<()> {
    if let Some(j) = jobs.get(job_id).await? {
        let last = j.current_table.unwrap_or_default();
        jobs.progress(job_id, &last, j.tables_total).await?;
    }
    jobs.update(
        job_id,
        JobChange {
            status: Some(JobStatus::Succeeded),
            phase: Some(Phase::Done),
            ..Default::default()
        },
    )
    .await
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
    /// The job whose export was loaded, when not this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_job_id: Option<String>,
    /// Seconds of work per invocation before it hands over to the next (default: the
    /// invocation's own limit less its margin). Small values force continuations.
    #[serde(default)]
    pub budget_seconds: Option<u64>,
    /// `refresh`: sequences set and the tables that changed analyzed; no ledger to check.
    #[serde(default)]
    pub mode: Mode,
    /// How a refresh's changed tables get statistics (a load's were decided by its prepare
    /// step).
    #[serde(default)]
    pub analyze: Analyze,
}

/// The finalize function's output (the state's `$.finalized`): whether the job is finished,
/// else how far its finishing steps got and the one still running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalizeOutput {
    /// Every finishing step is done and the job succeeded: `false` sends the state machine
    /// round again.
    pub done: bool,
    /// Finishing steps done (when not done; the count is not kept once the job is).
    pub steps_done: u64,
    /// Finishing steps in all (when not done).
    pub steps: u64,
    /// The step running, or next to run, when not done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<String>,
}

impl FinalizeOutput {
    /// A finished job.
    pub fn done() -> Self {
        FinalizeOutput {
            done: true,
            steps_done: 0,
            steps: 0,
            running: None,
        }
    }
}
