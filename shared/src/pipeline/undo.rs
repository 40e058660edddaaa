//! Putting a target back after a load stopped: what the job took away (indexes, keys
//! `NOT VALID`, checks, triggers) restored from the ledger's record, by the process that ran
//! the load as its load phase fails ([`guarded`]) or by another one (the serverless Catch
//! path, [`abandon`]), and an atomic import's shadow tables dropped.

use crate::error::{Error, Result, Role};
use crate::model::restore::Restore;
use crate::pg::conn::ConnSpec;
use crate::pg::ledger::{self, JobState};
use crate::pg::{shadow, steps};
use crate::pipeline::progress::Progress;
use crate::pipeline::target::TargetJob;
use crate::pipeline::workers::app_name;
use serde::{Deserialize, Serialize};
use std::future::Future;
use tokio_postgres::Client;

/// Runs the put-back of `restore` on `client` and records the job `interrupted`; returns
/// what failed (each step is tried, so one failure does not keep the rest back).
pub(crate) async fn put_back_on(client: &Client, restore: &Restore, job_id: &str) -> Vec<String> {
    let (steps, pending) = steps::put_back_steps(restore);
    let mut failed = Vec::new();
    for step in &steps {
        if let Err(e) = step.run(client).await {
            failed.push(format!("{}: {e}", step.what));
        }
    }
    if let Err(e) = ledger::mark_interrupted(client, job_id, &pending).await {
        failed.push(e.to_string());
    }
    failed
}

/// What [`abandon`] found and did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "target")]
pub enum Abandoned {
    /// The job never started on this target (it failed before): nothing was changed there.
    Untouched,
    /// The job was loading: what it took away was put back and the job recorded
    /// `interrupted`. `failed` lists what could not be put back (still in the ledger, which
    /// the next job adopts).
    PutBack {
        /// Steps that failed.
        failed: Vec<String>,
    },
    /// The job had finished, or had been put back before: nothing to do.
    Settled,
    /// An atomic import that had not swapped: the target's tables never changed; its
    /// shadow tables were dropped and its record set aside, so a new run starts over.
    ShadowDropped,
    /// The target could not be reached or read (`error`): nothing was done there; its
    /// ledger still holds what the job took away, and the next job adopts it.
    Unreachable {
        /// Why.
        error: String,
    },
}

/// Puts back what a failed job took away from `target`, from the target's ledger alone: for
/// a caller in another process than the load (the serverless Catch path), so a failed
/// serverless job leaves its target as a failed CLI job does. Idempotent.
pub async fn abandon(target: &ConnSpec, job_id: &str) -> Result<Abandoned> {
    let client = target
        .connect(Role::Target, &app_name(job_id, "undo"))
        .await?;
    if !ledger::exists(&client).await? {
        return Ok(Abandoned::Untouched);
    }
    Ok(match ledger::job_state(&client, job_id).await? {
        JobState::New => Abandoned::Untouched,
        JobState::Done | JobState::Interrupted(_) => Abandoned::Settled,
        JobState::Loading(restore) => Abandoned::PutBack {
            failed: put_back_on(&client, &restore, job_id).await,
        },
        JobState::Shadow(_) => {
            shadow::discard(&client, job_id).await?;
            Abandoned::ShadowDropped
        }
    })
}

/// Runs the load phase `work` of a started job. When it fails or is interrupted, what the job
/// took away is put back at once (see [`put_back`]) before the error is returned, so the
/// target never keeps dropped indexes or keys that claim what is not true.
pub async fn guarded<T>(
    tj: &TargetJob,
    target: &ConnSpec,
    job_id: &str,
    progress: &dyn Progress,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    match work.await {
        Ok(v) => Ok(v),
        Err(e) => {
            put_back(tj, target, job_id, progress, &e).await;
            Err(e)
        }
    }
}

/// Puts back what a stopped job took away (indexes, keys `NOT VALID`, checks, triggers),
/// makes the keys the load did not enforce `NOT VALID`, and records the job `interrupted`
/// with what a later finish must still do. Best effort: what cannot be put back (the target
/// is gone) stays recorded in the ledger, which the next job adopts.
async fn put_back(
    tj: &TargetJob,
    target: &ConnSpec,
    job_id: &str,
    progress: &dyn Progress,
    cause: &Error,
) {
    let fresh;
    let client = if tj.coord.is_closed() {
        fresh = target
            .connect(Role::Target, &app_name(job_id, "undo"))
            .await;
        match &fresh {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(job = job_id, error = %e, "cannot reach the target to put back what the job took away; the ledger still lists it and the next run adopts it");
                return;
            }
        }
    } else {
        &tj.coord
    };
    let failed = put_back_on(client, &tj.restore, job_id).await;
    // A damaged part stops every run at the same place: say what helps instead.
    let damaged = matches!(
        cause,
        Error::PartCorrupt { .. } | Error::ExportBroken { .. }
    ) || matches!(cause, Error::Io { message, .. } if message.contains("not a valid gzip part"));
    let next = if damaged {
        "The export is damaged, so running the same command again would stop at the same part: `dbsync check --from EXPORT` names every damaged part; export again and import that, or import this one with --restart once it is whole"
    } else {
        "Run the same command again: a sync starts over, an import resumes"
    };
    progress.note(&format!(
        "the load stopped ({}); the tables in scope are partly loaded. What the job took away was put back (foreign keys it could not vouch for are NOT VALID until a run finishes). {next}",
        cause.name()
    ));
    if !failed.is_empty() {
        tracing::warn!(job = job_id, failed = ?failed, "some of what the job took away could not be put back; dbsync.jobs records it and the next run adopts it");
    }
}
