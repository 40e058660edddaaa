//! `dbsync sync`: every chunk streamed from the source's COPY into the target's COPY, on
//! worker pairs that read one snapshot, wave by wave, through the ledger; then sequences,
//! foreign keys and (optionally) a full comparison against the same snapshot.

use crate::error::{Result, Role};
use crate::model::catalog::Sequence;
use crate::model::chunk::{Chunk, Plan};
use crate::model::part::CopyFormat;
use crate::pg::conn::ConnSpec;
use crate::pg::copy_out::CopyOutSource;
use crate::pg::{catalog, copy_in};
use crate::pipeline::backup::backup_target;
use crate::pipeline::bootstrap;
use crate::pipeline::finish::{finish_load, JobEnd, TableCountdown};
use crate::pipeline::interrupt::Interrupt;
use crate::pipeline::load::{run_waves, LoadFns, LoadItem};
use crate::pipeline::planning::{chunk_context, open_source, OpenedSource};
use crate::pipeline::progress::{Meter, Metered, Progress};
use crate::pipeline::refresh::{self, Refreshed};
use crate::pipeline::target::{
    check_target, dry_run_report, start_load, sync_spec, Reconnect, TargetJob,
};
use crate::pipeline::undo::guarded;
use crate::pipeline::verify::verify_against_snapshot;
use crate::pipeline::workers::{app_name, open_workers, SyncWorker};
use crate::pipeline::{LoadReport, Options};
use crate::plan::{chunks, load};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Instant;
use tokio_postgres::Client;

/// How one chunk is copied.
#[derive(Clone, Copy)]
struct How {
    /// Binary or text COPY, the table's.
    format: CopyFormat,
    /// The chunk is its table's only part: its COPY may FREEZE.
    sole: bool,
}

/// Streams one chunk from the worker's source session into its target session.
async fn copy_chunk(
    mut w: SyncWorker,
    plan: Arc<Plan>,
    job_id: Arc<String>,
    chunk: Chunk,
    How { format, sole }: How,
    progress: Arc<dyn Progress>,
) -> (SyncWorker, Result<crate::model::part::LoadOutcome>) {
    let table = &plan.catalog.tables[chunk.table];
    let r = async {
        let context = chunk_context(&plan, &chunk);
        let mut src = CopyOutSource::start_as(&w.src, table, &chunk.range, format, context).await?;
        let meter = Meter {
            progress: progress.as_ref(),
            table: &table.name,
            est_bytes: chunks::estimated_bytes(&plan, &chunk),
        };
        let mut src = Metered::new(&mut src, meter);
        let how = copy_in::PartLoad {
            expected: None,
            sole,
        };
        copy_in::load_part(&mut w.tgt, &job_id, &chunk.id(), table, &mut src, how).await
    }
    .await;
    (w, r)
}

/// What a started sync's load phase works with.
struct SyncRun<'a> {
    plan: &'a Arc<Plan>,
    tj: &'a TargetJob,
    again: &'a Arc<Reconnect>,
    opts: &'a Options,
    progress: Arc<dyn Progress>,
    /// The source coordinator, holding the snapshot (sequences are read from it last).
    src_coord: &'a Client,
}

/// Opens the worker pairs, streams every chunk of the plan into the target wave by wave,
/// reads the sequences and finishes the target. Returns the workers (for `--verify`) and the
/// sequences as set.
async fn load_and_finish(
    run: &SyncRun<'_>,
    report: &mut LoadReport,
) -> Result<(Vec<SyncWorker>, Vec<Sequence>)> {
    let (plan, tj, again) = (run.plan, run.tj, run.again);
    let n = run.opts.workers.clamp(1, plan.chunks.len().max(1));
    let workers = open_workers(n, "opening worker sessions", || again.sync_worker()).await?;
    let countdown = TableCountdown::new(&tj.restore, &plan.catalog.tables, |i| {
        plan.chunks.iter().filter(|c| c.table == i).count()
    });
    let items: Vec<LoadItem<Chunk>> = plan
        .chunks
        .iter()
        .map(|c| LoadItem {
            item: c.clone(),
            table: c.table,
            what: chunk_context(plan, c),
            est_bytes: chunks::estimated_bytes(plan, c),
        })
        .collect();
    let analyze = !tj.restore.no_analyze;
    let waves = load::waves(
        &tj.order,
        tj.replica,
        &items,
        |i| i.table,
        |i| load::schedule_weight(i.est_bytes, &plan.catalog.tables[i.table], analyze),
    );
    let (plan2, job, again2) = (plan.clone(), Arc::new(again.job_id.clone()), again.clone());
    let formats = Arc::new(tj.formats.clone());
    // Counted once here, not per chunk: a table whose one chunk is its only part.
    let sole: Arc<Vec<bool>> = Arc::new(
        (0..plan.catalog.tables.len())
            .map(|i| plan.chunks.iter().filter(|c| c.table == i).count() == 1)
            .collect(),
    );
    let shown = run.progress.clone();
    let fns = LoadFns {
        load: move |w, chunk: Chunk| {
            let format = formats.get(chunk.table).copied().unwrap_or_default();
            let alone = sole.get(chunk.table).copied().unwrap_or(false);
            let how = How {
                format,
                sole: alone,
            };
            copy_chunk(w, plan2.clone(), job.clone(), chunk, how, shown.clone())
        },
        reconnect: move || {
            let again = again2.clone();
            async move { again.sync_worker().await }
        },
        interrupt: run.opts.interrupt.clone(),
    };
    let progress = run.progress.clone();
    let workers = run_waves(workers, waves, fns, countdown.clone(), progress, report).await?;
    let mut seqs = plan.catalog.sequences.clone();
    catalog::read_sequence_values(run.src_coord, Role::Source, &mut seqs).await?;
    let (srcs, tgts): (Vec<Client>, Vec<Client>) =
        workers.into_iter().map(|w| (w.src, w.tgt)).unzip();
    let end = JobEnd {
        countdown: &countdown,
        job_id: &again.job_id,
        sequences: &seqs,
    };
    let tgts = finish_load(tj, tgts, again, end, run.progress.clone()).await?;
    report.per_table = countdown.summary();
    let workers = srcs
        .into_iter()
        .zip(tgts)
        .map(|(src, tgt)| SyncWorker { src, tgt })
        .collect();
    Ok((workers, seqs))
}

