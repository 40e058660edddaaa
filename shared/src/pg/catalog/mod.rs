//! Catalog introspection, one file per concern: the tables in scope (leaf partitions, never
//! views or foreign tables) and their triggers and RLS flags (`tables`), their copyable
//! columns (`columns`), usable, rebuildable and unique keys and checks (`keys`), secondary
//! indexes (`indexes`), the foreign-key graph (`foreign_keys`) and sequences with their state
//! (`sequences`), into the [`Catalog`] model. Read-only: `plan` decides. Rows are read by
//! column name. What differs between majors is read where it is used, by
//! `server_version_num` (`pg::ddl`, `pg::stats`).

mod columns;
mod foreign_keys;
mod indexes;
mod keys;
mod sequences;
mod tables;

pub use sequences::read_sequence_values;

use crate::error::{Error, Result, Role};
use crate::model::catalog::{Catalog, ServerInfo, Table};
use crate::model::ident::QualName;
use crate::model::scope::{Scope, Unmatched};
use crate::pg::rules;
use std::collections::{BTreeMap, HashMap};
use tokio_postgres::{Client, Row};

/// Reads the server facts.
pub async fn server_info(client: &Client, role: Role) -> Result<ServerInfo> {
    let row = client
        .query_one(
            "SELECT current_setting('server_version') AS version,
                    current_setting('server_version_num')::int4 AS version_num,
                    current_database()::text AS database,
                    pg_encoding_to_char(d.encoding)::text AS encoding
               FROM pg_database d WHERE d.datname = current_database()",
            &[],
        )
        .await
        .map_err(|e| Error::pg(role, "reading server facts", e))?;
    Ok(ServerInfo {
        version: row.get("version"),
        version_num: row.get("version_num"),
        database: row.get("database"),
        encoding: row.get("encoding"),
    })
}

/// Sessions dbsync may open here at once by default (any role may read it): `max_connections`
/// less the superusers' reserve and a fifth (at least 5) for everyone else.
pub async fn connection_limit(client: &Client, role: Role) -> Result<u32> {
    let row = client
        .query_one(
            "SELECT current_setting('max_connections')::int4 AS max,
                    current_setting('superuser_reserved_connections')::int4 AS reserved",
            &[],
        )
        .await
        .map_err(|e| Error::pg(role, "reading max_connections", e))?;
    let (max, reserved): (i32, i32) = (row.get("max"), row.get("reserved"));
    let others = (max / 5).max(5);
    Ok((max - reserved - others).max(1) as u32)
}

/// Reads the catalog of the tables in `scope`: tables with their columns, keys, triggers and
/// secondary indexes, the foreign keys touching them, and their sequences (whose values
/// [`read_sequence_values`] reads later: do it last in an export, sequences are not
/// transactional).
pub async fn load(client: &Client, role: Role, scope: &Scope) -> Result<Catalog> {
    let server = server_info(client, role).await?;
    let Listed {
        names,
        mut tables,
        unmatched,
    } = tables::list(client, role, scope).await?;
    let oids: Vec<u32> = tables.keys().map(|o| *o as u32).collect();
    columns::add_columns(client, role, &mut tables, &oids).await?;
    keys::add_keys(client, role, &mut tables, &oids).await?;
    tables::add_triggers(client, role, &mut tables, &oids).await?;
    indexes::add_indexes(client, role, &mut tables, &oids).await?;
    if role == Role::Target {
        keys::add_rebuildable_keys(client, role, &mut tables, &oids).await?;
    }
    keys::add_unique_keys_and_checks(client, role, &mut tables, &oids).await?;
    let enums = rules::enums(client, role, &oids).await?;
    let foreign_keys = foreign_keys::read(client, role, &names, &tables).await?;
    let sequences = sequences::read(client, role, scope, &tables, &oids).await?;
    let not_valid_checks = rules::not_valid_checks(client, role, &oids).await?;
    let skipped = tables::skipped(client, role, scope).await?;
    let mut tables: Vec<Table> = tables.into_values().collect();
    tables.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Catalog {
        server,
        tables,
        foreign_keys,
        sequences,
        not_valid_checks,
        skipped,
        enums,
        unmatched_patterns: unmatched,
    })
}

/// Every table's name by oid, and the in-scope ordinary tables and leaf partitions.
pub(super) type Tables = BTreeMap<i64, Table>;

/// A catalog query: what it is for (in errors), and its SQL.
pub(super) struct Query<'a> {
    pub what: &'static str,
    pub sql: &'a str,
}

/// Runs a per-table catalog query over the tables `oids` (`$1`; its column `table_oid` is
/// the table's oid) and hands each row to `add` with its table.
pub(super) async fn per_table(
    client: &Client,
    role: Role,
    query: Query<'_>,
    oids: &[u32],
    tables: &mut Tables,
    mut add: impl FnMut(&mut Table, &Row),
) -> Result<()> {
    let Query { what, sql } = query;
    let rows = client
        .query(sql, &[&oids])
        .await
        .map_err(|e| Error::pg(role, what, e))?;
    for r in &rows {
        if let Some(t) = tables.get_mut(&r.get::<_, i64>("table_oid")) {
            add(t, r);
        }
    }
    Ok(())
}

/// What listing the tables found.
pub(super) struct Listed {
    /// Every table's name by oid (plain, partitioned, partitions).
    pub names: HashMap<i64, QualName>,
    /// The in-scope ordinary tables and leaf partitions.
    pub tables: Tables,
    /// `--tables` patterns that match no table at all.
    pub unmatched: Vec<Unmatched>,
}
