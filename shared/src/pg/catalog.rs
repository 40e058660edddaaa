//! Catalog introspection: the tables in scope (leaf partitions, never views or foreign tables),
//! their copyable columns, a usable key, sizes, the foreign-key graph, sequences with their
//! state, triggers and RLS flags, into the [`Catalog`] model. Read-only: `plan` decides.

use crate::error::{Error, Result, Role};
use crate::model::catalog::{
    Catalog, CheckConstraint, Column, ForeignKey, Key, KeyColumn, KeyConstraint, KeyKind,
    SecondaryIndex, Sequence, ServerInfo, Skipped, Table, UniqueKey,
};
use crate::model::ident::QualName;
use crate::model::scope::{Scope, Unmatched};
use crate::pg::rules;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use tokio_postgres::{Client, Row};

/// Reads the server facts.
pub async fn server_info(client: &Client, role: Role) -> Result<ServerInfo> {
    let row = client
        .query_one(
            "SELECT current_setting('server_version'), current_setting('server_version_num')::int4,
                    current_database()::text, pg_encoding_to_char(d.encoding)::text
               FROM pg_database d WHERE d.datname = current_database()",
            &[],
        )
        .await
        .map_err(|e| Error::pg(role, "reading server facts", e))?;
    Ok(ServerInfo {
        version: row.get(0),
        version_num: row.get(1),
        database: row.get(2),
        encoding: row.get(3),
    })
}

/// Sessions dbsync may open here at once by default (any role may read it): `max_connections`
/// less the superusers' reserve and a fifth (at least 5) for everyone else.
pub async fn connection_limit(client: &Client, role: Role) -> Result<u32> {
    let row = client
        .query_one(
            "SELECT current_setting('max_connections')::int4,
                    current_setting('superuser_reserved_connections')::int4",
            &[],
        )
        .await
        .map_err(|e| Error::pg(role, "reading max_connections", e))?;
    let (max, reserved): (i32, i32) = (row.get(0), row.get(1));
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
    } = list_tables(client, role, scope).await?;
    let oids: Vec<u32> = tables.keys().map(|o| *o as u32).collect();
    add_columns(client, role, &mut tables, &oids).await?;
    add_keys(client, role, &mut tables, &oids).await?;
    add_triggers(client, role, &mut tables, &oids).await?;
    add_indexes(client, role, &mut tables, &oids).await?;
    if role == Role::Target {
        add_rebuildable_keys(client, role, &mut tables, &oids).await?;
    }
    add_unique_keys_and_checks(client, role, &mut tables, &oids).await?;
    let enums = rules::enums(client, role, &oids).await?;
    let foreign_keys = foreign_keys(client, role, &names, &tables).await?;
    let sequences = load_sequences(client, role, scope, &tables, &oids).await?;
    let not_valid_checks = rules::not_valid_checks(client, role, &oids).await?;
    let skipped = skipped(client, role, scope).await?;
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
type Tables = BTreeMap<i64, Table>;