/// `--changed-only`: the refresh's report (break), or (continue) what a refresh found that
/// hands over to the full sync because most of the data changed; nothing without the flag.
async fn try_refresh(
    source: &ConnSpec,
    target: &ConnSpec,
    opts: &Options,
    progress: &Arc<dyn Progress>,
) -> Result<ControlFlow<LoadReport, Option<crate::plan::refresh::RefreshReport>>> {
    let Some(max_share) = opts.changed_only else {
        return Ok(ControlFlow::Continue(None));
    };
    match refresh::refresh(source, target, opts, max_share, progress.clone()).await? {
        Refreshed::Done(report) => Ok(ControlFlow::Break(*report)),
        Refreshed::FullSync(found) => {
            progress.note("most of the data differs: running a full sync instead");
            Ok(ControlFlow::Continue(Some(found)))
        }
    }
}

/// `dbsync sync`.
pub async fn sync(
    source: &ConnSpec,
    target: &ConnSpec,
    opts: &Options,
    progress: Arc<dyn Progress>,
) -> Result<LoadReport> {
    let started = Instant::now();
    opts.check_combinations()?;
    opts.check_target_allowed(target)?;
    let fell_back = match try_refresh(source, target, opts, &progress).await? {
        ControlFlow::Break(report) => return Ok(report),
        ControlFlow::Continue(found) => found,
    };
    if opts.atomic {
        return crate::pipeline::atomic::sync_atomic(source, target, opts, progress).await;
    }
    let mut report = stream(source, target, opts, progress).await?;
    if fell_back.is_some() {
        // The comparison that decided on the full sync is part of its time.
        report.elapsed_ms = started.elapsed().as_millis() as u64;
    }
    report.refresh = fell_back;
    Ok(report)
}

/// The streaming sync: one snapshot, worker pairs, the target's load through the ledger.
async fn stream(
    source: &ConnSpec,
    target: &ConnSpec,
    opts: &Options,
    progress: Arc<dyn Progress>,
) -> Result<LoadReport> {
    let started = Instant::now();
    let ms = || started.elapsed().as_millis() as u64;
    let OpenedSource {
        job_id,
        app: src_app,
        coord: src_coord,
        snapshot,
        plan,
    } = open_source(source, &opts.scope, opts.rules.as_ref(), opts.sync_sizing()).await?;
    let plan = Arc::new(plan);
    let plan_ms = ms();
    let cat = &plan.catalog;
    let created = match opts.create_schema {
        true => Some(bootstrap::create_schema(&src_coord, target, &plan).await?),
        false => None,
    };
    let spec = sync_spec(&plan, target, &job_id, &src_app, opts, &src_coord);
    let checked = check_target(&spec).await?;
    if opts.dry_run {
        return Ok(dry_run_report(&job_id, cat, &checked, ms()));
    }
    let backup = match &opts.backup {
        Some(to) => Some(backup_target(target, opts, to, &job_id).await?),
        None => None,
    };
    let mut report = LoadReport {
        job_id: job_id.clone(),
        tables: cat.tables.len(),
        created,
        backup,
        ..Default::default()
    };
    let tj = start_load(checked, &spec, false).await?;
    let prepare_ms = ms() - plan_ms;
    crate::pipeline::progress::planned(&*progress, "sync", &plan);
    // Workers get their own application name: the coordinator ("src") holds the snapshot.
    let again = Arc::new(Reconnect {
        source: Some(source.clone()),
        target: target.clone(),
        snapshot: snapshot.clone(),
        read_app: app_name(&job_id, "read"),
        job_id: job_id.clone(),
        replica: tj.replica,
    });
    let run = SyncRun {
        plan: &plan,
        tj: &tj,
        again: &again,
        opts,
        progress: progress.clone(),
        src_coord: &src_coord,
    };
    let work = load_and_finish(&run, &mut report);
    let (workers, seqs) = guarded(&tj, target, &job_id, progress.as_ref(), work).await?;
    report.sequences = seqs.len();
    let loaded_ms = ms() - plan_ms - prepare_ms;
    // Debug: the summary line the command prints says the same to a person.
    tracing::debug!(job = %job_id, tables = report.tables, parts = report.parts_loaded,
        rows = report.rows, bytes = report.bytes, plan_ms, prepare_ms, loaded_ms, "sync loaded");
    if opts.verify {
        progress.note("verifying every table against the snapshot");
        let none = Interrupt::default();
        let v = verify_against_snapshot(workers, plan.clone(), &tj.coord, &seqs, &none);
        report.verify = Some(v.await?);
    }
    report.elapsed_ms = ms();
    Ok(report)
}
