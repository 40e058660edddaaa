//! `dbsync import`: the parts of a manifest into the target, exactly once each; running it
//! again after a failure resumes where it stopped. Also the same import as three stateless
//! steps for the serverless import Map: [`begin_import`], [`import_part`] per part (any
//! number of separate calls, in any session), [`finalize_import`].

use crate::error::{Error, Result, Role};
use crate::model::manifest::{self, Manifest};
use crate::model::part::LoadOutcome;
use crate::model::restore::Restore;
use crate::parts::gz::GzPartSource;
use crate::parts::{check_contents, check_export, read_manifest, PartStore};
use crate::pg::conn::ConnSpec;
pub use crate::pg::finish::Progress as Finished;
use crate::pg::finish::{Finisher, Work};
use crate::pg::ledger::{self, JobState};
use crate::pg::steps;
use crate::pg::{copy_in, target};
use crate::pipeline::finish::{finish_load, JobEnd, TableCountdown};
use crate::pipeline::load::{run_waves, LoadFns, LoadItem};
use crate::pipeline::progress::{Meter, Metered, Progress};
use crate::pipeline::shadow::{finish_shadow_import, start_shadow};
use crate::pipeline::target::{check_target, import_spec, start_load, Reconnect, TargetJob};
use crate::pipeline::undo::guarded;
use crate::pipeline::workers::{app_name, open_workers};
use crate::pipeline::{DryRun, ImportOptions, LoadReport};
use crate::plan::load;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Instant;
use tokio_postgres::Client;

/// The target side of an import, prepared once and then carried out by any number of later,
/// separate calls (one Lambda invocation per part): everything they need is here or in the
/// target's ledger, nothing in a session.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImportPlan {
    /// The job (the manifest's job id, also the ledger key).
    pub job_id: String,
    /// Part ids in waves: every part of a wave may load in parallel; waves in order.
    pub waves: Vec<Vec<String>>,
    /// Whether part loads may run with `session_replication_role = replica`.
    pub replica: bool,
    /// The import had finished before: nothing to do.
    pub already_done: bool,
    /// An atomic import: parts load into the shadow tables ([`crate::pipeline::shadow`]).
    #[serde(default)]
    pub shadow: bool,
}

/// Every part of a manifest as a load item, waved by the target's foreign keys.
fn part_waves(m: &Manifest, tj: &TargetJob) -> Vec<Vec<LoadItem<(usize, usize)>>> {
    let items: Vec<LoadItem<(usize, usize)>> = m
        .tables
        .iter()
        .enumerate()
        .flat_map(|(ti, t)| {
            let est = part_estimate(t);
            t.parts.iter().enumerate().map(move |(pi, part)| LoadItem {
                item: (ti, pi),
                table: ti,
                what: format!("loading part {} of {}", part.id, t.table.name),
                est_bytes: est,
            })
        })
        .collect();
    // Shadow tables have no keys: every part of an atomic import loads in one wave.
    let one_wave = tj.replica || tj.restore.shadow.is_some();
    load::waves(
        &tj.order,
        one_wave,
        &items,
        |i| i.table,
        |i| {
            let t = &m.tables[i.item.0];
            load::schedule_weight(
                t.parts[i.item.1].stats.bytes,
                &t.table,
                !tj.restore.no_analyze,
            )
        },
    )
}

/// An import after its pre-flight checks.
enum Begun {
    /// The job started (or resumed, or had finished before).
    Started(Box<TargetJob>),
    /// A dry run: what it would do; nothing changed.
    DryRun(DryRun),
}