/// Runs a per-table catalog query over the tables `oids` (`$1`; its first column is the
/// table's oid) and hands each row to `add` with its table. `query` is what it is for (in
/// errors) and its SQL.
async fn per_table(
    client: &Client,
    role: Role,
    query: (&'static str, &str),
    oids: &[u32],
    tables: &mut Tables,
    mut add: impl FnMut(&mut Table, &Row),
) -> Result<()> {
    let (what, sql) = query;
    let rows = client
        .query(sql, &[&oids])
        .await
        .map_err(|e| Error::pg(role, what, e))?;
    for r in &rows {
        if let Some(t) = tables.get_mut(&r.get::<_, i64>(0)) {
            add(t, r);
        }
    }
    Ok(())
}

/// What listing the tables found.
struct Listed {
    /// Every table's name by oid (plain, partitioned, partitions).
    names: HashMap<i64, QualName>,
    /// The in-scope ordinary tables and leaf partitions.
    tables: Tables,
    /// `--tables` patterns that match no table at all.
    unmatched: Vec<Unmatched>,
}

async fn list_tables(client: &Client, role: Role, scope: &Scope) -> Result<Listed> {
    let err = |ctx: &'static str| move |e| Error::pg(role, ctx, e);
    // All tables (plain, partitioned, partitions) outside system and extension schemas.
    let rows = client
        .query(
            "SELECT c.oid::int8, n.nspname::text, c.relname::text, c.relkind::text,
                    rn.nspname::text, rc.relname::text,
                    pg_table_size(c.oid)::int8, c.reltuples::int8,
                    (pg_relation_size(c.oid) / current_setting('block_size')::int8)::int8,
                    c.relrowsecurity
                      AND NOT (SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user)
                      AND (c.relforcerowsecurity OR NOT pg_has_role(c.relowner, 'USAGE')),
                    has_table_privilege(c.oid, 'SELECT'),
                    has_table_privilege(c.oid, 'INSERT') AND has_table_privilege(c.oid, 'TRUNCATE')
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
        let oid: i64 = r.get(0);
        let name = QualName::new(r.get::<_, String>(1), r.get::<_, String>(2));
        names.insert(oid, name.clone());
        let kind: String = r.get(3);
        let root = match (r.get::<_, Option<String>>(4), r.get::<_, Option<String>>(5)) {
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
                bytes: r.get(6),
                est_rows: r.get(7),
                pages: r.get(8),
                rls: r.get(9),
                can_read: r.get(10),
                can_load: r.get(11),
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

async fn add_columns(client: &Client, role: Role, tables: &mut Tables, oids: &[u32]) -> Result<()> {
    per_table(
        client,
        role,
        (
            "listing columns",
            "SELECT a.attrelid::int8, a.attname::text, format_type(a.atttypid, a.atttypmod),
                    a.attnotnull, (a.atthasdef OR a.attidentity <> ''), a.attgenerated <> ''
               FROM pg_attribute a
              WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
              ORDER BY a.attrelid, a.attnum",
        ),
        oids,
        tables,
        |t, r| {
            t.columns.push(Column {
                name: r.get(1),
                type_name: r.get(2),
                not_null: r.get(3),
                has_default: r.get(4),
                generated: r.get(5),
            });
        },
    )
    .await
}

/// Candidate keys: primary first, then the NOT NULL unique key with the fewest columns.
async fn add_keys(client: &Client, role: Role, tables: &mut Tables, oids: &[u32]) -> Result<()> {
    let err = |ctx: &'static str| move |e| Error::pg(role, ctx, e);
    for r in client
        .query(
            "SELECT i.indrelid::int8, ci.relname::text, i.indisprimary,
                    array_agg(a.attname::text ORDER BY k.ord),
                    array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY k.ord),
                    array_agg(CASE WHEN a.atttypid IN (20, 21, 23) THEN 'integer'
                                   WHEN a.atttypid = 2950 THEN 'uuid'
                                   WHEN t.typcollation <> 0 THEN 'text'
                                   ELSE 'other' END ORDER BY k.ord),
                    bool_and(a.attnotnull)
               FROM pg_index i
               JOIN pg_class ci ON ci.oid = i.indexrelid
               CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
               JOIN pg_type t ON t.oid = a.atttypid
              WHERE i.indrelid = ANY($1::oid[]) AND (i.indisprimary OR i.indisunique)
                AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL
                AND k.ord <= i.indnkeyatts
              GROUP BY i.indrelid, ci.relname, i.indisprimary, i.indnkeyatts
              ORDER BY i.indrelid, i.indisprimary DESC, i.indnkeyatts, ci.relname",
            &[&oids],
        )
        .await
        .map_err(err("listing keys"))?
    {
        let not_null: bool = r.get(6);
        let Some(t) = tables.get_mut(&r.get::<_, i64>(0)) else {
            continue;
        };
        if t.key.is_some() || !not_null {
            continue;
        }
        let names: Vec<String> = r.get(3);
        let types: Vec<String> = r.get(4);
        let kinds: Vec<String> = r.get(5);
        t.key = Some(Key {
            index: r.get(1),
            columns: names
                .into_iter()
                .zip(types)
                .zip(kinds)
                .map(|((name, type_name), kind)| KeyColumn {
                    name,
                    type_name,
                    kind: match kind.as_str() {
                        "integer" => KeyKind::Integer,
                        "uuid" => KeyKind::Uuid,
                        "text" => KeyKind::Text,
                        _ => KeyKind::Other,
                    },
                })
                .collect(),
        });
    }
    Ok(())
}

async fn add_triggers(
    client: &Client,
    role: Role,
    tables: &mut Tables,
    oids: &[u32],
) -> Result<()> {
    per_table(
        client,
        role,
        (
            "listing triggers",
            "SELECT tgrelid::int8, tgname::text FROM pg_trigger
              WHERE tgrelid = ANY($1::oid[]) AND NOT tgisinternal AND tgenabled <> 'D'
              ORDER BY tgrelid, tgname",
        ),
        oids,
        tables,
        |t, r| {
            t.user_triggers.push(r.get(1));
        },
    )
    .await
}

async fn add_indexes(client: &Client, role: Role, tables: &mut Tables, oids: &[u32]) -> Result<()> {
    let sql = "SELECT i.indrelid::int8, ci.relname::text, pg_get_indexdef(i.indexrelid)
               FROM pg_index i JOIN pg_class ci ON ci.oid = i.indexrelid
               JOIN pg_class t ON t.oid = i.indrelid
              WHERE i.indrelid = ANY($1::oid[]) AND NOT i.indisunique AND NOT i.indisprimary
                -- only what this role can build again: table owner with CREATE on the schema
                AND pg_has_role(t.relowner, 'USAGE') AND has_schema_privilege(ci.relnamespace, 'CREATE')
                AND NOT i.indisexclusion AND i.indisvalid AND NOT i.indisreplident AND NOT i.indisclustered
                AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
                AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid)
              ORDER BY i.indrelid, ci.relname";
    per_table(
        client,
        role,
        ("listing indexes", sql),
        oids,
        tables,
        |t, r| {
            t.secondary_indexes.push(SecondaryIndex {
                table: t.name.clone(),
                name: r.get(1),
                definition: r.get(2),
            });
        },
    )
    .await
}

/// See [`Table::rebuildable_keys`]. A dependent object (a foreign key using the index, a view
/// relying on the key for GROUP BY) would make the drop fail or cascade: such keys stay.
async fn add_rebuildable_keys(
    client: &Client,
    role: Role,
    tables: &mut Tables,
    oids: &[u32],
) -> Result<()> {
    let sql = "SELECT c.conrelid::int8, c.conname::text, pg_get_constraintdef(c.oid)
               FROM pg_constraint c
               JOIN pg_class t ON t.oid = c.conrelid
               JOIN pg_index i ON i.indexrelid = c.conindid
              WHERE c.conrelid = ANY($1::oid[]) AND c.contype IN ('p', 'u') AND c.conparentid = 0
                AND t.relkind = 'r' AND pg_has_role(t.relowner, 'USAGE')
                AND has_schema_privilege(t.relnamespace, 'CREATE')
                AND i.indisvalid AND NOT i.indisreplident AND NOT i.indisclustered
                AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = c.conindid)
                AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.contype = 'f' AND f.conindid = c.conindid)
                AND NOT EXISTS (SELECT 1 FROM pg_depend d
                                 WHERE d.deptype = 'n'
                                   AND ((d.refclassid = 'pg_constraint'::regclass AND d.refobjid = c.oid)
                                     OR (d.refclassid = 'pg_class'::regclass AND d.refobjid = c.conindid)))
              ORDER BY c.conrelid, c.conname";
    per_table(
        client,
        role,
        ("listing primary and unique keys", sql),
        oids,
        tables,
        |t, r| {
            t.rebuildable_keys.push(KeyConstraint {
                table: t.name.clone(),
                name: r.get(1),
                definition: r.get(2),
            });
        },
    )
    .await
}

