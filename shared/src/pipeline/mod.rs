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
pub mod options;
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
pub use options::{ExportOptions, ImportOptions, Options, VerifyOptions, DEFAULT_ATOMIC_MAX_BYTES};
pub use planning::{build_plan, plan_only};
pub use sync::sync;
pub use verify::verify;

pub use crate::model::options::{Analyze, PartCheck, AUTO_CHECK_S3_BYTES};
use crate::model::part::LoadOutcome;
use crate::model::verify::VerifyReport;
use serde::Serialize;

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
