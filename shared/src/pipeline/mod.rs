//! The pipelines: `plan`, `sync` (source COPY streamed straight into target COPY), `export`
//! (chunks into parts plus a manifest), `import` (parts into the target) and `verify`, over
//! one worker pool ([`workers`]), one load loop ([`load`]) and one target lifecycle
//! ([`target`]). They own the order of operations; the SQL is `pg`'s, the decisions
//! `plan`'s, the storage `parts`'. May import `model`, `plan`, `pg`, `parts` and the base
//! modules; never `cloud`.

pub mod atomic;
pub mod backup;
pub mod bootstrap;
pub mod diff_keys;
pub mod dump;
pub mod export;
pub mod finish;
pub mod import;
pub mod interrupt;
pub mod load;
pub mod planning;
pub mod progress;
pub mod refresh;
pub mod relay;
pub mod segment;
pub mod shadow;
pub mod sync;
pub mod tally;
pub mod target;
pub mod undo;
pub mod verify;
pub mod via;
pub mod workers;

pub use export::{assemble_manifest, export, ManifestHeader};
pub use import::{
    begin_import, finalize_import, finalize_import_until, import, import_part, Finished,
    ImportPlan, PartLoad,
};
pub use planning::{build_plan, plan_only};
pub use sync::sync;
pub use verify::verify;

use crate::error::{Error, Result};
use crate::model::chunk::DEFAULT_CHUNK_BYTES;

/// Default `--atomic-max-size`: 8 GiB.
pub const DEFAULT_ATOMIC_MAX_BYTES: u64 = 8 << 30;
pub use crate::model::options::{Analyze, PartCheck, AUTO_CHECK_S3_BYTES};
use crate::model::options::{LoadChoices, Spelling};
use crate::model::part::LoadOutcome;
use crate::model::rules::RulesFile;
use crate::model::scope::Scope;
use crate::model::verify::VerifyReport;
use crate::plan::chunks::Sizing;
use interrupt::Interrupt;
use serde::Serialize;

/// Options shared by the pipelines.
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
    pub fn check_target_allowed(&self, target: &crate::pg::conn::ConnSpec) -> Result<()> {
        let identity = target.identity();
        match self
            .protected
            .iter()
            .find(|p| crate::model::scope::glob(p, &identity))
        {
            Some(p) => Err(Error::Protected(format!(
                "target {identity} is protected (DBSYNC_PROTECTED_TARGETS pattern {p}); dbsync never loads it"
            ))),
            None => Ok(()),
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
        Sizing {
            chunk_bytes: self.chunk_bytes,
            workers: self.workers,
            by_heap: true,
            exact_keys_up_to: crate::plan::chunks::EXACT_KEYS_UP_TO,
        }
    }

    /// How an export splits them: balanced over the workers, by key (parts that later
    /// imports and budgeted continuations address by key).
    pub fn export_sizing(&self) -> Sizing {
        Sizing {
            by_heap: false,
            ..self.sync_sizing()
        }
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

/// What a sync or import did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadReport {
    /// Job id (ledger key).
    pub job_id: String,
    /// Tables loaded.
    pub tables: usize,
    /// Parts loaded now.
    pub parts_loaded: usize,
    /// Parts an earlier attempt had loaded already.
    pub parts_skipped: usize,
    /// Rows loaded now.
    pub rows: u64,
    /// COPY text bytes loaded now.
    pub bytes: u64,
    /// Sequences set.
    pub sequences: usize,
    /// Wall time.
    pub elapsed_ms: u64,
    /// Set when the job had finished before (an import run twice).
    pub already_done: bool,
    /// Chunks or parts retried after a transient failure.
    pub retries: u64,
    /// The comparison, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifyReport>,
    /// What a dry run found the job would do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<DryRun>,
    /// What `--create-schema` created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<crate::model::ddl::Created>,
    /// The backup `--backup` took.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<backup::BackupInfo>,
    /// What a changed-only refresh compared and replaced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh: Option<crate::plan::refresh::RefreshReport>,
    /// Each table's rows, bytes and time, in the plan's order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub per_table: Vec<TableSummary>,
}

/// What one table's load took.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TableSummary {
    /// The table.
    pub table: String,
    /// Rows loaded now.
    pub rows: u64,
    /// COPY bytes loaded now.
    pub bytes: u64,
    /// Parts (chunks) loaded now.
    pub parts: u64,
    /// From its first part's start to its keys and indexes back, in seconds.
    pub seconds: f64,
}

/// What a job would do to the target, found by a dry run (every check passed).
#[derive(Debug, Clone, Default, Serialize)]
pub struct DryRun {
    /// Tables that would be emptied and loaded, in load order.
    pub tables: Vec<String>,
    /// Foreign keys that would be dropped and re-added (cycles, self-references).
    pub foreign_keys: Vec<String>,
    /// Secondary indexes that would be dropped and rebuilt.
    pub indexes: Vec<String>,
    /// Primary-key and unique constraints that would be dropped and added back.
    pub keys: Vec<String>,
    /// NOT VALID check constraints (of tables and domains) that would be set aside and
    /// re-added NOT VALID.
    pub checks: Vec<String>,
    /// Tables whose user triggers would be disabled (when replica mode is not allowed).
    pub triggers_disabled_on: Vec<String>,
    /// Whether loads would run with session_replication_role = replica.
    pub replica_mode: bool,
    /// Tables that would travel as text COPY (the others go binary; see `plan::format`).
    pub text_copy: Vec<String>,
}

impl LoadReport {
    /// Adds the outcomes of a wave (each with the retries it took) to the totals.
    pub fn tally(&mut self, outs: Vec<(LoadOutcome, u64)>) {
        for (o, retries) in outs {
            self.retries += retries;
            match o {
                LoadOutcome::Loaded(s) => {
                    self.parts_loaded += 1;
                    self.rows += s.rows;
                    self.bytes += s.bytes;
                }
                LoadOutcome::AlreadyLoaded => self.parts_skipped += 1,
            }
        }
    }
}
