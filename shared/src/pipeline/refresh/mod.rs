//! `dbsync sync --changed-only`: the nightly refresh that copies only what changed. In one
//! source snapshot, every key range of the plan is fingerprinted on both sides (rows and a
//! sum of each row's 64-bit hash, the same expression on both); ranges that match are left
//! alone, each range that differs is replaced in one target transaction (DELETE of the range,
//! COPY of the source's rows, in replica mode), so the target never holds a range half
//! replaced and a run killed at any point is finished by running it again. A table without a
//! key is compared whole; a table where more than `max_share` of the ranges differ, or
//! whose ranges cannot be replaced one by one (a unique value that moved between ranges), is
//! replaced whole in one transaction. Indexes, keys and foreign keys stay in place; only the
//! tables that changed are analyzed; sequences are set as a sync sets them.

mod compare;
pub mod span;

use crate::error::Role;
use crate::error::{Error, Result};
use crate::model::catalog::Sequence;
use crate::model::chunk::{ChunkRange, Plan};
use crate::model::part::CopyFormat;
use crate::pg::conn::ConnSpec;
use crate::pg::copy_out::CopyOutSource;
use crate::pg::{catalog, copy_in, ledger, slice, steps};
use crate::pipeline::planning::{open_source, OpenedSource};
use crate::pipeline::progress::{Meter, Metered, Progress};
use crate::pipeline::target::{check_target, sync_spec, CheckedTarget, LoadSpec, Reconnect};
use crate::pipeline::verify::verify_against_snapshot;
use crate::pipeline::workers::{app_name, open_workers, run_pool, SyncWorker};
use crate::pipeline::{Analyze, LoadReport, Options};
use crate::plan::chunks::Sizing;
use crate::plan::refresh::{
    decide, most_of_the_data, span_sizes, spans, units, RefreshReport, RefreshSetup, Span, Unit,
};
use compare::{Comparing, Hashes};
use std::sync::Arc;
use std::time::Instant;
use tokio_postgres::Client;

/// How a replacement went: done, or refused by a unique value another range still holds.
enum Replaced {
    Done(u64, u64),
    /// The table of the range.
    UniqueClash(usize),
}

async fn replace(
    mut w: SyncWorker,
    plan: Arc<Plan>,
    unit: Unit,
    format: CopyFormat,
    job_id: Arc<str>,
    progress: Arc<dyn Progress>,
) -> (SyncWorker, Result<Replaced>) {
    let r = async {
        let t = &plan.catalog.tables[unit.table];
        let what = unit.what(&plan);
        let cond = slice::range_condition(t.key.as_ref(), &unit.range);
        let mut src =
            CopyOutSource::start_as(&w.src, t, &unit.range, format, format!("copying {what}"))
                .await?;
        let meter = Meter {
            progress: progress.as_ref(),
            table: &t.name,
            est_bytes: 0,
        };
        let mut src = Metered::new(&mut src, meter);
        let key = ledger::PartKey {
            job_id: &job_id,
            part_id: &what,
        };
        match copy_in::replace_rows(&mut w.tgt, t, cond.as_deref(), &mut src, key).await {
            Ok(stats) => {
                progress.chunk_done(&t.name, stats.rows, stats.bytes, 0);
                Ok(Replaced::Done(stats.rows, stats.bytes))
            }
            // Its table goes whole.
            Err(e) if moved_unique(&e) && cond.is_some() => Ok(Replaced::UniqueClash(unit.table)),
            Err(e) => Err(e),
        }
    }
    .await;
    (w, r)
}

/// Whether a replacement failed on a unique value that moved between two ranges: one
/// range's insert meets the other's old row (or both wait on each other, a deadlock).
fn moved_unique(e: &Error) -> bool {
    matches!(e.sqlstate(), Some("23505" | "40P01"))
}

/// What the replacement phase works with.
struct Replacing<'a> {
    plan: &'a Arc<Plan>,
    /// The job, which the ledger records each replaced range under.
    job_id: Arc<str>,
    formats: Arc<Vec<CopyFormat>>,
    opts: &'a Options,
    progress: Arc<dyn Progress>,
}

