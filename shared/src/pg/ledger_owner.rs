//! Who dbsync's own objects in a target belong to, and whether this role may use them. The
//! ledger (schema `dbsync`) and the shadow tables' schema (`dbsync_shadow`) are created for
//! the **database owner** when the creating role may act as it (a superuser, the owner, or a
//! member), else for the creating role; so a first run as `postgres` and the next as the
//! owner of the database and its tables share one ledger. A role that may not use an
//! existing ledger gets a one-line fix that grants it the ledger's rows and nothing else.

use crate::error::{Error, Result, Role};
use crate::model::ident::quote_ident;
use tokio_postgres::{Client, GenericClient};

/// The ledger's tables and the newest column each must have, so that a complete ledger is
/// used as it is: altering it would need its owner.
const TABLES: &str = "('jobs', 'parts', 'backups', 'finish_steps')";

fn pg(context: &'static str) -> impl Fn(tokio_postgres::Error) -> Error {
    move |e| Error::pg(Role::Target, context, e)
}

/// Whether the ledger holds every table and column this version of dbsync writes (read from
/// pg_class, which needs no privilege on the schema).
pub async fn complete(client: &impl GenericClient) -> Result<bool> {
    let row = client
        .query_one(
            &format!(
                "SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                          WHERE n.nspname = 'dbsync' AND c.relkind = 'r' AND c.relname IN {TABLES}) = 4
                    AND EXISTS (SELECT FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                                  JOIN pg_namespace n ON n.oid = c.relnamespace
                                 WHERE n.nspname = 'dbsync' AND c.relname = 'jobs'
                                   AND a.attname = 'restore' AND NOT a.attisdropped)"
            ),
            &[],
        )
        .await
        .map_err(pg("looking for the ledger"))?;
    Ok(row.get(0))
}

/// The role dbsync's schemas are created for, if this session may act as it and it is not
/// the session's own role: the owner of schema `dbsync` where it exists, else the database
/// owner.
pub async fn creator(client: &impl GenericClient) -> Result<Option<String>> {
    let row = client
        .query_one(
            "WITH o AS (
               SELECT COALESCE((SELECT nspowner FROM pg_namespace WHERE nspname = 'dbsync'),
                               (SELECT datdba FROM pg_database WHERE datname = current_database())) AS oid)
             SELECT r.rolname::text,
                    r.rolname <> current_user
                    AND CASE WHEN current_setting('server_version_num')::int >= 160000
                             THEN pg_has_role(o.oid, 'SET') ELSE pg_has_role(o.oid, 'MEMBER') END
               FROM o JOIN pg_roles r ON r.oid = o.oid",
            &[],
        )
        .await
        .map_err(pg("finding the ledger's owner"))?;
    let (name, act_as): (String, bool) = (row.get(0), row.get(1));
    Ok(act_as.then_some(name))
}

/// `SET LOCAL ROLE` to [`creator`], for a transaction that creates dbsync's objects; empty
/// when the session creates them as itself.
pub fn act_as_sql(creator: Option<&str>) -> String {
    creator
        .map(|r| format!("SET LOCAL ROLE {};", quote_ident(r)))
        .unwrap_or_default()
}

/// None when this role may use the ledger (or create it); otherwise the problem and its fix,
/// for the pre-flight list.
pub async fn usable(client: &Client) -> Result<Option<String>> {
    let row = client
        .query_one(
            &format!(
                "SELECT current_user::text, current_database()::text,
                        pg_get_userbyid(n.nspowner)::text,
                        CASE WHEN n.oid IS NULL THEN has_database_privilege(current_database(), 'CREATE')
                             ELSE has_schema_privilege(n.oid, 'USAGE') END,
                        (SELECT COALESCE(bool_and(has_table_privilege(c.oid, 'SELECT, INSERT, UPDATE, DELETE')), true)
                           FROM pg_class c WHERE c.relnamespace = n.oid AND c.relkind = 'r'
                            AND c.relname IN {TABLES}),
                        n.oid IS NULL OR pg_has_role(n.nspowner, 'USAGE')
                   FROM (SELECT 1) one LEFT JOIN pg_namespace n ON n.nspname = 'dbsync'"
            ),
            &[],
        )
        .await
        .map_err(pg("checking the ledger"))?;
    let (me, db, owner): (String, String, Option<String>) = (row.get(0), row.get(1), row.get(2));
    let (enter, write, owns): (bool, bool, bool) = (row.get(3), row.get(4), row.get(5));
    let Some(owner) = owner else {
        return Ok((!enter).then(|| {
            format!(
                "role {me} may not create dbsync's ledger (schema dbsync) in the target: as the \
                 database owner or a superuser run: GRANT CREATE ON DATABASE {} TO {}",
                quote_ident(&db),
                quote_ident(&me)
            )
        }));
    };
    if enter && write && (owns || complete(client).await?) {
        return Ok(None);
    }
    Ok(Some(if enter && write {
        format!(
            "dbsync's ledger (schema dbsync) in the target belongs to role {owner} and lacks \
             tables this version adds: run dbsync once as {owner} (or a superuser), which adds them"
        )
    } else {
        format!(
            "dbsync's ledger (schema dbsync) in the target belongs to role {owner}, and role {me} \
             may not write it: as {owner} or a superuser run: GRANT USAGE ON SCHEMA dbsync TO {m}; \
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA dbsync TO {m}",
            m = quote_ident(&me)
        )
    }))
}
