//! The tables: every table's name by oid, the in-scope ordinary tables and leaf partitions
//! with their sizes, RLS and privileges, their user triggers, and what the scope names that
//! is never copied (foreign tables, materialized views).

use super::{per_table, Listed, Query, Tables};
use crate::error::{Error, Result, Role};
use crate::model::catalog::{Skipped, Table};
use crate::model::ident::QualName;
use crate::model::scope::Scope;
use std::collections::{BTreeMap, HashMap};
use tokio_postgres::Client;

pub(super) async fn list(client: &Client, role: Role, scope: &Scope) -> Result<Listed> {
    let err = |ctx: &'static str| move |e| Error::pg(role, ctx, e);
    // All tables (plain, partitioned, partitions) outside system and extension schemas.
    let rows = client
        .query(
            "SELECT c.oid::int8 AS oid, n.nspname::text AS schema, c.relname::text AS name,
                    c.relkind::text AS kind, rn.nspname::text AS root_schema,
                    rc.relname::text AS root_name,
                    pg_table_size(c.oid)::int8 AS bytes, c.reltuples::int8 AS est_rows,
                    (pg_relation_size(c.oid) / current_setting('block_size')::int8)::int8 AS pages,
                    c.relrowsecurity
                      AND NOT (SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user)
                      AND (c.relforcerowsecurity OR NOT pg_has_role(c.relowner, 'USAGE')) AS rls,
                    has_table_privilege(c.oid, 'SELECT') AS can_read,
                    has_table_privilege(c.oid, 'INSERT') AND has_table_privilege(c.oid, 'TRUNCATE')
                      AS can_load
               FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
               LEFT JOIN pg_class rc ON c.relispartition AND rc.oid = pg_partition_root(c.oid)
               LEFT JOIN pg_namespace rn ON rn.oid = rc.relnamespace
              WHERE c.relkind IN ('r', 'p') AND c.relpersistence <> 't'
                AND NOT EXISTS (SELECT 1 FROM pg_depend d
                                 WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                                   AND d.deptype = 'e')",
            &[],
        )
        .await
        .map_err(err("listing tables"))?;
    let mut names: HashMap<i64, QualName> = HashMap::new();
    let mut tables: BTreeMap<i64, Table> = BTreeMap::new();
    let mut all = Vec::with_capacity(rows.len());
    for r in rows {
        let oid: i64 = r.get("oid");
        let name = QualName::new(r.get::<_, String>("schema"), r.get::<_, String>("name"));
        names.insert(oid, name.clone());
        let kind: String = r.get("kind");
        let root = match (
            r.get::<_, Option<String>>("root_schema"),
            r.get::<_, Option<String>>("root_name"),
        ) {
            (Some(s), Some(n)) => Some(QualName::new(s, n)),
            _ => None,
        };
        all.push((name.clone(), root.clone()));
        if kind != "r" || !scope.table_in_scope(&name, root.as_ref()) {
            continue;
        }
        tables.insert(
            oid,
            Table {
                name,
                partition_of: root,
                columns: Vec::new(),
                key: None,
                bytes: r.get("bytes"),
                est_rows: r.get("est_rows"),
                pages: r.get("pages"),
                rls: r.get("rls"),
                can_read: r.get("can_read"),
                can_load: r.get("can_load"),
                user_triggers: Vec::new(),
                secondary_indexes: Vec::new(),
                rebuildable_keys: Vec::new(),
                unique_keys: Vec::new(),
                checks: Vec::new(),
                rules: None,
                stats: None,
            },
        );
    }
    Ok(Listed {
        names,
        tables,
        unmatched: scope.unmatched(&all),
    })
}

pub(super) async fn add_triggers(
    client: &Client,
    role: Role,
    tables: &mut Tables,
    oids: &[u32],
) -> Result<()> {
    per_table(
        client,
        role,
        Query {
            what: "listing triggers",
            sql: "SELECT tgrelid::int8 AS table_oid, tgname::text AS name FROM pg_trigger
              WHERE tgrelid = ANY($1::oid[]) AND NOT tgisinternal AND tgenabled <> 'D'
              ORDER BY tgrelid, tgname",
        },
        oids,
        tables,
        |t, r| {
            t.user_triggers.push(r.get("name"));
        },
    )
    .await
}

/// Foreign tables and materialized views the scope names: never copied, shown in the plan.
pub(super) async fn skipped(client: &Client, role: Role, scope: &Scope) -> Result<Vec<Skipped>> {
    let rows = client
        .query(
            "SELECT n.nspname::text AS schema, c.relname::text AS name,
                    CASE c.relkind WHEN 'f' THEN 'foreign table' ELSE 'materialized view' END AS kind
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('f', 'm')
                AND NOT EXISTS (SELECT 1 FROM pg_depend d
                                 WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                                   AND d.deptype = 'e')
              ORDER BY 1, 2",
            &[],
        )
        .await
        .map_err(|e| Error::pg(role, "listing foreign tables and materialized views", e))?;
    Ok(rows
        .iter()
        .map(|r| Skipped {
            name: QualName::new(r.get::<_, String>("schema"), r.get::<_, String>("name")),
            kind: r.get("kind"),
        })
        .filter(|s| scope.table_in_scope(&s.name, None))
        .collect())
}
