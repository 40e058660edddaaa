//! `dbsync sync`: the main job, source to target (streaming, or through parts with --via).

use crate::args::{options, AnalyzeArg, AtomicArgs, ProtectedArg, RulesArg, ScopeArgs, WorkArgs};
use crate::output::{count, print_json, Output};
use crate::{live, progress};
use dbsync_core::model::size::human_bytes;
use dbsync_core::pg::conn::ConnSpec;
use dbsync_core::pipeline::via::Via;
use dbsync_core::pipeline::{self, Options};

#[derive(clap::Args)]
pub struct Args {
    /// Source URL (postgresql://user:pass@host:port/db?sslmode=...).
    #[arg(long, env = "DBSYNC_SOURCE")]
    pub source: String,
    /// Target URL.
    #[arg(long, env = "DBSYNC_TARGET")]
    pub target: String,
    #[command(flatten)]
    pub protected: ProtectedArg,
    #[command(flatten)]
    pub rules: RulesArg,
    #[command(flatten)]
    pub scope: ScopeArgs,
    #[command(flatten)]
    pub work: WorkArgs,
    /// Keep the target's secondary indexes during the load instead of dropping them and
    /// rebuilding them after (slower, but the indexes never disappear).
    #[arg(long, env = "DBSYNC_KEEP_INDEXES")]
    pub keep_indexes: bool,
    #[command(flatten)]
    pub analyze: AnalyzeArg,
    /// Go through gzip parts in this directory or s3://bucket/prefix instead of streaming
    /// (export, then import).
    #[arg(long, env = "DBSYNC_VIA")]
    pub via: Option<String>,
    /// With --via: empty its location first when it holds anything.
    #[arg(long, requires = "via")]
    pub force: bool,
    /// After loading, compare every table's rows and checksum against the same snapshot.
    #[arg(long, env = "DBSYNC_VERIFY")]
    pub verify: bool,
    /// Check everything against the target and say what would happen; change nothing.
    #[arg(long, env = "DBSYNC_DRY_RUN")]
    pub dry_run: bool,
    #[command(flatten)]
    pub atomic: AtomicArgs,
    /// Create the tables in scope that the target lacks (with their types, sequences,
    /// functions, keys, indexes, triggers, policies and comments) from the source's catalog,
    /// in one transaction, before the load. No pg_dump needed.
    #[arg(long, env = "DBSYNC_CREATE_SCHEMA")]
    pub create_schema: bool,
    /// Before emptying anything, export the target's tables in scope to this directory or
    /// s3://bucket/prefix (a new location; the ledger records it). Restore them with
    /// `dbsync import --from <it>`. A backup that cannot be written stops the sync first.
    #[arg(long, env = "DBSYNC_BACKUP")]
    pub backup: Option<String>,
    /// The nightly refresh: compare each key range of every table by checksum on both sides
    /// (in one source snapshot) and replace only the ranges that differ, each in one target
    /// transaction; indexes, keys and foreign keys stay in place, only changed tables are
    /// analyzed. A table without a key is compared whole. Needs replica mode on the target.
    #[arg(long, env = "DBSYNC_CHANGED_ONLY")]
    pub changed_only: bool,
    /// With --changed-only: a table with more than this share of its ranges differing is
    /// replaced whole (0 to 1).
    #[arg(long, env = "DBSYNC_CHANGED_MAX_SHARE", default_value_t = dbsync_core::plan::refresh::DEFAULT_MAX_SHARE)]
    pub changed_max_share: f64,
}

pub async fn exec(a: Args, out: Output) -> anyhow::Result<()> {
    let (rules, source) = a.rules.load(ConnSpec::parse(&a.source, "--source")?)?;
    let target = ConnSpec::parse(&a.target, "--target")?;
    let opts = Options {
        rules,
        verify: a.verify,
        dry_run: a.dry_run,
        analyze: a.analyze.analyze,
        atomic: a.atomic.atomic,
        atomic_max_bytes: a.atomic.max_bytes()?,
        create_schema: a.create_schema,
        backup: a.backup.clone(),
        keep_indexes: a.keep_indexes,
        protected: a.protected.patterns.clone(),
        changed_only: changed_only(&a)?,
        ..options(&a.scope, &a.work)?
    };
    let report = match &a.via {
        Some(location) => {
            let via = Via {
                location,
                force: a.force,
            };
            pipeline::via::sync_via(&source, &target, via, &opts, live::new(out.quiet)).await?
        }
        None => pipeline::sync(&source, &target, &opts, live::new(out.quiet)).await?,
    };
    if out.json {
        print_json(&report)?;
    } else if let Some(r) = &report.refresh {
        say_raw!("{}", progress::render_refresh(r, a.dry_run));
        if !a.dry_run {
            say!(
                "{}",
                summary(&report, "refreshed", "range", &source, &target)
            );
        }
    } else if let Some(d) = &report.dry_run {
        say_raw!("{}", progress::render_dry_run(d, &target));
    } else {
        if let Some(b) = &report.backup {
            say!(
                "backed up {} ({} rows) of the target to {}; put them back with: dbsync import --from {} --target ...",
                count(b.tables, "table"), b.rows, b.location, b.location
            );
        }
        if let Some(c) = report.created.as_ref().filter(|c| !c.tables.is_empty()) {
            say!(
                "created {} and {} the target lacked ({}, one transaction)",
                count(c.tables.len(), "table"),
                count(c.other.len(), "other object"),
                count(c.statements, "statement")
            );
        }
        say!("{}", summary(&report, "synced", "part", &source, &target));
        if !out.quiet {
            say_raw!("{}", progress::render_tables(&report.per_table));
        }
    }
    Ok(())
}

/// `--changed-only` with its share, checked.
fn changed_only(a: &Args) -> dbsync_core::Result<Option<f64>> {
    let share = a.changed_max_share;
    if !(0.0..=1.0).contains(&share) {
        return Err(dbsync_core::Error::config(
            "--changed-max-share",
            format!("{share} is not a share from 0 to 1"),
        ));
    }
    Ok(a.changed_only.then_some(share))
}

/// The closing line: `synced 3 tables (12 parts, ...)`; `verb` and `unit` of what was loaded.
fn summary(
    report: &pipeline::LoadReport,
    verb: &str,
    unit: &str,
    source: &ConnSpec,
    target: &ConnSpec,
) -> String {
    format!(
        "{verb} {} ({}, {} rows, {}) and {} from {} to {} in {:.1} s{}",
        count(report.tables, "table"),
        count(report.parts_loaded, unit),
        report.rows,
        human_bytes(report.bytes),
        count(report.sequences, "sequence"),
        source,
        target,
        report.elapsed_ms as f64 / 1000.0,
        if report.verify.is_some() {
            "; verified identical"
        } else {
            ""
        }
    )
}
