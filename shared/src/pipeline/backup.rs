//! `--backup`: before a sync empties anything, the target's tables in scope are exported in
//! one snapshot of the target (the format of `dbsync export`) to a directory or S3, and the
//! ledger records where (`dbsync.backups`). `dbsync import --from <backup>` puts them back.
//! A backup that cannot be written stops the job before the target is changed.

use crate::error::{Error, Result, Role};
use crate::model::manifest;
use crate::parts::{open_store, S3Settings};
use crate::pg::conn::ConnSpec;
use crate::pg::ledger;
use crate::pipeline::progress::NoProgress;
use crate::pipeline::{ExportOptions, Options};
use serde::Serialize;
use std::sync::Arc;

/// The setting errors name.
pub const SETTING: &str = "--backup";

/// A backup taken.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BackupInfo {
    /// Where it is.
    pub location: String,
    /// Its export's job id (the manifest's).
    pub job_id: String,
    /// Tables in it.
    pub tables: usize,
    /// Rows in it.
    pub rows: u64,
}

/// Backs up the target's tables in `opts`'s scope to `location` for the job `for_job`.
pub async fn backup_target(
    target: &ConnSpec,
    opts: &Options,
    location: &str,
    for_job: &str,
) -> Result<BackupInfo> {
    let refuse = |e: Error| match e {
        Error::Io { path, message, .. } => Error::config(
            SETTING,
            format!("cannot write the backup ({path}: {message}); nothing was changed"),
        ),
        e => e,
    };
    let store = open_store(location, &S3Settings::default())
        .await
        .map_err(refuse)?;
    if store.get(manifest::KEY).await.is_ok() {
        return Err(Error::config(
            SETTING,
            format!("{location} already holds an export (manifest.json): give a new location, so no earlier backup is overwritten"),
        ));
    }
    // The target's own data, as it is: no data rules, the job's scope and sizing.
    let backup_opts = ExportOptions {
        scope: opts.scope.clone(),
        workers: opts.workers,
        chunk_bytes: opts.chunk_bytes,
        interrupt: opts.interrupt.clone(),
        ..ExportOptions::default()
    };
    let m = crate::pipeline::export(target, store, &backup_opts, Arc::new(NoProgress))
        .await
        .map_err(refuse)?;
    let info = BackupInfo {
        location: location.to_string(),
        job_id: m.job_id.clone(),
        tables: m.tables.len(),
        rows: m
            .tables
            .iter()
            .flat_map(|t| &t.parts)
            .map(|p| p.stats.rows)
            .sum(),
    };
    let mut c = target.connect(Role::Target, "dbsync-backup").await?;
    ledger::ensure(&mut c).await?;
    ledger::record_backup(&c, for_job, &info.location, &info.job_id).await?;
    tracing::info!(job = %for_job, backup = %info.location, tables = info.tables, rows = info.rows,
        "target backed up");
    Ok(info)
}
