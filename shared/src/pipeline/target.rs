//! The target side of a load up to its data: every check before anything changes
//! ([`check_target`]) and the start of the job in one transaction ([`start_load`]: truncate,
//! drops, ledger); its end is `pipeline::finish`'s. The SQL is `pg`'s; the decisions are
//! `plan`'s.

use crate::error::{Error, Result, Role};
use crate::model::catalog::{Catalog, EnumType, Sequence, ServerInfo, Table};
use crate::model::chunk::{FkOrder, Plan};
use crate::model::ident::QualName;
use crate::model::manifest::Manifest;
use crate::model::part::CopyFormat;
use crate::model::restore::{Restore, StatsCopy};
use crate::model::scope::Scope;
use crate::pg::conn::ConnSpec;
use crate::pg::ledger::{self, JobState};
use crate::pg::start::{self, Start};
use crate::pg::{catalog, ledger_owner, preflight, snapshot, stats, target};
use crate::pipeline::progress::Progress;
use crate::pipeline::undo;
use crate::pipeline::workers::{app_name, SyncWorker};
use crate::pipeline::{Analyze, DryRun, ImportOptions, LoadReport, Options};
use crate::plan::{compat, format, load, order};
use std::future::Future;
use tokio_postgres::{Client, GenericClient};

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

/// Pre-flight: refuses, changing nothing, when the target is the source, is locked, lacks
/// tables, columns or sequences, cannot take the types, may not be loaded by this role, or is
/// referenced from outside the scope. Takes the target lock for the coordinator session.
pub async fn check_target(spec: &LoadSpec<'_>) -> Result<CheckedTarget> {
    let coord = spec
        .target
        .connect(Role::Target, &app_name(spec.job_id, "ctl"))
        .await?;
    if let Some(app) = spec.source_app {
        if target::is_same_database(&coord, app).await? {
            return Err(Error::SameDatabase(spec.target.redacted()));
        }
    }
    ledger::lock_target(&coord, &spec.target.redacted()).await?;
    let tcat = catalog::load(&coord, Role::Target, &Scope::default()).await?;
    let source = compat::SourceSide {
        server: spec.source,
        tables: spec.tables,
        sequences: spec.sequences,
        enums: spec.enums,
    };
    let mut problems = compat::check(&source, &tcat, compat::Purpose::Load);
    if let Some(reader) = spec.source_reader {
        problems.extend(source_breaks_target_rules(reader, spec.tables, &tcat).await?);
    }
    if let Some(p) = ledger_owner::usable(&coord).await? {
        problems.push(p);
    }
    if !problems.is_empty() {
        return Err(Error::Incompatible { problems });
    }
    let ttables: Vec<Table> = spec
        .tables
        .iter()
        .filter_map(|t| tcat.table(&t.name).cloned())
        .collect();
    compat::outside_references(&load::fk_units(&ttables), &tcat.foreign_keys)?;
    let order = order::fk_order(&ttables, &tcat.foreign_keys);
    // Triggers must not fire during the load: replica mode where we may set it (it also skips
    // FK checks, which the snapshot makes redundant), else disable user triggers per table.
    let replica = target::try_replica_mode(&coord).await?;
    let mut take = load::what_to_take(
        &ttables,
        &tcat.not_valid_checks,
        &order,
        load::LoadMode {
            replica,
            keep_indexes: spec.keep_indexes,
            analyze: spec.analyze.runs(),
        },
    );
    take.stats = stats_copies(spec, &tcat);
    if replica {
        let keys = load::unenforced_keys(&ttables, &tcat.foreign_keys, &take.fks);
        // A key to a table outside the scope is checked by no one in replica mode: it is
        // re-added and validated after the load, so a target whose parent rows differ from
        // the source's fails loudly instead of keeping a key that lies.
        take.fks.extend(keys.outward);
        take.unenforced = keys.inside;
    }
    Ok(CheckedTarget {
        coord,
        order,
        take,
        replica,
        formats: formats(spec, &tcat),
        target_tables: spec
            .tables
            .iter()
            .map(|t| tcat.table(&t.name).cloned())
            .collect(),
    })
}

/// The COPY format of each table. Parts are text (an import lists no formats); only a
/// streaming sync may go binary.
fn formats(spec: &LoadSpec<'_>, tcat: &Catalog) -> Vec<CopyFormat> {
    match spec.source_app {
        Some(_) => spec
            .tables
            .iter()
            .map(|t| match tcat.table(&t.name) {
                Some(tt) => format::copy_format(t, tt, spec.source, &tcat.server, spec.enums),
                None => CopyFormat::Text,
            })
            .collect(),
        None => Vec::new(),
    }
}

