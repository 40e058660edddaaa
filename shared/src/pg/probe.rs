//! What a connection test finds out about a database without changing it: the server's
//! version, whether the session is encrypted, whether the server is a read-only standby, and
//! what this role lacks to be a source (tables it may not read, rows row security would
//! hide) or a target (tables it may not empty or write, or does not own; the ledger it may
//! not create).

use crate::error::{Error, Result, Role};
use crate::pg::{ledger_owner, target};
use serde::Serialize;
use tokio_postgres::Client;

/// At most this many problems are listed per use: enough to see the pattern.
const MAX_PROBLEMS: i64 = 20;

/// Schemas that are never in a job's scope.
const SYSTEM_SCHEMAS: &str =
    "n.nspname NOT IN ('pg_catalog', 'information_schema', 'dbsync', 'dbsync_shadow')
   AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'";

/// What the role may do in one use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fitness {
    /// Nothing found in the way.
    pub usable: bool,
    /// What is in the way, one line each (at most [`MAX_PROBLEMS`] tables).
    pub problems: Vec<String>,
}

impl Fitness {
    fn of(problems: Vec<String>) -> Self {
        Fitness {
            usable: problems.is_empty(),
            problems,
        }
    }
}

/// What a connection test reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Probe {
    /// `server_version`.
    pub server_version: String,
    /// The session is encrypted.
    pub tls: bool,
    /// The role connected.
    pub user: String,
    /// The database connected.
    pub database: String,
    /// A standby in recovery (read-only).
    pub in_recovery: bool,
    /// As a source.
    pub source: Fitness,
    /// As a target.
    pub target: Fitness,
    /// Loads may run in replica mode (no user or foreign-key trigger fires per row).
    pub replica_mode: bool,
}

fn pg(what: &'static str) -> impl Fn(tokio_postgres::Error) -> Error {
    move |e| Error::pg(Role::Target, what, e)
}

/// Lines of `sql`'s first column.
async fn lines(client: &Client, sql: &str, what: &'static str) -> Result<Vec<String>> {
    let rows = client
        .query(sql, &[&MAX_PROBLEMS])
        .await
        .map_err(pg(what))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Tables and sequences the role may not read, and tables whose row security would hide
/// rows from it.
async fn source_problems(client: &Client) -> Result<Vec<String>> {
    let sql = format!(
        "SELECT format('%s: %s', c.oid::regclass,
                CASE WHEN c.relkind = 'S' THEN 'sequence without SELECT'
                     WHEN NOT has_table_privilege(c.oid, 'SELECT') THEN 'no SELECT'
                     ELSE 'row security would hide rows (the role neither owns the table nor has BYPASSRLS)' END)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE {SYSTEM_SCHEMAS}
            AND ((c.relkind IN ('r', 'p') AND NOT has_table_privilege(c.oid, 'SELECT'))
              OR (c.relkind = 'S' AND NOT has_sequence_privilege(c.oid, 'SELECT'))
              OR (c.relkind IN ('r', 'p') AND c.relrowsecurity AND NOT pg_has_role(c.relowner, 'USAGE')
                  AND NOT (SELECT rolbypassrls OR rolsuper FROM pg_roles WHERE rolname = current_user)))
          ORDER BY 1 LIMIT $1"
    );
    lines(client, &sql, "checking the source role's privileges").await
}

/// Tables the role may not empty and write, or does not own (a load drops and rebuilds
/// their indexes and keys), and a ledger it may not create.
async fn target_problems(client: &Client, in_recovery: bool) -> Result<Vec<String>> {
    if in_recovery {
        return Ok(vec![
            "the server is a standby in recovery: it cannot be written".into(),
        ]);
    }
    let sql = format!(
        "SELECT format('%s: %s', c.oid::regclass,
                CASE WHEN NOT has_table_privilege(c.oid, 'INSERT, TRUNCATE') THEN 'no INSERT or TRUNCATE'
                     ELSE 'not owned by the role (a load drops and rebuilds its indexes and keys)' END)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE {SYSTEM_SCHEMAS} AND c.relkind IN ('r', 'p')
            AND (NOT has_table_privilege(c.oid, 'INSERT, TRUNCATE') OR NOT pg_has_role(c.relowner, 'USAGE'))
          ORDER BY 1 LIMIT $1"
    );
    let mut problems = lines(client, &sql, "checking the target role's privileges").await?;
    problems.extend(ledger_owner::usable(client).await?);
    Ok(problems)
}

/// Tests a connected session: reads, never writes (replica mode is tried on this session
/// only and set back).
pub async fn probe(client: &Client) -> Result<Probe> {
    let row = client
        .query_one(
            "SELECT current_setting('server_version'),
                    coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false),
                    current_user::text, current_database()::text, pg_is_in_recovery()",
            &[],
        )
        .await
        .map_err(pg("reading the server's version"))?;
    let in_recovery: bool = row.get(4);
    let replica_mode = target::try_replica_mode(client).await?;
    if replica_mode {
        client
            .batch_execute("RESET session_replication_role")
            .await
            .map_err(pg("resetting session_replication_role"))?;
    }
    Ok(Probe {
        server_version: row.get(0),
        tls: row.get(1),
        user: row.get(2),
        database: row.get(3),
        in_recovery,
        source: Fitness::of(source_problems(client).await?),
        target: Fitness::of(target_problems(client, in_recovery).await?),
        replica_mode,
    })
}
