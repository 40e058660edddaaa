//! `dbsync export`: the source into gzip parts and a manifest.

use crate::args::{export_options, RulesArg, ScopeArgs, WorkArgs};
use crate::live;
use crate::output::{count, print_json, Output};
use dbsync_core::model::size::human_bytes;
use dbsync_core::parts::{open_store, S3Settings};
use dbsync_core::pg::conn::ConnSpec;
use dbsync_core::pipeline::{self, ExportOptions};

#[derive(clap::Args)]
pub struct Args {
    /// Source URL.
    #[arg(long, env = "DBSYNC_SOURCE")]
    pub source: String,
    /// Where the parts and manifest.json go: a new or empty directory or s3://bucket/prefix.
    #[arg(long, env = "DBSYNC_TO")]
    pub to: String,
    /// Empty --to first when it holds anything (an earlier export, other files).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub rules: RulesArg,
    #[command(flatten)]
    pub scope: ScopeArgs,
    #[command(flatten)]
    pub work: WorkArgs,
    /// gzip level, 0 (stored, no compression) to 9 (smallest); 1 is fastest of those that
    /// compress.
    #[arg(long, env = "DBSYNC_COMPRESS_LEVEL", default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=9))]
    pub compress_level: u32,
    /// Hand the snapshot over to a new holder session every N seconds (the same snapshot
    /// throughout, as the serverless holders relay it); workers start each chunk in the
    /// current one.
    #[arg(long, env = "DBSYNC_SNAPSHOT_RELAY_SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub snapshot_relay_seconds: Option<u64>,
}

pub async fn exec(a: Args, out: Output) -> anyhow::Result<()> {
    let (rules, source) = a.rules.load(ConnSpec::parse(&a.source, "--source")?)?;
    let opts = ExportOptions {
        rules,
        compress_level: a.compress_level,
        snapshot_relay: a.snapshot_relay_seconds.map(std::time::Duration::from_secs),
        ..export_options(&a.scope, &a.work)?
    };
    let store = open_store(&a.to, &S3Settings::default()).await?;
    pipeline::export::fresh_location(store.as_ref(), "--to", a.force).await?;
    let m = pipeline::export(&source, store.clone(), &opts, live::new(out.quiet)).await?;
    if out.json {
        return print_json(&m);
    }
    let parts: Vec<_> = m.tables.iter().flat_map(|t| &t.parts).collect();
    say!(
        "exported {} into {} ({} rows, {} as COPY text, {} compressed) in {}; manifest {}",
        count(m.tables.len(), "table"),
        count(parts.len(), "part"),
        parts.iter().map(|p| p.stats.rows).sum::<u64>(),
        human_bytes(parts.iter().map(|p| p.stats.bytes).sum()),
        human_bytes(parts.iter().map(|p| p.compressed_bytes).sum()),
        a.to,
        store.location(dbsync_core::model::manifest::KEY)
    );
    Ok(())
}
