//! The changed-only refresh's comparison: a key range's fingerprint, computed the same way on
//! both sides. The replacement is [`crate::pg::copy_in::replace_rows`]; sequences and ANALYZE
//! after it are [`crate::pg::steps`]'.

use crate::error::{Error, Result, Role};
use crate::model::catalog::Table;
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
