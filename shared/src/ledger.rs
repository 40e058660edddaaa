//! The ledger: dbsync's own tables in the target (schema `dbsync`). `dbsync.jobs` records each
//! load (state, the foreign keys it dropped and the triggers it disabled, so a crashed job can
//! be finished or superseded without losing them); `dbsync.parts` records every loaded part in
//! the same transaction as its COPY, which makes retried part loads exactly-once.

use crate::catalog::ForeignKey;
use crate::copy_out::PartStats;
use crate::error::{Error, Result, Role};
use crate::ident::QualName;
use serde::{Deserialize, Serialize};
use tokio_postgres::{Client, GenericClient};

/// The ledger's schema in the target; never synced itself.
pub const LEDGER_SCHEMA: &str = "dbsync";

/// Advisory lock key ('dbsy') held by the job that loads a target database.
const TARGET_LOCK: (i32, i32) = (0x6462_7379, 1);

const DDL: &str = "
CREATE SCHEMA IF NOT EXISTS dbsync;
CREATE TABLE IF NOT EXISTS dbsync.jobs (
    job_id            text PRIMARY KEY,
    kind              text NOT NULL,
    state             text NOT NULL,
    started_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz,
    tables            jsonb NOT NULL DEFAULT '[]',
    dropped_fks       jsonb NOT NULL DEFAULT '[]',
    disabled_triggers jsonb NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS dbsync.parts (
    job_id     text NOT NULL,
    part_id    text NOT NULL,
    table_name text NOT NULL,
    rows       bigint,
    bytes      bigint,
    sha256     text,
    loaded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, part_id)
);";

fn pg(context: &'static str) -> impl Fn(tokio_postgres::Error) -> Error {
    move |e| Error::pg(Role::Target, context, e)
}

/// Creates the ledger tables if needed (serialised, so parallel first runs don't race).
pub async fn ensure(client: &mut Client) -> Result<()> {
    let tx = client
        .transaction()
        .await
        .map_err(pg("creating the ledger"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1, 2)", &[&TARGET_LOCK.0])
        .await
        .map_err(pg("creating the ledger"))?;
    tx.batch_execute(DDL)
        .await
        .map_err(pg("creating the ledger (schema dbsync)"))?;
    tx.commit().await.map_err(pg("creating the ledger"))
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

/// A trigger disabled for the load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisabledTriggers {
    /// The table whose user triggers were disabled.
    pub table: QualName,
}

/// Where a job stands in this target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// Never seen: the caller must start it.
    New,
    /// Started earlier and not finished: parts in the ledger are skipped.
    Loading {
        /// Foreign keys it dropped.
        dropped_fks: Vec<ForeignKey>,
        /// Tables whose triggers it disabled.
        disabled: Vec<DisabledTriggers>,
    },
    /// Finished earlier.
    Done,
}

/// Reads a job's state.
pub async fn job_state(client: &Client, job_id: &str) -> Result<JobState> {
    let row = client
        .query_opt(
            "SELECT state, dropped_fks::text, disabled_triggers::text FROM dbsync.jobs WHERE job_id = $1",
            &[&job_id],
        )
        .await
        .map_err(pg("reading the job ledger"))?;
    let Some(row) = row else {
        return Ok(JobState::New);
    };
    let state: String = row.get(0);
    if state == "done" {
        return Ok(JobState::Done);
    }
    Ok(JobState::Loading {
        dropped_fks: parse_json(row.get(1))?,
        disabled: parse_json(row.get(2))?,
    })
}

fn parse_json<T: serde::de::DeserializeOwned>(s: String) -> Result<T> {
    serde_json::from_str(&s).map_err(|e| Error::Manifest {
        path: "dbsync.jobs".into(),
        message: format!("unreadable ledger entry: {e}"),
    })
}

