//! What a load takes away from the target and must put back: dropped foreign keys,
//! primary/unique keys and secondary indexes, tables whose user triggers were disabled; and whether it ANALYZEs. Recorded in the target's
//! ledger in the same transaction that takes them away. Pure data.

use crate::model::catalog::{ForeignKey, KeyConstraint, NotValidCheck, SecondaryIndex, TableStats};
use crate::model::ident::QualName;
use serde::{Deserialize, Serialize};

/// What a job took away from the target for the load and must put back: recorded in
/// `dbsync.jobs.restore` in the same transaction that took it away.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restore {
    /// Foreign keys dropped (cycles and self-references).
    #[serde(default)]
    pub fks: Vec<ForeignKey>,
    /// Secondary indexes dropped, rebuilt after the load.
    #[serde(default)]
    pub indexes: Vec<SecondaryIndex>,
    /// Primary-key and unique constraints dropped, added back after the load.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<KeyConstraint>,
    /// Tables whose user triggers were disabled.
    #[serde(default)]
    pub triggers: Vec<QualName>,
    /// NOT VALID CHECK constraints (of tables and domains) dropped, re-added NOT VALID.
    #[serde(default)]
    pub checks: Vec<NotValidCheck>,
    /// Loaded tables are not ANALYZEd (`--analyze off`): kept with what the job put back so
    /// that whoever finishes it (a resumed import, the serverless finalize) knows.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_analyze: bool,
    /// Tables whose statistics are copied from the source instead of ANALYZE
    /// (`--analyze copy`, PostgreSQL 18+ targets); the other loaded tables are analyzed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stats: Vec<StatsCopy>,
    /// Foreign keys left in place but not enforced during the load (replica mode fires no FK
    /// trigger): not taken away, but a failed load must make them `NOT VALID`, since their
    /// rows may not hold then. Kept here so that whoever puts the target back (the CLI, or
    /// the serverless Catch path in another process) knows them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unenforced: Vec<ForeignKey>,
    /// Set while an atomic import loads into shadow tables: nothing is taken away yet, and
    /// its swap needs to know how the job was asked to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowJob>,
}

/// One table's statistics copied instead of ANALYZE: the source's, of the columns that
/// arrive unchanged, and the columns analyzed on the target instead (masked by a rule,
/// typed differently, or without statistics on the source).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsCopy {
    /// The table.
    pub table: QualName,
    /// The statistics to restore.
    pub stats: TableStats,
    /// Columns analyzed on the target (`ANALYZE table (columns)`); empty: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub analyze: Vec<String>,
}

/// What the swap of an atomic import needs from its start (`--keep-indexes`; `--analyze` is
/// [`Restore::no_analyze`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShadowJob {
    /// Keep the target's secondary indexes during the swap.
    pub keep_indexes: bool,
}

impl Restore {
    /// Whether the target lacks something until this is put back: keys, indexes, triggers
    /// or checks taken away, or foreign keys left unenforced.
    pub fn holds_anything_back(&self) -> bool {
        !(self.fks.is_empty()
            && self.indexes.is_empty()
            && self.keys.is_empty()
            && self.triggers.is_empty()
            && self.checks.is_empty()
            && self.unenforced.is_empty())
    }

    /// Adds what `other` holds that this does not.
    pub fn merge(&mut self, other: Restore) {
        fn add<T: PartialEq>(into: &mut Vec<T>, from: Vec<T>) {
            for x in from {
                if !into.contains(&x) {
                    into.push(x);
                }
            }
        }
        add(&mut self.fks, other.fks);
        add(&mut self.indexes, other.indexes);
        add(&mut self.keys, other.keys);
        add(&mut self.triggers, other.triggers);
        add(&mut self.checks, other.checks);
        add(&mut self.unenforced, other.unenforced);
        add(&mut self.stats, other.stats);
        self.no_analyze |= other.no_analyze;
        // `shadow` describes one job and is never adopted: an adopted shadow job had taken
        // nothing away.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_restores_keeps_each_item_once() {
        let ix = SecondaryIndex {
            table: QualName::new("a", "t"),
            name: "i".into(),
            definition: "CREATE INDEX i ON a.t USING btree (x)".into(),
        };
        let mut r = Restore {
            indexes: vec![ix.clone()],
            ..Default::default()
        };
        r.merge(Restore {
            indexes: vec![ix],
            triggers: vec![QualName::new("a", "t")],
            ..Default::default()
        });
        assert_eq!(r.indexes.len(), 1);
        assert_eq!(r.triggers.len(), 1);
    }
}