/// Starts `spec`'s job afresh in `client` (a session, or the --atomic transaction): the
/// tables in scope emptied, `take` taken away, the job recorded.
pub(crate) async fn start_new(
    client: &mut (impl GenericClient + Send + Sync),
    spec: &LoadSpec<'_>,
    take: Restore,
) -> Result<Restore> {
    let names: Vec<QualName> = spec.tables.iter().map(|t| t.name.clone()).collect();
    let roots = load::partition_roots(spec.tables);
    let job = Start {
        job_id: spec.job_id,
        kind: spec.kind,
        tables: &names,
        roots: &roots,
        take,
    };
    start::start_job(client, job).await
}

/// The tables whose statistics are restored from the source instead of analyzed: on a
/// PostgreSQL 18+ target, with `--analyze copy`, where `plan::stats` finds columns to copy.
fn stats_copies(spec: &LoadSpec<'_>, tcat: &Catalog) -> Vec<StatsCopy> {
    if !spec.analyze.copies() || tcat.server.version_num < stats::RESTORE_VERSION {
        return Vec::new();
    }
    spec.tables
        .iter()
        .filter_map(|s| crate::plan::stats::copy_plan(s, tcat.table(&s.name)?))
        .collect()
}

/// Target-only unique keys and checks that the source's rows break, each naming table,
/// constraint and a sample row. A test the source cannot run (an expression calling a
/// function only the target has) is left to the load itself.
async fn source_breaks_target_rules(
    reader: &Client,
    tables: &[Table],
    tcat: &Catalog,
) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for t in tables {
        let Some(tt) = tcat.table(&t.name) else {
            continue;
        };
        for rule in compat::target_only(t, tt) {
            let found = match rule {
                compat::TargetOnly::Unique(k) => preflight::first_duplicate(reader, t, k).await?,
                compat::TargetOnly::Check(c) => preflight::first_breaking_row(reader, t, c).await?,
            };
            if let Some(sample) = found {
                problems.push(describe_violation(t, rule, &sample));
            }
        }
    }
    Ok(problems)
}

fn describe_violation(t: &Table, rule: compat::TargetOnly<'_>, sample: &str) -> String {
    match rule {
        compat::TargetOnly::Unique(k) => format!(
            "the target's unique index {} on {} ({}) is not on the source, and the source has duplicates, e.g. {sample}; drop it on the target, or remove the duplicates on the source",
            k.name,
            t.name,
            k.columns.join(", ")
        ),
        compat::TargetOnly::Check(c) => format!(
            "the target's check constraint {} on {} ({}) is not on the source, and source rows break it, e.g. {sample}; drop it on the target (or add it NOT VALID), or fix the rows on the source",
            c.name, t.name, c.expression
        ),
    }
}

/// Starts the job on a checked target: the first change to it. Creates the ledger if needed;
/// with `restart`, sets an earlier run of the same job aside; then resumes a job the ledger
/// knows, or empties the tables, drops what [`CheckedTarget::take`] lists and records it.
pub async fn start_load(
    checked: CheckedTarget,
    spec: &LoadSpec<'_>,
    restart: bool,
) -> Result<TargetJob> {
    let CheckedTarget {
        mut coord,
        order,
        take,
        replica,
        formats,
        ..
    } = checked;
    ledger::ensure(&mut coord).await?;
    if restart {
        ledger::set_aside(&coord, spec.job_id).await?;
    }
    let (restore, already_done) = match ledger::job_state(&coord, spec.job_id).await? {
        JobState::Done => (Restore::default(), true),
        JobState::Loading(restore) => (restore, false),
        JobState::Shadow(_) => {
            return Err(Error::config(
                "--atomic",
                format!(
                    "job {} was started in this target with --atomic; run it again with --atomic to finish it, or add --restart to start it over",
                    spec.job_id
                ),
            ))
        }
        JobState::Interrupted(pending) => (
            start::retake(&mut coord, spec.job_id, pending, take).await?,
            false,
        ),
        JobState::New => {
            let restore = start_new(&mut coord, spec, take).await?;
            (restore, false)
        }
    };
    Ok(TargetJob {
        coord,
        order,
        restore,
        replica,
        already_done,
        formats,
    })
}

/// The report of a dry run of a sync: what every check found the job would do.
pub fn dry_run_report(
    job_id: &str,
    catalog: &Catalog,
    checked: &CheckedTarget,
    elapsed_ms: u64,
) -> LoadReport {
    LoadReport {
        job_id: job_id.to_string(),
        tables: catalog.tables.len(),
        sequences: catalog.sequences.len(),
        dry_run: Some(DryRun::new(checked, &catalog.tables)),
        elapsed_ms,
        ..Default::default()
    }
}

