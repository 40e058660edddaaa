//! Shadow tables of an atomic import (`dbsync import --atomic`, API `"atomic": true`): one
//! bare copy of each in-scope table (`CREATE TABLE ... (LIKE t)`: columns and NOT NULL only;
//! no keys, indexes, checks, triggers or defaults) in schema `dbsync_shadow`, which the parts
//! load into while the real tables keep serving their old rows; then the swap, one
//! transaction that empties the real tables and fills them from the shadows; then the
//! shadows dropped. One job loads a target at a time (the target lock), so the schema holds
//! one job's shadows at most.

use crate::error::{Error, Result, Role};
use crate::model::catalog::Table;
use crate::model::ident::{column_list, quote_ident, QualName};
use crate::model::restore::Restore;
use crate::pg::{ledger, ledger_owner};
use sha2::{Digest, Sha256};
use tokio_postgres::{Client, GenericClient};

/// The schema of the shadow tables.
pub const SCHEMA: &str = "dbsync_shadow";

fn pg(what: String) -> impl Fn(tokio_postgres::Error) -> Error {
    move |e| Error::pg(Role::Target, what.clone(), e)
}

/// The shadow of `table`: the same name in [`SCHEMA`] where it fits, made unique by a hash
/// of the schema-qualified name (two schemas may hold tables of one name), within
/// PostgreSQL's 63 bytes.
pub fn shadow_of(table: &QualName) -> QualName {
    let digest = Sha256::digest(table.to_string().as_bytes());
    let tag: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    let mut stem: String = String::new();
    for ch in table.name.chars() {
        if stem.len() + ch.len_utf8() > 50 {
            break;
        }
        stem.push(ch);
    }
    QualName::new(SCHEMA, format!("{stem}_{tag}"))
}

/// `table` as its shadow: the same columns, another name (what the part loads COPY into).
pub fn as_shadow(table: &Table) -> Table {
    Table {
        name: shadow_of(&table.name),
        ..table.clone()
    }
}

/// Creates the shadow of every table afresh (an earlier attempt's are dropped first).
pub async fn create(client: &impl GenericClient, tables: &[Table]) -> Result<()> {
    // Owned as the ledger is, so the next run may drop it whichever role ran this one.
    let owner = ledger_owner::creator(client)
        .await?
        .map(|r| format!(" AUTHORIZATION {}", quote_ident(&r)))
        .unwrap_or_default();
    let mut sql = format!(
        "DROP SCHEMA IF EXISTS {s} CASCADE; CREATE SCHEMA {s}{owner};",
        s = quote_ident(SCHEMA)
    );
    for t in tables {
        sql.push_str(&format!(
            "CREATE TABLE {} (LIKE {});",
            shadow_of(&t.name).sql(),
            t.name.sql()
        ));
    }
    client
        .batch_execute(&sql)
        .await
        .map_err(pg(format!("creating the shadow tables in schema {SCHEMA}")))
}

/// Starts an atomic import: the shadow tables created afresh and the job recorded `shadow`
/// (with `restore` saying how to swap), in one transaction.
pub async fn start(
    client: &mut Client,
    job_id: &str,
    tables: &[Table],
    restore: &Restore,
) -> Result<()> {
    let tx = client
        .transaction()
        .await
        .map_err(pg("starting the atomic import".into()))?;
    create(&tx, tables).await?;
    let names: Vec<QualName> = tables.iter().map(|t| t.name.clone()).collect();
    ledger::record_shadow_job(&tx, job_id, &names, restore).await?;
    tx.commit()
        .await
        .map_err(pg("starting the atomic import".into()))
}

/// Gives an atomic import up: its shadow tables dropped and its record set aside, so that
/// running it again starts over. The target's own tables were never changed.
pub async fn discard(client: &Client, job_id: &str) -> Result<()> {
    drop_all(client).await?;
    ledger::set_aside(client, job_id).await?;
    ledger::supersede_shadows(client).await
}

/// Rows in the shadow of `table`.
pub async fn rows(client: &impl GenericClient, table: &QualName) -> Result<i64> {
    let row = client
        .query_one(
            &format!("SELECT count(*) FROM {}", shadow_of(table).sql()),
            &[],
        )
        .await
        .map_err(pg(format!("counting the shadow rows of {table}")))?;
    Ok(row.get(0))
}

/// Inside the swap transaction: fills `table` (emptied) from its shadow, identity values
/// and all, and moves the ledger's parts over to it. Returns the rows inserted.
pub async fn swap_in(client: &impl GenericClient, job_id: &str, table: &Table) -> Result<u64> {
    let shadow = shadow_of(&table.name);
    let cols = column_list(table.copy_columns().map(|c| c.name.as_str()));
    let sql = if cols.is_empty() {
        format!(
            "INSERT INTO {} SELECT FROM {}",
            table.name.sql(),
            shadow.sql()
        )
    } else {
        format!(
            "INSERT INTO {t} ({cols}) OVERRIDING SYSTEM VALUE SELECT {cols} FROM {s}",
            t = table.name.sql(),
            s = shadow.sql()
        )
    };
    let what = format!("filling {} from its shadow table", table.name);
    let n = client.execute(&sql, &[]).await.map_err(pg(what.clone()))?;
    client
        .execute(
            "UPDATE dbsync.parts SET table_name = $3 WHERE job_id = $1 AND table_name = $2",
            &[&job_id, &shadow.to_string(), &table.name.to_string()],
        )
        .await
        .map_err(pg(what))?;
    Ok(n)
}

/// Drops every shadow table.
pub async fn drop_all(client: &impl GenericClient) -> Result<()> {
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {} CASCADE",
            quote_ident(SCHEMA)
        ))
        .await
        .map_err(pg(format!("dropping the shadow tables (schema {SCHEMA})")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shadow_name_is_stable_unique_per_schema_and_fits_postgres_limit() {
        let a = shadow_of(&QualName::new("app", "orders"));
        assert_eq!(a, shadow_of(&QualName::new("app", "orders")));
        assert_eq!(a.schema, SCHEMA);
        assert!(a.name.starts_with("orders_"), "{a}");
        assert_ne!(a, shadow_of(&QualName::new("billing", "orders")));
        let long = shadow_of(&QualName::new("s", "ü".repeat(60)));
        assert!(long.name.len() <= 63, "{}", long.name.len());
    }
}
