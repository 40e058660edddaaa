//! What each operation is asked to do: a sync's options ([`Options`], every setting) and
//! the part of them an export, an import and a verify take, each its own type, so a
//! function says by its argument which settings it reads. The CLI's commands, the console
//! and the service build them; the settings' names and enums are `model::options`'.

use crate::error::{Error, Result};
use crate::model::chunk::DEFAULT_CHUNK_BYTES;
use crate::model::options::{Analyze, LoadChoices, PartCheck, Spelling};
use crate::model::rules::RulesFile;
use crate::model::scope::Scope;
use crate::pg::conn::ConnSpec;
use crate::pipeline::interrupt::Interrupt;
use crate::plan::chunks::Sizing;
use std::time::Duration;

/// Default `--atomic-max-size`: 8 GiB.
pub const DEFAULT_ATOMIC_MAX_BYTES: u64 = 8 << 30;

/// A sync's options: every setting. The other operations take their own part of them
/// ([`Options::export`], [`Options::import`], [`Options::verify`]); a sync through parts runs
/// all three.
#[derive(Debug, Clone)]
pub struct Options {
    /// Tables in scope.
    pub scope: Scope,
    /// Parallel workers (connections per side); `--jobs` on the command line.
    pub workers: usize,
    /// Target chunk size in bytes on disk.
    pub chunk_bytes: u64,
    /// gzip level for parts (1 fastest .. 9 smallest).
    pub compress_level: u32,
    /// Compare row counts and checksums of every table after a sync.
    pub verify: bool,
    /// Keep the target's secondary indexes during the load (slower; by default they are
    /// dropped and rebuilt after, as pgcopydb does).
    pub keep_indexes: bool,
    /// How each loaded table gets statistics, so the target is ready to query (`--analyze`).
    pub analyze: Analyze,
    /// Run every check against the target and report what would happen; change nothing.
    pub dry_run: bool,
    /// Import: start over even if this export was imported (or half-imported) before.
    pub restart: bool,
    /// Stops the run when fired (the command line fires it on SIGINT and SIGTERM).
    pub interrupt: Interrupt,
    /// Sync in one target transaction ([`atomic`]): the target keeps its old data until
    /// the new data commits.
    pub atomic: bool,
    /// The most a `--atomic` job may hold, on disk at the source.
    pub atomic_max_bytes: u64,
    /// Data rules applied at export (`--rules`): row filters and column rules.
    pub rules: Option<RulesFile>,
    /// Create the tables in scope (and what they need) that the target lacks, from the
    /// source's catalog, before the load (`--create-schema`).
    pub create_schema: bool,
    /// Export the target's tables in scope here before emptying anything (`--backup`).
    pub backup: Option<String>,
    /// Export: hand the snapshot over to a new holder this often ([`relay`]).
    pub snapshot_relay: Option<std::time::Duration>,
    /// Targets no job may load (`DBSYNC_PROTECTED_TARGETS`, as the API's): glob patterns
    /// matched against the target's `host:port/db`.
    pub protected: Vec<String>,
    /// Import: read and check every part before the target changes (`--check-parts`).
    pub check_parts: PartCheck,
    /// Sync: copy only the key ranges that differ (`--changed-only`), replacing a table
    /// whole when more than this share of its ranges differ ([`refresh`]).
    pub changed_only: Option<f64>,
}

impl Options {
    /// Refuses a target the protected patterns name, before anything connects to it.
    pub fn check_target_allowed(&self, target: &ConnSpec) -> Result<()> {
        check_target_allowed(&self.protected, target)
    }

    /// What the export half of this sync takes (a sync through parts, a backup).
    pub fn export(&self) -> ExportOptions {
        ExportOptions {
            scope: self.scope.clone(),
            rules: self.rules.clone(),
            workers: self.workers,
            chunk_bytes: self.chunk_bytes,
            compress_level: self.compress_level,
            snapshot_relay: self.snapshot_relay,
            interrupt: self.interrupt.clone(),
        }
    }

    /// What the load half of this sync takes (a sync through parts, a sync's target).
    pub fn import(&self) -> ImportOptions {
        ImportOptions {
            workers: self.workers,
            keep_indexes: self.keep_indexes,
            analyze: self.analyze,
            dry_run: self.dry_run,
            restart: self.restart,
            atomic: self.atomic,
            atomic_max_bytes: self.atomic_max_bytes,
            check_parts: self.check_parts,
            protected: self.protected.clone(),
            interrupt: self.interrupt.clone(),
        }
    }

    /// What this sync's `--verify` takes.
    pub fn verify(&self) -> VerifyOptions {
        VerifyOptions {
            scope: self.scope.clone(),
            rules: self.rules.clone(),
            workers: self.workers,
            interrupt: self.interrupt.clone(),
        }
    }

    /// Refuses combinations of options a sync cannot honour together, before anything runs.
    pub fn check_combinations(&self) -> Result<()> {
        self.choices(false).check(Spelling::Flag)
    }

