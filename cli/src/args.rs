//! The flag groups several commands share (scope, workers, chunk size, rules, analyze,
//! atomic, protected targets), each declared once and turned into the core's types here.

use crate::signals::interrupt;
use clap::Args;
use dbsync_core::model::options::Analyze;
use dbsync_core::model::rules::RulesFile;
use dbsync_core::model::scope::Scope;
use dbsync_core::model::size::parse_size;
use dbsync_core::pg::conn::ConnSpec;
use dbsync_core::pipeline::{ExportOptions, Options};

#[derive(Args, Clone)]
pub struct ScopeArgs {
    /// Schemas to include (comma-separated globs; default all non-system schemas).
    #[arg(long, env = "DBSYNC_SCHEMAS", value_delimiter = ',')]
    pub schemas: Vec<String>,
    /// Tables to include: `table` or `schema.table`, comma-separated globs (default all).
    #[arg(long, env = "DBSYNC_TABLES", value_delimiter = ',')]
    pub tables: Vec<String>,
    /// Tables to leave out (comma-separated globs).
    #[arg(long, env = "DBSYNC_EXCLUDE", value_delimiter = ',')]
    pub exclude: Vec<String>,
    /// A `--tables` glob that matches no table is not an error (an exact name that matches
    /// none always is).
    #[arg(long, env = "DBSYNC_ALLOW_EMPTY_PATTERNS")]
    pub allow_empty_patterns: bool,
}

/// `--protected`, for the subcommands that load a target.
#[derive(Args, Clone)]
pub struct ProtectedArg {
    /// Targets never to load, as the API's deployment setting: comma-separated globs matched
    /// against the target's host:port/db (e.g. 'prod-*:5432/*').
    #[arg(
        long = "protected",
        env = "DBSYNC_PROTECTED_TARGETS",
        value_delimiter = ','
    )]
    pub patterns: Vec<String>,
}

/// `--jobs`, checked in one place for every subcommand that has it.
#[derive(Args, Clone)]
pub struct WorkersArg {
    /// Parallel workers (connections on each side).
    #[arg(long = "jobs", short = 'j', env = "DBSYNC_JOBS", default_value_t = 4)]
    pub jobs: usize,
}

impl WorkersArg {
    pub fn count(&self) -> dbsync_core::Result<usize> {
        if self.jobs == 0 {
            return Err(dbsync_core::Error::config("--jobs", "must be at least 1"));
        }
        Ok(self.jobs)
    }
}

/// `--analyze copy|on|off`, for the subcommands that load a target.
#[derive(Args, Clone)]
pub struct AnalyzeArg {
    /// How each table gets statistics once it is loaded, so the target is ready to query.
    #[arg(long, env = "DBSYNC_ANALYZE", value_enum, default_value_t = Analyze::Copy)]
    pub analyze: Analyze,
}

#[derive(Args, Clone)]
pub struct WorkArgs {
    #[command(flatten)]
    pub workers: WorkersArg,
    /// Target size of a chunk, on disk (e.g. 256MB, 64kB).
    #[arg(long, env = "DBSYNC_CHUNK_SIZE", default_value = "256MB")]
    pub chunk_size: String,
}

#[derive(Args, Clone)]
pub struct RulesArg {
    /// Data rules applied in the source's query, so raw values never reach parts or the
    /// target: a JSON file with per table a `where` filter (children of filtered rows follow
    /// their parents) and per column a rule (null, hash, email, name, phone, {"value": X},
    /// {"truncate": N}). hash, email, name and phone take their key from DBSYNC_RULES_KEY.
    #[arg(long, env = "DBSYNC_RULES")]
    pub rules: Option<std::path::PathBuf>,
}

impl RulesArg {
    /// The rules file, read and parsed, and the source whose sessions hold the hash key
    /// (DBSYNC_RULES_KEY, read from the environment only: never a flag, so never in `ps`).
    pub fn load(&self, source: ConnSpec) -> dbsync_core::Result<(Option<RulesFile>, ConnSpec)> {
        let Some(path) = &self.rules else {
            return Ok((None, source));
        };
        let at =
            |m: String| dbsync_core::Error::config("--rules", format!("{}: {m}", path.display()));
        let text = std::fs::read_to_string(path).map_err(|e| at(e.to_string()))?;
        let file = RulesFile::parse(&text).map_err(at)?;
        Ok((Some(file), with_rules_key(source)?))
    }
}

/// `source` with the rules' hash key of DBSYNC_RULES_KEY (read from the environment only:
/// never a flag, so never in `ps`), when it is set.
pub fn with_rules_key(source: ConnSpec) -> dbsync_core::Result<ConnSpec> {
    let key = std::env::var("DBSYNC_RULES_KEY").unwrap_or_default();
    if key.is_empty() {
        return Ok(source);
    }
    dbsync_core::model::rules::check_key(key.as_bytes(), "DBSYNC_RULES_KEY")?;
    Ok(source.with_rules_key(key.as_bytes()))
}

#[derive(Args)]
pub struct AtomicArgs {
    /// Readers keep the old data until the new data commits, and a failure leaves the target
    /// exactly as it was: a sync loads in one target transaction (one loader session); an
    /// import loads its parts in parallel into shadow tables (schema dbsync_shadow), then
    /// swaps them in with one transaction. The tables in scope are locked from the emptying
    /// to the commit; the target needs room for old and new rows.
    #[arg(long, env = "DBSYNC_ATOMIC")]
    pub atomic: bool,
    /// The most an --atomic job may copy, on disk at the source (e.g. 8GB).
    #[arg(long, env = "DBSYNC_ATOMIC_MAX_SIZE", default_value = "8GB")]
    pub atomic_max_size: String,
}

impl AtomicArgs {
    pub fn max_bytes(&self) -> dbsync_core::Result<u64> {
        parse_size(&self.atomic_max_size, "--atomic-max-size")
    }
}

pub fn scope(scope: &ScopeArgs) -> dbsync_core::Result<Scope> {
    Ok(Scope {
        allow_empty_patterns: scope.allow_empty_patterns,
        ..Scope::from_lists(&scope.schemas, &scope.tables, &scope.exclude)?
    })
}

pub fn options(scope_args: &ScopeArgs, work: &WorkArgs) -> dbsync_core::Result<Options> {
    Ok(Options {
        scope: scope(scope_args)?,
        workers: work.workers.count()?,
        chunk_bytes: parse_size(&work.chunk_size, "--chunk-size")?,
        interrupt: interrupt(),
        ..Options::default()
    })
}

/// An export's options from the shared flags ([`options`], its export part).
pub fn export_options(
    scope_args: &ScopeArgs,
    work: &WorkArgs,
) -> dbsync_core::Result<ExportOptions> {
    Ok(options(scope_args, work)?.export())
}
