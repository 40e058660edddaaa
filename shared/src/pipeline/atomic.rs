//! `dbsync sync --atomic`: the whole load in one target transaction, so readers keep the old
//! data until the new data commits, and a failure anywhere leaves the target exactly as it
//! was. The emptying, every chunk (each in a savepoint, recorded in the ledger), the index
//! rebuilds, key validation, ANALYZE and the sequences run on the coordinator session in that
//! transaction; the chunks are read from one source session in the job's snapshot. One
//! target session means no parallel load: it is meant for jobs up to a size
//! (`--atomic-max-size`). Costs, plainly: the `TRUNCATE` takes an ACCESS EXCLUSIVE lock on
//! every table in scope until the commit (readers wait rather than see a half-loaded table),
//! and the old rows' files stay until the commit, so the target needs room for both.

use crate::error::{Error, Result, Role};
use crate::model::catalog::Sequence;
use crate::model::chunk::{Chunk, Plan};
use crate::model::ident::QualName;
use crate::model::restore::Restore;
use crate::model::size::human_bytes;
use crate::pg::conn::ConnSpec;
use crate::pg::copy_out::CopyOutSource;
use crate::pg::steps::{self, Step};
use crate::pg::{catalog, copy_in, ledger, snapshot, target};
use crate::pipeline::interrupt::Interrupt;
use crate::pipeline::planning::{chunk_context, open_source, OpenedSource};
use crate::pipeline::progress::{Meter, Metered, Progress};
use crate::pipeline::target::{
    check_target, dry_run_report, start_new, sync_spec, CheckedTarget, LoadSpec,
};
use crate::pipeline::workers::app_name;
use crate::pipeline::{LoadReport, Options};
use crate::plan::{chunks, load};
use std::sync::Arc;
use std::time::Instant;
use tokio_postgres::{Client, Transaction};

/// Refuses an atomic job larger than the setting allows (`total`: the tables in scope on
/// disk at the source).
pub(crate) fn check_size(total: u64, max_bytes: u64) -> Result<()> {
    if total > max_bytes {
        return Err(Error::config(
            "--atomic-max-size",
            format!(
                "the tables in scope take {} on the source, more than {} for one transaction (the target needs room for the old and the new rows until the commit); raise --atomic-max-size (DBSYNC_ATOMIC_MAX_SIZE) or run without --atomic",
                human_bytes(total),
                human_bytes(max_bytes)
            ),
        ));
    }
    Ok(())
}

/// `dbsync sync --atomic`.
pub async fn sync_atomic(
    source: &ConnSpec,
    target: &ConnSpec,
    opts: &Options,
    progress: Arc<dyn Progress>,
) -> Result<LoadReport> {
    let started = Instant::now();
    let OpenedSource {
        job_id,
        app: src_app,
        coord: src_coord,
        snapshot,
        plan,
    } = open_source(source, &opts.scope, opts.rules.as_ref(), opts.sync_sizing()).await?;
    check_size(plan.catalog.total_bytes(), opts.atomic_max_bytes)?;
    let cat = &plan.catalog;
    let spec = sync_spec(&plan, target, &job_id, &src_app, opts, &src_coord);
    let checked = check_target(&spec).await?;
    let elapsed = || started.elapsed().as_millis() as u64;
    if opts.dry_run {
        return Ok(dry_run_report(&job_id, cat, &checked, elapsed()));
    }
    let mut report = LoadReport {
        job_id: job_id.clone(),
        tables: cat.tables.len(),
        sequences: cat.sequences.len(),
        ..Default::default()
    };
    crate::pipeline::progress::planned(&*progress, "sync", &plan);
    let reader = snapshot::join_snapshot(source, &snapshot, &app_name(&job_id, "read")).await?;
    let mut seqs = cat.sequences.clone();
    catalog::read_sequence_values(&src_coord, Role::Source, &mut seqs).await?;
    let job = AtomicJob {
        plan: &plan,
        spec: &spec,
        reader: &reader,
        progress: progress.as_ref(),
        sequences: &seqs,
    };
    load_in_one_transaction(checked, &job, &opts.interrupt, &mut report).await?;
    report.elapsed_ms = elapsed();
    Ok(report)
}

/// What the one transaction loads.
struct AtomicJob<'a> {
    plan: &'a Plan,
    spec: &'a LoadSpec<'a>,
    reader: &'a Client,
    progress: &'a dyn Progress,
    sequences: &'a [Sequence],
}

