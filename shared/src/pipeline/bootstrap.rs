//! `--create-schema`: before a sync loads anything, the tables in scope that the target lacks
//! are created from the source's catalog, with the types, sequences, functions and
//! extensions they need, in one target transaction (all or nothing). The load then runs as
//! usual: it drops the new secondary indexes and keys and builds them after the data.

use crate::error::{Error, Result, Role};
use crate::model::chunk::Plan;
use crate::model::ddl::{Created, SchemaSource};
use crate::pg::conn::ConnSpec;
use crate::pg::ddl;
use tokio_postgres::Client;

/// Creates on `target` what the plan's tables need and it lacks, reading the definitions in
/// the job's snapshot on `source` (the coordinator session).
pub async fn create_schema(source: &Client, target: &ConnSpec, plan: &Plan) -> Result<Created> {
    let wanted = read_schema(source, plan).await?;
    create_from(target, &wanted).await
}

/// Reads, in the caller's snapshot, what creating the plan's tables would take (the
/// serverless plan step stores it for the prepare step).
pub async fn read_schema(source: &Client, plan: &Plan) -> Result<SchemaSource> {
    let cat = &plan.catalog;
    if cat.server.version_num < 130000 {
        return Err(Error::config(
            crate::plan::ddl::SETTING,
            format!(
                "needs a source on PostgreSQL 13 or later (it is {})",
                cat.server.version
            ),
        ));
    }
    ddl::read_source(source, cat.server.version_num, &cat.tables, &cat.sequences).await
}

/// Creates on `target` what `wanted` has and it lacks, in one transaction.
pub async fn create_from(target: &ConnSpec, wanted: &SchemaSource) -> Result<Created> {
    let mut tgt = target.connect(Role::Target, "dbsync-create-schema").await?;
    let existing = ddl::read_existing(&tgt, wanted).await?;
    let (statements, created) = crate::plan::ddl::statements(wanted, &existing)?;
    if !statements.is_empty() {
        ddl::apply(&mut tgt, &statements).await?;
        tracing::info!(
            tables = created.tables.len(),
            statements = statements.len(),
            "created the schema the target lacked"
        );
    }
    Ok(created)
}
