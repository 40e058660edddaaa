//! Secondary indexes a load may drop and build again: plain, valid, not behind a constraint,
//! not a partition's, and only what this role can build again.

use super::{per_table, Query, Tables};
use crate::error::{Result, Role};
use crate::model::catalog::SecondaryIndex;
use tokio_postgres::Client;

pub(super) async fn add_indexes(
    client: &Client,
    role: Role,
    tables: &mut Tables,
    oids: &[u32],
) -> Result<()> {
    let sql = "SELECT i.indrelid::int8 AS table_oid, ci.relname::text AS name,
                    pg_get_indexdef(i.indexrelid) AS definition
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
        Query {
            what: "listing indexes",
            sql,
        },
        oids,
        tables,
        |t, r| {
            t.secondary_indexes.push(SecondaryIndex {
                table: t.name.clone(),
                name: r.get("name"),
                definition: r.get("definition"),
            });
        },
    )
    .await
}