/// Empties, loads and finishes the target in one transaction; commits only when everything
/// is in. Any error drops the transaction: PostgreSQL rolls all of it back. So does an
/// interrupt (SIGINT, SIGTERM) at any point before the commit: the statement under way is
/// abandoned with its session's transaction, and the target is as it was.
async fn load_in_one_transaction(
    checked: CheckedTarget,
    job: &AtomicJob<'_>,
    interrupt: &Interrupt,
    report: &mut LoadReport,
) -> Result<()> {
    let CheckedTarget {
        mut coord,
        order,
        take,
        replica,
        ..
    } = checked;
    ledger::ensure(&mut coord).await?;
    let mut tx = target::begin_atomic(&mut coord).await?;
    let loaded = tokio::select! {
        r = load_and_finish(&mut tx, take, &order, replica, job, report) => r,
        by = interrupt.wait() => Err(rolled_back(&by)),
    };
    loaded?;
    // The last chance to stop without a trace; from the COMMIT on, the load is in.
    if let Some(by) = interrupt.fired() {
        return Err(rolled_back(&by));
    }
    ledger::mark_done(&tx, job.spec.job_id).await?;
    target::commit_atomic(tx).await
}

/// The error of an atomic load stopped by `by`: the transaction was dropped, never committed.
fn rolled_back(by: &str) -> Error {
    Error::Interrupted(format!(
        "{by}; the transaction was rolled back and the target is as it was"
    ))
}

/// Inside the one transaction: empties, loads every chunk, runs every finishing step.
async fn load_and_finish(
    tx: &mut Transaction<'_>,
    take: Restore,
    order: &crate::model::chunk::FkOrder,
    replica: bool,
    job: &AtomicJob<'_>,
    report: &mut LoadReport,
) -> Result<()> {
    let (plan, spec) = (job.plan, job.spec);
    let names: Vec<QualName> = spec.tables.iter().map(|t| t.name.clone()).collect();
    let restore = start_new(tx, spec, take).await?;
    let items: Vec<Chunk> = plan.chunks.clone();
    let waves = load::waves(
        order,
        replica,
        &items,
        |c| c.table,
        |c| chunks::estimated_bytes(plan, c),
    );
    for chunk in waves.into_iter().flatten() {
        let table = &plan.catalog.tables[chunk.table];
        let context = chunk_context(plan, &chunk);
        let mut src = CopyOutSource::start(job.reader, table, &chunk.range, context).await?;
        let est = chunks::estimated_bytes(plan, &chunk);
        let meter = Meter {
            progress: job.progress,
            table: &table.name,
            est_bytes: est,
        };
        let mut src = Metered::new(&mut src, meter);
        let outcome = copy_in::load_part(
            tx,
            spec.job_id,
            &chunk.id(),
            table,
            &mut src,
            Default::default(),
        )
        .await?;
        drop(src);
        if let crate::model::part::LoadOutcome::Loaded(s) = &outcome {
            job.progress.chunk_done(&table.name, s.rows, s.bytes, est);
        }
        report.tally(vec![(outcome, 0)]);
    }
    run_finish_steps(tx, &restore, &names, job.sequences).await
}

/// The end of every atomic load, inside its one transaction: each table's finish (keys,
/// index rebuilds, ANALYZE), then the job's (foreign keys re-added and validated, triggers,
/// sequences), the job marked done, the commit. Sequences go last, just before the commit,
/// as `finalize_steps` orders them: `setval` is not rolled back.
pub(crate) async fn finish_in_transaction(
    tx: Transaction<'_>,
    restore: &Restore,
    names: &[QualName],
    sequences: &[Sequence],
    job_id: &str,
) -> Result<()> {
    run_finish_steps(&tx, restore, names, sequences).await?;
    ledger::mark_done(&tx, job_id).await?;
    target::commit_atomic(tx).await
}

/// The finishing steps of [`finish_in_transaction`], without the commit.
async fn run_finish_steps(
    tx: &Transaction<'_>,
    restore: &Restore,
    names: &[QualName],
    sequences: &[Sequence],
) -> Result<()> {
    let mut all: Vec<Step> = names
        .iter()
        .flat_map(|n| steps::table_steps(restore, n))
        .collect();
    all.extend(
        steps::finalize_steps(restore, sequences)
            .into_iter()
            .flat_map(|g| g.steps),
    );
    for step in &all {
        step.run(tx).await?;
    }
    Ok(())
}
