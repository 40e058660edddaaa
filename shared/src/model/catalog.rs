//! Catalog types: the tables in scope with their copyable columns, keys, size estimates,
//! secondary indexes and triggers; foreign keys; sequences with their state; the server they
//! came from. Pure data, read by `pg::catalog` and decided on by `plan`.

use crate::model::ident::QualName;
use crate::model::rules::AppliedRules;
use crate::model::scope::Unmatched;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A column that is copied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// Name.
    pub name: String,
    /// Type as `format_type` prints it (schema-qualified outside pg_catalog).
    #[serde(rename = "type")]
    pub type_name: String,
    /// NOT NULL.
    #[serde(default)]
    pub not_null: bool,
    /// Has a default (or is an identity column).
    #[serde(default)]
    pub has_default: bool,
    /// A stored generated column: never copied, listed only for the compatibility check.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub generated: bool,
}

/// How a key column compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    /// int2/int4/int8.
    Integer,
    /// uuid.
    Uuid,
    /// A collatable type: compared in the "C" collation so ranges are byte-ordered.
    Text,
    /// Anything else with a btree order (dates, numerics, ...).
    Other,
}

/// One column of a table's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyColumn {
    /// Column name.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub type_name: String,
    /// How it compares.
    pub kind: KeyKind,
}

/// A primary key or a NOT NULL unique key without predicate or expressions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Key {
    /// The index that backs it.
    pub index: String,
    /// Its columns in index order.
    pub columns: Vec<KeyColumn>,
}

/// A table to copy: an ordinary table or a leaf partition.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Table {
    /// Name.
    #[serde(flatten)]
    pub name: QualName,
    /// The partitioned table it belongs to, for partitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_of: Option<QualName>,
    /// Columns in table order; generated ones flagged.
    pub columns: Vec<Column>,
    /// The key keyset ranges use; None means CTID ranges.
    pub key: Option<Key>,
    /// Estimated rows (`reltuples`; -1 when never analyzed).
    #[serde(default)]
    pub est_rows: i64,
    /// Size on disk including TOAST.
    #[serde(default)]
    pub bytes: i64,
    /// Heap pages now.
    #[serde(default)]
    pub pages: i64,
    /// Row-level security applies to the connected role (enabled, and the role is neither
    /// superuser, BYPASSRLS, nor an owner exempt from it): its COPY would be refused.
    #[serde(default)]
    pub rls: bool,
    /// Enabled user triggers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_triggers: Vec<String>,
    /// The connected role may read the table (SELECT). Not part of a manifest.
    #[serde(skip, default = "yes")]
    pub can_read: bool,
    /// The connected role may empty and load the table (TRUNCATE and INSERT).
    #[serde(skip, default = "yes")]
    pub can_load: bool,
    /// Plain secondary indexes (not unique, not backing a constraint, not attached to a
    /// partitioned index, not replica identity or clustered) that the connected role can
    /// build again: safe to drop during a load and rebuild after.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secondary_indexes: Vec<SecondaryIndex>,
    /// Primary-key and unique constraints that nothing depends on (no foreign key, view or
    /// other object; not inherited, not replica identity or clustered) and that the role can
    /// add again: a load drops them and adds them back after, since building a key from
    /// loaded rows costs less than keeping it up to date row by row. Read on targets only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rebuildable_keys: Vec<KeyConstraint>,
    /// Unique indexes on plain columns (constraints or not, partial ones with their
    /// predicate): what the pre-flight compares with the other side's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unique_keys: Vec<UniqueKey>,
    /// Validated CHECK constraints, with their expressions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckConstraint>,
    /// The data rules its export applies (`--rules`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<AppliedRules>,
    /// Its planner statistics on the source (`--analyze copy`), read in the job's snapshot:
    /// what a PostgreSQL 18 target restores instead of running ANALYZE. Sources only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<TableStats>,
}

