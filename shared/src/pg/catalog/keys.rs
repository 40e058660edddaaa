//! Keys and checks: the key a table is chunked by (primary first, then the NOT NULL unique
//! key with the fewest columns), the primary and unique keys a load may drop and build again,
//! and the unique indexes and validated CHECKs the pre-flight compares between the sides.

use super::{per_table, Query, Tables};
use crate::error::{Error, Result, Role};
use crate::model::catalog::{CheckConstraint, Key, KeyColumn, KeyConstraint, KeyKind, UniqueKey};
use tokio_postgres::Client;

/// Candidate keys: primary first, then the NOT NULL unique key with the fewest columns.
pub(super) async fn add_keys(
    client: &Client,
    role: Role,
    tables: &mut Tables,
    oids: &[u32],
) -> Result<()> {
    let err = |ctx: &'static str| move |e| Error::pg(role, ctx, e);
    for r in client
        .query(
            "SELECT i.indrelid::int8 AS table_oid, ci.relname::text AS index, i.indisprimary,
                    array_agg(a.attname::text ORDER BY k.ord) AS names,
                    array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY k.ord) AS types,
                    array_agg(CASE WHEN a.atttypid IN (20, 21, 23) THEN 'integer'
                                   WHEN a.atttypid = 2950 THEN 'uuid'
                                   WHEN t.typcollation <> 0 THEN 'text'
                                   ELSE 'other' END ORDER BY k.ord) AS kinds,
                    bool_and(a.attnotnull) AS not_null
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
        let not_null: bool = r.get("not_null");
        let Some(t) = tables.get_mut(&r.get::<_, i64>("table_oid")) else {
            continue;
        };
        if t.key.is_some() || !not_null {
            continue;
        }
        let names: Vec<String> = r.get("names");
        let types: Vec<String> = r.get("types");
        let kinds: Vec<String> = r.get("kinds");
        t.key = Some(Key {
            index: r.get("index"),
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

/// See [`Table::rebuildable_keys`]. A dependent object (a foreign key using the index, a view
/// relying on the key for GROUP BY) would make the drop fail or cascade: such keys stay.
pub(super) async fn add_rebuildable_keys(
    client: &Client,
    role: Role,
    tables: &mut Tables,
    oids: &[u32],
) -> Result<()> {
    let sql = "SELECT c.conrelid::int8 AS table_oid, c.conname::text AS name,
                    pg_get_constraintdef(c.oid) AS definition
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
        Query {
            what: "listing primary and unique keys",
            sql,
        },
        oids,
        tables,
        |t, r| {
            t.rebuildable_keys.push(KeyConstraint {
                table: t.name.clone(),
                name: r.get("name"),
                definition: r.get("definition"),
            });
        },
    )
    .await
}

/// Unique indexes on plain columns and validated CHECK constraints: what the pre-flight
/// compares between the two sides.
pub(super) async fn add_unique_keys_and_checks(
    client: &Client,
    role: Role,
    tables: &mut Tables,
    oids: &[u32],
) -> Result<()> {
    per_table(
        client,
        role,
        Query {
            what: "listing unique indexes",
            sql: "SELECT i.indrelid::int8 AS table_oid, ci.relname::text AS name,
                    array_agg(a.attname::text ORDER BY k.ord) AS columns,
                    min(pg_get_expr(i.indpred, i.indrelid)) AS predicate,
                    bool_or(coalesce((to_jsonb(i) ->> 'indnullsnotdistinct')::bool, false))
                      AS nulls_not_distinct
               FROM pg_index i
               JOIN pg_class ci ON ci.oid = i.indexrelid
               CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
              WHERE i.indrelid = ANY($1::oid[]) AND i.indisunique AND i.indexprs IS NULL
                AND k.ord <= i.indnkeyatts
              GROUP BY i.indrelid, ci.relname, i.indexrelid
              ORDER BY 1, 2",
        },
        oids,
        tables,
        |t, r| {
            t.unique_keys.push(UniqueKey {
                name: r.get("name"),
                columns: r.get("columns"),
                predicate: r.get("predicate"),
                nulls_not_distinct: r.get("nulls_not_distinct"),
            });
        },
    )
    .await?;
    per_table(
        client,
        role,
        Query {
            what: "listing check constraints",
            sql: "SELECT conrelid::int8 AS table_oid, conname::text AS name,
                    pg_get_expr(conbin, conrelid) AS expression
               FROM pg_constraint
              WHERE contype = 'c' AND convalidated AND conrelid = ANY($1::oid[])
              ORDER BY 1, 2",
        },
        oids,
        tables,
        |t, r| {
            t.checks.push(CheckConstraint {
                name: r.get("name"),
                expression: r.get("expression"),
            });
        },
    )
    .await
}