/// Unique indexes on plain columns and validated CHECK constraints: what the pre-flight
/// compares between the two sides.
async fn add_unique_keys_and_checks(
    client: &Client,
    role: Role,
    tables: &mut Tables,
    oids: &[u32],
) -> Result<()> {
    per_table(
        client,
        role,
        (
            "listing unique indexes",
            "SELECT i.indrelid::int8, ci.relname::text, array_agg(a.attname::text ORDER BY k.ord),
                    min(pg_get_expr(i.indpred, i.indrelid)),
                    bool_or(coalesce((to_jsonb(i) ->> 'indnullsnotdistinct')::bool, false))
               FROM pg_index i
               JOIN pg_class ci ON ci.oid = i.indexrelid
               CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
              WHERE i.indrelid = ANY($1::oid[]) AND i.indisunique AND i.indexprs IS NULL
                AND k.ord <= i.indnkeyatts
              GROUP BY i.indrelid, ci.relname, i.indexrelid
              ORDER BY 1, 2",
        ),
        oids,
        tables,
        |t, r| {
            t.unique_keys.push(UniqueKey {
                name: r.get(1),
                columns: r.get(2),
                predicate: r.get(3),
                nulls_not_distinct: r.get(4),
            });
        },
    )
    .await?;
    per_table(
        client,
        role,
        (
            "listing check constraints",
            "SELECT conrelid::int8, conname::text, pg_get_expr(conbin, conrelid)
               FROM pg_constraint
              WHERE contype = 'c' AND convalidated AND conrelid = ANY($1::oid[])
              ORDER BY 1, 2",
        ),
        oids,
        tables,
        |t, r| {
            t.checks.push(CheckConstraint {
                name: r.get(1),
                expression: r.get(2),
            });
        },
    )
    .await
}

