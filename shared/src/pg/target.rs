//! The target side's session work outside the ledger: whether the target is the source
//! (found by the source session's unique `application_name`), whether this role may load in
//! replica mode (no user or FK trigger fires), and load sessions set up for it.

use crate::error::{Error, Result, Role};
use crate::pg::conn::ConnSpec;
use crate::pg::sqlstate;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Transaction};

/// Whether a session named `source_app` (the job's source coordinator) is connected to the
/// same database as `client`: then source and target are one database.
pub async fn is_same_database(client: &Client, source_app: &str) -> Result<bool> {
    Ok(client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity
               WHERE application_name = $1 AND datname = current_database())",
            &[&source_app],
        )
        .await
        .map_err(|e| Error::pg(Role::Target, "comparing source and target", e))?
        .get(0))
}

/// Puts `client` into replica mode (`session_replication_role = replica`) where the role may
/// (superuser); false when it may not.
pub async fn try_replica_mode(client: &Client) -> Result<bool> {
    match client
        .batch_execute("SET session_replication_role = replica")
        .await
    {
        Ok(()) => Ok(true),
        Err(e) if sqlstate::is(&e, &SqlState::INSUFFICIENT_PRIVILEGE) => Ok(false),
        Err(e) => Err(Error::pg(
            Role::Target,
            "setting session_replication_role",
            e,
        )),
    }
}

/// Opens the one transaction of an atomic load on the coordinator session.
pub async fn begin_atomic(coord: &mut Client) -> Result<Transaction<'_>> {
    coord
        .transaction()
        .await
        .map_err(|e| Error::pg(Role::Target, "starting the atomic load", e))
}

/// Commits an atomic load: only now does any reader see the new data.
pub async fn commit_atomic(tx: Transaction<'_>) -> Result<()> {
    tx.commit()
        .await
        .map_err(|e| Error::pg(Role::Target, "committing the atomic load", e))
}

/// Opens a load session named `app`, in replica mode when `replica`.
pub async fn connect_loader(target: &ConnSpec, app: &str, replica: bool) -> Result<Client> {
    let c = target.connect(Role::Target, app).await?;
    if replica {
        c.batch_execute("SET session_replication_role = replica")
            .await
            .map_err(|e| Error::pg(Role::Target, "setting session_replication_role", e))?;
    }
    Ok(c)
}