/// Starts an import: every pre-flight check (the export whole, the target able to take it),
/// then (not for a dry run) the start of the job.
async fn begin(
    target: &ConnSpec,
    m: &Manifest,
    store: &dyn PartStore,
    opts: &ImportOptions,
) -> Result<Begun> {
    check_export(store, m).await?;
    let compressed = m
        .tables
        .iter()
        .flat_map(|t| &t.parts)
        .map(|p| p.compressed_bytes)
        .sum();
    if opts.check_parts.wanted(&store.location(""), compressed) {
        check_contents(store, m, opts.workers).await?;
    }
    let tables = m.table_list();
    let spec = import_spec(target, m, &tables, opts);
    let checked = check_target(&spec).await?;
    if opts.dry_run {
        return Ok(Begun::DryRun(DryRun::new(&checked, &tables)));
    }
    let tj = if opts.atomic {
        start_shadow(checked, m, opts).await?
    } else {
        start_load(checked, &spec, opts.restart).await?
    };
    Ok(Begun::Started(Box::new(tj)))
}

/// What a started import's load phase works with.
struct ImportRun<'a> {
    m: &'a Arc<Manifest>,
    store: Arc<dyn PartStore>,
    tj: &'a TargetJob,
    again: &'a Arc<Reconnect>,
    opts: &'a ImportOptions,
    progress: Arc<dyn Progress>,
}

/// Opens the loaders, loads every part wave by wave and finishes the target.
async fn load_and_finish(
    run: &ImportRun<'_>,
    waves: Vec<Vec<LoadItem<(usize, usize)>>>,
    report: &mut LoadReport,
) -> Result<()> {
    let (m, tj, again) = (run.m, run.tj, run.again);
    let parts: usize = waves.iter().map(Vec::len).sum();
    let n = run.opts.workers.clamp(1, parts.max(1));
    let workers = open_workers(n, "opening loader sessions", || again.loader()).await?;
    let tables = m.table_list();
    // Shadow tables are finished by the swap, not table by table.
    let per_table = if tj.restore.shadow.is_some() {
        Restore {
            no_analyze: true,
            ..Default::default()
        }
    } else {
        tj.restore.clone()
    };
    let countdown = TableCountdown::new(&per_table, &tables, |i| m.tables[i].parts.len());
    let (m2, store, again2) = (m.clone(), run.store.clone(), again.clone());
    let shadow = tj.restore.shadow.is_some();
    let shown = run.progress.clone();
    let fns = LoadFns {
        load: move |mut w: Client, (ti, pi): (usize, usize)| {
            let (m, store, shown) = (m2.clone(), store.clone(), shown.clone());
            async move {
                let part_id = &m.tables[ti].parts[pi].id;
                let r = import_part(
                    &mut w,
                    PartLoad {
                        manifest: &m,
                        part_id,
                        store: store.as_ref(),
                        shadow,
                        progress: &*shown,
                    },
                )
                .await;
                (w, r)
            }
        },
        reconnect: move || {
            let again = again2.clone();
            async move { again.loader().await }
        },
        interrupt: run.opts.interrupt.clone(),
    };
    let progress = run.progress.clone();
    let workers = run_waves(workers, waves, fns, countdown.clone(), progress, report).await?;
    if shadow {
        // The swap finishes it, on a session of its own (see `import`).
        return Ok(());
    }
    let end = JobEnd {
        countdown: &countdown,
        job_id: &m.job_id,
        sequences: &m.sequences,
    };
    finish_load(tj, workers, again, end, run.progress.clone()).await?;
    report.per_table = countdown.summary();
    Ok(())
}

