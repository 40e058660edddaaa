//! Emptying the tables in scope: one `TRUNCATE` of them all (never cascading), with
//! PostgreSQL 18's NOT ENFORCED foreign keys set aside around it.
//!
//! Why the set-aside: PostgreSQL 18 (seen on 18.4 and 18.6) refuses to truncate a table that an
//! enforced and a NOT ENFORCED foreign key both reference, even when the referencing tables
//! are in the same statement ("cannot truncate a table referenced in a foreign key
//! constraint"). A NOT ENFORCED key checks no row, so dropping it and adding it back in the
//! same transaction costs no scan and changes nothing a reader could see.

use crate::error::{Error, Result, Role};
use crate::model::ident::QualName;
use tokio_postgres::GenericClient;

/// NOT ENFORCED foreign keys referencing any of `rels`: what drops them and what adds them
/// back as they were. Empty before PostgreSQL 18, which has no such keys.
const UNENFORCED_FKS: &str = "
SELECT format('ALTER TABLE %s DROP CONSTRAINT %I', con.conrelid::regclass, con.conname),
       format('ALTER TABLE %s ADD CONSTRAINT %I %s', con.conrelid::regclass, con.conname,
              pg_get_constraintdef(con.oid))
  FROM pg_constraint con
 WHERE con.contype = 'f' AND NOT con.conenforced AND con.conparentid = 0
   AND con.confrelid IN (SELECT to_regclass(x) FROM unnest($1::text[]) AS x)
 ORDER BY con.oid";

/// Empties `tables` (`ONLY` each) and the partition `roots` (whole: PostgreSQL refuses
/// `ONLY` there, and a key declared on a partitioned parent is only satisfied when the parent
/// is in the statement too) in one statement, inside the caller's transaction.
pub async fn truncate_in_scope(
    tx: &(impl GenericClient + Sync),
    tables: &[QualName],
    roots: &[QualName],
) -> Result<()> {
    if tables.is_empty() {
        return Ok(());
    }
    let err = |what: &'static str| move |e| Error::pg(Role::Target, what, e);
    let version: i32 = tx
        .query_one("SELECT current_setting('server_version_num')::int4", &[])
        .await
        .map_err(err("reading the server version"))?
        .get(0);
    let names: Vec<String> = tables.iter().chain(roots).map(QualName::sql).collect();
    let unenforced = if version >= 180000 {
        tx.query(UNENFORCED_FKS, &[&names])
            .await
            .map_err(err("listing NOT ENFORCED foreign keys"))?
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
            .collect()
    } else {
        Vec::new()
    };
    for (drop, _) in &unenforced {
        tx.batch_execute(drop)
            .await
            .map_err(err("setting NOT ENFORCED foreign keys aside"))?;
    }
    let list = tables
        .iter()
        .map(|t| format!("ONLY {}", t.sql()))
        .chain(roots.iter().map(QualName::sql))
        .collect::<Vec<_>>()
        .join(", ");
    tx.batch_execute(&format!("TRUNCATE {list}"))
        .await
        .map_err(err("emptying the in-scope tables"))?;
    for (_, add) in &unenforced {
        tx.batch_execute(add)
            .await
            .map_err(err("adding NOT ENFORCED foreign keys back"))?;
    }
    Ok(())
}
