//! The ledger: dbsync's own tables in the target (schema `dbsync`). `dbsync.jobs` records each
//! load (state, the foreign keys it dropped and the triggers it disabled, so a crashed job can
//! be finished or superseded without losing them); `dbsync.parts` records every loaded part in
//! the same transaction as its COPY, which makes retried part loads exactly-once;
//! `dbsync.finish_steps` the finishing steps of a stateless load already done (`pg::finish`).

use crate::error::{Error, Result, Role};
use crate::model::ident::QualName;
use crate::model::manifest::Manifest;
use crate::model::part::PartStats;
use crate::model::restore::Restore;
use crate::pg::ledger_owner;
use serde::Serialize;
use tokio_postgres::{Client, GenericClient};

/// Advisory lock key ('dbsy') held by the job that loads a target database.
const TARGET_LOCK: (i32, i32) = (0x6462_7379, 1);

const DDL: &str = "
CREATE SCHEMA IF NOT EXISTS dbsync;
CREATE TABLE IF NOT EXISTS dbsync.jobs (
    job_id      text PRIMARY KEY,
    kind        text NOT NULL,
    state       text NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    tables      jsonb NOT NULL DEFAULT '[]',
    restore     jsonb NOT NULL DEFAULT '{}'
);
ALTER TABLE dbsync.jobs ADD COLUMN IF NOT EXISTS restore jsonb NOT NULL DEFAULT '{}';
CREATE TABLE IF NOT EXISTS dbsync.parts (
    job_id     text NOT NULL,
    part_id    text NOT NULL,
    table_name text NOT NULL,
    rows       bigint,
    bytes      bigint,
    sha256     text,
    loaded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, part_id)
);
CREATE TABLE IF NOT EXISTS dbsync.backups (
    job_id     text NOT NULL,
    location   text NOT NULL,
    backup_job text NOT NULL,
    taken_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, location)
);
CREATE TABLE IF NOT EXISTS dbsync.finish_steps (
    job_id  text NOT NULL,
    step    int NOT NULL,
    what    text NOT NULL,
    done_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, step)
);";

fn pg(context: &'static str) -> impl Fn(tokio_postgres::Error) -> Error {
    move |e| Error::pg(Role::Target, context, e)
}

/// Creates the ledger tables if needed (serialised, so parallel first runs don't race), for
/// the role [`ledger_owner::creator`] names.
pub async fn ensure(client: &mut Client) -> Result<()> {
    let tx = client
        .transaction()
        .await
        .map_err(pg("creating the ledger"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1, 2)", &[&TARGET_LOCK.0])
        .await
        .map_err(pg("creating the ledger"))?;
    // A complete ledger is used as it is: its DDL would need its owner.
    if ledger_owner::complete(&tx).await? {
        return tx.commit().await.map_err(pg("creating the ledger"));
    }
    let creator = ledger_owner::creator(&tx).await?;
    tx.batch_execute(&format!(
        "{}{DDL}",
        ledger_owner::act_as_sql(creator.as_deref())
    ))
    .await
    .map_err(pg("creating the ledger (schema dbsync)"))?;
    tx.commit().await.map_err(pg("creating the ledger"))
}

/// Records where the job's backup of the target is (`--backup`).
pub async fn record_backup(
    client: &Client,
    job_id: &str,
    location: &str,
    backup_job: &str,
) -> Result<()> {
    client
        .execute(
            "INSERT INTO dbsync.backups (job_id, location, backup_job) VALUES ($1, $2, $3)
             ON CONFLICT (job_id, location) DO UPDATE SET backup_job = EXCLUDED.backup_job",
            &[&job_id, &location, &backup_job],
        )
        .await
        .map_err(pg("recording the backup"))?;
    Ok(())
}

/// Whether this target has a ledger (dbsync has loaded it before).
pub async fn exists(client: &Client) -> Result<bool> {
    let row = client
        .query_one("SELECT to_regclass('dbsync.jobs') IS NOT NULL", &[])
        .await
        .map_err(pg("looking for the ledger"))?;
    Ok(row.get(0))
}

/// Takes the per-database job lock for this session, or says who holds it.
pub async fn lock_target(client: &Client, endpoint: &str) -> Result<()> {
    let row = client
        .query_one(
            "SELECT pg_try_advisory_lock($1, $2)",
            &[&TARGET_LOCK.0, &TARGET_LOCK.1],
        )
        .await
        .map_err(pg("locking the target"))?;
    if row.get::<_, bool>(0) {
        Ok(())
    } else {
        Err(Error::TargetLocked(endpoint.to_string()))
    }
}

/// Where a job stands in this target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// Never seen: the caller must start it.
    New,
    /// Started earlier and not finished: parts in the ledger are skipped.
    Loading(Restore),
    /// An atomic import loading into shadow tables: the target's own tables are untouched;
    /// the restore says how to swap.
    Shadow(Restore),
    /// Failed or interrupted earlier, with what it had taken away put back; the restore
    /// holds what a finish must still do (keys re-added NOT VALID, to validate).
    Interrupted(Restore),
    /// Finished earlier.
    Done,
}

