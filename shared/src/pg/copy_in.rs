//! Streaming a chunk into the target: `COPY t (cols) FROM STDIN` inside a transaction that
//! also records the part in the ledger, so a part is loaded exactly once however often it is
//! retried. Checks the rows the server counted and the sha256 of what was sent.

use crate::error::{Error, Result, Role};
use crate::model::catalog::Table;
use crate::model::part::{ByteSource, LoadOutcome, PartStats, Tally};
use crate::pg::{ledger, slice};
use bytes::BytesMut;
use futures_util::SinkExt;
use tokio_postgres::{GenericClient, Transaction};

/// How one part goes in.
#[derive(Debug, Default, Clone, Copy)]
pub struct PartLoad<'a> {
    /// The part's stats from a manifest, checked before the commit; without them (the
    /// streaming sync) the measured stats are recorded as they are.
    pub expected: Option<&'a PartStats>,
    /// The part is its table's only one in the job, loaded on a session of its own (not
    /// inside a shared transaction): where nothing else references the table, its load
    /// empties it again and copies with `FREEZE` (see [`load_part`]).
    pub sole: bool,
}

/// Loads one part. A table's sole part (`how.sole`) whose table no other table's foreign
/// key references is loaded with `TRUNCATE ONLY` + `COPY ... FREEZE` in the part's
/// transaction: the table is empty already, and the rows then go in frozen with their pages
/// all-visible, so the ANALYZE that follows and every first reader check no transaction
/// status and rewrite no page to set hint bits (ANALYZE of `pgbench_accounts`, 900k rows:
/// 120 -> 73 ms), and no later VACUUM has to freeze them. Rows of a committed part stay as
/// they are: the truncate runs only after the ledger claim says the part is not in yet.
pub async fn load_part(
    client: &mut (impl GenericClient + Send + Sync),
    job_id: &str,
    part_id: &str,
    table: &Table,
    source: &mut dyn ByteSource,
    how: PartLoad<'_>,
) -> Result<LoadOutcome> {
    let expected = how.expected;
    let subject = format!("part {part_id} of {}", table.name);
    let ctx = |what: &str| format!("{what} {subject}");
    let tx = client
        .transaction()
        .await
        .map_err(|e| Error::pg(Role::Target, ctx("starting the load of"), e))?;
    // Claim the part first: a concurrent retry of the same part blocks here until this one
    // commits (then finds it done) or rolls back (then loads it).
    if !ledger::claim_part(&tx, job_id, part_id, &table.name.to_string()).await? {
        tx.rollback()
            .await
            .map_err(|e| Error::pg(Role::Target, ctx("releasing"), e))?;
        return Ok(LoadOutcome::AlreadyLoaded);
    }
    let has_columns = table.copy_columns().next().is_some();
    let freeze = how.sole && has_columns && empty_again(&tx, table, &subject).await?;
    let stats = rows_in(&tx, table, source, part_id, &subject, freeze).await?;
    let corrupt = |detail: String| Error::PartCorrupt {
        table: table.name.to_string(),
        part: part_id.to_string(),
        detail,
    };
    if let Some(exp) = expected {
        if exp.sha256 != stats.sha256 || exp.rows != stats.rows || exp.bytes != stats.bytes {
            // Returning drops the transaction: nothing of this part stays in the target.
            return Err(corrupt(format!(
                "expected {} rows, {} bytes, sha256 {}; read {} rows, {} bytes, sha256 {}",
                exp.rows, exp.bytes, exp.sha256, stats.rows, stats.bytes, stats.sha256
            )));
        }
    }
    ledger::record_part(&tx, job_id, part_id, &stats).await?;
    tx.commit()
        .await
        .map_err(|e| Error::pg(Role::Target, ctx("committing"), e))?;
    Ok(LoadOutcome::Loaded(stats))
}

/// Replaces the rows of `table` that `condition` selects (all of them without one) by the
/// rows of `source`, in one transaction in replica mode (no foreign-key or user trigger
/// fires: the rows that reference these are replaced to the same snapshot), so the target
/// never holds the range half-replaced, and recorded in the ledger under `key` (the job, and
/// the range's description that errors name) in the same transaction. The changed-only refresh's
/// unit of work. Returns what was sent.
pub async fn replace_rows(
    client: &mut (impl GenericClient + Send + Sync),
    table: &Table,
    condition: Option<&str>,
    source: &mut dyn ByteSource,
    key: ledger::PartKey<'_>,
) -> Result<PartStats> {
    let subject = key.part_id;
    let ctx = |what: &str| format!("{what} {subject}");
    let tx = client
        .transaction()
        .await
        .map_err(|e| Error::pg(Role::Target, ctx("starting the replacement of"), e))?;
    let name = table.name.sql();
    tx.batch_execute("SET LOCAL session_replication_role = replica")
        .await
        .map_err(|e| Error::pg(Role::Target, ctx("starting the replacement of"), e))?;
    // A whole table nothing else references is emptied by TRUNCATE (its rows then go in
    // frozen, as a sole part's do); else, and for a range, by DELETE.
    let truncated = condition.is_none() && empty_again(&tx, table, subject).await?;
    if !truncated {
        let delete = match condition {
            Some(c) => format!("DELETE FROM ONLY {name} WHERE {c}"),
            None => format!("DELETE FROM ONLY {name}"),
        };
        tx.batch_execute(&delete)
            .await
            .map_err(|e| Error::pg(Role::Target, ctx("deleting the old rows of"), e))?;
    }
    let stats = rows_in(&tx, table, source, subject, subject, truncated).await?;
    ledger::record_replaced(&tx, key, &table.name.to_string(), &stats).await?;
    tx.commit()
        .await
        .map_err(|e| Error::pg(Role::Target, ctx("committing"), e))?;
    Ok(stats)
}

