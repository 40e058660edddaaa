//! The manifest: a versioned JSON description of an export - source server, pinned session
//! settings, snapshot, tables with columns, keys and FK levels, every part with its rows,
//! bytes and sha256, sequences and timings. `docs/DESIGN.md` documents the format. Holds no
//! credentials: the source appears only as server version and database name.

use crate::error::{Error, Result};
use crate::model::catalog::{EnumType, ForeignKey, Sequence, ServerInfo, Table};
use crate::model::chunk::ChunkRange;
use crate::model::part::PartStats;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The `format` field of every manifest.
pub const FORMAT: &str = "dbsync-manifest";
/// The version this build writes and reads.
pub const VERSION: u32 = 1;
/// The manifest's key in a part store.
pub const KEY: &str = "manifest.json";

/// An export, described.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// Format version ([`VERSION`]).
    pub version: u32,
    /// The export's job id; the import's ledger uses it.
    pub job_id: String,
    /// When the export started (RFC 3339, UTC).
    pub created_at: String,
    /// The source server.
    pub source: ServerInfo,
    /// The exported snapshot every chunk read (but the parts that name their own).
    pub snapshot: String,
    /// `snapshot`: every part read `snapshot`; `per_chunk`: some parts read a snapshot of
    /// their own, taken later (each names it), so rows across those parts may not agree.
    #[serde(default = "snapshot_consistency")]
    pub consistency: String,
    /// Session settings the COPY text was produced under.
    pub settings: BTreeMap<String, String>,
    /// Part compression.
    pub compression: String,
    /// Chunk size the plan used.
    pub chunk_bytes: u64,
    /// Tables, with their parts.
    pub tables: Vec<ManifestTable>,
    /// Foreign keys among the tables in scope.
    pub foreign_keys: Vec<ForeignKey>,
    /// Sequences with their state at the end of the export.
    pub sequences: Vec<Sequence>,
    /// Enum types the tables use, with their labels (absent in manifests written before it
    /// existed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub enums: Vec<EnumType>,
    /// Milliseconds spent per phase.
    pub timings_ms: BTreeMap<String, u64>,
    /// How many times the snapshot was handed over to a new holder during the export (the
    /// same snapshot throughout; see `--snapshot-relay-seconds`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub snapshot_relays: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A table and its parts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestTable {
    /// The table as the catalog saw it.
    #[serde(flatten)]
    pub table: Table,
    /// Its foreign-key level on the source.
    pub level: usize,
    /// Its parts in chunk order.
    pub parts: Vec<PartEntry>,
}

/// One part.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartEntry {
    /// Part id (chunk id), also the ledger key.
    pub id: String,
    /// Object key in the store.
    pub key: String,
    /// Rows of the table it covers.
    pub range: ChunkRange,
    /// Rows, uncompressed bytes and sha256.
    #[serde(flatten)]
    pub stats: PartStats,
    /// Bytes in the store.
    pub compressed_bytes: u64,
    /// The snapshot this part read, when not the job's (per-chunk consistency).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
}

/// What the exports of one job read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", try_from = "String")]
pub enum Consistency {
    /// One snapshot for every chunk.
    #[default]
    Snapshot,
    /// One snapshot for as long as it can be held, then a snapshot per chunk invocation.
    PerChunk,
}

// serde's own message for an unknown variant does not name the field; this does.
impl TryFrom<String> for Consistency {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        match s.as_str() {
            "snapshot" => Ok(Consistency::Snapshot),
            "per_chunk" => Ok(Consistency::PerChunk),
            _ => Err(format!(
                "consistency {s:?} is not one of \"snapshot\", \"per_chunk\""
            )),
        }
    }
}

fn snapshot_consistency() -> String {
    "snapshot".into()
}

impl Manifest {
    /// The tables of the export, in manifest order.
    pub fn table_list(&self) -> Vec<Table> {
        self.tables.iter().map(|t| t.table.clone()).collect()
    }

    /// Parses and checks a manifest read from `path`.
    pub fn from_json(data: &[u8], path: &str) -> Result<Self> {
        let err = |message: String| Error::Manifest {
            path: path.to_string(),
            message,
        };
        let v: serde_json::Value =
            serde_json::from_slice(data).map_err(|e| err(format!("not JSON: {e}")))?;
        if v.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
            return Err(err(format!(
                "not a dbsync manifest (format is not {FORMAT:?})"
            )));
        }
        let version = v.get("version").and_then(|f| f.as_u64()).unwrap_or(0);
        if version != u64::from(VERSION) {
            return Err(err(format!(
                "format version {version} is not supported by this build (it reads version {VERSION})"
            )));
        }
        serde_json::from_value(v).map_err(|e| err(format!("malformed: {e}")))
    }

    /// Where the manifest contradicts itself: parts listed twice, tables without parts,
    /// counts that cannot be (rows without bytes, empty gzip parts). Empty when consistent.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut ids = std::collections::BTreeSet::new();
        let mut keys = std::collections::BTreeSet::new();
        for t in &self.tables {
            if t.parts.is_empty() {
                out.push(format!("table {} has no parts", t.table.name));
            }
            for p in &t.parts {
                let what = format!("part {} of {}", p.id, t.table.name);
                if !ids.insert(&p.id) {
                    out.push(format!("{what} is listed twice"));
                }
                if !keys.insert(&p.key) {
                    out.push(format!("{what}: its key {} is another part's too", p.key));
                }
                // Every COPY row ends in a newline; a gzip stream is never empty.
                if p.stats.bytes < p.stats.rows {
                    out.push(format!(
                        "{what} says {} rows in {} bytes",
                        p.stats.rows, p.stats.bytes
                    ));
                }
                if p.compressed_bytes == 0 {
                    out.push(format!("{what} says it is 0 bytes compressed"));
                }
            }
        }
        out
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> Vec<u8> {
        // Only strings, numbers and maps with string keys: serialisation cannot fail.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_of_another_version_is_refused_with_both_versions_named() {
        let e = Manifest::from_json(br#"{"format":"dbsync-manifest","version":99}"#, "m.json")
            .expect_err("refused");
        let m = e.to_string();
        assert!(m.contains("99") && m.contains("m.json"), "{m}");
    }

    #[test]
    fn a_file_that_is_not_a_manifest_is_refused() {
        assert!(Manifest::from_json(b"{}", "x").is_err());
        assert!(Manifest::from_json(b"not json", "x").is_err());
    }
}
