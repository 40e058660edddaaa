//! Source snapshots: a coordinator session exports one (repeatable read, read only) and every
//! worker joins it with `SET TRANSACTION SNAPSHOT`, so all chunks of a job read one
//! consistent state of the source.

use crate::error::{Error, Result, Role};
use crate::model::ident::quote_literal;
use crate::pg::conn::ConnSpec;
use crate::pg::sqlstate;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

/// Opens the coordinator session: a repeatable-read, read-only transaction whose snapshot
/// every worker imports. The snapshot lives as long as this session's transaction.
pub async fn open_snapshot(source: &ConnSpec, app: &str) -> Result<(Client, String)> {
    let c = source.connect(Role::Source, app).await?;
    c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await
        .map_err(|e| Error::pg(Role::Source, "starting the snapshot transaction", e))?;
    let snap = export_id(&c, "exporting the snapshot").await?;
    Ok((c, snap))
}

/// Opens a source session reading `snapshot` (exported by [`open_snapshot`], still held).
pub async fn join_snapshot(source: &ConnSpec, snapshot: &str, app: &str) -> Result<Client> {
    let c = source.connect(Role::Source, app).await?;
    import(&c, "", snapshot).await?;
    Ok(c)
}

/// Ends `client`'s transaction and starts another reading `snapshot`: a worker that reads
/// chunk after chunk follows a relayed snapshot this way, so no session holds the first
/// snapshot's transaction for the whole export.
pub async fn rejoin(client: &Client, snapshot: &str) -> Result<()> {
    import(client, "COMMIT; ", snapshot).await
}

/// Relays `snapshot` (still held by another session): a new session imports it and exports
/// it again under a new id, which stays importable after the old holder ends. The same data,
/// for as long as the chain of holders lasts (PostgreSQL keeps an imported snapshot's xmin).
pub async fn relay_snapshot(
    source: &ConnSpec,
    snapshot: &str,
    app: &str,
) -> Result<(Client, String)> {
    let c = join_snapshot(source, snapshot, app).await?;
    let next = export_id(&c, "exporting the relayed snapshot").await?;
    Ok((c, next))
}

/// The id under which the session's snapshot can be imported.
async fn export_id(c: &Client, context: &str) -> Result<String> {
    Ok(c.query_one("SELECT pg_export_snapshot()", &[])
        .await
        .map_err(|e| Error::pg(Role::Source, context, e))?
        .get(0))
}

async fn import(c: &Client, before: &str, snapshot: &str) -> Result<()> {
    c.batch_execute(&format!(
        "{before}BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT {}",
        quote_literal(snapshot)
    ))
    .await
    .map_err(|e| {
        // "invalid snapshot identifier" (22023), or "the source process ... is not running
        // anymore" (55000) while its holder is going away: either way the holder let go.
        if sqlstate::is(&e, &SqlState::INVALID_PARAMETER_VALUE)
            || sqlstate::is(&e, &SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE)
        {
            Error::SnapshotReleased(snapshot.to_string())
        } else {
            Error::pg(Role::Source, "importing the snapshot", e)
        }
    })
}
