//! The changed-only refresh's statements: a key range's fingerprint, computed the same way on
//! both sides, and what the target needs after its ranges were replaced (sequences set to
//! the source's, ANALYZE of the tables that changed). The replacement itself is
//! [`crate::pg::copy_in::replace_rows`].

use crate::error::{Error, Result, Role};
use crate::model::catalog::{Sequence, Table};
use crate::model::ident::quote_literal;
use crate::model::verify::Fingerprint;
use crate::pg::verify;
use tokio_postgres::Client;

/// The SQL of a key range's fingerprint for the changed-only refresh: rows and an
/// order-independent sum of a 64-bit hash of each row's text (`hashtextextended`, stable
/// across platforms and majors: hash partitioning depends on it), over the copied columns in
/// `columns` order, of the rows `condition` selects. The same expression on both sides
/// (sessions share DateStyle, TimeZone, extra_float_digits); `exported`: over the values the
/// source's export produces (data rules), not the stored ones.
pub fn range_fingerprint_sql(
    table: &Table,
    columns: &[&str],
    exported: bool,
    condition: Option<&str>,
) -> String {
    let (row, filter) = verify::row_and_filter(table, columns, exported, condition);
    format!(
        "SELECT count(*)::int8, coalesce(sum(pg_catalog.hashtextextended(ROW({row})::text, 0)), 0)::text
           FROM ONLY {}{filter}",
        table.name.sql()
    )
}

/// Fingerprints the rows of `table` that `condition` selects ([`range_fingerprint_sql`]).
pub async fn range_fingerprint(
    client: &Client,
    role: Role,
    table: &Table,
    columns: &[&str],
    condition: Option<&str>,
    what: &str,
) -> Result<Fingerprint> {
    let sql = range_fingerprint_sql(table, columns, role == Role::Source, condition);
    let row = client
        .query_one(sql.as_str(), &[])
        .await
        .map_err(|e| Error::pg(role, format!("checksumming {what}"), e))?;
    Ok(Fingerprint {
        rows: row.get(0),
        checksum: row.get(1),
    })
}

/// Sets each sequence of `seqs` to the state read from the source.
pub async fn set_sequences(client: &Client, seqs: &[Sequence]) -> Result<()> {
    for s in seqs {
        let sql = format!(
            "SELECT pg_catalog.setval({}::regclass, {}, {})",
            quote_literal(&s.name.sql()),
            s.last_value,
            s.is_called
        );
        client
            .batch_execute(&sql)
            .await
            .map_err(|e| Error::pg(Role::Target, format!("setting sequence {}", s.name), e))?;
    }
    Ok(())
}

/// ANALYZE of `tables` (those whose rows changed).
pub async fn analyze(client: &Client, tables: &[&Table]) -> Result<()> {
    for t in tables {
        client
            .batch_execute(&format!("ANALYZE {}", t.name.sql()))
            .await
            .map_err(|e| Error::pg(Role::Target, format!("analyzing {}", t.name), e))?;
    }
    Ok(())
}
