//! A sync through parts (`dbsync sync --via DIR|s3://...`): the source exported into a new
//! location, the target backed up if asked, the parts imported, both sides verified if asked.
//! The order and what may not be combined with it live here, so every front end (the command
//! line, the console) runs the same sequence.

use crate::error::Result;
use crate::model::options::Spelling;
use crate::parts::{open_store, S3Settings};
use crate::pg::conn::ConnSpec;
use crate::pipeline::progress::Progress;
use crate::pipeline::{backup, export, import, verify, LoadReport, Options};
use std::sync::Arc;

/// The setting's name in messages.
pub const SETTING: &str = "--via";

/// Where the parts go, and whether a location that holds anything may be emptied first.
pub struct Via<'a> {
    /// A directory or `s3://bucket/prefix`.
    pub location: &'a str,
    /// Empty it first when it holds anything (`--force`).
    pub force: bool,
}

/// Exports `source` to `via`, backs the target up when `opts.backup` says so, imports into
/// `target` and verifies when `opts.verify` says so. The target is refused by the protected
/// patterns before the export starts.
pub async fn sync_via(
    source: &ConnSpec,
    target: &ConnSpec,
    via: Via<'_>,
    opts: &Options,
    progress: Arc<dyn Progress>,
) -> Result<LoadReport> {
    opts.check_target_allowed(target)?;
    opts.choices(true).check(Spelling::Flag)?;
    let store = open_store(via.location, &S3Settings::default()).await?;
    export::fresh_location(store.as_ref(), SETTING, via.force).await?;
    let m = export::export(source, store.clone(), &opts.export(), progress.clone()).await?;
    tracing::info!(parts = m.tables.iter().map(|t| t.parts.len()).sum::<usize>(), to = %via.location, "export written");
    let backup = match &opts.backup {
        Some(to) => Some(backup::backup_target(target, opts, to, &m.job_id).await?),
        None => None,
    };
    let mut report = import::import(target, store, &opts.import(), progress).await?;
    report.backup = backup;
    if opts.verify {
        verify::verify(source, target, &opts.verify())
            .await?
            .into_result()?;
    }
    Ok(report)
}
