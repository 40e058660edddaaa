//! The `dbsync` command line: the whole pipeline on one machine, parts on local disk. Parses
//! flags (each with a `DBSYNC_*` twin), calls one core pipeline, prints a summary. All logic
//! lives in `dbsync-core`.

mod live;
mod progress;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use dbsync_core::model::chunk::Plan;
use dbsync_core::model::rules::RulesFile;
use dbsync_core::model::scope::Scope;
use dbsync_core::model::size::{human_bytes, parse_size};
use dbsync_core::parts::{open_store, S3Settings};
use dbsync_core::pg::conn::ConnSpec;
use dbsync_core::pipeline::interrupt::Interrupt;
use dbsync_core::pipeline::{self, Options, PartCheck};
use dbsync_core::plan::cost;
use std::process::ExitCode;

/// `println!` for results on stdout, ending the process quietly (exit 0) when stdout is a
/// pipe its reader closed (`dbsync plan | head`) instead of panicking on the broken pipe.
macro_rules! say {
    ($($arg:tt)*) => {
        write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` likewise.
macro_rules! say_raw {
    ($($arg:tt)*) => {
        write_out(format_args!($($arg)*))
    };
}

/// Writes to stdout; a reader that went away ends the run quietly, any other error is
/// reported on stderr.
fn write_out(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("dbsync: error: writing the result to stdout: {e}");
    }
}

#[derive(Parser)]
#[command(
    name = "dbsync",
    version,
    about = "Byte-identical, chunked, streaming PostgreSQL-to-PostgreSQL sync"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log level (error, warn, info, debug); default info, warn with --quiet.
    #[arg(long, global = true, env = "DBSYNC_LOG")]
    log: Option<String>,
    /// Print the result as JSON on stdout.
    #[arg(long, global = true, env = "DBSYNC_JSON")]
    json: bool,
    /// No progress bar or progress lines, and only warnings and errors in the log.
    #[arg(long, short, global = true, env = "DBSYNC_QUIET")]
    quiet: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Copy the data of every table in scope from source to target (the main job).
    Sync(SyncArgs),
    /// Export the source into gzip parts and a manifest in a directory.
    Export(ExportArgs),
    /// Import an export directory into the target (resumes after a failure).
    Import(ImportArgs),
    /// Check an export alone: its manifest, and every part read whole against it (gzip,
    /// rows, sha256). Connects to no database.
    Check(CheckArgs),
    /// Show tables, FK levels, the chunks a sync makes and sizes, changing nothing.
    Plan(PlanArgs),
    /// Compare row counts, content checksums and sequences of source and target.
    Verify(VerifyArgs),
    /// Write the data of the source (or of an export) as one SQL script that
    /// `psql -v ON_ERROR_STOP=1 -f` restores into a database with the schema.
    Dump(DumpArgs),
}

#[derive(Args, Clone)]
struct ScopeArgs {
    /// Schemas to include (comma-separated globs; default all non-system schemas).
    #[arg(long, env = "DBSYNC_SCHEMAS", value_delimiter = ',')]
    schemas: Vec<String>,
    /// Tables to include: `table` or `schema.table`, comma-separated globs (default all).
    #[arg(long, env = "DBSYNC_TABLES", value_delimiter = ',')]
    tables: Vec<String>,
    /// Tables to leave out (comma-separated globs).
    #[arg(long, env = "DBSYNC_EXCLUDE", value_delimiter = ',')]
    exclude: Vec<String>,
    /// A `--tables` glob that matches no table is not an error (an exact name that matches
    /// none always is).
    #[arg(long, env = "DBSYNC_ALLOW_EMPTY_PATTERNS")]
    allow_empty_patterns: bool,
}

/// `--protected`, for the subcommands that load a target.
#[derive(Args, Clone)]
struct ProtectedArg {
    /// Targets never to load, as the API's deployment setting: comma-separated globs matched
    /// against the target's host:port/db (e.g. 'prod-*:5432/*').
    #[arg(
        long = "protected",
        env = "DBSYNC_PROTECTED_TARGETS",
        value_delimiter = ','
    )]
    patterns: Vec<String>,
}

/// `--jobs`, checked in one place for every subcommand that has it.
#[derive(Args, Clone)]
struct WorkersArg {
    /// Parallel workers (connections on each side).
    #[arg(long = "jobs", short = 'j', env = "DBSYNC_JOBS", default_value_t = 4)]
    jobs: usize,
}

impl WorkersArg {
    fn count(&self) -> dbsync_core::Result<usize> {
        if self.jobs == 0 {
            return Err(dbsync_core::Error::config("--jobs", "must be at least 1"));
        }
        Ok(self.jobs)
    }
}

/// `--analyze copy|on|off`, for the subcommands that load a target.
#[derive(Args, Clone)]
struct AnalyzeArg {
    /// Give each table statistics once it is loaded, so the target is ready to query: `copy`
    /// restores the source's statistics on a PostgreSQL 18+ target (columns masked by a
    /// rule, and filtered tables, are analyzed there instead) and runs ANALYZE on older ones;
    /// `on` always runs ANALYZE; `off` leaves statistics to autovacuum (as pg_restore
    /// --data-only).
    #[arg(long, env = "DBSYNC_ANALYZE", default_value = "copy", value_parser = ["copy", "on", "off"])]
    analyze: String,
}

impl AnalyzeArg {
    fn on(&self) -> bool {
        self.analyze != "off"
    }

    fn copy(&self) -> bool {
        self.analyze == "copy"
    }
}

#[derive(Args, Clone)]
struct WorkArgs {
    #[command(flatten)]
    workers: WorkersArg,
    /// Target size of a chunk, on disk (e.g. 256MB, 64kB).
    #[arg(long, env = "DBSYNC_CHUNK_SIZE", default_value = "256MB")]
    chunk_size: String,
}

#[derive(Args)]
struct SyncArgs {
    /// Source URL (postgresql://user:pass@host:port/db?sslmode=...).
    #[arg(long, env = "DBSYNC_SOURCE")]
    source: String,
    /// Target URL.
    #[arg(long, env = "DBSYNC_TARGET")]
    target: String,
    #[command(flatten)]
    protected: ProtectedArg,
    #[command(flatten)]
    rules: RulesArg,
    #[command(flatten)]
    scope: ScopeArgs,
    #[command(flatten)]
    work: WorkArgs,
    /// Keep the target's secondary indexes during the load instead of dropping them and
    /// rebuilding them after (slower, but the indexes never disappear).
    #[arg(long, env = "DBSYNC_KEEP_INDEXES")]
    keep_indexes: bool,
    #[command(flatten)]
    analyze: AnalyzeArg,
    /// Go through gzip parts in this directory or s3://bucket/prefix instead of streaming
    /// (export, then import).
    #[arg(long, env = "DBSYNC_VIA")]
    via: Option<String>,
    /// With --via: empty its location first when it holds anything.
    #[arg(long, requires = "via")]
    force: bool,
    /// After loading, compare every table's rows and checksum against the same snapshot.
    #[arg(long, env = "DBSYNC_VERIFY")]
    verify: bool,
    /// Check everything against the target and say what would happen; change nothing.
    #[arg(long, env = "DBSYNC_DRY_RUN")]
    dry_run: bool,
    #[command(flatten)]
    atomic: AtomicArgs,
    /// Create the tables in scope that the target lacks (with their types, sequences,
    /// functions, keys, indexes, triggers, policies and comments) from the source's catalog,
    /// in one transaction, before the load. No pg_dump needed.
    #[arg(long, env = "DBSYNC_CREATE_SCHEMA")]
    create_schema: bool,
    /// Before emptying anything, export the target's tables in scope to this directory or
    /// s3://bucket/prefix (a new location; the ledger records it). Restore them with
    /// `dbsync import --from <it>`. A backup that cannot be written stops the sync first.
    #[arg(long, env = "DBSYNC_BACKUP")]
    backup: Option<String>,
}

#[derive(Args, Clone)]
struct RulesArg {
    /// Data rules applied in the source's query, so raw values never reach parts or the
    /// target: a JSON file with per table a `where` filter (children of filtered rows follow
    /// their parents) and per column a rule (null, hash, email, name, phone, {"value": X},
    /// {"truncate": N}). hash, email, name and phone take their key from DBSYNC_RULES_KEY.
    #[arg(long, env = "DBSYNC_RULES")]
    rules: Option<std::path::PathBuf>,
}

impl RulesArg {
    /// The rules file, read and parsed, and the source whose sessions hold the hash key
    /// (DBSYNC_RULES_KEY, read from the environment only: never a flag, so never in `ps`).
    fn load(&self, source: ConnSpec) -> dbsync_core::Result<(Option<RulesFile>, ConnSpec)> {
        let Some(path) = &self.rules else {
            return Ok((None, source));
        };
        let at =
            |m: String| dbsync_core::Error::config("--rules", format!("{}: {m}", path.display()));
        let text = std::fs::read_to_string(path).map_err(|e| at(e.to_string()))?;
        let file = RulesFile::parse(&text).map_err(at)?;
        let key = std::env::var("DBSYNC_RULES_KEY").unwrap_or_default();
        if key.is_empty() {
            return Ok((Some(file), source));
        }
        dbsync_core::model::rules::check_key(key.as_bytes(), "DBSYNC_RULES_KEY")?;
        Ok((Some(file), source.with_rules_key(key.as_bytes())))
    }
}

#[derive(Args)]
struct AtomicArgs {
    /// Readers keep the old data until the new data commits, and a failure leaves the target
    /// exactly as it was: a sync loads in one target transaction (one loader session); an
    /// import loads its parts in parallel into shadow tables (schema dbsync_shadow), then
    /// swaps them in with one transaction. The tables in scope are locked from the emptying
    /// to the commit; the target needs room for old and new rows.
    #[arg(long, env = "DBSYNC_ATOMIC")]
    atomic: bool,
    /// The most an --atomic job may copy, on disk at the source (e.g. 8GB).
    #[arg(long, env = "DBSYNC_ATOMIC_MAX_SIZE", default_value = "8GB")]
    atomic_max_size: String,
}

impl AtomicArgs {
    fn max_bytes(&self) -> dbsync_core::Result<u64> {
        parse_size(&self.atomic_max_size, "--atomic-max-size")
    }
}

#[derive(Args)]
struct ExportArgs {
    /// Source URL.
    #[arg(long, env = "DBSYNC_SOURCE")]
    source: String,
    /// Where the parts and manifest.json go: a new or empty directory or s3://bucket/prefix.
    #[arg(long, env = "DBSYNC_TO")]
    to: String,
    /// Empty --to first when it holds anything (an earlier export, other files).
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    rules: RulesArg,
    #[command(flatten)]
    scope: ScopeArgs,
    #[command(flatten)]
    work: WorkArgs,
    /// gzip level, 0 (stored, no compression) to 9 (smallest); 1 is fastest of those that
    /// compress.
    #[arg(long, env = "DBSYNC_COMPRESS_LEVEL", default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=9))]
    compress_level: u32,
    /// Hand the snapshot over to a new holder session every N seconds (the same snapshot
    /// throughout, as the serverless holders relay it); workers start each chunk in the
    /// current one.
    #[arg(long, env = "DBSYNC_SNAPSHOT_RELAY_SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    snapshot_relay_seconds: Option<u64>,
}

#[derive(Args)]
struct ImportArgs {
    /// The export: a directory or s3://bucket/prefix holding manifest.json.
    #[arg(long, env = "DBSYNC_FROM")]
    from: String,
    /// Target URL.
    #[arg(long, env = "DBSYNC_TARGET")]
    target: String,
    #[command(flatten)]
    protected: ProtectedArg,
    #[command(flatten)]
    workers: WorkersArg,
    /// Keep the target's secondary indexes during the load.
    #[arg(long, env = "DBSYNC_KEEP_INDEXES")]
    keep_indexes: bool,
    #[command(flatten)]
    analyze: AnalyzeArg,
    /// Check everything against the target and say what would happen; change nothing.
    #[arg(long, env = "DBSYNC_DRY_RUN")]
    dry_run: bool,
    /// Start over even if this export was imported (or half-imported) into the target before.
    #[arg(long, env = "DBSYNC_RESTART")]
    restart: bool,
    /// Before the target changes, read every part and check it against the manifest (gzip,
    /// rows, sha256): `auto` always for a directory, for S3 up to 1 GiB of parts.
    #[arg(long, env = "DBSYNC_CHECK_PARTS", default_value = "auto", value_parser = ["auto", "on", "off"])]
    check_parts: String,
    #[command(flatten)]
    atomic: AtomicArgs,
}

#[derive(Args)]
struct CheckArgs {
    /// The export: a directory or s3://bucket/prefix holding manifest.json.
    #[arg(long, env = "DBSYNC_FROM")]
    from: String,
    #[command(flatten)]
    workers: WorkersArg,
}

#[derive(Args)]
struct PlanArgs {
    /// Source URL.
    #[arg(long, env = "DBSYNC_SOURCE")]
    source: String,
    #[command(flatten)]
    rules: RulesArg,
    #[command(flatten)]
    scope: ScopeArgs,
    #[command(flatten)]
    work: WorkArgs,
    /// With --mode: price a job that keeps the target's secondary indexes during the load.
    #[arg(long, env = "DBSYNC_KEEP_INDEXES")]
    keep_indexes: bool,
    /// Also price the plan as a serverless job of this kind: sync, export or dump (rates:
    /// DBSYNC_COST_*). Without it the plan is the command line's alone.
    #[arg(long, env = "DBSYNC_MODE", value_parser = ["sync", "export", "dump"])]
    mode: Option<String>,
    /// Chunk exports and part loads at once in that job (the API's "concurrency").
    #[arg(long, env = "DBSYNC_CONCURRENCY", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    concurrency: u32,
}

#[derive(Args)]
struct DumpArgs {
    /// Source URL (dump the live source, through an export in a scratch directory beside
    /// the output that is removed after).
    #[arg(long, env = "DBSYNC_SOURCE", conflicts_with = "from")]
    source: Option<String>,
    /// Or dump an export: a directory or s3://bucket/prefix holding manifest.json.
    #[arg(long, env = "DBSYNC_FROM")]
    from: Option<String>,
    /// The script: FILE.sql, FILE.sql.gz (gzip), or - for stdout. Written under a temporary
    /// name and renamed when complete, so a failed dump leaves no partial file.
    #[arg(short, long, env = "DBSYNC_OUTPUT")]
    output: String,
    /// Replace --output when the file exists.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    rules: RulesArg,
    #[command(flatten)]
    scope: ScopeArgs,
    #[command(flatten)]
    work: WorkArgs,
}

#[derive(Args)]
struct VerifyArgs {
    /// Source URL.
    #[arg(long, env = "DBSYNC_SOURCE")]
    source: String,
    /// Target URL.
    #[arg(long, env = "DBSYNC_TARGET")]
    target: String,
    #[command(flatten)]
    rules: RulesArg,
    #[command(flatten)]
    scope: ScopeArgs,
    #[command(flatten)]
    workers: WorkersArg,
}

fn scope(scope: &ScopeArgs) -> dbsync_core::Result<Scope> {
    Ok(Scope {
        allow_empty_patterns: scope.allow_empty_patterns,
        ..Scope::from_lists(&scope.schemas, &scope.tables, &scope.exclude)?
    })
}

fn options(scope_args: &ScopeArgs, work: &WorkArgs) -> dbsync_core::Result<Options> {
    Ok(Options {
        scope: scope(scope_args)?,
        workers: work.workers.count()?,
        chunk_bytes: parse_size(&work.chunk_size, "--chunk-size")?,
        interrupt: interrupt(),
        ..Options::default()
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // --quiet keeps the one-line result and errors, not the info log, unless asked for.
    let level = cli
        .log
        .clone()
        .unwrap_or_else(|| if cli.quiet { "warn" } else { "info" }.to_string());
    let filter =
        tracing_subscriber::EnvFilter::try_new(format!("dbsync={level},dbsync_core={level}"))
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dbsync: error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.spawn(watch_signals(interrupt()));
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line a person can act on; the stable name for scripts.
            match e.downcast_ref::<dbsync_core::Error>() {
                Some(core) => {
                    eprintln!("dbsync: error[{}]: {core}", core.name());
                    ExitCode::from(match core {
                        dbsync_core::Error::VerifyMismatch { .. } => 3,
                        dbsync_core::Error::Interrupted(by) => signal_exit_code(by),
                        _ => 1,
                    })
                }
                None => {
                    eprintln!("dbsync: error: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

/// `n` things, in English: "1 table", "2 tables".
fn count(n: usize, thing: &str) -> String {
    progress::count(n as u64, thing)
}

/// The run's interrupt: fired by SIGINT or SIGTERM, carried into every pipeline's options.
fn interrupt() -> Interrupt {
    static INTERRUPT: std::sync::OnceLock<Interrupt> = std::sync::OnceLock::new();
    INTERRUPT.get_or_init(Interrupt::default).clone()
}

/// The shell's convention: 128 + the signal's number.
fn signal_exit_code(by: &str) -> u8 {
    if by.starts_with("SIGTERM") {
        143
    } else {
        130
    }
}

/// The first SIGINT or SIGTERM asks the run to stop and put back what it took away from the
/// target; a second one stops at once (the ledger still lets the next run finish the job).
async fn watch_signals(interrupt: Interrupt) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    loop {
        let by = tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        };
        if interrupt.fired().is_some() {
            eprintln!("dbsync: {by} again: stopping now; the next run finishes what this one left");
            std::process::exit(i32::from(signal_exit_code(by)));
        }
        eprintln!("dbsync: {by}: stopping; a load puts back what it took away, an --atomic one rolls back (again to stop at once)");
        interrupt.fire(by);
    }
}

fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    say!(
        "{}",
        serde_json::to_string_pretty(v).context("serialising the result")?
    );
    Ok(())
}

/// How results are shown.
#[derive(Clone, Copy)]
struct Output {
    json: bool,
    quiet: bool,
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let out = Output {
        json: cli.json,
        quiet: cli.quiet,
    };
    match cli.command {
        Command::Sync(a) => sync(a, out).await,
        Command::Export(a) => export(a, out).await,
        Command::Import(a) => import(a, out).await,
        Command::Check(a) => check(a, out).await,
        Command::Plan(a) => plan(a, out).await,
        Command::Verify(a) => verify(a, out).await,
        Command::Dump(a) => dump(a, out).await,
    }
}

async fn sync(a: SyncArgs, out: Output) -> anyhow::Result<()> {
    let (rules, source) = a.rules.load(ConnSpec::parse(&a.source, "--source")?)?;
    let target = ConnSpec::parse(&a.target, "--target")?;
    let opts = Options {
        rules,
        verify: a.verify,
        dry_run: a.dry_run,
        analyze: a.analyze.on(),
        copy_stats: a.analyze.copy(),
        atomic: a.atomic.atomic,
        atomic_max_bytes: a.atomic.max_bytes()?,
        create_schema: a.create_schema,
        backup: a.backup.clone(),
        keep_indexes: a.keep_indexes,
        protected: a.protected.patterns.clone(),
        ..options(&a.scope, &a.work)?
    };
    // Before the backup, the export or anything else of a --via sequence runs.
    opts.check_target_allowed(&target)?;
    if a.create_schema && a.via.is_some() {
        return Err(dbsync_core::Error::config(
            "--create-schema",
            "cannot be combined with --via (the import has only the manifest); sync directly",
        )
        .into());
    }
    if a.dry_run && a.via.is_some() {
        return Err(
            dbsync_core::Error::config("--dry-run", "cannot be combined with --via").into(),
        );
    }
    if a.atomic.atomic && a.via.is_some() {
        return Err(dbsync_core::Error::config(
            "--atomic",
            "cannot be combined with --via (an atomic sync streams in one transaction)",
        )
        .into());
    }
    let report = if let Some(dir) = &a.via {
        let store = open_store(dir, &S3Settings::default()).await?;
        pipeline::export::fresh_location(store.as_ref(), "--via", a.force).await?;
        let m = pipeline::export(&source, store.clone(), &opts, live::new(out.quiet)).await?;
        tracing::info!(parts = m.tables.iter().map(|t| t.parts.len()).sum::<usize>(), to = %dir, "export written");
        let backup = match &a.backup {
            Some(to) => Some(pipeline::backup::backup_target(&target, &opts, to, &m.job_id).await?),
            None => None,
        };
        let mut r = pipeline::import(&target, store, &opts, live::new(out.quiet)).await?;
        r.backup = backup;
        if opts.verify {
            pipeline::verify(&source, &target, &opts)
                .await?
                .into_result()?;
        }
        r
    } else {
        pipeline::sync(&source, &target, &opts, live::new(out.quiet)).await?
    };
    if out.json {
        print_json(&report)?;
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
        say!(
            "synced {} ({}, {} rows, {}) and {} from {} to {} in {:.1} s{}",
            count(report.tables, "table"),
            count(report.parts_loaded, "part"),
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
        );
        if !out.quiet {
            say_raw!("{}", progress::render_tables(&report.per_table));
        }
    }
    Ok(())
}

async fn export(a: ExportArgs, out: Output) -> anyhow::Result<()> {
    let (rules, source) = a.rules.load(ConnSpec::parse(&a.source, "--source")?)?;
    let opts = Options {
        rules,
        compress_level: a.compress_level,
        snapshot_relay: a.snapshot_relay_seconds.map(std::time::Duration::from_secs),
        ..options(&a.scope, &a.work)?
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

async fn check(a: CheckArgs, out: Output) -> anyhow::Result<()> {
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

async fn import(a: ImportArgs, out: Output) -> anyhow::Result<()> {
    let target = ConnSpec::parse(&a.target, "--target")?;
    let opts = Options {
        workers: a.workers.count()?,
        keep_indexes: a.keep_indexes,
        analyze: a.analyze.on(),
        copy_stats: a.analyze.copy(),
        dry_run: a.dry_run,
        restart: a.restart,
        check_parts: match a.check_parts.as_str() {
            "on" => PartCheck::On,
            "off" => PartCheck::Off,
            _ => PartCheck::Auto,
        },
        atomic: a.atomic.atomic,
        atomic_max_bytes: a.atomic.max_bytes()?,
        interrupt: interrupt(),
        protected: a.protected.patterns.clone(),
        ..Options::default()
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

async fn plan(a: PlanArgs, out: Output) -> anyhow::Result<()> {
    let (rules, source) = a.rules.load(ConnSpec::parse(&a.source, "--source")?)?;
    let opts = Options {
        rules,
        ..options(&a.scope, &a.work)?
    };
    let plan = pipeline::plan_only(&source, &opts, opts.sync_sizing()).await?;
    let cost = match &a.mode {
        Some(mode) => Some(serverless_cost(&a, mode, &plan)?),
        None => None,
    };
    if out.json {
        let mut v = serde_json::to_value(&plan).context("serialising the plan")?;
        if let Some(cost) = &cost {
            v["serverless"] = serde_json::to_value(cost).context("serialising the cost plan")?;
        }
        print_json(&v)
    } else {
        say_raw!(
            "{}",
            progress::render_plan(&plan, opts.chunk_bytes, opts.workers)
        );
        if let Some(cost) = &cost {
            say_raw!("{}", progress::render_cost(cost));
        }
        Ok(())
    }
}

/// What the plan would take and cost as a serverless job.
fn serverless_cost(a: &PlanArgs, mode: &str, plan: &Plan) -> anyhow::Result<cost::CostPlan> {
    let kind = match mode {
        "export" => cost::JobKind::Export,
        "dump" => cost::JobKind::Dump,
        _ => cost::JobKind::Sync,
    };
    let rates = cost::Rates::from_lookup(&|k| std::env::var(k).ok())?;
    let work = cost::Workload {
        keep_indexes: a.keep_indexes,
        ..cost::Workload::from_plan(plan, kind, a.concurrency)
    };
    Ok(cost::estimate(&work, &rates))
}

async fn dump(a: DumpArgs, out: Output) -> anyhow::Result<()> {
    use dbsync_core::pipeline::dump::{dump_export, dump_source, DumpFile};
    if a.source.is_none() == a.from.is_none() {
        return Err(dbsync_core::Error::config(
            "--source",
            "give --source URL (dump the live database) or --from EXPORT (dump an export)",
        )
        .into());
    }
    let mut file = DumpFile::create(&a.output, a.force)?;
    let result = match (&a.source, &a.from) {
        (Some(src), _) => {
            let (rules, source) = a.rules.load(ConnSpec::parse(src, "--source")?)?;
            let opts = Options {
                rules,
                ..options(&a.scope, &a.work)?
            };
            let scratch = file.scratch_dir();
            let progress = live::new(out.quiet || a.output == "-");
            dump_source(&source, &opts, &scratch, progress, &mut file.out()).await
        }
        (None, from) => {
            let from = from.as_deref().unwrap_or_default();
            match open_store(from, &S3Settings::default()).await {
                Ok(store) => dump_export(store.as_ref(), None, &mut file.out()).await,
                Err(e) => Err(e),
            }
        }
    };
    let report = match result {
        Ok(r) => {
            file.commit()?;
            r
        }
        Err(e) => {
            file.abandon();
            return Err(e.into());
        }
    };
    if out.json {
        print_json(&report)?;
    } else if a.output != "-" {
        say!(
            "dumped {} ({} rows, {}) and {} into {}",
            count(report.tables, "table"),
            report.rows,
            human_bytes(report.bytes),
            count(report.sequences, "sequence"),
            a.output
        );
    }
    Ok(())
}

async fn verify(a: VerifyArgs, out: Output) -> anyhow::Result<()> {
    let (rules, source) = a.rules.load(ConnSpec::parse(&a.source, "--source")?)?;
    let target = ConnSpec::parse(&a.target, "--target")?;
    let opts = Options {
        rules,
        scope: scope(&a.scope)?,
        workers: a.workers.count()?,
        interrupt: interrupt(),
        ..Options::default()
    };
    let report = pipeline::verify(&source, &target, &opts).await?;
    if out.json {
        print_json(&report)?;
    }
    let n = report.tables.len();
    report.into_result()?;
    if !out.json {
        say!(
            "verified {} and their sequences: source and target are identical",
            count(n, "table")
        );
    }
    Ok(())
}