/// Reads a job's state.
pub async fn job_state(client: &Client, job_id: &str) -> Result<JobState> {
    let row = client
        .query_opt(
            "SELECT state, restore::text FROM dbsync.jobs WHERE job_id = $1",
            &[&job_id],
        )
        .await
        .map_err(pg("reading the job ledger"))?;
    let Some(row) = row else {
        return Ok(JobState::New);
    };
    let state: String = row.get(0);
    match state.as_str() {
        "done" => Ok(JobState::Done),
        "interrupted" => Ok(JobState::Interrupted(parse_json(row.get(1))?)),
        "shadow" => Ok(JobState::Shadow(parse_json(row.get(1))?)),
        _ => Ok(JobState::Loading(parse_json(row.get(1))?)),
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(s: String) -> Result<T> {
    serde_json::from_str(&s)
        .map_err(|e| Error::Ledger(format!("unreadable entry in dbsync.jobs: {e}")))
}

/// Sets an earlier run of `job_id` aside so the job can start over: its row is renamed (a
/// finished one stays as history; an unfinished one stays `loading`, so the new start adopts
/// what it dropped) and its parts no longer count.
pub async fn set_aside(client: &Client, job_id: &str) -> Result<()> {
    client
        .execute(
            "UPDATE dbsync.jobs SET job_id = job_id || '#set-aside-' || to_char(clock_timestamp(), 'YYYYMMDD\"T\"HH24MISS.US')
              WHERE job_id = $1",
            &[&job_id],
        )
        .await
        .map_err(pg("setting the earlier run aside"))?;
    client
        .execute("DELETE FROM dbsync.parts WHERE job_id = $1", &[&job_id])
        .await
        .map_err(pg("setting the earlier run aside"))?;
    Ok(())
}

/// Supersedes every unfinished job (loading, interrupted, shadow): returns what they had taken
/// away, merged, so the new job adopts it, and whether one was an atomic import whose shadow
/// tables are still there.
pub async fn supersede_unfinished(client: &impl GenericClient) -> Result<(Restore, bool)> {
    let mut restore = Restore::default();
    let mut shadows = false;
    for r in client
        .query(
            "UPDATE dbsync.jobs SET state = 'superseded', finished_at = now()
              WHERE state IN ('loading', 'interrupted', 'shadow')
          RETURNING restore::text AS restore, state = 'shadow' AS shadow",
            &[],
        )
        .await
        .map_err(pg("reading unfinished jobs"))?
    {
        restore.merge(parse_json(r.get("restore"))?);
        shadows |= r.get::<_, bool>("shadow");
    }
    Ok((restore, shadows))
}

/// Records a new job `loading` with what it took away, clearing every other job's part rows
/// and every finishing mark (marks are numbered in the list of the record that made them).
pub async fn open_job(
    client: &impl GenericClient,
    job_id: &str,
    kind: &str,
    tables: &[QualName],
    restore: &Restore,
) -> Result<()> {
    client
        .execute("DELETE FROM dbsync.parts WHERE job_id <> $1", &[&job_id])
        .await
        .map_err(pg("clearing old ledger entries"))?;
    client
        .execute("DELETE FROM dbsync.finish_steps", &[])
        .await
        .map_err(pg("clearing old ledger entries"))?;
    client
        .execute(
            "INSERT INTO dbsync.jobs (job_id, kind, state, tables, restore)
             VALUES ($1, $2, 'loading', $3::text::jsonb, $4::text::jsonb)",
            &[
                &job_id,
                &kind,
                &to_json(&tables.iter().map(|t| t.to_string()).collect::<Vec<_>>()),
                &to_json(restore),
            ],
        )
        .await
        .map_err(pg("recording the job"))?;
    Ok(())
}

fn to_json<T: Serialize>(v: &T) -> String {
    // Our ledger types (strings, names, FK definitions) always serialise.
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

/// Records an atomic import loading into shadow tables (state `shadow`, with `restore`
/// saying how to swap), replacing any earlier attempt of it (its parts no longer count) and
/// superseding any other job's shadow record.
pub async fn record_shadow_job(
    client: &impl GenericClient,
    job_id: &str,
    tables: &[QualName],
    restore: &Restore,
) -> Result<()> {
    client
        .execute("DELETE FROM dbsync.jobs WHERE job_id = $1", &[&job_id])
        .await
        .map_err(pg("recording the atomic import"))?;
    // Any other shadow record is stale: the shadow schema is created afresh for this job.
    supersede_shadows(client).await?;
    client
        .execute("DELETE FROM dbsync.parts WHERE job_id = $1", &[&job_id])
        .await
        .map_err(pg("recording the atomic import"))?;
    client
        .execute(
            "INSERT INTO dbsync.jobs (job_id, kind, state, tables, restore)
             VALUES ($1, 'import', 'shadow', $2::text::jsonb, $3::text::jsonb)",
            &[
                &job_id,
                &to_json(&tables.iter().map(|t| t.to_string()).collect::<Vec<_>>()),
                &to_json(restore),
            ],
        )
        .await
        .map_err(pg("recording the atomic import"))?;
    Ok(())
}

/// Marks every `shadow` record superseded: for when the shadow tables are gone or about to
/// be replaced.
pub async fn supersede_shadows(client: &impl GenericClient) -> Result<()> {
    client
        .execute(
            "UPDATE dbsync.jobs SET state = 'superseded', finished_at = now() WHERE state = 'shadow'",
            &[],
        )
        .await
        .map_err(pg("superseding shadow records"))?;
    Ok(())
}

/// Inside the swap: forgets the `shadow` record of `job_id`, so that [`start_job`] records
/// the job afresh (its parts stay).
pub async fn end_shadow_job(client: &impl GenericClient, job_id: &str) -> Result<()> {
    client
        .execute(
            "DELETE FROM dbsync.jobs WHERE job_id = $1 AND state = 'shadow'",
            &[&job_id],
        )
        .await
        .map_err(pg("starting the swap"))?;
    Ok(())
}

/// Claims a part inside the load transaction; false if it is already loaded.
pub async fn claim_part(
    tx: &impl GenericClient,
    job_id: &str,
    part_id: &str,
    table: &str,
) -> Result<bool> {
    let n = tx
        .execute(
            "INSERT INTO dbsync.parts (job_id, part_id, table_name) VALUES ($1, $2, $3)
             ON CONFLICT (job_id, part_id) DO NOTHING",
            &[&job_id, &part_id, &table],
        )
        .await
        .map_err(|e| {
            Error::pg(
                Role::Target,
                format!("claiming part {part_id} of {table}"),
                e,
            )
        })?;
    Ok(n == 1)
}

/// Records what a claimed part held, before its transaction commits.
pub async fn record_part(
    tx: &impl GenericClient,
    job_id: &str,
    part_id: &str,
    stats: &PartStats,
) -> Result<()> {
    tx.execute(
        "UPDATE dbsync.parts SET rows = $3, bytes = $4, sha256 = $5 WHERE job_id = $1 AND part_id = $2",
        &[&job_id, &part_id, &(stats.rows as i64), &(stats.bytes as i64), &stats.sha256],
    )
    .await
    .map_err(|e| Error::pg(Role::Target, format!("recording part {part_id}"), e))?;
    Ok(())
}

/// Rows recorded per table for a job (what the ledger says was loaded).
pub async fn loaded_rows(client: &Client, job_id: &str) -> Result<Vec<(String, i64, i64)>> {
    let rows = client
        .query(
            "SELECT table_name, count(*)::int8, coalesce(sum(rows), 0)::int8 FROM dbsync.parts
              WHERE job_id = $1 GROUP BY table_name ORDER BY table_name",
            &[&job_id],
        )
        .await
        .map_err(pg("reading the ledger"))?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

/// The part ids of `all` that the ledger does not record as loaded for `job_id`.
pub async fn missing_parts(client: &Client, job_id: &str, want: &[String]) -> Result<Vec<String>> {
    let rows = client
        .query(
            "SELECT p FROM unnest($2::text[]) AS p
              WHERE NOT EXISTS (SELECT 1 FROM dbsync.parts WHERE job_id = $1 AND part_id = p) ORDER BY p",
            &[&job_id, &want],
        )
        .await
        .map_err(pg("reading the ledger"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Records that a job stopped with what it took away put back: `pending` is what a later
/// finish must still do.
pub async fn mark_interrupted(client: &Client, job_id: &str, pending: &Restore) -> Result<()> {
    client
        .execute(
            "UPDATE dbsync.jobs SET state = 'interrupted', finished_at = now(),
                    restore = $2::text::jsonb WHERE job_id = $1",
            &[&job_id, &to_json(pending)],
        )
        .await
        .map_err(pg("recording the interrupted job"))?;
    Ok(())
}

/// Sets an interrupted job loading again with `restore`; its finishing marks (numbered in
/// its old restore record) no longer hold.
pub async fn reopen_job(
    client: &impl GenericClient,
    job_id: &str,
    restore: &Restore,
) -> Result<()> {
    client
        .execute(
            "DELETE FROM dbsync.finish_steps WHERE job_id = $1",
            &[&job_id],
        )
        .await
        .map_err(pg("resuming the job"))?;
    client
        .execute(
            "UPDATE dbsync.jobs SET state = 'loading', finished_at = NULL,
                    restore = $2::text::jsonb WHERE job_id = $1",
            &[&job_id, &to_json(restore)],
        )
        .await
        .map_err(pg("resuming the job"))?;
    Ok(())
}

/// Refuses to finish the job of `m` while any of its parts is not in the ledger, naming them.
pub async fn require_all_parts(client: &Client, m: &Manifest) -> Result<()> {
    let all: Vec<String> = m
        .tables
        .iter()
        .flat_map(|t| t.parts.iter().map(|p| p.id.clone()))
        .collect();
    let missing = missing_parts(client, &m.job_id, &all).await?;
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::Incomplete {
            job: m.job_id.clone(),
            missing,
        })
    }
}

/// An unfinished job (loading, interrupted, shadow) that holds something back from the
/// target (keys, indexes, triggers or checks taken away, shadow tables made): its id and
/// kind.
pub async fn unfinished_holding_back(client: &Client) -> Result<Option<(String, String)>> {
    if !exists(client).await? {
        return Ok(None);
    }
    let rows = client
        .query(
            "SELECT job_id, kind, restore::text, state = 'shadow' FROM dbsync.jobs
              WHERE state IN ('loading', 'interrupted', 'shadow') ORDER BY started_at",
            &[],
        )
        .await
        .map_err(pg("reading the job ledger"))?;
    for r in rows {
        let restore: Restore = parse_json(r.get(2))?;
        // An atomic import's shadow tables are there too.
        if restore.holds_anything_back() || r.get::<_, bool>(3) {
            return Ok(Some((r.get(0), r.get(1))));
        }
    }
    Ok(None)
}

/// Records a refresh `loading`, superseding every unfinished job (none holds anything back:
/// [`unfinished_holding_back`] refused those) and clearing their part rows: the refresh makes
/// the target current, an earlier half-done load is not resumed over it.
pub async fn open_refresh(
    client: &impl GenericClient,
    job_id: &str,
    tables: &[QualName],
) -> Result<()> {
    supersede_unfinished(client).await?;
    open_job(client, job_id, "refresh", tables, &Restore::default()).await
}

/// A row of `dbsync.parts`: the job, and the part (or the replaced range's description).
#[derive(Debug, Clone, Copy)]
pub struct PartKey<'a> {
    pub job_id: &'a str,
    pub part_id: &'a str,
}

/// Records a replaced range `key` of `table` inside the transaction that replaced it: one
/// row per range and job, however often the range is replaced.
pub async fn record_replaced(
    tx: &impl GenericClient,
    key: PartKey<'_>,
    table: &str,
    stats: &PartStats,
) -> Result<()> {
    let PartKey { job_id, part_id } = key;
    tx.execute(
        "INSERT INTO dbsync.parts (job_id, part_id, table_name, rows, bytes, sha256)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (job_id, part_id) DO UPDATE
            SET rows = EXCLUDED.rows, bytes = EXCLUDED.bytes, sha256 = EXCLUDED.sha256,
                loaded_at = now()",
        &[
            &job_id,
            &part_id,
            &table,
            &(stats.rows as i64),
            &(stats.bytes as i64),
            &stats.sha256,
        ],
    )
    .await
    .map_err(|e| Error::pg(Role::Target, format!("recording {part_id}"), e))?;
    Ok(())
}

/// Marks a job done.
pub async fn mark_done(client: &impl GenericClient, job_id: &str) -> Result<()> {
    client
        .execute(
            "UPDATE dbsync.jobs SET state = 'done', finished_at = now() WHERE job_id = $1",
            &[&job_id],
        )
        .await
        .map_err(pg("marking the job done"))?;
    Ok(())
}
