//! The target side of a load, one file per phase over one spec ([`LoadSpec`]): every check
//! before anything changes (`preflight`: [`check_target`]), the start of the job in one
//! transaction (`start`: [`start_load`]: truncate, drops, ledger), sessions opened again
//! after a transient failure (`reconnect`). Its end is `pipeline::finish`'s, putting it back
//! `pipeline::undo`'s. The SQL is `pg`'s; the decisions are `plan`'s.

use crate::model::catalog::{EnumType, Sequence, ServerInfo, Table};
use crate::model::chunk::{FkOrder, Plan};
use crate::model::manifest::Manifest;
use crate::model::part::CopyFormat;
use crate::model::restore::Restore;
use crate::pg::conn::ConnSpec;
use crate::pipeline::{Analyze, ImportOptions, Options};
use tokio_postgres::Client;

mod preflight;
mod reconnect;
mod start;

pub use preflight::check_target;
pub use reconnect::Reconnect;
pub(crate) use start::start_new;
pub use start::{dry_run_report, start_load};

/// What a load of the target is about.
#[derive(Clone, Copy)]
pub struct LoadSpec<'a> {
    /// The target.
    pub target: &'a ConnSpec,
    /// The source's tables, as planned or as the manifest lists them.
    pub tables: &'a [Table],
    /// The source's sequences.
    pub sequences: &'a [Sequence],
    /// The source server.
    pub source: &'a ServerInfo,
    /// The job (ledger key).
    pub job_id: &'a str,
    /// `sync` or `import`, recorded in the ledger.
    pub kind: &'a str,
    /// The source coordinator's application name, for the same-database check (a streaming
    /// sync; an import has no live source).
    pub source_app: Option<&'a str>,
    /// Keep the target's secondary indexes during the load.
    pub keep_indexes: bool,
    /// How each table gets statistics after its load.
    pub analyze: Analyze,
    /// The enum types the source's columns use.
    pub enums: &'a [EnumType],
    /// A session reading the job's source snapshot (a streaming sync): target-only unique
    /// keys and checks are tested against the source's rows before anything changes.
    pub source_reader: Option<&'a Client>,
}

/// The target side of an import of `m` (`tables`: its [`Manifest::table_list`]).
pub fn import_spec<'a>(
    target: &'a ConnSpec,
    m: &'a Manifest,
    tables: &'a [Table],
    opts: &ImportOptions,
) -> LoadSpec<'a> {
    LoadSpec {
        target,
        tables,
        sequences: &m.sequences,
        source: &m.source,
        job_id: &m.job_id,
        kind: "import",
        source_app: None,
        keep_indexes: opts.keep_indexes,
        analyze: opts.analyze,
        enums: &m.enums,
        source_reader: None,
    }
}

/// The target side of a streaming sync of `plan`: the source coordinator `reader` (named
/// `src_app`) holds the snapshot the pre-flight tests read.
pub fn sync_spec<'a>(
    plan: &'a Plan,
    target: &'a ConnSpec,
    job_id: &'a str,
    src_app: &'a str,
    opts: &Options,
    reader: &'a Client,
) -> LoadSpec<'a> {
    let cat = &plan.catalog;
    LoadSpec {
        target,
        tables: &cat.tables,
        sequences: &cat.sequences,
        source: &cat.server,
        job_id,
        kind: "sync",
        source_app: Some(src_app),
        keep_indexes: opts.keep_indexes,
        analyze: opts.analyze,
        enums: &cat.enums,
        source_reader: Some(reader),
    }
}

/// A target that passed every pre-flight check; nothing in it has changed yet.
pub struct CheckedTarget {
    /// The coordinator session, holding the target lock.
    pub coord: Client,
    /// Load order by the target's own foreign keys, indexed like the source tables.
    pub order: FkOrder,
    /// What the load will take away and put back.
    pub take: Restore,
    /// Loads run with `session_replication_role = replica`.
    pub replica: bool,
    /// The COPY format of each table, indexed like the source tables, for a streaming sync:
    /// binary where the column types allow it on both sides, else text. Empty for an import.
    pub formats: Vec<CopyFormat>,
    /// The target's own description of each table, indexed like the source tables.
    pub target_tables: Vec<Option<Table>>,
}

/// The target side of a load, started.
pub struct TargetJob {
    /// The coordinator session, holding the target lock.
    pub coord: Client,
    /// Load order by the target's own foreign keys.
    pub order: FkOrder,
    /// What the job took away and must put back (its own and adopted from earlier jobs).
    pub restore: Restore,
    /// Loads run in replica mode.
    pub replica: bool,
    /// This job had finished in this target before.
    pub already_done: bool,
    /// See [`CheckedTarget::formats`].
    pub formats: Vec<CopyFormat>,
}
