//! The tables' columns, in order, with what the plan needs of each (type, NOT NULL, a
//! default or identity, generated).

use super::{per_table, Query, Tables};
use crate::error::Result;
use crate::error::Role;
use crate::model::catalog::Column;
use tokio_postgres::Client;

pub(super) async fn add_columns(
    client: &Client,
    role: Role,
    tables: &mut Tables,
    oids: &[u32],
) -> Result<()> {
    per_table(
        client,
        role,
        Query {
            what: "listing columns",
            sql: "SELECT a.attrelid::int8 AS table_oid, a.attname::text AS name,
                    format_type(a.atttypid, a.atttypmod) AS type_name, a.attnotnull AS not_null,
                    (a.atthasdef OR a.attidentity <> '') AS has_default,
                    a.attgenerated <> '' AS generated
               FROM pg_attribute a
              WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
              ORDER BY a.attrelid, a.attnum",
        },
        oids,
        tables,
        |t, r| {
            t.columns.push(Column {
                name: r.get("name"),
                type_name: r.get("type_name"),
                not_null: r.get("not_null"),
                has_default: r.get("has_default"),
                generated: r.get("generated"),
            });
        },
    )
    .await
}
