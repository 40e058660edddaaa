//! The finalize step: the import finished on the target, the ledger's rows checked against
//! the manifest, the job marked succeeded and its target lock released; or an export-only
//! job marked succeeded.

use super::{job_manifest, JobPlace};
use crate::cloud::jobstore::{JobChange, JobStatus, JobStore, Phase};
use crate::error::{Error, Result, Role};
use crate::pg::conn::ConnSpec;
use crate::pg::ledger;
use crate::pipeline::finalize_import;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Finishes the job: [`finalize_import`], then the rows the ledger recorded per
/// table are checked against the manifest, the job marked succeeded and the target's lock
/// released. Idempotent.
pub async fn finalize_job(
    target: &ConnSpec,
    place: JobPlace<'_>,
    job_id: &str,
    lock_key: Option<&str>,
) -> Result<()> {
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
    finalize_import(target, &m).await?;
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
    Ok(())
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
}
