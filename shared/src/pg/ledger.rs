//! The ledger: dbsync's own tables in the target (schema `dbsync`). `dbsync.jobs` records each
//! load (state, the foreign keys it dropped and the triggers it disabled, so a crashed job can
//! be finished or superseded without losing them); `dbsync.parts` records every loaded part in
//! the same transaction as its COPY, which makes retried part loads exactly-once.

use crate::error::{Error, Result, Role};
use crate::model::catalog::Sequence;
use crate::model::ident::QualName;
use crate::model::ident::{quote_ident, quote_literal};
use crate::model::part::PartStats;
use crate::model::restore::Restore;
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

/// None when the ledger exists or this role may create it; otherwise the problem, for the
/// pre-flight list.
pub async fn creatable(client: &Client) -> Result<Option<String>> {
    let ok: bool = client
        .query_one(
            "SELECT CASE WHEN to_regclass('dbsync.parts') IS NOT NULL AND to_regclass('dbsync.jobs') IS NOT NULL
                         THEN has_schema_privilege('dbsync', 'USAGE')
                              AND has_table_privilege('dbsync.parts', 'INSERT, UPDATE, DELETE, SELECT')
                              AND has_table_privilege('dbsync.jobs', 'INSERT, UPDATE, SELECT')
                         WHEN to_regnamespace('dbsync') IS NOT NULL THEN has_schema_privilege('dbsync', 'CREATE')
                         ELSE has_database_privilege(current_database(), 'CREATE') END",
            &[],
        )
        .await
        .map_err(pg("checking the ledger"))?
        .get(0);
    Ok((!ok).then(|| {
        "the target role may not create or write dbsync's ledger (schema dbsync): grant it CREATE on the database, or create the schema for it".to_string()
    }))
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
    if state == "done" {
        return Ok(JobState::Done);
    }
    Ok(JobState::Loading(parse_json(row.get(1))?))
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

/// Starts a job in one transaction: empties the in-scope tables in one `TRUNCATE` (never
/// cascading), drops the given foreign keys and indexes and disables triggers, adopting what
/// unfinished earlier jobs took away so nothing is lost, and records all of it.
pub async fn start_job(
    client: &mut Client,
    job_id: &str,
    kind: &str,
    tables: &[QualName],
    roots: &[QualName],
    take: Restore,
) -> Result<Restore> {
    let tx = client.transaction().await.map_err(pg("starting the job"))?;
    let mut restore = Restore::default();
    for r in tx
        .query(
            "UPDATE dbsync.jobs SET state = 'superseded', finished_at = now()
              WHERE state = 'loading' RETURNING restore::text",
            &[],
        )
        .await
        .map_err(pg("reading unfinished jobs"))?
    {
        restore.merge(parse_json(r.get(0))?);
    }
    if !tables.is_empty() {
        // ONLY for each table; partition roots whole (without ONLY, which PostgreSQL refuses
        // for a partitioned table): a key declared on a partitioned parent is only satisfied
        // when the parent is in the statement too. The pre-flight made sure every partition
        // a root has on the target is in scope.
        let list = tables
            .iter()
            .map(|t| format!("ONLY {}", t.sql()))
            .chain(roots.iter().map(QualName::sql))
            .collect::<Vec<_>>()
            .join(", ");
        tx.batch_execute(&format!("TRUNCATE {list}"))
            .await
            .map_err(|e| Error::pg(Role::Target, "emptying the in-scope tables", e))?;
    }
    take_away(&tx, &take).await?;
    restore.merge(take);
    tx.execute("DELETE FROM dbsync.parts WHERE job_id <> $1", &[&job_id])
        .await
        .map_err(pg("clearing old ledger entries"))?;
    tx.execute(
        "INSERT INTO dbsync.jobs (job_id, kind, state, tables, restore)
         VALUES ($1, $2, 'loading', $3::text::jsonb, $4::text::jsonb)",
        &[
            &job_id,
            &kind,
            &to_json(&tables.iter().map(|t| t.to_string()).collect::<Vec<_>>()),
            &to_json(&restore),
        ],
    )
    .await
    .map_err(pg("recording the job"))?;
    tx.commit().await.map_err(pg("starting the job"))?;
    Ok(restore)
}

/// Drops the foreign keys and indexes and disables the triggers that `take` lists, inside the
/// job's first transaction.
async fn take_away(tx: &tokio_postgres::Transaction<'_>, take: &Restore) -> Result<()> {
    let fks = take.fks.iter().map(|fk| {
        Step::new(
            format!("dropping foreign key {} on {}", fk.name, fk.table),
            format!(
                "ALTER TABLE {} DROP CONSTRAINT {}",
                fk.table.sql(),
                quote_ident(&fk.name)
            ),
        )
    });
    let indexes = take.indexes.iter().map(|ix| {
        Step::new(
            format!("dropping index {} on {}", ix.name, ix.table),
            format!(
                "DROP INDEX {}.{}",
                quote_ident(&ix.table.schema),
                quote_ident(&ix.name)
            ),
        )
    });
    let triggers = take.triggers.iter().map(|t| {
        Step::new(
            format!("disabling triggers on {t}"),
            format!("ALTER TABLE {} DISABLE TRIGGER USER", t.sql()),
        )
    });
    let checks = take.checks.iter().map(|c| {
        let object = if c.domain { "DOMAIN" } else { "TABLE" };
        Step::new(
            format!("setting aside check constraint {} on {}", c.name, c.on),
            format!(
                "ALTER {object} {} DROP CONSTRAINT {}",
                c.on.sql(),
                quote_ident(&c.name)
            ),
        )
    });
    for step in fks.chain(checks).chain(indexes).chain(triggers) {
        step.run(tx).await?;
    }
    Ok(())
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

/// A statement of the finalize phase, with what it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// What it does, for errors and logs (`rebuilding index i on t`).
    pub what: String,
    /// The statement.
    pub sql: String,
}

impl Step {
    fn new(what: String, sql: String) -> Self {
        Step { what, sql }
    }

    /// Runs it on `client` (a session or a transaction); an error says what it was doing.
    pub async fn run(&self, client: &impl GenericClient) -> Result<()> {
        client
            .batch_execute(&self.sql)
            .await
            .map_err(|e| Error::pg(Role::Target, self.what.clone(), e))
    }
}

/// Runs `steps` one after the other on `client`.
pub async fn run_steps(client: &Client, steps: &[Step]) -> Result<()> {
    for step in steps {
        step.run(client).await?;
    }
    Ok(())
}

/// A group of finalize statements; `parallel` says whether they may run at the same time.
pub struct StepGroup {
    /// Run the statements concurrently (else one after the other, on one session).
    pub parallel: bool,
    /// The statements.
    pub steps: Vec<Step>,
}

/// What finishes one table once all its parts are in: rebuild its dropped indexes
/// (idempotently, so a resumed job does not trip over one it already built), then ANALYZE.
/// Runs on the worker that loaded the table's last part, while other tables still load.
pub fn table_steps(restore: &Restore, table: &QualName) -> Vec<Step> {
    let mut steps: Vec<Step> = restore
        .indexes
        .iter()
        .filter(|ix| &ix.table == table)
        .map(|ix| {
            let sql = ix
                .definition
                .replacen("CREATE INDEX ", "CREATE INDEX IF NOT EXISTS ", 1);
            Step::new(format!("rebuilding index {} on {}", ix.name, ix.table), sql)
        })
        .collect();
    steps.push(Step::new(
        format!("analyzing {table}"),
        format!("ANALYZE {}", table.sql()),
    ));
    steps
}

/// The end of a job, after every table's [`table_steps`]; groups run one after the other:
/// re-add dropped foreign keys as NOT VALID (serial: the two keys of a cycle lock both tables
/// in opposite orders and would deadlock); validate them (parallel); re-enable triggers and
/// set sequences (serial).
pub fn finalize_steps(restore: &Restore, sequences: &[Sequence]) -> Vec<StepGroup> {
    let mut add = restore
        .fks
        .iter()
        .map(|fk| {
            readd(
                format!("re-adding foreign key {} on {}", fk.name, fk.table),
                Constrained::Table(&fk.table),
                &fk.name,
                &fk.definition,
                !fk.on_partitioned,
            )
        })
        .collect::<Vec<_>>();
    // NOT VALID checks come back NOT VALID: as they were, old rows unchecked.
    add.extend(restore.checks.iter().map(|c| {
        let on = if c.domain {
            Constrained::Domain(&c.on)
        } else {
            Constrained::Table(&c.on)
        };
        readd(
            format!("re-adding check constraint {} on {}", c.name, c.on),
            on,
            &c.name,
            &c.definition,
            true,
        )
    }));
    let validate = restore
        .fks
        .iter()
        .map(|fk| {
            Step::new(
                format!("validating foreign key {} on {}", fk.name, fk.table),
                format!(
                    "ALTER TABLE {} VALIDATE CONSTRAINT {}",
                    fk.table.sql(),
                    quote_ident(&fk.name)
                ),
            )
        })
        .collect();
    let mut last: Vec<Step> = restore
        .triggers
        .iter()
        .map(|t| {
            Step::new(
                format!("re-enabling triggers on {t}"),
                format!("ALTER TABLE {} ENABLE TRIGGER USER", t.sql()),
            )
        })
        .collect();
    last.extend(sequences.iter().map(|s| {
        Step::new(
            format!("setting sequence {}", s.name),
            format!(
                "SELECT pg_catalog.setval({}::regclass, {}, {})",
                quote_literal(&s.name.sql()),
                s.last_value,
                s.is_called
            ),
        )
    }));
    let group = |parallel, steps| StepGroup { parallel, steps };
    vec![group(false, add), group(true, validate), group(false, last)]
}

/// What a constraint is declared on.
#[derive(Clone, Copy)]
enum Constrained<'a> {
    Table(&'a QualName),
    Domain(&'a QualName),
}

/// Re-adds a constraint of a table or domain (`NOT VALID` when `not_valid`), unless it
/// exists (a resumed job may have re-added it already).
fn readd(what: String, on: Constrained<'_>, name: &str, definition: &str, not_valid: bool) -> Step {
    let (object, column, cast, on) = match on {
        Constrained::Domain(d) => ("DOMAIN", "contypid", "regtype", d),
        Constrained::Table(t) => ("TABLE", "conrelid", "regclass", t),
    };
    let suffix = if not_valid { " NOT VALID" } else { "" };
    let sql = format!(
        "DO $dbsync$ BEGIN
           IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = {name_lit}
                             AND {column} = {on_lit}::{cast}) THEN
             ALTER {object} {on} ADD CONSTRAINT {name} {def}{suffix};
           END IF;
         END $dbsync$",
        name_lit = quote_literal(name),
        on_lit = quote_literal(&on.sql()),
        on = on.sql(),
        name = quote_ident(name),
        def = definition.trim_end_matches(" NOT VALID"),
    );
    Step::new(what, sql)
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

/// Marks a job done.
pub async fn mark_done(client: &Client, job_id: &str) -> Result<()> {
    client
        .execute(
            "UPDATE dbsync.jobs SET state = 'done', finished_at = now() WHERE job_id = $1",
            &[&job_id],
        )
        .await
        .map_err(pg("marking the job done"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::catalog::SecondaryIndex;

    #[test]
    fn merging_restores_keeps_each_item_once() {
        let ix = SecondaryIndex {
            table: QualName::new("a", "t"),
            name: "i".into(),
            definition: "CREATE INDEX i ON a.t USING btree (x)".into(),
        };
        let mut r = Restore {
            indexes: vec![ix.clone()],
            ..Default::default()
        };
        r.merge(Restore {
            indexes: vec![ix],
            triggers: vec![QualName::new("a", "t")],
            ..Default::default()
        });
        assert_eq!(r.indexes.len(), 1);
        assert_eq!(r.triggers.len(), 1);
    }

    #[test]
    fn a_table_is_finished_by_rebuilding_its_own_indexes_idempotently_then_analyzing_it() {
        let ix = |t: &str| SecondaryIndex {
            table: QualName::new("a", t),
            name: format!("{t}_i"),
            definition: format!("CREATE INDEX {t}_i ON a.{t} USING btree (x)"),
        };
        let r = Restore {
            indexes: vec![ix("t"), ix("u")],
            ..Default::default()
        };
        let steps = table_steps(&r, &QualName::new("a", "t"));
        assert_eq!(steps.len(), 2);
        assert_eq!(
            steps[0].sql,
            "CREATE INDEX IF NOT EXISTS t_i ON a.t USING btree (x)"
        );
        assert_eq!(steps[1].sql, "ANALYZE \"a\".\"t\"");
        let groups = finalize_steps(&r, &[]);
        assert!(!groups[0].parallel && groups[1].parallel && !groups[2].parallel);
    }
}