/// Replaces `todo` on the workers; answers the tables a moved unique value kept from being
/// replaced range by range.
async fn replace_all(
    r: &Replacing<'_>,
    workers: Vec<SyncWorker>,
    todo: Vec<Unit>,
    load: &mut LoadReport,
) -> Result<(Vec<SyncWorker>, Vec<usize>)> {
    let (plan, formats, shown) = (r.plan.clone(), r.formats.clone(), r.progress.clone());
    let job_id = r.job_id.clone();
    let (workers, done) = run_pool(workers, todo, &r.opts.interrupt, move |w, u: Unit| {
        let format = formats.get(u.table).copied().unwrap_or_default();
        replace(w, plan.clone(), u, format, job_id.clone(), shown.clone())
    })
    .await?;
    let mut clashed: Vec<usize> = Vec::new();
    for r in &done {
        match r {
            Replaced::Done(rows, bytes) => {
                load.rows += rows;
                load.bytes += bytes;
                load.parts_loaded += 1;
            }
            Replaced::UniqueClash(t) if !clashed.contains(t) => clashed.push(*t),
            Replaced::UniqueClash(_) => {}
        }
    }
    Ok((workers, clashed))
}

/// Replaces whole, one transaction each, the tables a unique value that moved between
/// ranges kept from being replaced range by range; the report says so.
async fn replace_clashed(
    r: &Replacing<'_>,
    workers: Vec<SyncWorker>,
    clashed: &[usize],
    report: &mut RefreshReport,
    load: &mut LoadReport,
) -> Result<Vec<SyncWorker>> {
    if clashed.is_empty() {
        return Ok(workers);
    }
    let whole = clashed.iter().map(|&table| Unit {
        table,
        range: ChunkRange::Whole,
    });
    for t in report.tables.iter_mut() {
        let name = |i: &usize| r.plan.catalog.tables[*i].name.to_string();
        if clashed.iter().any(|i| name(i) == t.table) {
            t.action = "whole";
        }
    }
    Ok(replace_all(r, workers, whole.collect(), load).await?.0)
}

/// ANALYZE of the tables whose rows changed, shown as a finishing step.
async fn analyze_changed(
    plan: &Plan,
    report: &RefreshReport,
    target: &Client,
    progress: &dyn Progress,
    always: bool,
) -> Result<()> {
    let changed: Vec<_> = report
        .tables
        .iter()
        .filter_map(|t| {
            let found = plan
                .catalog
                .tables
                .iter()
                .find(|x| x.name.to_string() == t.table)?;
            t.needs_analyze(found.est_rows, always).then_some(found)
        })
        .collect();
    for step in changed.iter().map(|t| steps::analyze(&t.name)) {
        progress.activity(&step.what, true);
        step.run(target).await?;
        progress.activity(&step.what, false);
    }
    Ok(())
}

/// What the end of a refresh works on.
pub struct Settle<'a> {
    /// The target coordinator.
    pub target: &'a Client,
    pub job_id: &'a str,
    pub plan: &'a Plan,
    /// What was found and replaced.
    pub report: &'a RefreshReport,
    /// The sequences, with the snapshot's values.
    pub sequences: &'a [Sequence],
    pub analyze: Analyze,
}

/// The end of a refresh on the target: sequences set to the snapshot's values, statistics
/// for the tables the report says changed (as `analyze` says), the job marked done in the
/// ledger.
pub async fn settle(s: Settle<'_>, progress: &dyn Progress) -> Result<()> {
    let set: Vec<_> = s.sequences.iter().map(steps::set_sequence).collect();
    steps::run_steps(s.target, &set).await?;
    if s.analyze.runs() {
        let always = s.analyze == Analyze::On;
        analyze_changed(s.plan, s.report, s.target, progress, always).await?;
    }
    ledger::mark_done(s.target, s.job_id).await
}

/// The sessions and findings the end of a refresh works with.
struct Ends<'a> {
    /// The source coordinator, in the snapshot.
    source: &'a Client,
    /// The target coordinator.
    target: &'a Client,
    report: &'a RefreshReport,
}

/// Sequences to the snapshot's state, statistics for the tables that changed, and
/// `--verify`.
async fn finish(
    r: &Replacing<'_>,
    ends: Ends<'_>,
    workers: Vec<SyncWorker>,
    load: &mut LoadReport,
) -> Result<()> {
    let mut seqs = r.plan.catalog.sequences.clone();
    catalog::read_sequence_values(ends.source, Role::Source, &mut seqs).await?;
    let end = Settle {
        target: ends.target,
        job_id: &r.job_id,
        plan: r.plan,
        report: ends.report,
        sequences: &seqs,
        analyze: r.opts.analyze,
    };
    settle(end, r.progress.as_ref()).await?;
    load.sequences = seqs.len();
    if r.opts.verify {
        r.progress
            .note("verifying every table against the snapshot");
        let v = verify_against_snapshot(
            workers,
            r.plan.clone(),
            ends.target,
            &seqs,
            &r.opts.interrupt,
        );
        load.verify = Some(v.await?);
    }
    Ok(())
}

