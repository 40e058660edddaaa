//! Verification results, like `pgcopydb compare data`: per table a row count and an
//! order-independent content checksum on both sides, every sequence's state compared, and
//! the differences as lines a person reads. Pure data and comparison.

use crate::error::{Error, Result};
use crate::model::catalog::Sequence;
use serde::Serialize;

/// One table's fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fingerprint {
    /// Rows.
    pub rows: i64,
    /// Checksum (decimal text of a numeric sum).
    pub checksum: String,
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
    /// The first keys whose rows differ (`dbsync verify`, keyed tables), each as
    /// `(columns)=(values): differs | missing on the target | only on the target`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub differing_keys: Vec<String>,
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
                let keys = match t.differing_keys.as_slice() {
                    [] => String::new(),
                    k => format!("; first differing keys: {}", k.join("; ")),
                };
                format!(
                    "table {}: source {} rows (checksum {}), target {} rows (checksum {}){keys}",
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
