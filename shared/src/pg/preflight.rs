//! Pre-flight tests of the source's rows against rules only the target has: a duplicate of a
//! target-only unique key, a row breaking a target-only check. Each runs inside a savepoint of
//! the caller's snapshot transaction, so a test the source cannot run (an expression calling
//! a function only the target has) is skipped without losing the snapshot.

use crate::error::{Error, Result, Role};
use crate::model::catalog::{CheckConstraint, Table, UniqueKey};
use crate::model::ident::{column_list, quote_ident};
use tokio_postgres::Client;

/// A duplicate of `key`'s columns among the source's rows of `table`, as `(cols)=(values)`.
/// NULLs count as distinct unless the key says otherwise, as in PostgreSQL.
pub async fn first_duplicate(
    client: &Client,
    table: &Table,
    key: &UniqueKey,
) -> Result<Option<String>> {
    let cols = column_list(key.columns.iter().map(String::as_str));
    let mut conds: Vec<String> = Vec::new();
    if !key.nulls_not_distinct {
        conds.extend(
            key.columns
                .iter()
                .map(|c| format!("{} IS NOT NULL", quote_ident(c))),
        );
    }
    if let Some(p) = &key.predicate {
        conds.push(format!("({p})"));
    }
    let filter = if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    };
    let sql = format!(
        "SELECT ROW({cols})::text FROM ONLY {}{filter} GROUP BY {cols} HAVING count(*) > 1 LIMIT 1",
        table.name.sql()
    );
    let found = in_savepoint(
        client,
        &sql,
        &format!("unique index {} on {}", key.name, table.name),
    )
    .await?;
    Ok(found.map(|v| format!("({cols})={v}")))
}

/// A source row of `table` that breaks `check`, shown by its key (or its ctid).
pub async fn first_breaking_row(
    client: &Client,
    table: &Table,
    check: &CheckConstraint,
) -> Result<Option<String>> {
    let shown = match &table.key {
        Some(k) => column_list(k.columns.iter().map(|c| c.name.as_str())),
        None => "ctid".to_string(),
    };
    let sql = format!(
        "SELECT ROW({shown})::text FROM ONLY {} WHERE NOT ({}) LIMIT 1",
        table.name.sql(),
        check.expression
    );
    let found = in_savepoint(
        client,
        &sql,
        &format!("check {} on {}", check.name, table.name),
    )
    .await?;
    Ok(found.map(|v| format!("({shown})={v}")))
}

/// Runs a one-value query in a savepoint; a query the source refuses (other than a lost
/// connection) is rolled back to the savepoint and reported as no finding.
async fn in_savepoint(client: &Client, sql: &str, what: &str) -> Result<Option<String>> {
    let err = |e| {
        Error::pg(
            Role::Source,
            format!("testing {what} against the source"),
            e,
        )
    };
    client
        .batch_execute("SAVEPOINT dbsync_preflight")
        .await
        .map_err(err)?;
    match client.query_opt(sql, &[]).await {
        Ok(row) => {
            client
                .batch_execute("RELEASE SAVEPOINT dbsync_preflight")
                .await
                .map_err(err)?;
            Ok(row.map(|r| r.get(0)))
        }
        Err(e) if e.as_db_error().is_some() => {
            tracing::info!(test = what, error = %e, "the source cannot run this pre-flight test; the load will check it");
            client
                .batch_execute("ROLLBACK TO SAVEPOINT dbsync_preflight")
                .await
                .map_err(err)?;
            Ok(None)
        }
        Err(e) => Err(err(e)),
    }
}