    /// The load choices these options make (`via`: through parts), for the one check of
    /// which combine ([`LoadChoices::check`]).
    pub fn choices(&self, via: bool) -> LoadChoices {
        LoadChoices {
            loads_target: true,
            atomic: self.atomic,
            create_schema: self.create_schema,
            backup: self.backup.is_some(),
            dry_run: self.dry_run,
            via,
            changed_only: self.changed_only.is_some(),
        }
    }

    /// How a sync splits its tables: balanced over the workers, by heap pages (one snapshot
    /// reads every chunk).
    pub fn sync_sizing(&self) -> Sizing {
        balanced(self.chunk_bytes, self.workers, true)
    }

    /// How an export splits them ([`ExportOptions::sizing`]).
    pub fn export_sizing(&self) -> Sizing {
        balanced(self.chunk_bytes, self.workers, false)
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            scope: Scope::default(),
            workers: 4,
            chunk_bytes: DEFAULT_CHUNK_BYTES,
            compress_level: 1,
            verify: false,
            keep_indexes: false,
            analyze: Analyze::Copy,
            dry_run: false,
            restart: false,
            interrupt: Interrupt::default(),
            atomic: false,
            atomic_max_bytes: DEFAULT_ATOMIC_MAX_BYTES,
            rules: None,
            create_schema: false,
            backup: None,
            snapshot_relay: None,
            protected: Vec::new(),
            check_parts: PartCheck::Auto,
            changed_only: None,
        }
    }
}

/// Chunks of `chunk_bytes` balanced over `workers`, by heap pages or by key.
fn balanced(chunk_bytes: u64, workers: usize, by_heap: bool) -> Sizing {
    Sizing {
        chunk_bytes,
        workers,
        by_heap,
        exact_keys_up_to: crate::plan::chunks::EXACT_KEYS_UP_TO,
    }
}

/// Refuses a target the `protected` patterns (`DBSYNC_PROTECTED_TARGETS`) name, before
/// anything connects to it.
fn check_target_allowed(protected: &[String], target: &ConnSpec) -> Result<()> {
    let identity = target.identity();
    match protected
        .iter()
        .find(|p| crate::model::scope::glob(p, &identity))
    {
        Some(p) => Err(Error::Protected(format!(
            "target {identity} is protected (DBSYNC_PROTECTED_TARGETS pattern {p}); dbsync never loads it"
        ))),
        None => Ok(()),
    }
}

/// `dbsync export`: the source's tables in scope into parts and a manifest (also the export
/// half of a sync through parts, a backup of the target, a dump of the live source).
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// Tables in scope.
    pub scope: Scope,
    /// Data rules applied at export (`--rules`).
    pub rules: Option<RulesFile>,
    /// Parallel sessions reading the snapshot (`--jobs`).
    pub workers: usize,
    /// Target chunk size in bytes on disk.
    pub chunk_bytes: u64,
    /// gzip level for parts (1 fastest .. 9 smallest).
    pub compress_level: u32,
    /// Hand the snapshot over to a new holder this often ([`crate::pipeline::relay`]).
    pub snapshot_relay: Option<Duration>,
    /// Stops the run when fired.
    pub interrupt: Interrupt,
}

impl ExportOptions {
    /// How an export splits the tables: balanced over the workers, by key (parts that later
    /// imports and budgeted continuations address by key).
    pub fn sizing(&self) -> Sizing {
        balanced(self.chunk_bytes, self.workers, false)
    }
}

impl Default for ExportOptions {
    fn default() -> Self {
        Options::default().export()
    }
}

/// `dbsync import`: an export into the target (also the load half of a sync through parts).
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Parallel load sessions (`--jobs`).
    pub workers: usize,
    /// Keep the target's secondary indexes during the load.
    pub keep_indexes: bool,
    /// How each loaded table gets statistics (`--analyze`).
    pub analyze: Analyze,
    /// Run every check against the target and report what would happen; change nothing.
    pub dry_run: bool,
    /// Start over even if this export was imported (or half-imported) before.
    pub restart: bool,
    /// Load into shadow tables and swap them in at once (`--atomic`).
    pub atomic: bool,
    /// The most an `--atomic` import may hold, on disk at the source.
    pub atomic_max_bytes: u64,
    /// Read and check every part before the target changes (`--check-parts`).
    pub check_parts: PartCheck,
    /// Targets no job may load (`DBSYNC_PROTECTED_TARGETS`).
    pub protected: Vec<String>,
    /// Stops the run when fired.
    pub interrupt: Interrupt,
}

impl ImportOptions {
    /// Refuses a target the protected patterns name, before anything connects to it.
    pub fn check_target_allowed(&self, target: &ConnSpec) -> Result<()> {
        check_target_allowed(&self.protected, target)
    }
}

impl Default for ImportOptions {
    fn default() -> Self {
        Options::default().import()
    }
}

/// `dbsync verify`: the tables in scope compared on both sides (also a sync's `--verify`).
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Tables in scope.
    pub scope: Scope,
    /// Data rules: the source side is compared as the rules export it.
    pub rules: Option<RulesFile>,
    /// Parallel session pairs (`--jobs`).
    pub workers: usize,
    /// Stops the run when fired.
    pub interrupt: Interrupt,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Options::default().verify()
    }
}