/// Foreign keys touching a unit in scope, either side. Only constraints declared by the user
/// (`conparentid = 0`): the clones PostgreSQL keeps on each partition of a partitioned
/// parent's key, and on the referencing side for each partition of a referenced partitioned
/// table, go with their parent. A key declared on a single partition is its own. Each key
/// also names the units (partition roots) on both sides, which load order goes by.
async fn foreign_keys(
    client: &Client,
    role: Role,
    names: &HashMap<i64, QualName>,
    tables: &Tables,
) -> Result<Vec<ForeignKey>> {
    let units: BTreeSet<&QualName> = tables.values().map(Table::unit).collect();
    let rows = client
        .query(
            "SELECT con.conname::text, con.conrelid::int8, con.confrelid::int8,
                    pg_get_constraintdef(con.oid),
                    coalesce(pg_partition_root(con.conrelid), con.conrelid)::oid::int8,
                    coalesce(pg_partition_root(con.confrelid), con.confrelid)::oid::int8,
                    c.relkind = 'p',
                    ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, o)
                            JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n
                           ORDER BY k.o),
                    ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, o)
                            JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n
                           ORDER BY k.o)
               FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid
              WHERE con.contype = 'f' AND con.conparentid = 0
              ORDER BY con.conrelid, con.conname",
            &[],
        )
        .await
        .map_err(|e| Error::pg(role, "listing foreign keys", e))?;
    let mut out = Vec::new();
    for r in rows {
        let name = |i: usize| names.get(&r.get::<_, i64>(i));
        let (Some(table), Some(references), Some(tu), Some(ru)) =
            (name(1), name(2), name(4), name(5))
        else {
            continue;
        };
        if units.contains(tu) || units.contains(ru) {
            out.push(ForeignKey {
                name: r.get(0),
                table: table.clone(),
                references: references.clone(),
                definition: r.get(3),
                table_unit: (tu != table).then(|| tu.clone()),
                references_unit: (ru != references).then(|| ru.clone()),
                on_partitioned: r.get(6),
                columns: r.get(7),
                referenced_columns: r.get(8),
            });
        }
    }
    Ok(out)
}

