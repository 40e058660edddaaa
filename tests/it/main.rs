//! Integration tests against two real PostgreSQL servers (source and target), one test binary
//! with a module per area. Every test gets its own fresh database pair.

mod backup;
mod bootstrap;
mod chunks;
mod deploy;
mod dump;
mod e2e;
mod errors;
mod exact;
mod jobstore;
mod refresh;
mod resume;
mod rules;
mod s3;
mod secrets;
mod segments;
mod shapes;
mod snapshot;
mod stateless;
mod stats;
mod steps;
mod tls;
mod versions;

use dbsync_core::model::scope::Scope;
use dbsync_core::pipeline::progress::NoProgress;
use dbsync_core::pipeline::{self, LoadReport, Options};
use dbsync_tests::Pair;
use std::sync::Arc;

pub const SCHEMA: &str = include_str!("fixtures/adversarial_schema.sql");
pub const DATA: &str = include_str!("fixtures/adversarial_data.sql");

/// Options with a tiny chunk size, so every table of the fixture spans many chunks.
pub fn tiny_chunks() -> Options {
    Options {
        workers: 3,
        chunk_bytes: 16 * 1024,
        ..Options::default()
    }
}

/// The plan of `p`'s source at tiny chunks, split as `sizing` says.
pub async fn plan_of(
    p: &Pair,
    sizing: dbsync_core::plan::chunks::Sizing,
) -> dbsync_core::model::chunk::Plan {
    pipeline::plan_only(&p.source_spec(), &tiny_chunks().scope, None, sizing)
        .await
        .expect("plan")
}

/// A pair with the adversarial schema on both sides and its data in the source.
pub async fn adversarial(hint: &str) -> Pair {
    let p = Pair::new(hint).await;
    p.both(SCHEMA).await;
    p.source(DATA).await;
    p.source("ANALYZE").await;
    p
}

/// Runs `dbsync sync` through the core.
pub async fn sync(p: &Pair, opts: &Options) -> dbsync_core::Result<LoadReport> {
    pipeline::sync(
        &p.source_spec(),
        &p.target_spec(),
        opts,
        Arc::new(NoProgress),
    )
    .await
}

/// Runs `dbsync sync --dry-run` with tiny chunks and returns its report.
pub async fn dry_run_sync(p: &Pair) -> dbsync_core::pipeline::DryRun {
    let opts = Options {
        dry_run: true,
        ..tiny_chunks()
    };
    sync(p, &opts)
        .await
        .expect("dry run")
        .dry_run
        .expect("dry run report")
}

/// Runs `dbsync sync` from the source of `p` to another target.
pub async fn sync_to(
    p: &Pair,
    target: &dbsync_core::pg::conn::ConnSpec,
    opts: &Options,
) -> dbsync_core::Result<LoadReport> {
    pipeline::sync(&p.source_spec(), target, opts, Arc::new(NoProgress)).await
}

/// Runs `dbsync import` of `store` into the target of `p`.
pub async fn import(
    p: &Pair,
    store: Arc<dyn dbsync_core::parts::PartStore>,
    opts: &Options,
) -> dbsync_core::Result<LoadReport> {
    pipeline::import(
        &p.target_spec(),
        store,
        &opts.import(),
        Arc::new(NoProgress),
    )
    .await
}

/// The target of `p`, connected as `role`.
pub fn target_as(p: &Pair, role: &str) -> dbsync_core::pg::conn::ConnSpec {
    let url = p.target_url.replace("postgres@", &format!("{role}@"));
    dbsync_core::pg::conn::ConnSpec::parse(&url, "--target").expect("url")
}

/// Exports the source of `p` into a fresh temporary directory with tiny chunks.
pub async fn export_to_temp(
    p: &Pair,
) -> (
    std::path::PathBuf,
    Arc<dbsync_core::parts::LocalStore>,
    dbsync_core::model::manifest::Manifest,
) {
    let dir = std::env::temp_dir().join(format!("dbsync-it-{}", p.name));
    let store = Arc::new(dbsync_core::parts::LocalStore::new(&dir));
    let m = pipeline::export(
        &p.source_spec(),
        store.clone(),
        &tiny_chunks().export(),
        Arc::new(NoProgress),
    )
    .await
    .expect("export");
    (dir, store, m)
}

/// Options limited to some tables.
pub fn scoped(tables: &[&str], exclude: &[&str]) -> Options {
    Options {
        scope: Scope::from_lists(
            &[],
            &tables.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            &exclude.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
        .expect("scope"),
        ..tiny_chunks()
    }
}
