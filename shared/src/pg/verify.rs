//! Verification queries: per table a row count and an order-independent content checksum
//! (sum of 64-bit prefixes of md5 of each row's text form, so duplicate rows count).

use crate::error::{Error, Result, Role};
use crate::model::catalog::Table;
use crate::model::ident::quote_ident;
use crate::model::verify::Fingerprint;
use tokio_postgres::Client;

/// The SQL computing a table's fingerprint over its copied columns, in `columns` order.
pub fn fingerprint_sql(table: &Table, columns: &[&str]) -> String {
    let row = columns
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT count(*)::int8, coalesce(sum(('x' || left(md5(ROW({row})::text), 16))::bit(64)::int8::numeric), 0)::text
           FROM ONLY {}",
        table.name.sql()
    )
}

/// Fingerprints one table.
pub async fn fingerprint(
    client: &Client,
    role: Role,
    table: &Table,
    columns: &[&str],
) -> Result<Fingerprint> {
    let row = client
        .query_one(fingerprint_sql(table, columns).as_str(), &[])
        .await
        .map_err(|e| Error::pg(role, format!("checksumming {}", table.name), e))?;
    Ok(Fingerprint {
        rows: row.get(0),
        checksum: row.get(1),
    })
}
