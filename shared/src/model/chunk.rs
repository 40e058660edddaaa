//! Chunks and plans: which rows of a table a chunk covers (whole, keyset range, CTID range),
//! chunk and part ids, where a budgeted export continues, foreign-key levels, and the plan of
//! a job (catalog + order + chunks). Pure data.

use crate::model::catalog::{Catalog, ForeignKey};
use crate::model::ident::QualName;
use serde::{Deserialize, Serialize};

/// Default chunk size: about 256 MB of table on disk per chunk.
pub const DEFAULT_CHUNK_BYTES: u64 = 256 * 1024 * 1024;

/// Which rows of a table a chunk covers. Bounds are inclusive below, exclusive above; a
/// missing bound is open, so the first and last chunks catch rows outside the sampled range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ChunkRange {
    /// The whole table.
    Whole,
    /// Key values in `[lower, upper)`, compared as a row (text parts in "C" collation).
    Key {
        /// Inclusive lower bound, one text value per key column.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lower: Option<Vec<String>>,
        /// Exclusive upper bound.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        upper: Option<Vec<String>>,
    },
    /// Heap pages in `[lower, upper)`, for tables without a usable key.
    Ctid {
        /// First page.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lower: Option<u64>,
        /// Page after the last.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        upper: Option<u64>,
    },
}

/// One unit of export/import work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// Index of the table in the plan.
    pub table: usize,
    /// Position within the table, from 0.
    pub seq: usize,
    /// Rows it covers.
    pub range: ChunkRange,
}

impl Chunk {
    /// Stable id, also the ledger's part id: `t0003.c00012`.
    pub fn id(&self) -> String {
        format!("t{:04}.c{:05}", self.table, self.seq)
    }
}

/// Foreign-key ordering of the tables in scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FkOrder {
    /// Level of each table (by index): a table's in-scope parents are on lower levels, except
    /// within a cycle, where all members share a level.
    pub levels: Vec<usize>,
    /// Foreign keys inside a cycle or self-reference (between in-scope tables): dropped
    /// before the load and re-added after.
    pub cyclic: Vec<ForeignKey>,
}

impl FkOrder {
    /// Number of levels.
    pub fn level_count(&self) -> usize {
        self.levels.iter().map(|l| l + 1).max().unwrap_or(0)
    }
}

/// Where a chunk export that stopped for its time budget continues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Resume {
    /// After this key (exclusive): the last key exported so far.
    Key {
        /// One text value per key column.
        after: Vec<String>,
    },
    /// From this heap page on (inclusive), for tables without a key.
    Ctid {
        /// First page not exported yet.
        from_page: u64,
    },
}

/// The whole plan of a job: tables, their levels and chunks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// The catalog it was made from (tables in scope, FKs, sequences).
    pub catalog: Catalog,
    /// FK levels and cyclic keys.
    pub order: FkOrder,
    /// Every chunk, grouped by table, in table order.
    pub chunks: Vec<Chunk>,
    /// The chunk size used.
    pub chunk_bytes: u64,
}

impl Plan {
    /// A plan of `tables` on a PostgreSQL 15 source, no keys between them, no chunks, for
    /// tests of the pure layers.
    #[cfg(test)]
    pub fn for_tests(tables: Vec<crate::model::catalog::Table>) -> Plan {
        use crate::model::catalog::{Catalog, ServerInfo};
        Plan {
            catalog: Catalog {
                server: ServerInfo {
                    version: "15".into(),
                    version_num: 150000,
                    database: "d".into(),
                    encoding: "UTF8".into(),
                },
                tables,
                foreign_keys: vec![],
                sequences: vec![],
                not_valid_checks: vec![],
                skipped: vec![],
                enums: vec![],
                unmatched_patterns: vec![],
            },
            order: FkOrder {
                levels: vec![],
                cyclic: vec![],
            },
            chunks: vec![],
            chunk_bytes: 1,
        }
    }

    /// Each table in scope with its number of chunks, in table order.
    pub fn chunks_per_table(&self) -> Vec<(&QualName, usize)> {
        let mut n = vec![0usize; self.catalog.tables.len()];
        for c in &self.chunks {
            if let Some(k) = n.get_mut(c.table) {
                *k += 1;
            }
        }
        self.catalog
            .tables
            .iter()
            .zip(n)
            .map(|(t, k)| (&t.name, k))
            .collect()
    }

    /// Chunk indexes of one FK level.
    pub fn chunks_of_level(&self, level: usize) -> Vec<&Chunk> {
        self.chunks
            .iter()
            .filter(|c| self.order.levels[c.table] == level)
            .collect()
    }
}
