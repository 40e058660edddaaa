//! Verification queries: per table a row count and an order-independent content checksum
//! (sum of 64-bit prefixes of md5 of each row's text form, so duplicate rows count).

use crate::error::{Error, Result, Role};
use crate::model::catalog::Table;
use crate::model::ident::quote_ident;
use crate::model::verify::Fingerprint;
use crate::pg::slice;
use tokio_postgres::Client;

/// The SQL computing a table's fingerprint over its copied columns, in `columns` order.
/// `exported`: over the rows and values its export produces (the source side of a table
/// with data rules), not the stored ones.
pub fn fingerprint_sql(table: &Table, columns: &[&str], exported: bool) -> String {
    let (row, filter) = row_and_filter(table, columns, exported);
    format!(
        "SELECT count(*)::int8, coalesce(sum(('x' || left(md5(ROW({row})::text), 16))::bit(64)::int8::numeric), 0)::text
           FROM ONLY {}{filter}",
        table.name.sql()
    )
}

/// A fingerprint's row expression (the copied columns in `columns` order; `exported`: as
/// the export computes them) and its `WHERE` clause: when `exported`, the table's row filter.
fn row_and_filter(table: &Table, columns: &[&str], exported: bool) -> (String, String) {
    let row = columns
        .iter()
        .map(|c| {
            if exported {
                slice::export_expr(table, c)
            } else {
                quote_ident(c)
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    let filter = slice::and_all([slice::row_condition(table).filter(|_| exported)]);
    (row, filter)
}

/// Has the source plan a table's data rules (a filter that does not parse, a constant that
/// does not fit its type), naming the table.
pub async fn check_rules(client: &Client, table: &Table) -> Result<()> {
    client
        .query(slice::rules_check_sql(table).as_str(), &[])
        .await
        .map_err(|e| {
            let why = e
                .as_db_error()
                .map(|d| d.message().to_string())
                .unwrap_or_else(|| e.to_string());
            Error::config(
                crate::model::rules::SETTING,
                format!("rules for {}: the source refuses them: {why}", table.unit()),
            )
        })?;
    Ok(())
}

/// Fingerprints one table.
pub async fn fingerprint(
    client: &Client,
    role: Role,
    table: &Table,
    columns: &[&str],
) -> Result<Fingerprint> {
    let row = client
        .query_one(
            fingerprint_sql(table, columns, role == Role::Source).as_str(),
            &[],
        )
        .await
        .map_err(|e| Error::pg(role, format!("checksumming {}", table.name), e))?;
    Ok(Fingerprint {
        rows: row.get(0),
        checksum: row.get(1),
    })
}