/// `dbsync import`.
pub async fn import(
    target: &ConnSpec,
    store: Arc<dyn PartStore>,
    opts: &ImportOptions,
    progress: Arc<dyn Progress>,
) -> Result<LoadReport> {
    opts.check_target_allowed(target)?;
    let started = Instant::now();
    let m = Arc::new(read_manifest(store.as_ref()).await?);
    let mut report = LoadReport {
        job_id: m.job_id.clone(),
        tables: m.tables.len(),
        ..Default::default()
    };
    let tj = match begin(target, &m, store.as_ref(), opts).await? {
        Begun::Started(tj) => tj,
        Begun::DryRun(d) => {
            report.dry_run = Some(d);
            report.sequences = m.sequences.len();
            return Ok(report);
        }
    };
    report.already_done = tj.already_done;
    if tj.already_done {
        return Ok(report);
    }
    let waves = part_waves(&m, &tj);
    let parts: usize = waves.iter().map(Vec::len).sum();
    let total: u64 = m.tables.iter().map(|t| t.table.bytes.max(0) as u64).sum();
    progress.planned("import", parts, total);
    let again = Arc::new(Reconnect {
        source: None,
        target: target.clone(),
        snapshot: String::new(),
        read_app: String::new(),
        job_id: m.job_id.clone(),
        replica: tj.replica,
    });
    let shadow = tj.restore.shadow.is_some();
    {
        let run = ImportRun {
            m: &m,
            store,
            tj: &tj,
            again: &again,
            opts,
            progress: progress.clone(),
        };
        let work = load_and_finish(&run, waves, &mut report);
        if shadow {
            work.await.map_err(|e| unchanged(progress.as_ref(), e))?;
        } else {
            guarded(&tj, target, &m.job_id, progress.as_ref(), work).await?;
        }
    }
    if shadow {
        // The swap takes the target lock for its own session: this one lets it go.
        drop(tj);
        finish_shadow_import(target, &m)
            .await
            .map_err(|e| unchanged(progress.as_ref(), e))?;
    }
    report.sequences = m.sequences.len();
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// An atomic import that stopped: the target's tables never changed; says so and how to go
/// on.
fn unchanged(progress: &dyn Progress, e: Error) -> Error {
    progress.note(&format!(
        "the atomic import stopped ({}); the target's tables are unchanged. The parts loaded so far wait in schema {}: fix the cause and run the same command to finish, or add --restart to start over",
        e.name(),
        crate::pg::shadow::SCHEMA
    ));
    e
}

/// Step one of a stateless import: every pre-flight check, then the start of the job
/// (truncate, drop cyclic FKs and secondary indexes, disable triggers; all recorded in the
/// ledger). Running it again for the same manifest resumes instead of starting over.
pub async fn begin_import(
    target: &ConnSpec,
    m: &Manifest,
    store: &dyn PartStore,
    opts: &ImportOptions,
) -> Result<ImportPlan> {
    let opts = ImportOptions {
        dry_run: false,
        ..opts.clone()
    };
    let Begun::Started(tj) = begin(target, m, store, &opts).await? else {
        return Err(Error::Internal("a stateless import never dry-runs".into()));
    };
    let waves = part_waves(m, &tj)
        .into_iter()
        .map(|w| {
            w.into_iter()
                .map(|i| m.tables[i.item.0].parts[i.item.1].id.clone())
                .collect()
        })
        .filter(|w: &Vec<String>| !w.is_empty())
        .collect();
    Ok(ImportPlan {
        job_id: m.job_id.clone(),
        waves,
        replica: tj.replica,
        already_done: tj.already_done,
        shadow: tj.restore.shadow.is_some(),
    })
}

/// Opens a session for loading parts of `plan`.
pub async fn connect_part_loader(target: &ConnSpec, plan: &ImportPlan) -> Result<Client> {
    target::connect_loader(target, &app_name(&plan.job_id, "load"), plan.replica).await
}

/// A part's share of its table's on-disk size, the unit progress is estimated in.
fn part_estimate(t: &manifest::ManifestTable) -> u64 {
    t.table.bytes.max(0) as u64 / t.parts.len().max(1) as u64
}

/// One part to load, and how.
pub struct PartLoad<'a> {
    /// The export's manifest.
    pub manifest: &'a Manifest,
    /// The part, as the manifest names it.
    pub part_id: &'a str,
    /// Where its parts are.
    pub store: &'a dyn PartStore,
    /// Into its table's shadow (an atomic import).
    pub shadow: bool,
    /// Told the rows and bytes as they stream.
    pub progress: &'a dyn Progress,
}