impl DryRun {
    /// What a checked target would go through, tables in load order.
    pub fn new(checked: &CheckedTarget, tables: &[Table]) -> Self {
        let mut order: Vec<(usize, String)> = tables
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let level = checked.order.levels.get(i).copied().unwrap_or(0);
                (level, t.name.to_string())
            })
            .collect();
        order.sort();
        let take = &checked.take;
        DryRun {
            tables: order.into_iter().map(|(_, n)| n).collect(),
            foreign_keys: take
                .fks
                .iter()
                .map(|f| format!("{} on {}", f.name, f.table))
                .collect(),
            indexes: take
                .indexes
                .iter()
                .map(|i| format!("{} on {}", i.name, i.table))
                .collect(),
            keys: take
                .keys
                .iter()
                .map(|k| format!("{} on {}", k.name, k.table))
                .collect(),
            checks: take
                .checks
                .iter()
                .map(|c| format!("{} on {}", c.name, c.on))
                .collect(),
            triggers_disabled_on: take.triggers.iter().map(|t| t.to_string()).collect(),
            replica_mode: checked.replica,
            text_copy: tables
                .iter()
                .zip(&checked.formats)
                .filter(|(_, f)| **f == CopyFormat::Text)
                .map(|(t, _)| t.name.to_string())
                .collect(),
        }
    }
}

/// Runs the load phase `work` of a started job. When it fails or is interrupted, what the job
/// took away is put back at once (see [`put_back`]) before the error is returned, so the
/// target never keeps dropped indexes or keys that claim what is not true.
pub async fn guarded<T>(
    tj: &TargetJob,
    target: &ConnSpec,
    job_id: &str,
    progress: &dyn Progress,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    match work.await {
        Ok(v) => Ok(v),
        Err(e) => {
            put_back(tj, target, job_id, progress, &e).await;
            Err(e)
        }
    }
}

/// Puts back what a stopped job took away (indexes, keys `NOT VALID`, checks, triggers),
/// makes the keys the load did not enforce `NOT VALID`, and records the job `interrupted`
/// with what a later finish must still do. Best effort: what cannot be put back (the target
/// is gone) stays recorded in the ledger, which the next job adopts.
async fn put_back(
    tj: &TargetJob,
    target: &ConnSpec,
    job_id: &str,
    progress: &dyn Progress,
    cause: &Error,
) {
    let fresh;
    let client = if tj.coord.is_closed() {
        fresh = target
            .connect(Role::Target, &app_name(job_id, "undo"))
            .await;
        match &fresh {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(job = job_id, error = %e, "cannot reach the target to put back what the job took away; the ledger still lists it and the next run adopts it");
                return;
            }
        }
    } else {
        &tj.coord
    };
    let failed = undo::put_back_on(client, &tj.restore, job_id).await;
    // A damaged part stops every run at the same place: say what helps instead.
    let damaged = matches!(
        cause,
        Error::PartCorrupt { .. } | Error::ExportBroken { .. }
    ) || matches!(cause, Error::Io { message, .. } if message.contains("not a valid gzip part"));
    let next = if damaged {
        "The export is damaged, so running the same command again would stop at the same part: `dbsync check --from EXPORT` names every damaged part; export again and import that, or import this one with --restart once it is whole"
    } else {
        "Run the same command again: a sync starts over, an import resumes"
    };
    progress.note(&format!(
        "the load stopped ({}); the tables in scope are partly loaded. What the job took away was put back (foreign keys it could not vouch for are NOT VALID until a run finishes). {next}",
        cause.name()
    ));
    if !failed.is_empty() {
        tracing::warn!(job = job_id, failed = ?failed, "some of what the job took away could not be put back; dbsync.jobs records it and the next run adopts it");
    }
}

/// Everything a worker needs to open its sessions again after a transient failure.
pub struct Reconnect {
    /// The source, for a streaming sync (None for an import).
    pub source: Option<ConnSpec>,
    /// The target.
    pub target: ConnSpec,
    /// The snapshot readers join.
    pub snapshot: String,
    /// Readers' application name.
    pub read_app: String,
    /// The job.
    pub job_id: String,
    /// Load sessions run in replica mode.
    pub replica: bool,
}

impl Reconnect {
    /// A fresh load session.
    pub async fn loader(&self) -> Result<Client> {
        target::connect_loader(&self.target, &app_name(&self.job_id, "load"), self.replica).await
    }

    /// A fresh worker pair.
    pub async fn sync_worker(&self) -> Result<SyncWorker> {
        Ok(SyncWorker {
            src: self.reader().await?,
            tgt: self.loader().await?,
        })
    }

    /// A fresh source reader in the job's snapshot.
    pub async fn reader(&self) -> Result<Client> {
        let source = self
            .source
            .as_ref()
            .ok_or_else(|| Error::Internal("a reader was asked of an import".into()))?;
        snapshot::join_snapshot(source, &self.snapshot, &self.read_app).await
    }
}