/// The largest range a refresh compares: small ranges cost a few more queries to compare
/// and let a change replace little.
pub const RANGE_BYTES: u64 = 8 * 1024 * 1024;

/// Up to how many rows a refresh cuts a table's ranges from exact key quantiles: above,
/// from a block sample (ranges of unequal size cost nothing here; a read of the whole key
/// costs a third of comparing `pgbench_accounts`).
const REFRESH_EXACT_KEYS_UP_TO: i64 = 100_000;

/// Ranges by key, of at most `chunk_bytes` and [`RANGE_BYTES`].
pub fn refresh_sizing(chunk_bytes: u64) -> Sizing {
    Sizing {
        chunk_bytes: chunk_bytes.min(RANGE_BYTES),
        workers: 0,
        by_heap: false,
        exact_keys_up_to: REFRESH_EXACT_KEYS_UP_TO,
    }
}

/// The same checks as a sync (columns, types, the same database, the target lock held),
/// and a target where replica mode is not allowed refused (`setting`: how the surface
/// names the refresh).
async fn check_for_refresh(spec: &LoadSpec<'_>, setting: &str) -> Result<CheckedTarget> {
    let checked = check_target(spec).await?;
    if let Some((job, kind)) = ledger::unfinished_holding_back(&checked.coord).await? {
        return Err(Error::config(
            setting,
            format!(
                "the target has an unfinished {kind} (job {job}) that took keys, indexes, \
                 triggers or checks away; finish it first (run it again), or run a full sync"
            ),
        ));
    }
    if !checked.replica {
        return Err(Error::config(
            setting,
            "replaces ranges with foreign keys and triggers in place, which needs \
             session_replication_role = replica on the target (a superuser, or on PostgreSQL 15+ \
             GRANT SET ON PARAMETER session_replication_role); run a full sync instead",
        ));
    }
    Ok(checked)
}

/// Records the refresh in the target's ledger (its replaced ranges go under it), superseding
/// unfinished loads that hold nothing back.
async fn open_ledger_job(coord: &mut Client, plan: &Plan, job_id: &str) -> Result<()> {
    ledger::ensure(coord).await?;
    let names: Vec<_> = plan.catalog.tables.iter().map(|t| t.name.clone()).collect();
    ledger::open_refresh(&*coord, job_id, &names).await
}

/// The service's refresh being set up.
pub struct SpanSetup<'a> {
    /// A source session reading the job's snapshot, and its application name.
    pub reader: &'a Client,
    pub app: &'a str,
    pub target: &'a ConnSpec,
    /// Planned with [`span_sizing`].
    pub plan: &'a Plan,
    pub job_id: &'a str,
    /// The most a span holds, in ranges' bytes.
    pub chunk_bytes: u64,
}

/// The service's refresh, before any span runs: the target checked for a refresh of the
/// plan as [`refresh`] checks it, and what every span's invocation needs of it; the spans.
pub async fn set_up_spans(s: SpanSetup<'_>) -> Result<(RefreshSetup, Vec<(Span, usize, usize)>)> {
    let SpanSetup {
        reader,
        app,
        target,
        plan,
        job_id,
        chunk_bytes,
    } = s;
    let opts = Options::default();
    let spec = sync_spec(plan, target, job_id, app, &opts, reader);
    let mut checked = check_for_refresh(&spec, "mode").await?;
    open_ledger_job(&mut checked.coord, plan, job_id).await?;
    let spans = spans(plan, span_sizes(chunk_bytes, RANGE_BYTES).1);
    let setup = RefreshSetup {
        target_tables: checked.target_tables,
        formats: checked.formats,
        max_share: crate::plan::refresh::DEFAULT_MAX_SHARE,
        spans: spans.iter().map(|(s, ..)| s.clone()).collect(),
    };
    Ok((setup, spans))
}