/// Starts a job in one transaction: empties the in-scope tables in one `TRUNCATE` (never
/// cascading), drops the given foreign keys and disables triggers, adopting what unfinished
/// earlier jobs dropped or disabled so nothing is lost, and records all of it.
pub async fn start_job(
    client: &mut Client,
    job_id: &str,
    kind: &str,
    tables: &[QualName],
    drop_fks: &[ForeignKey],
    disable_triggers: &[QualName],
) -> Result<(Vec<ForeignKey>, Vec<DisabledTriggers>)> {
    let tx = client.transaction().await.map_err(pg("starting the job"))?;
    let mut dropped: Vec<ForeignKey> = Vec::new();
    let mut disabled: Vec<DisabledTriggers> = Vec::new();
    for r in tx
        .query(
            "UPDATE dbsync.jobs SET state = 'superseded', finished_at = now()
              WHERE state = 'loading' RETURNING dropped_fks::text, disabled_triggers::text",
            &[],
        )
        .await
        .map_err(pg("reading unfinished jobs"))?
    {
        dropped.extend(parse_json::<Vec<ForeignKey>>(r.get(0))?);
        disabled.extend(parse_json::<Vec<DisabledTriggers>>(r.get(1))?);
    }
    if !tables.is_empty() {
        let list = tables
            .iter()
            .map(QualName::sql)
            .collect::<Vec<_>>()
            .join(", ");
        tx.batch_execute(&format!("TRUNCATE ONLY {list}"))
            .await
            .map_err(|e| Error::pg(Role::Target, "emptying the in-scope tables", e))?;
    }
    for fk in drop_fks {
        tx.batch_execute(&format!(
            "ALTER TABLE {} DROP CONSTRAINT {}",
            fk.table.sql(),
            crate::ident::quote_ident(&fk.name)
        ))
        .await
        .map_err(|e| {
            Error::pg(
                Role::Target,
                format!("dropping foreign key {} on {}", fk.name, fk.table),
                e,
            )
        })?;
        if !dropped.contains(fk) {
            dropped.push(fk.clone());
        }
    }
    for t in disable_triggers {
        tx.batch_execute(&format!("ALTER TABLE {} DISABLE TRIGGER USER", t.sql()))
            .await
            .map_err(|e| Error::pg(Role::Target, format!("disabling triggers on {t}"), e))?;
        let d = DisabledTriggers { table: t.clone() };
        if !disabled.contains(&d) {
            disabled.push(d);
        }
    }
    tx.execute("DELETE FROM dbsync.parts WHERE job_id <> $1", &[&job_id])
        .await
        .map_err(pg("clearing old ledger entries"))?;
    tx.execute(
        "INSERT INTO dbsync.jobs (job_id, kind, state, tables, dropped_fks, disabled_triggers)
         VALUES ($1, $2, 'loading', $3::text::jsonb, $4::text::jsonb, $5::text::jsonb)",
        &[
            &job_id,
            &kind,
            &to_json(&tables.iter().map(|t| t.to_string()).collect::<Vec<_>>()),
            &to_json(&dropped),
            &to_json(&disabled),
        ],
    )
    .await
    .map_err(pg("recording the job"))?;
    tx.commit().await.map_err(pg("starting the job"))?;
    Ok((dropped, disabled))
}

fn to_json<T: Serialize>(v: &T) -> String {
    // Our ledger types (strings, names, FK definitions) always serialise.
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
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

/// Finishes a job: re-adds dropped foreign keys (NOT VALID, then VALIDATE), re-enables
/// triggers, sets sequences, ANALYZEs the tables and marks the job done.
pub async fn finish_job(
    client: &mut Client,
    job_id: &str,
    dropped: &[ForeignKey],
    disabled: &[DisabledTriggers],
    sequences: &[crate::catalog::Sequence],
    tables: &[QualName],
) -> Result<()> {
    for fk in dropped {
        let exists = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_constraint c
                   JOIN pg_class r ON r.oid = c.conrelid JOIN pg_namespace n ON n.oid = r.relnamespace
                  WHERE c.conname = $1 AND r.relname = $2 AND n.nspname = $3)",
                &[&fk.name, &fk.table.name, &fk.table.schema],
            )
            .await
            .map_err(pg("checking foreign keys"))?
            .get::<_, bool>(0);
        let ctx = || format!("re-adding foreign key {} on {}", fk.name, fk.table);
        if !exists {
            client
                .batch_execute(&format!(
                    "ALTER TABLE {} ADD CONSTRAINT {} {} NOT VALID",
                    fk.table.sql(),
                    crate::ident::quote_ident(&fk.name),
                    fk.definition.trim_end_matches(" NOT VALID")
                ))
                .await
                .map_err(|e| Error::pg(Role::Target, ctx(), e))?;
        }
        client
            .batch_execute(&format!(
                "ALTER TABLE {} VALIDATE CONSTRAINT {}",
                fk.table.sql(),
                crate::ident::quote_ident(&fk.name)
            ))
            .await
            .map_err(|e| Error::pg(Role::Target, ctx(), e))?;
    }
    for d in disabled {
        client
            .batch_execute(&format!(
                "ALTER TABLE {} ENABLE TRIGGER USER",
                d.table.sql()
            ))
            .await
            .map_err(|e| {
                Error::pg(
                    Role::Target,
                    format!("re-enabling triggers on {}", d.table),
                    e,
                )
            })?;
    }
    for s in sequences {
        client
            .execute(
                "SELECT pg_catalog.setval($1::text::regclass, $2, $3)",
                &[&s.name.sql(), &s.last_value, &s.is_called],
            )
            .await
            .map_err(|e| Error::pg(Role::Target, format!("setting sequence {}", s.name), e))?;
    }
    if !tables.is_empty() {
        let list = tables
            .iter()
            .map(QualName::sql)
            .collect::<Vec<_>>()
            .join(", ");
        client
            .batch_execute(&format!("ANALYZE {list}"))
            .await
            .map_err(pg("analyzing the loaded tables"))?;
    }
    client
        .execute(
            "UPDATE dbsync.jobs SET state = 'done', finished_at = now() WHERE job_id = $1",
            &[&job_id],
        )
        .await
        .map_err(pg("marking the job done"))?;
    Ok(())
}