/// A table's planner statistics as the source holds them (`pg_class`, `pg_stats`), every value
/// in its text form, as `pg_restore_relation_stats` and `pg_restore_attribute_stats` take it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableStats {
    /// The source's `server_version_num` (the functions read the values as of that major).
    pub version: i32,
    /// `pg_class.relpages`.
    pub relpages: i32,
    /// `pg_class.reltuples`, as text (-1: never analyzed or vacuumed).
    pub reltuples: String,
    /// One entry per column and `inherited` flag that has statistics.
    pub columns: Vec<ColumnStats>,
}

/// One row of `pg_stats`: a column's statistics (`inherited`: of the table with its
/// inheritance children), each present statistic by its `pg_stats` name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnStats {
    /// The column.
    pub column: String,
    /// Statistics of the table with its children (`pg_stats.inherited`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inherited: bool,
    /// Whether every statistic its type has could be read (before 17, `pg_stats` does not
    /// show a range column's range statistics): an incomplete column is analyzed instead.
    #[serde(default = "complete", skip_serializing_if = "is_true")]
    pub complete: bool,
    /// Statistic name (`null_frac`, `most_common_vals`, ...) -> its text form.
    pub values: BTreeMap<String, String>,
}

fn complete() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// A unique index on plain columns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UniqueKey {
    /// Index name.
    pub name: String,
    /// Its columns, in index order.
    pub columns: Vec<String>,
    /// `pg_get_expr` of a partial index's predicate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicate: Option<String>,
    /// `NULLS NOT DISTINCT` (PostgreSQL 15+): NULLs count as equal.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nulls_not_distinct: bool,
}

/// A validated CHECK constraint of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckConstraint {
    /// Constraint name.
    pub name: String,
    /// `pg_get_expr` of its expression.
    pub expression: String,
}

/// An enum type a copied column uses (directly, in an array or under a domain), with its
/// labels in sort order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnumType {
    /// Its name.
    #[serde(flatten)]
    pub name: QualName,
    /// Its labels.
    pub labels: Vec<String>,
}

fn yes() -> bool {
    true
}

/// An index that can be rebuilt from its definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecondaryIndex {
    /// The table it is on.
    pub table: QualName,
    /// Index name (in the table's schema).
    pub name: String,
    /// `pg_get_indexdef` text.
    pub definition: String,
}

/// A primary-key or unique constraint a load may drop and add back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyConstraint {
    /// The table it is on.
    pub table: QualName,
    /// Constraint name.
    pub name: String,
    /// `pg_get_constraintdef` text (`PRIMARY KEY (id)`, with INCLUDE, WITH and tablespace).
    pub definition: String,
}

impl Column {
    /// A nullable column `name` of type `ty`, no default, for tests of the pure layers.
    #[cfg(test)]
    pub fn for_tests(name: &str, ty: &str) -> Column {
        Column {
            name: name.into(),
            type_name: ty.into(),
            not_null: false,
            has_default: false,
            generated: false,
        }
    }
}

impl Table {
    /// A table `schema.name` with one `id bigint NOT NULL` column and no key, for tests of
    /// the pure layers.
    #[cfg(test)]
    pub fn for_tests(schema: &str, name: &str) -> Table {
        Table {
            name: QualName::new(schema, name),
            partition_of: None,
            columns: vec![Column {
                name: "id".into(),
                type_name: "bigint".into(),
                not_null: true,
                has_default: false,
                generated: false,
            }],
            key: None,
            est_rows: 0,
            bytes: 0,
            pages: 0,
            rls: false,
            can_read: true,
            can_load: true,
            user_triggers: vec![],
            secondary_indexes: vec![],
            rebuildable_keys: vec![],
            unique_keys: vec![],
            checks: vec![],
            rules: None,
            stats: None,
        }
    }

    /// The unit foreign keys and load order go by: the root of its partition tree for a
    /// partition, else the table itself.
    pub fn unit(&self) -> &QualName {
        self.partition_of.as_ref().unwrap_or(&self.name)
    }

    /// The columns that are copied (not generated), in table order.
    pub fn copy_columns(&self) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(|c| !c.generated)
    }
}