/// How the service's refresh plans ranges for spans of `chunk_bytes` ([`span_sizes`]).
pub fn span_sizing(chunk_bytes: u64) -> Sizing {
    refresh_sizing(span_sizes(chunk_bytes, RANGE_BYTES).0)
}

/// Both sides of a refresh, opened and checked.
struct Opened {
    job_id: String,
    /// The source coordinator, holding the snapshot.
    src_coord: Client,
    plan: Arc<Plan>,
    /// The target, checked as a sync checks it, its lock held.
    checked: CheckedTarget,
    again: Arc<Reconnect>,
}

/// Opens the source's snapshot and plan (split by key) and checks the target as a sync
/// does; refuses a target where replica mode is not allowed.
async fn open_both(source: &ConnSpec, target: &ConnSpec, opts: &Options) -> Result<Opened> {
    let OpenedSource {
        job_id,
        app,
        coord: src_coord,
        snapshot,
        plan,
    } = open_source(
        source,
        &opts.scope,
        opts.rules.as_ref(),
        refresh_sizing(opts.chunk_bytes),
    )
    .await?;
    let plan = Arc::new(plan);
    let spec = sync_spec(&plan, target, &job_id, &app, opts, &src_coord);
    let checked = check_for_refresh(&spec, "changed_only").await?;
    let again = Arc::new(Reconnect {
        source: Some(source.clone()),
        target: target.clone(),
        snapshot,
        read_app: app_name(&job_id, "read"),
        job_id: job_id.clone(),
        replica: true,
    });
    Ok(Opened {
        job_id,
        src_coord,
        plan,
        checked,
        again,
    })
}

/// How a refresh ended.
pub enum Refreshed {
    /// Done (or, in a dry run, found).
    Done(Box<LoadReport>),
    /// Most of the data differs: the caller runs a full sync, with this report.
    FullSync(RefreshReport),
}

/// `dbsync sync --changed-only`.
pub async fn refresh(
    source: &ConnSpec,
    target: &ConnSpec,
    opts: &Options,
    max_share: f64,
    progress: Arc<dyn Progress>,
) -> Result<Refreshed> {
    let started = Instant::now();
    let Opened {
        job_id,
        src_coord,
        plan,
        mut checked,
        again,
    } = open_both(source, target, opts).await?;
    let units = Arc::new(units(&plan));
    let n = opts.workers.clamp(1, units.len().max(1));
    let workers = open_workers(n, "opening worker sessions", || again.sync_worker()).await?;
    progress.planned("compare", units.len(), plan.catalog.total_bytes());
    let c = Comparing {
        plan: &plan,
        hashes: Arc::new(Hashes::new(&plan, &checked.target_tables)),
        units: &units,
        interrupt: &opts.interrupt,
    };
    let (workers, found, early) = c.compare_all(workers, max_share, !opts.dry_run).await?;
    let (mut report, todo) = decide(&plan, &units, &found, &early, max_share);
    let whole = todo.iter().filter(|u| matches!(u.range, ChunkRange::Whole));
    report.full_sync = most_of_the_data(&plan, whole.map(|u| u.table));
    if report.full_sync && !opts.dry_run {
        // The target lock and the snapshot are let go: the sync takes its own.
        drop((workers, checked, src_coord));
        return Ok(Refreshed::FullSync(report));
    }
    let mut load = LoadReport {
        job_id: job_id.clone(),
        tables: plan.catalog.tables.len(),
        ..Default::default()
    };
    if !report.full_sync {
        // A range that differs in a few rows: only the runs of it that differ are replaced
        // (and a dry run says so).
        let (workers, todo) = c.narrow(workers, todo, &mut report).await?;
        if !opts.dry_run {
            open_ledger_job(&mut checked.coord, &plan, &job_id).await?;
            progress.planned("refresh", todo.len(), 0);
            let r = Replacing {
                plan: &plan,
                job_id: job_id.as_str().into(),
                formats: Arc::new(checked.formats.clone()),
                opts,
                progress: progress.clone(),
            };
            let (workers, clashed) = replace_all(&r, workers, todo, &mut load).await?;
            let workers = replace_clashed(&r, workers, &clashed, &mut report, &mut load).await?;
            let ends = Ends {
                source: &src_coord,
                target: &checked.coord,
                report: &report,
            };
            finish(&r, ends, workers, &mut load).await?;
        }
    }
    load.refresh = Some(report);
    load.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(Refreshed::Done(Box::new(load)))
}
