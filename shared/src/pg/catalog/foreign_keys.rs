//! The foreign-key graph: every key touching a table in scope, either side, with the units
//! (partition roots) load order goes by.

use super::Tables;
use crate::error::{Error, Result, Role};
use crate::model::catalog::{ForeignKey, Table};
use crate::model::ident::QualName;
use std::collections::{BTreeSet, HashMap};
use tokio_postgres::Client;

/// Foreign keys touching a unit in scope, either side. Only constraints declared by the user
/// (`conparentid = 0`): the clones PostgreSQL keeps on each partition of a partitioned
/// parent's key, and on the referencing side for each partition of a referenced partitioned
/// table, go with their parent. A key declared on a single partition is its own. Each key
/// also names the units (partition roots) on both sides, which load order goes by.
pub(super) async fn read(
    client: &Client,
    role: Role,
    names: &HashMap<i64, QualName>,
    tables: &Tables,
) -> Result<Vec<ForeignKey>> {
    let units: BTreeSet<&QualName> = tables.values().map(Table::unit).collect();
    let rows = client
        .query(
            "SELECT con.conname::text AS name, con.conrelid::int8 AS table_oid,
                    con.confrelid::int8 AS references_oid,
                    pg_get_constraintdef(con.oid) AS definition,
                    coalesce(pg_partition_root(con.conrelid), con.conrelid)::oid::int8 AS table_unit,
                    coalesce(pg_partition_root(con.confrelid), con.confrelid)::oid::int8
                      AS references_unit,
                    c.relkind = 'p' AS on_partitioned,
                    ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, o)
                            JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n
                           ORDER BY k.o) AS columns,
                    ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, o)
                            JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n
                           ORDER BY k.o) AS referenced_columns
               FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid
              WHERE con.contype = 'f' AND con.conparentid = 0
              ORDER BY con.conrelid, con.conname",
            &[],
        )
        .await
        .map_err(|e| Error::pg(role, "listing foreign keys", e))?;
    let mut out = Vec::new();
    for r in rows {
        let name = |column: &str| names.get(&r.get::<_, i64>(column));
        let (Some(table), Some(references), Some(tu), Some(ru)) = (
            name("table_oid"),
            name("references_oid"),
            name("table_unit"),
            name("references_unit"),
        ) else {
            continue;
        };
        if units.contains(tu) || units.contains(ru) {
            out.push(ForeignKey {
                name: r.get("name"),
                table: table.clone(),
                references: references.clone(),
                definition: r.get("definition"),
                table_unit: (tu != table).then(|| tu.clone()),
                references_unit: (ru != references).then(|| ru.clone()),
                on_partitioned: r.get("on_partitioned"),
                columns: r.get("columns"),
                referenced_columns: r.get("referenced_columns"),
            });
        }
    }
    Ok(out)
}
