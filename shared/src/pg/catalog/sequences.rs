//! Sequences in scope (owned by, identity of, or used by a default of an in-scope table, or
//! standalone in an in-scope schema without a table filter) and, read last, their state.

use super::Tables;
use crate::error::{Error, Result, Role};
use crate::model::catalog::Sequence;
use crate::model::ident::QualName;
use crate::model::scope::Scope;
use tokio_postgres::Client;

/// Sequences in scope: owned by (or identity of) an in-scope table, used by a default of an
/// in-scope column, or - when no table filter is given - any standalone sequence of an
/// in-scope schema. Values are read later by [`read_sequence_values`].
pub(super) async fn read(
    client: &Client,
    role: Role,
    scope: &Scope,
    tables: &Tables,
    table_oids: &[u32],
) -> Result<Vec<Sequence>> {
    let rows = client
        .query(
            "SELECT n.nspname::text AS schema, s.relname::text AS name,
                    own.refobjid::int8 AS owner_oid, own_n.nspname::text AS owner_schema,
                    own_c.relname::text AS owner_name,
                    EXISTS (SELECT 1 FROM pg_depend dd JOIN pg_attrdef ad ON dd.classid = 'pg_attrdef'::regclass
                                   AND dd.objid = ad.oid
                             WHERE dd.refclassid = 'pg_class'::regclass AND dd.refobjid = s.oid
                               AND ad.adrelid = ANY($1::oid[])) AS used_by_default,
                    has_sequence_privilege(s.oid, 'UPDATE') AS can_set
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
        let name = QualName::new(r.get::<_, String>("schema"), r.get::<_, String>("name"));
        let owner_oid: Option<i64> = r.get("owner_oid");
        let owned_by = match (
            r.get::<_, Option<String>>("owner_schema"),
            r.get::<_, Option<String>>("owner_name"),
        ) {
            (Some(s), Some(n)) => Some(QualName::new(s, n)),
            _ => None,
        };
        let used_by_default: bool = r.get("used_by_default");
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
                can_set: r.get("can_set"),
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
        s.last_value = row.get("last_value");
        s.is_called = row.get("is_called");
    }
    Ok(())
}