/// Foreign tables and materialized views the scope names: never copied, shown in the plan.
async fn skipped(client: &Client, role: Role, scope: &Scope) -> Result<Vec<Skipped>> {
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text,
                    CASE c.relkind WHEN 'f' THEN 'foreign table' ELSE 'materialized view' END
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
            name: QualName::new(r.get::<_, String>(0), r.get::<_, String>(1)),
            kind: r.get(2),
        })
        .filter(|s| scope.table_in_scope(&s.name, None))
        .collect())
}

/// Sequences in scope: owned by (or identity of) an in-scope table, used by a default of an
/// in-scope column, or - when no table filter is given - any standalone sequence of an
/// in-scope schema. Values are read later by [`read_sequence_values`].
async fn load_sequences(
    client: &Client,
    role: Role,
    scope: &Scope,
    tables: &Tables,
    table_oids: &[u32],
) -> Result<Vec<Sequence>> {
    let rows = client
        .query(
            "SELECT s.oid::int8, n.nspname::text, s.relname::text,
                    own.refobjid::int8, own_n.nspname::text, own_c.relname::text,
                    EXISTS (SELECT 1 FROM pg_depend dd JOIN pg_attrdef ad ON dd.classid = 'pg_attrdef'::regclass
                                   AND dd.objid = ad.oid
                             WHERE dd.refclassid = 'pg_class'::regclass AND dd.refobjid = s.oid
                               AND ad.adrelid = ANY($1::oid[])),
                    has_sequence_privilege(s.oid, 'UPDATE')
               FROM pg_class s
               JOIN pg_namespace n ON n.oid = s.relnamespace
               LEFT JOIN pg_depend own ON own.classid = 'pg_class'::regclass AND own.objid = s.oid
                    AND own.refclassid = 'pg_class'::regclass AND own.deptype IN ('a', 'i')
               LEFT JOIN pg_class own_c ON own_c.oid = own.refobjid
               LEFT JOIN pg_namespace own_n ON own_n.oid = own_c.relnamespace
              WHERE s.relkind = 'S'
                AND NOT EXISTS (SELECT 1 FROM pg_depend d
                                 WHERE d.classid = 'pg_class'::regclass AND d.objid = s.oid
                                   AND d.deptype = 'e')
              ORDER BY n.nspname, s.relname",
            &[&table_oids],
        )
        .await
        .map_err(|e| Error::pg(role, "listing sequences", e))?;
    let mut out = Vec::new();
    for r in rows {
        let name = QualName::new(r.get::<_, String>(1), r.get::<_, String>(2));
        let owner_oid: Option<i64> = r.get(3);
        let owned_by = match (r.get::<_, Option<String>>(4), r.get::<_, Option<String>>(5)) {
            (Some(s), Some(n)) => Some(QualName::new(s, n)),
            _ => None,
        };
        let used_by_default: bool = r.get(6);
        let owner_in_scope = owner_oid.is_some_and(|o| tables.contains_key(&o));
        let keep = owner_in_scope
            || used_by_default
            || (owned_by.is_none()
                && !scope.has_table_filter()
                && scope.schema_in_scope(&name.schema));
        if keep {
            out.push(Sequence {
                name,
                owned_by,
                last_value: 0,
                is_called: false,
                can_set: r.get(7),
            });
        }
    }
    Ok(out)
}

/// Reads `last_value` and `is_called` of each sequence.
pub async fn read_sequence_values(
    client: &Client,
    role: Role,
    seqs: &mut [Sequence],
) -> Result<()> {
    for s in seqs.iter_mut() {
        let row = client
            .query_one(
                &format!("SELECT last_value, is_called FROM {}", s.name.sql()),
                &[],
            )
            .await
            .map_err(|e| Error::pg(role, format!("reading sequence {}", s.name), e))?;
        s.last_value = row.get(0);
        s.is_called = row.get(1);
    }
    Ok(())
}
