//! Verification, like `pgcopydb compare data`: per table a row count and an order-independent
//! content checksum (sum of 64-bit prefixes of md5 of each row's text form, so duplicate rows
//! count), and every sequence's state, on both sides.

use crate::catalog::{Sequence, Table};
use crate::error::{Error, Result, Role};
use crate::ident::quote_ident;
use serde::Serialize;
use tokio_postgres::Client;

/// One table's fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fingerprint {
    /// Rows.
    pub rows: i64,
    /// Checksum (decimal text of a numeric sum).
    pub checksum: String,
}

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

/// The result of comparing one table.
#[derive(Debug, Clone, Serialize)]
pub struct TableComparison {
    /// Table name.
    pub table: String,
    /// Source side.
    pub source: Fingerprint,
    /// Target side.
    pub target: Fingerprint,
}

impl TableComparison {
    /// Same rows and checksum.
    pub fn matches(&self) -> bool {
        self.source == self.target
    }
}

/// A whole comparison.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    /// Per table.
    pub tables: Vec<TableComparison>,
    /// Sequences whose state differs: name, source (last_value, is_called), target.
    pub sequence_differences: Vec<String>,
}

impl VerifyReport {
    /// Lines describing every difference.
    pub fn differences(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .tables
            .iter()
            .filter(|t| !t.matches())
            .map(|t| {
                format!(
                    "table {}: source {} rows (checksum {}), target {} rows (checksum {})",
                    t.table, t.source.rows, t.source.checksum, t.target.rows, t.target.checksum
                )
            })
            .collect();
        out.extend(self.sequence_differences.iter().cloned());
        out
    }

    /// Err with every difference, or Ok.
    pub fn into_result(self) -> Result<Self> {
        let d = self.differences();
        if d.is_empty() {
            Ok(self)
        } else {
            Err(Error::VerifyMismatch { differences: d })
        }
    }
}

/// Compares sequence states.
pub fn compare_sequences(source: &[Sequence], target: &[Sequence]) -> Vec<String> {
    let mut out = Vec::new();
    for s in source {
        match target.iter().find(|t| t.name == s.name) {
            None => out.push(format!("sequence {} is missing on the target", s.name)),
            Some(t) if (t.last_value, t.is_called) != (s.last_value, s.is_called) => {
                out.push(format!(
                "sequence {}: source last_value {} is_called {}, target last_value {} is_called {}",
                s.name, s.last_value, s.is_called, t.last_value, t.is_called
            ))
            }
            Some(_) => {}
        }
    }
    out
}
