//! The start of a load in the target, and of its resume: the one transaction that supersedes
//! unfinished jobs (dropping an unfinished atomic import's shadow tables), empties the tables
//! in scope, takes away what the load needs gone and records all of it in the ledger. What
//! each of those does is its own module's (`ledger`, `shadow`, `truncate`, `steps`); this
//! one holds their order and the transaction.

use crate::error::{Error, Result, Role};
use crate::model::ident::QualName;
use crate::model::restore::Restore;
use crate::pg::{ledger, shadow, steps, truncate};
use tokio_postgres::{Client, GenericClient};

fn pg(what: &'static str) -> impl Fn(tokio_postgres::Error) -> Error {
    move |e| Error::pg(Role::Target, what, e)
}

/// What a new job empties and takes away.
pub struct Start<'a> {
    pub job_id: &'a str,
    /// `sync`, `import`, ...: the ledger's `kind`.
    pub kind: &'a str,
    /// The tables in scope, emptied.
    pub tables: &'a [QualName],
    /// Partitioned roots among them (the TRUNCATE names them).
    pub roots: &'a [QualName],
    /// Foreign keys, indexes and triggers the load needs gone.
    pub take: Restore,
}

/// Starts a job in one transaction: empties the in-scope tables in one `TRUNCATE` (never
/// cascading), drops the given foreign keys and indexes and disables triggers, adopting what
/// unfinished earlier jobs took away so nothing is lost, and records all of it.
pub async fn start_job(
    client: &mut (impl GenericClient + Send + Sync),
    job: Start<'_>,
) -> Result<Restore> {
    let tx = client.transaction().await.map_err(pg("starting the job"))?;
    let (mut restore, shadows) = ledger::supersede_unfinished(&tx).await?;
    if shadows {
        // An unfinished atomic import's shadow tables: its parts' ledger rows go below.
        shadow::drop_all(&tx).await?;
    }
    // The pre-flight made sure every partition a root has on the target is in scope.
    truncate::truncate_in_scope(&tx, job.tables, job.roots).await?;
    steps::take_away(&tx, &job.take).await?;
    restore.merge(job.take);
    ledger::open_job(&tx, job.job_id, job.kind, job.tables, &restore).await?;
    tx.commit().await.map_err(pg("starting the job"))?;
    Ok(restore)
}

/// Resumes an interrupted job: takes away again what the load needs gone (nothing is
/// emptied: its loaded parts stay), in one transaction, and sets it loading again.
pub async fn retake(
    client: &mut Client,
    job_id: &str,
    pending: Restore,
    take: Restore,
) -> Result<Restore> {
    let tx = client.transaction().await.map_err(pg("resuming the job"))?;
    steps::take_away(&tx, &take).await?;
    let mut restore = pending;
    restore.merge(take);
    ledger::reopen_job(&tx, job_id, &restore).await?;
    tx.commit().await.map_err(pg("resuming the job"))?;
    Ok(restore)
}