/// Sends `source`'s rows into `table` in `tx` (COPY, `FREEZE` when `freeze`; a table without
/// copied columns gets rows of defaults) and checks the server counted every line sent.
/// `part`: the part an error names; `subject`: what the statements' errors say.
async fn rows_in(
    tx: &Transaction<'_>,
    table: &Table,
    source: &mut dyn ByteSource,
    part: &str,
    subject: &str,
    freeze: bool,
) -> Result<PartStats> {
    let (server_rows, tally) = if table.copy_columns().next().is_none() {
        insert_empty_rows(tx, table, source, subject).await?
    } else {
        copy_rows(tx, table, source, subject, freeze).await?
    };
    let stats = tally.finish();
    if server_rows != stats.rows {
        return Err(Error::PartCorrupt {
            table: table.name.to_string(),
            part: part.to_string(),
            detail: format!(
                "the target counted {server_rows} rows but {} lines were sent",
                stats.rows
            ),
        });
    }
    Ok(stats)
}

/// Small rows are sent in batches of about this many bytes.
const BATCH: usize = 256 * 1024;
/// A large row is sent this many bytes at a time.
const SLICE: usize = 1 << 20;

/// Streams COPY data into `COPY t (cols) FROM STDIN` in the source's format; returns the rows
/// the server counted and the tally of what was sent.
async fn copy_rows(
    tx: &Transaction<'_>,
    table: &Table,
    source: &mut dyn ByteSource,
    subject: &str,
    freeze: bool,
) -> Result<(u64, Tally)> {
    let ctx = |what: &str| format!("{what} {subject}");
    let format = source.format();
    let sql = if freeze {
        slice::copy_in_frozen_sql(table, format)
    } else {
        slice::copy_in_sql(table, format)
    };
    let sink = tx
        .copy_in(sql.as_str())
        .await
        .map_err(|e| Error::pg(Role::Target, ctx("starting COPY of"), e))?;
    futures_util::pin_mut!(sink);
    let mut tally = Tally::new(format);
    let mut batch = BytesMut::with_capacity(512 * 1024);
    while let Some(mut buf) = source.next_bytes().await? {
        tally.feed(&buf);
        if buf.len() < BATCH {
            batch.extend_from_slice(&buf);
            if batch.len() >= BATCH {
                sink.send(batch.split().freeze())
                    .await
                    .map_err(|e| Error::pg(Role::Target, ctx("loading"), e))?;
            }
            continue;
        }
        // A large row (a big value) goes on from COPY's own buffer in slices that share it:
        // the connection's write buffer holds one slice at a time, never a second copy.
        if !batch.is_empty() {
            sink.send(batch.split().freeze())
                .await
                .map_err(|e| Error::pg(Role::Target, ctx("loading"), e))?;
        }
        while !buf.is_empty() {
            let piece = buf.split_to(buf.len().min(SLICE));
            sink.send(piece)
                .await
                .map_err(|e| Error::pg(Role::Target, ctx("loading"), e))?;
        }
    }
    if !batch.is_empty() {
        sink.send(batch.split().freeze())
            .await
            .map_err(|e| Error::pg(Role::Target, ctx("loading"), e))?;
    }
    let server_rows = sink
        .finish()
        .await
        .map_err(|e| Error::pg(Role::Target, ctx("finishing COPY of"), e))?;
    Ok((server_rows, tally))
}

/// Empties `table` again in the part's transaction when PostgreSQL allows truncating it
/// alone (see [`slice::FREEZABLE_SQL`]); returns whether it did, so the COPY may `FREEZE`.
async fn empty_again(tx: &Transaction<'_>, table: &Table, subject: &str) -> Result<bool> {
    let ctx = |what: &str| format!("{what} {subject}");
    let name = table.name.sql();
    let row = tx
        .query_one(slice::FREEZABLE_SQL, &[&name])
        .await
        .map_err(|e| {
            Error::pg(
                Role::Target,
                ctx("checking what references the table of"),
                e,
            )
        })?;
    if !row.get::<_, bool>(0) {
        return Ok(false);
    }
    tx.batch_execute(&format!("TRUNCATE ONLY {name}"))
        .await
        .map_err(|e| Error::pg(Role::Target, ctx("emptying the table again for"), e))?;
    Ok(true)
}

/// A table without copied columns (none at all, or only generated ones): its COPY text is one
/// empty line per row, and `COPY t () FROM STDIN` is not valid SQL. The rows are counted
/// (anything but empty lines is corrupt) and inserted with every column at its default.
async fn insert_empty_rows(
    tx: &Transaction<'_>,
    table: &Table,
    source: &mut dyn ByteSource,
    subject: &str,
) -> Result<(u64, Tally)> {
    let ctx = |what: &str| format!("{what} {subject}");
    let mut tally = Tally::default();
    while let Some(buf) = source.next_bytes().await? {
        if buf.iter().any(|&b| b != b'\n') {
            return Err(Error::PartCorrupt {
                table: table.name.to_string(),
                part: ctx("a row with values in"),
                detail: "a table without copied columns can only have empty rows".into(),
            });
        }
        tally.feed(&buf);
    }
    let rows = tally.rows();
    let sql = slice::insert_empty_rows_sql(table);
    let server_rows = tx
        .execute(sql.as_str(), &[&(rows as i64)])
        .await
        .map_err(|e| Error::pg(Role::Target, ctx("loading"), e))?;
    Ok((server_rows, tally))
}
