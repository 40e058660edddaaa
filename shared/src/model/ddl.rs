//! Schema bootstrap (`--create-schema`): the definitions a sync's tables need on a target
//! that lacks them, as the source's catalog prints them (`format_type`, `pg_get_expr`,
//! `pg_get_constraintdef`, `pg_get_indexdef`, ...), and which of them the target already has.
//! Pure data; `pg::ddl` reads it and `plan::ddl` orders it into statements.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// A table (or partitioned parent) to create, with what goes with it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDdl {
    /// Its name as the catalog prints it (`schema.table`, quoted where needed).
    pub name: String,
    /// Its schema.
    pub schema: String,
    /// Partition or inheritance depth: parents are created before their children.
    pub depth: i32,
    /// The `CREATE TABLE` statement.
    pub create: String,
    /// Keys, checks, indexes, row security, policies, triggers and comments, in that order.
    pub after: Vec<String>,
    /// Its foreign keys, added once every table exists.
    pub foreign_keys: Vec<String>,
    /// What in its definition only PostgreSQL 18 and later can hold (virtual generated
    /// columns, NOT ENFORCED constraints), named: such a table is refused on an older target.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs_18: Vec<String>,
}

/// A type a column uses (directly, in an array, under a domain or inside a composite).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeDdl {
    /// Its name (`schema.type`).
    pub name: String,
    /// Its schema.
    pub schema: String,
    /// The extension it belongs to, if any: the extension is created instead.
    pub extension: Option<String>,
    /// Its statements (`CREATE TYPE`/`CREATE DOMAIN`, then domain constraints); empty for a
    /// type dbsync cannot create.
    pub ddl: Vec<String>,
    /// Why it cannot be created, if it cannot.
    pub refused: Option<String>,
}

/// An extension that a type belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ExtensionDdl {
    /// Extension name.
    pub name: String,
    /// The schema it lives in.
    pub schema: String,
    /// `CREATE EXTENSION IF NOT EXISTS ... WITH SCHEMA ...`.
    pub create: String,
}

/// A named object with the statement creating it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectDdl {
    /// Its name (`schema.sequence`, or a function's signature).
    pub name: String,
    /// The statement.
    pub create: String,
    /// Statements run once every table exists (a sequence's `OWNED BY`).
    pub after: Vec<String>,
}

/// Everything the tables in scope need, read from the source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaSource {
    /// `CREATE SCHEMA IF NOT EXISTS` of the schema of every object below.
    pub schemas: BTreeSet<String>,
    /// Extensions the types belong to.
    pub extensions: Vec<ExtensionDdl>,
    /// Types, in creation (OID) order.
    pub types: Vec<TypeDdl>,
    /// Functions the tables' triggers, defaults and checks call.
    pub functions: Vec<ObjectDdl>,
    /// Sequences in scope that are not identity sequences.
    pub sequences: Vec<ObjectDdl>,
    /// Tables, partitioned parents included.
    pub tables: Vec<TableDdl>,
}

/// What the target already has, by the names [`SchemaSource`] uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Existing {
    /// Tables (and partitioned parents).
    pub tables: BTreeSet<String>,
    /// Types.
    pub types: BTreeSet<String>,
    /// Functions, by signature.
    pub functions: BTreeSet<String>,
    /// Sequences.
    pub sequences: BTreeSet<String>,
    /// Installed extensions.
    pub extensions: BTreeSet<String>,
    /// Extensions the target could install.
    pub available_extensions: BTreeSet<String>,
    /// The target's `server_version_num`.
    pub version_num: i32,
}

/// What a bootstrap created, for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Created {
    /// Tables created.
    pub tables: Vec<String>,
    /// Types, sequences, functions and extensions created.
    pub other: Vec<String>,
    /// Statements run.
    pub statements: usize,
}