/// A foreign key between two tables (partitioned parents stand for their partitions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignKey {
    /// Constraint name.
    pub name: String,
    /// The table holding it: a plain table, a partitioned table, or a single partition when
    /// the key was declared on the partition itself.
    pub table: QualName,
    /// The referenced table (plain, partitioned, or a partition).
    pub references: QualName,
    /// `pg_get_constraintdef` text, used to re-add it.
    pub definition: String,
    /// The root of the partition tree `table` belongs to, when it is a partition or a
    /// partitioned table other than the root: the unit load order goes by. Absent in
    /// manifests written before it existed (the key then stood on its unit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_unit: Option<QualName>,
    /// The same for `references`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub references_unit: Option<QualName>,
    /// `table` is a partitioned table: PostgreSQL cannot add such a key `NOT VALID` when it
    /// references a partitioned table, so it is re-added validated.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub on_partitioned: bool,
    /// The key's columns on `table`, in key order (absent in manifests written before).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    /// The columns of `references` they point at, in the same order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub referenced_columns: Vec<String>,
}

impl ForeignKey {
    /// The unit (plain table or partition root) that holds the key.
    pub fn unit(&self) -> &QualName {
        self.table_unit.as_ref().unwrap_or(&self.table)
    }

    /// The unit (plain table or partition root) the key references.
    pub fn referenced_unit(&self) -> &QualName {
        self.references_unit.as_ref().unwrap_or(&self.references)
    }
}

/// A CHECK constraint on a table, or on a domain, that PostgreSQL does not hold as valid
/// (`NOT VALID`): old rows may break it, and COPY would refuse them. A load sets it aside
/// and puts it back `NOT VALID` afterwards, as pg_dump does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotValidCheck {
    /// The table, or the domain, it is declared on.
    pub on: QualName,
    /// Whether `on` is a domain.
    #[serde(default)]
    pub domain: bool,
    /// Constraint name.
    pub name: String,
    /// `pg_get_constraintdef` text (ends in `NOT VALID`).
    pub definition: String,
}

/// A relation in scope by name that is not copied, and why: foreign tables, materialized
/// views. Shown by `dbsync plan`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// Its name.
    #[serde(flatten)]
    pub name: QualName,
    /// What it is (`foreign table`, `materialized view`).
    pub kind: String,
}

/// A sequence with its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sequence {
    /// Name.
    #[serde(flatten)]
    pub name: QualName,
    /// The table that owns it (serial/identity), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owned_by: Option<QualName>,
    /// `last_value`.
    pub last_value: i64,
    /// `is_called`.
    pub is_called: bool,
    /// The connected role may set it (UPDATE). Not part of a manifest.
    #[serde(skip, default = "yes")]
    pub can_set: bool,
}

/// The server a catalog came from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerInfo {
    /// `server_version`.
    pub version: String,
    /// `server_version_num`.
    pub version_num: i32,
    /// Database name.
    pub database: String,
    /// Server encoding.
    pub encoding: String,
}

/// Everything the planner needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Catalog {
    /// Server facts.
    pub server: ServerInfo,
    /// Tables in scope, sorted by name.
    pub tables: Vec<Table>,
    /// Foreign keys touching a table in scope (either side), partition clones left out.
    pub foreign_keys: Vec<ForeignKey>,
    /// Sequences in scope, sorted by name.
    pub sequences: Vec<Sequence>,
    /// NOT VALID CHECK constraints on the tables in scope (or their partitioned parents) and
    /// on the domains their columns use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_valid_checks: Vec<NotValidCheck>,
    /// Relations the scope names that are not copied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<Skipped>,
    /// Enum types the tables' columns use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub enums: Vec<EnumType>,
    /// `--schemas`, `--tables` and `--exclude` patterns that match nothing in the database.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unmatched_patterns: Vec<Unmatched>,
}

impl Catalog {
    /// The tables' size on disk, TOAST included.
    pub fn total_bytes(&self) -> u64 {
        self.tables.iter().map(|t| t.bytes.max(0) as u64).sum()
    }

    /// The table with this name, if in scope.
    pub fn table(&self, name: &QualName) -> Option<&Table> {
        self.tables.iter().find(|t| &t.name == name)
    }
}