/// Step two: loads one part, exactly once however often it is called (retries, duplicate
/// deliveries): the ledger row is written in the part's own transaction. `shadow`: into
/// its table's shadow (an atomic import). Its rows and bytes are reported to `progress` as
/// they stream.
pub async fn import_part(client: &mut Client, load: PartLoad<'_>) -> Result<LoadOutcome> {
    let PartLoad {
        manifest: m,
        part_id,
        store,
        shadow,
        progress,
    } = load;
    let (mt, part) = m
        .tables
        .iter()
        .find_map(|t| t.parts.iter().find(|p| p.id == part_id).map(|p| (t, p)))
        .ok_or_else(|| Error::Manifest {
            path: manifest::KEY.into(),
            message: format!("has no part {part_id}"),
        })?;
    let mut src = GzPartSource::open(store, &part.key).await?;
    let table = if shadow {
        crate::pg::shadow::as_shadow(&mt.table)
    } else {
        mt.table.clone()
    };
    let how = copy_in::PartLoad {
        expected: Some(&part.stats),
        // A shadow table's parts load inside one transaction with the swap's.
        sole: mt.parts.len() == 1 && !shadow,
    };
    let meter = Meter {
        progress,
        table: &mt.table.name,
        est_bytes: part_estimate(mt),
    };
    let mut src = Metered::new(&mut src, meter);
    copy_in::load_part(client, &m.job_id, &part.id, &table, &mut src, how).await
}

/// Step three: rebuilds dropped indexes and ANALYZEs every table, re-adds and validates
/// foreign keys, re-enables triggers, sets sequences, marks the job done. What to restore is
/// read from the ledger. Idempotent: calling it again after it finished does nothing.
pub async fn finalize_import(target: &ConnSpec, m: &Manifest) -> Result<()> {
    finalize_import_until(target, m, None).await.map(|_| ())
}

/// Tables whose finishing steps (index builds, ANALYZE) run at once in a stateless
/// finalize: each is one session of the target's, busy with one table's work.
pub const FINISH_SESSIONS: usize = 4;

/// [`finalize_import`] within a deadline: the finishing steps run (each table's in order,
/// [`FINISH_SESSIONS`] tables at once, then those of the whole job), each recorded done in
/// the ledger, until all are done or `until` passes; then the steps under way go on in the
/// server and [`Finished::Pending`] says how far it got. Calling again resumes (and first
/// waits for those steps), so a finish longer than one Lambda invocation takes several.
pub async fn finalize_import_until(
    target: &ConnSpec,
    m: &Manifest,
    until: Option<tokio::time::Instant>,
) -> Result<Finished> {
    let app = app_name(&m.job_id, "fin");
    let mut client = target.connect(Role::Target, &app).await?;
    let restore = match ledger::job_state(&client, &m.job_id).await? {
        JobState::Done => return Ok(Finished::Done),
        JobState::New => {
            return Err(Error::Ledger(format!(
                "job {} was never prepared in this target",
                m.job_id
            )))
        }
        JobState::Loading(r) => r,
        JobState::Shadow(_) => {
            drop(client);
            finish_shadow_import(target, m).await?;
            return Ok(Finished::Done);
        }
        JobState::Interrupted(_) => {
            return Err(Error::Ledger(format!(
                "job {} stopped before all its parts were loaded and what it took away was put back; prepare the import again to resume it",
                m.job_id
            )))
        }
    };
    ledger::require_all_parts(&client, m).await?;
    // A target whose ledger predates dbsync.finish_steps gets it here.
    ledger::ensure(&mut client).await?;
    let work = Work {
        lanes: m
            .tables
            .iter()
            .map(|t| steps::table_steps(&restore, &t.table.name))
            .collect(),
        last: steps::finalize_steps(&restore, &m.sequences)
            .into_iter()
            .flat_map(|g| g.steps)
            .collect(),
    };
    let finisher = Finisher {
        target,
        client: &client,
        job_id: &m.job_id,
        app: &app,
    };
    let progress = finisher.run_until(&work, FINISH_SESSIONS, until).await?;
    if progress == Finished::Done {
        ledger::mark_done(&client, &m.job_id).await?;
    }
    Ok(progress)
}
