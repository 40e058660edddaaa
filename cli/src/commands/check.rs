//! `dbsync check`: an export read whole against its manifest, no database.

use crate::args::WorkersArg;
use crate::output::{count, print_json, Output};
use dbsync_core::parts::{open_store, S3Settings};

#[derive(clap::Args)]
pub struct Args {
    /// The export: a directory or s3://bucket/prefix holding manifest.json.
    #[arg(long, env = "DBSYNC_FROM")]
    pub from: String,
    #[command(flatten)]
    pub workers: WorkersArg,
}

pub async fn exec(a: Args, out: Output) -> anyhow::Result<()> {
    let store = open_store(&a.from, &S3Settings::default()).await?;
    let m = dbsync_core::parts::read_manifest(store.as_ref()).await?;
    dbsync_core::parts::check_export(store.as_ref(), &m).await?;
    dbsync_core::parts::check_contents(store.as_ref(), &m, a.workers.count()?).await?;
    let parts: Vec<_> = m.tables.iter().flat_map(|t| &t.parts).collect();
    let rows: u64 = parts.iter().map(|p| p.stats.rows).sum();
    if out.json {
        return print_json(&serde_json::json!({
            "ok": true, "job_id": m.job_id, "tables": m.tables.len(), "parts": parts.len(), "rows": rows
        }));
    }
    say!(
        "export {} at {} is whole: {} and {} ({} rows) read and match the manifest",
        m.job_id,
        a.from,
        count(m.tables.len(), "table"),
        count(parts.len(), "part"),
        rows
    );
    Ok(())
}
