//! Putting a target back after a load stopped: what the job took away (indexes, keys
//! `NOT VALID`, checks, triggers) restored from the ledger's record, by the process that ran
//! the load or by another one (the serverless Catch path), and an atomic import's shadow
//! tables dropped.

use crate::error::{Result, Role};
use crate::model::restore::Restore;
use crate::pg::conn::ConnSpec;
use crate::pg::ledger::{self, JobState};
use crate::pg::{shadow, steps};
use crate::pipeline::workers::app_name;
use serde::{Deserialize, Serialize};
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
