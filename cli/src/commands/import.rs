//! `dbsync import`: an export into the target (resumes after a failure).

use crate::args::{AnalyzeArg, AtomicArgs, ProtectedArg, WorkersArg};
use crate::output::{count, print_json, Output};
use crate::signals::interrupt;
use crate::{live, progress};
use dbsync_core::model::options::PartCheck;
use dbsync_core::parts::{open_store, S3Settings};
use dbsync_core::pg::conn::ConnSpec;
use dbsync_core::pipeline::{self, ImportOptions};

#[derive(clap::Args)]
pub struct Args {
    /// The export: a directory or s3://bucket/prefix holding manifest.json.
    #[arg(long, env = "DBSYNC_FROM")]
    pub from: String,
    /// Target URL.
    #[arg(long, env = "DBSYNC_TARGET")]
    pub target: String,
    #[command(flatten)]
    pub protected: ProtectedArg,
    #[command(flatten)]
    pub workers: WorkersArg,
    /// Keep the target's secondary indexes during the load.
    #[arg(long, env = "DBSYNC_KEEP_INDEXES")]
    pub keep_indexes: bool,
    #[command(flatten)]
    pub analyze: AnalyzeArg,
    /// Check everything against the target and say what would happen; change nothing.
    #[arg(long, env = "DBSYNC_DRY_RUN")]
    pub dry_run: bool,
    /// Start over even if this export was imported (or half-imported) into the target before.
    #[arg(long, env = "DBSYNC_RESTART")]
    pub restart: bool,
    /// Before the target changes, read every part and check it against the manifest (gzip,
    /// rows, sha256): `auto` always for a directory, for S3 up to 1 GiB of parts.
    #[arg(long, env = "DBSYNC_CHECK_PARTS", value_enum, default_value_t = PartCheck::Auto)]
    pub check_parts: PartCheck,
    #[command(flatten)]
    pub atomic: AtomicArgs,
}

pub async fn exec(a: Args, out: Output) -> anyhow::Result<()> {
    let target = ConnSpec::parse(&a.target, "--target")?;
    let opts = ImportOptions {
        workers: a.workers.count()?,
        keep_indexes: a.keep_indexes,
        analyze: a.analyze.analyze,
        dry_run: a.dry_run,
        restart: a.restart,
        check_parts: a.check_parts,
        atomic: a.atomic.atomic,
        atomic_max_bytes: a.atomic.max_bytes()?,
        interrupt: interrupt(),
        protected: a.protected.patterns.clone(),
    };
    let store = open_store(&a.from, &S3Settings::default()).await?;
    let r = pipeline::import(&target, store, &opts, live::new(out.quiet)).await?;
    if out.json {
        print_json(&r)?;
    } else if let Some(d) = &r.dry_run {
        say_raw!("{}", progress::render_dry_run(d, &target));
    } else if r.already_done {
        say!(
            "export {} was already imported into {}; nothing to do (--restart loads it again)",
            r.job_id,
            target
        );
    } else {
        say!(
            "imported {} ({}, {} skipped as already loaded, {} rows) and {} into {} in {:.1} s",
            count(r.tables, "table"),
            count(r.parts_loaded, "part"),
            r.parts_skipped,
            r.rows,
            count(r.sequences, "sequence"),
            target,
            r.elapsed_ms as f64 / 1000.0
        );
        if !out.quiet {
            say_raw!("{}", progress::render_tables(&r.per_table));
        }
    }
    Ok(())
}
