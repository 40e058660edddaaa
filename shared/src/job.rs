//! The pipelines: `plan`, `sync` (source COPY streamed straight into target COPY), `export`
//! (chunks into parts plus a manifest), `import` (parts into the target) and `verify`. They
//! own the order of operations - snapshot, pre-flight checks, one-statement truncate, level
//! by level loading, finalize - and the worker pool; the steps themselves live in the
//! modules they are named after.

use crate::catalog::{self, Catalog, Sequence, ServerInfo, Table};
use crate::compat;
use crate::conn::ConnSpec;
use crate::copy_in::{self, LoadOutcome};
use crate::copy_out::{self, CopyOutSource, GzPartSource, PartStats};
use crate::error::{Error, Result, Role};
use crate::ident::{quote_literal, QualName};
use crate::ledger::{self, JobState, Restore};
use crate::manifest::{self, Manifest, ManifestTable, PartEntry};
use crate::plan::{self, Chunk, FkOrder, Plan};
use crate::progress::Progress;
use crate::scope::Scope;
use crate::store::PartStore;
use crate::verify::{self, TableComparison, VerifyReport};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio_postgres::Client;

/// Options shared by the pipelines.
#[derive(Debug, Clone)]
pub struct Options {
    /// Tables in scope.
    pub scope: Scope,
    /// Parallel workers (connections per side).
    pub jobs: usize,
    /// Target chunk size in bytes on disk.
    pub chunk_bytes: u64,
    /// gzip level for parts (1 fastest .. 9 smallest).
    pub compress_level: u32,
    /// Compare row counts and checksums of every table after a sync.
    pub verify: bool,
    /// Keep the target's secondary indexes during the load (slower; by default they are
    /// dropped and rebuilt after, as pgcopydb does).
    pub keep_indexes: bool,
    /// Run every check against the target and report what would happen; change nothing.
    pub dry_run: bool,
    /// Import: start over even if this export was imported (or half-imported) before.
    pub restart: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            scope: Scope::default(),
            jobs: 4,
            chunk_bytes: plan::DEFAULT_CHUNK_BYTES,
            compress_level: 1,
            verify: false,
            keep_indexes: false,
            dry_run: false,
            restart: false,
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
    /// Tables whose user triggers would be disabled (when replica mode is not allowed).
    pub triggers_disabled_on: Vec<String>,
    /// Whether loads would run with session_replication_role = replica.
    pub replica_mode: bool,
}

impl DryRun {
    fn new(tj: &TargetJob, tables: &[Table]) -> Self {
        let mut order: Vec<(usize, String)> = tables
            .iter()
            .enumerate()
            .map(|(i, t)| {
                (
                    tj.order.levels.get(i).copied().unwrap_or(0),
                    t.name.to_string(),
                )
            })
            .collect();
        order.sort();
        DryRun {
            tables: order.into_iter().map(|(_, n)| n).collect(),
            foreign_keys: tj
                .restore
                .fks
                .iter()
                .map(|f| format!("{} on {}", f.name, f.table))
                .collect(),
            indexes: tj
                .restore
                .indexes
                .iter()
                .map(|i| format!("{} on {}", i.name, i.table))
                .collect(),
            triggers_disabled_on: tj.restore.triggers.iter().map(|t| t.to_string()).collect(),
            replica_mode: tj.replica,
        }
    }
}

fn app_name(job_id: &str, what: &str) -> String {
    format!("dbsync-{}-{what}", &job_id[..8.min(job_id.len())])
}

/// Attempts per chunk or part before its error stops the job.
pub const ATTEMPTS: u32 = 4;

/// Full-jitter exponential backoff: a random wait in `[0, min(8 s, 250 ms * 2^attempt)]`.
/// Workers that failed together (a database restart, a network blip) then retry spread out
/// instead of in lockstep.
fn backoff(attempt: u32) -> std::time::Duration {
    let ceiling = 8_000u64.min(250u64 << attempt.min(5));
    let random = (uuid::Uuid::new_v4().as_u128() % u128::from(ceiling + 1)) as u64;
    std::time::Duration::from_millis(random)
}

/// Everything a worker needs to open its sessions again after a transient failure.
struct Reconnect {
    source: Option<ConnSpec>,
    target: ConnSpec,
    snapshot: String,
    read_app: String,
    job_id: String,
    replica: bool,
}

impl Reconnect {
    async fn loader(&self) -> Result<Client> {
        connect_loader(&self.target, &self.job_id, self.replica).await
    }

    async fn sync_worker(&self) -> Result<SyncWorker> {
        let source = self
            .source
            .as_ref()
            .ok_or_else(|| Error::config("source", "missing"))?;
        Ok(SyncWorker {
            src: join_snapshot(source, &self.snapshot, &self.read_app).await?,
            tgt: self.loader().await?,
        })
    }
}

/// Runs `f` until it succeeds, fails for good, or uses up [`ATTEMPTS`] (opening sessions).
async fn retrying<T, F, Fut>(what: &str, f: F) -> Result<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut attempt = 0;
    loop {
        match f().await {
            Err(e) if e.is_retryable() && attempt + 1 < ATTEMPTS => {
                attempt += 1;
                tracing::warn!(work = what, attempt, error = %e, "transient failure, retrying");
                tokio::time::sleep(backoff(attempt)).await;
            }
            other => return other,
        }
    }
}

/// Runs one unit of work on a worker, retrying transient failures on fresh sessions (the
/// ledger makes a retried part exactly-once). Returns the worker, the result and the retries.
async fn with_retries<W, O, F, Fut, R, RFut>(
    mut w: W,
    what: &str,
    work: F,
    reconnect: R,
) -> (W, Result<O>, u64)
where
    F: Fn(W) -> Fut,
    Fut: Future<Output = (W, Result<O>)>,
    R: Fn() -> RFut,
    RFut: Future<Output = Result<W>>,
{
    let mut attempt = 0;
    loop {
        let (back, r) = work(w).await;
        w = back;
        match r {
            Err(e) if e.is_retryable() && attempt + 1 < ATTEMPTS => {
                attempt += 1;
                tracing::warn!(work = what, attempt, error = %e, "transient failure, retrying on fresh sessions");
                tokio::time::sleep(backoff(attempt)).await;
                match reconnect().await {
                    Ok(fresh) => w = fresh,
                    Err(e) if e.is_retryable() => {}
                    Err(e) => return (w, Err(e), u64::from(attempt)),
                }
            }
            other => return (w, other, u64::from(attempt)),
        }
    }
}

fn new_job_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Opens the coordinator session (public for the serverless snapshot holder): a repeatable-read, read-only transaction whose snapshot
/// every worker imports, so all chunks see one consistent state of the source.
pub async fn open_snapshot(source: &ConnSpec, app: &str) -> Result<(Client, String)> {
    let c = source.connect(Role::Source, app).await?;
    c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await
        .map_err(|e| Error::pg(Role::Source, "starting the snapshot transaction", e))?;
    let snap: String = c
        .query_one("SELECT pg_export_snapshot()", &[])
        .await
        .map_err(|e| Error::pg(Role::Source, "exporting the snapshot", e))?
        .get(0);
    Ok((c, snap))
}

/// Opens a source session reading `snapshot` (exported by [`open_snapshot`], still held).
pub async fn join_snapshot(source: &ConnSpec, snapshot: &str, app: &str) -> Result<Client> {
    let c = source.connect(Role::Source, app).await?;
    c.batch_execute(&format!(
        "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT {}",
        quote_literal(snapshot)
    ))
    .await
    .map_err(|e| match e.code().map(|c| c.code()) {
        // invalid_parameter_value: "invalid snapshot identifier" - its holder let go.
        Some("22023") => Error::SnapshotReleased(snapshot.to_string()),
        _ => Error::pg(Role::Source, "importing the snapshot", e),
    })?;
    Ok(c)
}

fn scope_text(scope: &Scope) -> String {
    format!(
        "schemas [{}], tables [{}], exclude [{}]",
        scope.schemas.join(","),
        scope.tables.join(","),
        scope.exclude.join(",")
    )
}

/// Reads the catalog and splits every table into chunks. Runs inside the caller's
/// transaction, so a plan made in a snapshot describes that snapshot.
pub async fn build_plan(client: &Client, scope: &Scope, chunk_bytes: u64) -> Result<Plan> {
    let catalog = catalog::load(client, Role::Source, scope).await?;
    if catalog.tables.is_empty() {
        return Err(Error::EmptyScope(scope_text(scope)));
    }
    let order = plan::fk_order(&catalog.tables, &catalog.foreign_keys);
    let mut chunks = Vec::new();
    for (i, t) in catalog.tables.iter().enumerate() {
        let n = plan::chunk_count(t.bytes, chunk_bytes);
        let ranges = if n <= 1 {
            vec![plan::ChunkRange::Whole]
        } else if let Some(key) = &t.key {
            let bounds = catalog::sample_key_bounds(client, Role::Source, t, key, n - 1).await?;
            plan::key_ranges(&bounds)
        } else {
            plan::ctid_ranges(t.pages.max(0) as u64, n)
        };
        chunks.extend(ranges.into_iter().enumerate().map(|(seq, range)| Chunk {
            table: i,
            seq,
            range,
        }));
    }
    Ok(Plan {
        catalog,
        order,
        chunks,
        chunk_bytes,
    })
}

/// `dbsync plan`: the plan of a source, without changing anything.
pub async fn plan_only(source: &ConnSpec, opts: &Options) -> Result<Plan> {
    let (c, _snap) = open_snapshot(source, "dbsync-plan").await?;
    build_plan(&c, &opts.scope, opts.chunk_bytes).await
}

/// Runs `f` over `items` with one task per worker; stops taking new items after the first
/// error and returns it. Workers are handed back for the next round.
async fn run_pool<W, I, O, F, Fut>(workers: Vec<W>, items: Vec<I>, f: F) -> Result<(Vec<W>, Vec<O>)>
where
    W: Send + 'static,
    I: Send + 'static,
    O: Send + 'static,
    F: Fn(W, I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = (W, Result<O>)> + Send + 'static,
{
    let queue = Arc::new(Mutex::new(VecDeque::from(items)));
    let failed = Arc::new(AtomicBool::new(false));
    let f = Arc::new(f);
    let mut set = tokio::task::JoinSet::new();
    for w in workers {
        let (queue, failed, f) = (queue.clone(), failed.clone(), f.clone());
        set.spawn(async move {
            let mut w = w;
            let mut outs = Vec::new();
            loop {
                if failed.load(Ordering::Relaxed) {
                    break;
                }
                let item = queue.lock().ok().and_then(|mut q| q.pop_front());
                let Some(item) = item else { break };
                let (back, r) = f(w, item).await;
                w = back;
                match r {
                    Ok(o) => outs.push(o),
                    Err(e) => {
                        failed.store(true, Ordering::Relaxed);
                        return (w, outs, Some(e));
                    }
                }
            }
            (w, outs, None)
        });
    }
    let mut workers = Vec::new();
    let mut outs = Vec::new();
    let mut first_err = None;
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((w, o, e)) => {
                workers.push(w);
                outs.extend(o);
                if first_err.is_none() {
                    first_err = e;
                }
            }
            Err(e) => {
                first_err.get_or_insert(Error::Io {
                    path: "worker".into(),
                    message: format!("a worker task failed: {e}"),
                    retryable: false,
                });
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok((workers, outs)),
    }
}

/// The target side of a load, prepared and started.
struct TargetJob {
    coord: Client,
    /// Load order by the target's own foreign keys, indexed like the source tables.
    order: FkOrder,
    /// What the job took away and must put back.
    restore: Restore,
    replica: bool,
    already_done: bool,
}

/// Pre-flight checks, then the start of the job: refuses (changing nothing) when the target
/// is the source, is locked, lacks tables/columns/sequences, or is referenced from outside
/// the scope; otherwise empties the tables in one statement and drops cyclic foreign keys.
#[allow(clippy::too_many_arguments)]
async fn prepare_target(
    target: &ConnSpec,
    tables: &[Table],
    sequences: &[Sequence],
    source: &ServerInfo,
    job_id: &str,
    kind: &str,
    source_app: Option<&str>,
    keep_indexes: bool,
    dry_run: bool,
    restart: bool,
) -> Result<TargetJob> {
    let mut coord = target
        .connect(Role::Target, &app_name(job_id, "ctl"))
        .await?;
    if let Some(app) = source_app {
        let same: bool = coord
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_stat_activity
                   WHERE application_name = $1 AND datname = current_database())",
                &[&app],
            )
            .await
            .map_err(|e| Error::pg(Role::Target, "comparing source and target", e))?
            .get(0);
        if same {
            return Err(Error::SameDatabase(target.redacted()));
        }
    }
    ledger::lock_target(&coord, &target.redacted()).await?;
    let tcat = catalog::load(&coord, Role::Target, &Scope::default()).await?;
    let mut problems = compat::check(source, tables, sequences, &tcat, compat::Purpose::Load);
    if let Some(p) = ledger::creatable(&coord).await? {
        problems.push(p);
    }
    if !problems.is_empty() {
        return Err(Error::Incompatible { problems });
    }
    let ttables: Vec<Table> = tables
        .iter()
        .filter_map(|t| tcat.table(&t.name).cloned())
        .collect();
    let units: BTreeSet<QualName> = ttables
        .iter()
        .map(|t| t.partition_of.clone().unwrap_or_else(|| t.name.clone()))
        .collect();
    compat::outside_references(&units, &tcat.foreign_keys)?;
    let order = plan::fk_order(&ttables, &tcat.foreign_keys);

    // Triggers must not fire during the load: replica mode where we may set it (it also skips
    // FK checks, which the snapshot makes redundant), else disable user triggers per table.
    let replica = match coord
        .batch_execute("SET session_replication_role = replica")
        .await
    {
        Ok(()) => true,
        Err(e) if e.code().map(|c| c.code()) == Some("42501") => false,
        Err(e) => {
            return Err(Error::pg(
                Role::Target,
                "setting session_replication_role",
                e,
            ))
        }
    };
    let take = Restore {
        fks: order.cyclic.clone(),
        indexes: if keep_indexes {
            Vec::new()
        } else {
            ttables
                .iter()
                .flat_map(|t| t.secondary_indexes.clone())
                .collect()
        },
        triggers: if replica {
            Vec::new()
        } else {
            ttables
                .iter()
                .filter(|t| !t.user_triggers.is_empty())
                .map(|t| t.name.clone())
                .collect()
        },
    };
    if !dry_run {
        // Every check has passed: the first change to the target.
        ledger::ensure(&mut coord).await?;
    }
    if dry_run {
        // Everything is checked; say what the job would take away, change nothing.
        return Ok(TargetJob {
            coord,
            order,
            restore: take,
            replica,
            already_done: false,
        });
    }
    if restart {
        ledger::set_aside(&coord, job_id).await?;
    }
    let (restore, already_done) = match ledger::job_state(&coord, job_id).await? {
        JobState::Done => (Restore::default(), true),
        JobState::Loading(restore) => (restore, false),
        JobState::New => {
            let names: Vec<QualName> = tables.iter().map(|t| t.name.clone()).collect();
            (
                ledger::start_job(&mut coord, job_id, kind, &names, take).await?,
                false,
            )
        }
    };
    Ok(TargetJob {
        coord,
        order,
        restore,
        replica,
        already_done,
    })
}

async fn connect_loader(target: &ConnSpec, job_id: &str, replica: bool) -> Result<Client> {
    let c = target
        .connect(Role::Target, &app_name(job_id, "load"))
        .await?;
    if replica {
        c.batch_execute("SET session_replication_role = replica")
            .await
            .map_err(|e| Error::pg(Role::Target, "setting session_replication_role", e))?;
    }
    Ok(c)
}

/// Counts down the parts of each table; the worker that finishes a table's last part runs
/// its [`ledger::table_steps`] (index rebuilds, ANALYZE) right away, while other tables load.
struct TableCountdown {
    remaining: Vec<AtomicUsize>,
    restore: Restore,
    names: Vec<QualName>,
}

impl TableCountdown {
    fn new(restore: &Restore, tables: &[Table], parts_of: impl Fn(usize) -> usize) -> Arc<Self> {
        Arc::new(TableCountdown {
            remaining: (0..tables.len())
                .map(|i| AtomicUsize::new(parts_of(i)))
                .collect(),
            restore: restore.clone(),
            names: tables.iter().map(|t| t.name.clone()).collect(),
        })
    }

    /// Records one part of `table` as in; finishes the table if it was the last.
    async fn part_done(&self, client: &Client, table: usize) -> Result<()> {
        if self.remaining[table].fetch_sub(1, Ordering::AcqRel) == 1 {
            run_steps(
                client,
                ledger::table_steps(&self.restore, &self.names[table]),
            )
            .await?;
        }
        Ok(())
    }

    /// Tables not finished during the load (none, unless a manifest lists a table without
    /// parts).
    fn unfinished(&self) -> Vec<ledger::Step> {
        self.remaining
            .iter()
            .enumerate()
            .filter(|(_, r)| r.load(Ordering::Acquire) > 0)
            .flat_map(|(i, _)| ledger::table_steps(&self.restore, &self.names[i]))
            .collect()
    }
}

async fn run_steps(client: &Client, steps: Vec<ledger::Step>) -> Result<()> {
    for (ctx, sql) in steps {
        client
            .batch_execute(&sql)
            .await
            .map_err(|e| Error::pg(Role::Target, ctx, e))?;
    }
    Ok(())
}

/// The end of a job: tables left unfinished, then foreign keys (re-added serially, validated
/// in parallel on the loaders), triggers and sequences; then the job is marked done.
async fn finish_target(
    tj: &TargetJob,
    loaders: Vec<Client>,
    again: &Arc<Reconnect>,
    countdown: &TableCountdown,
    job_id: &str,
    sequences: &[Sequence],
) -> Result<Vec<Client>> {
    let mut groups = vec![ledger::StepGroup {
        parallel: true,
        steps: countdown.unfinished(),
    }];
    groups.extend(ledger::finalize_steps(&tj.restore, sequences));
    let mut loaders = loaders;
    for group in groups {
        if !group.parallel {
            run_steps(&tj.coord, group.steps).await?;
            continue;
        }
        // Every parallel step is idempotent (IF NOT EXISTS, VALIDATE, ANALYZE): safe to retry.
        let again = again.clone();
        let (back, _) = run_pool(
            loaders,
            group.steps,
            move |c: Client, step: ledger::Step| {
                let again = again.clone();
                async move {
                    let work = |c: Client| {
                        let step = step.clone();
                        async move {
                            let r = run_steps(&c, vec![step]).await;
                            (c, r)
                        }
                    };
                    let (c, r, _) = with_retries(c, &step.0, work, || again.loader()).await;
                    (c, r)
                }
            },
        )
        .await?;
        loaders = back;
    }
    ledger::mark_done(&tj.coord, job_id).await?;
    Ok(loaders)
}

/// Groups work items into waves that run one after the other. With foreign keys enforced
/// during the load, a wave per FK level (parents before children). In replica mode no FK
/// trigger fires, so one wave holds everything: a level barrier would only leave workers
/// idle behind the level's largest table. Within a wave, largest first, so the slowest item
/// does not start last.
fn load_waves<T: Clone>(
    tj: &TargetJob,
    items: &[T],
    table_of: impl Fn(&T) -> usize,
    size_of: impl Fn(&T) -> u64,
) -> Vec<Vec<T>> {
    let levels = if tj.replica {
        1
    } else {
        tj.order.level_count()
    };
    (0..levels)
        .map(|level| {
            let mut wave: Vec<T> = items
                .iter()
                .filter(|i| tj.replica || tj.order.levels[table_of(i)] == level)
                .cloned()
                .collect();
            wave.sort_by_key(|i| std::cmp::Reverse(size_of(i)));
            wave
        })
        .collect()
}

fn chunk_context(table: &Table, chunk: &Chunk) -> String {
    format!("copying chunk {} of {}", chunk.id(), table.name)
}

fn est_chunk_bytes(plan: &Plan, chunk: &Chunk) -> u64 {
    let t = &plan.catalog.tables[chunk.table];
    let n = plan
        .chunks
        .iter()
        .filter(|c| c.table == chunk.table)
        .count()
        .max(1);
    t.bytes.max(0) as u64 / n as u64
}

struct SyncWorker {
    src: Client,
    tgt: Client,
}

/// `dbsync sync`: every chunk streamed from the source's COPY into the target's COPY, in
/// parallel, level by level, through the ledger; then sequences, ANALYZE and (optionally) a
/// full comparison against the same snapshot.
pub async fn sync(
    source: &ConnSpec,
    target: &ConnSpec,
    opts: &Options,
    progress: Arc<dyn Progress>,
) -> Result<LoadReport> {
    let started = Instant::now();
    let job_id = new_job_id();
    let src_app = app_name(&job_id, "src");
    let (src_coord, snapshot) = open_snapshot(source, &src_app).await?;
    let plan = Arc::new(build_plan(&src_coord, &opts.scope, opts.chunk_bytes).await?);
    let plan_ms = started.elapsed().as_millis() as u64;
    let cat = &plan.catalog;
    let tj = prepare_target(
        target,
        &cat.tables,
        &cat.sequences,
        &cat.server,
        &job_id,
        "sync",
        Some(&src_app),
        opts.keep_indexes,
        opts.dry_run,
        false,
    )
    .await?;
    if opts.dry_run {
        return Ok(LoadReport {
            job_id,
            tables: cat.tables.len(),
            sequences: cat.sequences.len(),
            dry_run: Some(DryRun::new(&tj, &cat.tables)),
            elapsed_ms: started.elapsed().as_millis() as u64,
            ..Default::default()
        });
    }
    let prepare_ms = started.elapsed().as_millis() as u64 - plan_ms;
    progress.planned(
        "sync",
        plan.chunks.len(),
        cat.tables.iter().map(|t| t.bytes.max(0) as u64).sum(),
    );
    // Workers get their own application name: the coordinator ("src") holds the snapshot.
    let again = Arc::new(Reconnect {
        source: Some(source.clone()),
        target: target.clone(),
        snapshot: snapshot.clone(),
        read_app: app_name(&job_id, "read"),
        job_id: job_id.clone(),
        replica: tj.replica,
    });
    let n = opts.jobs.clamp(1, plan.chunks.len().max(1));
    let mut workers = Vec::with_capacity(n);
    for _ in 0..n {
        workers.push(retrying("opening worker sessions", || again.sync_worker()).await?);
    }
    let mut report = LoadReport {
        job_id: job_id.clone(),
        tables: cat.tables.len(),
        ..Default::default()
    };
    let job = Arc::new(job_id.clone());
    let countdown = TableCountdown::new(&tj.restore, &cat.tables, |i| {
        plan.chunks.iter().filter(|c| c.table == i).count()
    });
    let waves = load_waves(
        &tj,
        &plan.chunks,
        |c| c.table,
        |c| est_chunk_bytes(&plan, c),
    );
    for items in waves {
        let (plan2, job2, prog, cd2, again2) = (
            plan.clone(),
            job.clone(),
            progress.clone(),
            countdown.clone(),
            again.clone(),
        );
        let (back, outs) = run_pool(workers, items, move |w: SyncWorker, chunk: Chunk| {
            let (plan, job, prog, countdown, again) = (
                plan2.clone(),
                job2.clone(),
                prog.clone(),
                cd2.clone(),
                again2.clone(),
            );
            async move {
                let table = &plan.catalog.tables[chunk.table];
                let work = |mut w: SyncWorker| {
                    let (job, countdown, chunk) = (job.clone(), countdown.clone(), chunk.clone());
                    async move {
                        let r = async {
                            let mut src = CopyOutSource::start(
                                &w.src,
                                table,
                                &chunk.range,
                                chunk_context(table, &chunk),
                            )
                            .await?;
                            let o = copy_in::load_part(
                                &mut w.tgt,
                                &job,
                                &chunk.id(),
                                table,
                                &mut src,
                                None,
                            )
                            .await?;
                            countdown.part_done(&w.tgt, chunk.table).await?;
                            Ok(o)
                        }
                        .await;
                        (w, r)
                    }
                };
                let (w, r, retries) = with_retries(w, &chunk_context(table, &chunk), work, || {
                    again.sync_worker()
                })
                .await;
                if let Ok(LoadOutcome::Loaded(s)) = &r {
                    prog.chunk_done(&table.name, s.rows, s.bytes, est_chunk_bytes(&plan, &chunk));
                }
                (w, r.map(|o| (o, retries)))
            }
        })
        .await?;
        workers = back;
        tally_outcomes(&mut report, outs);
    }
    let load_ms = started.elapsed().as_millis() as u64 - plan_ms - prepare_ms;
    let mut seqs = cat.sequences.clone();
    catalog::read_sequence_values(&src_coord, Role::Source, &mut seqs).await?;
    let (srcs, tgts): (Vec<Client>, Vec<Client>) =
        workers.into_iter().map(|w| (w.src, w.tgt)).unzip();
    let tgts = finish_target(&tj, tgts, &again, &countdown, &job_id, &seqs).await?;
    let workers: Vec<SyncWorker> = srcs
        .into_iter()
        .zip(tgts)
        .map(|(src, tgt)| SyncWorker { src, tgt })
        .collect();
    report.sequences = seqs.len();
    tracing::info!(
        job = %job_id,
        tables = report.tables,
        parts = report.parts_loaded,
        rows = report.rows,
        bytes = report.bytes,
        plan_ms,
        prepare_ms,
        load_ms,
        finalize_ms = started.elapsed().as_millis() as u64 - plan_ms - prepare_ms - load_ms,
        "sync loaded"
    );
    if opts.verify {
        progress.note("verifying every table against the snapshot");
        let (_, cmp) = compare_tables(workers, plan.clone()).await?;
        let mut tseqs = seqs.clone();
        catalog::read_sequence_values(&tj.coord, Role::Target, &mut tseqs).await?;
        let v = VerifyReport {
            tables: cmp,
            sequence_differences: verify::compare_sequences(&seqs, &tseqs),
        };
        report.verify = Some(v.into_result()?);
    }
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

fn tally_outcomes(report: &mut LoadReport, outs: Vec<(LoadOutcome, u64)>) {
    for (o, retries) in outs {
        report.retries += retries;
        match o {
            LoadOutcome::Loaded(s) => {
                report.parts_loaded += 1;
                report.rows += s.rows;
                report.bytes += s.bytes;
            }
            LoadOutcome::AlreadyLoaded => report.parts_skipped += 1,
        }
    }
}

async fn compare_tables(
    workers: Vec<SyncWorker>,
    plan: Arc<Plan>,
) -> Result<(Vec<SyncWorker>, Vec<TableComparison>)> {
    let idx: Vec<usize> = (0..plan.catalog.tables.len()).collect();
    let (w, mut cmp) = run_pool(workers, idx, move |w: SyncWorker, i: usize| {
        let plan = plan.clone();
        async move {
            let t = &plan.catalog.tables[i];
            let cols: Vec<&str> = t.copy_columns().map(|c| c.name.as_str()).collect();
            let r = async {
                let (s, d) = tokio::try_join!(
                    verify::fingerprint(&w.src, Role::Source, t, &cols),
                    verify::fingerprint(&w.tgt, Role::Target, t, &cols)
                )?;
                Ok(TableComparison {
                    table: t.name.to_string(),
                    source: s,
                    target: d,
                })
            }
            .await;
            (w, r)
        }
    })
    .await?;
    cmp.sort_by(|a, b| a.table.cmp(&b.table));
    Ok((w, cmp))
}

/// The key of a chunk's part in a store.
pub fn part_key(chunk: &Chunk) -> String {
    format!("parts/{}.copy.gz", chunk.id())
}

/// The part id of segment `n` of a chunk exported in budgeted invocations.
pub fn segment_id(chunk: &Chunk, n: u32) -> String {
    format!("{}.s{n:04}", chunk.id())
}

/// The store key of segment `n` of a chunk.
pub fn segment_key(chunk: &Chunk, n: u32) -> String {
    format!("parts/{}.copy.gz", segment_id(chunk, n))
}

/// One part an export produced.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ExportedPart {
    /// The chunk it belongs to.
    pub chunk: Chunk,
    /// Part id (the ledger key): the chunk id, or a segment id.
    pub id: String,
    /// Store key.
    pub key: String,
    /// What it holds.
    pub stats: PartStats,
    /// Its size in the store.
    pub compressed_bytes: u64,
    /// The snapshot it read, when not the job's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
}

/// `dbsync export`: every chunk into its own gzip part, then the manifest.
pub async fn export(
    source: &ConnSpec,
    store: Arc<dyn PartStore>,
    opts: &Options,
    progress: Arc<dyn Progress>,
) -> Result<Manifest> {
    let started = Instant::now();
    let job_id = new_job_id();
    let created_at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let app = app_name(&job_id, "src");
    let (coord, snapshot) = open_snapshot(source, &app).await?;
    let plan = Arc::new(build_plan(&coord, &opts.scope, opts.chunk_bytes).await?);
    let planned_ms = started.elapsed().as_millis() as u64;
    progress.planned(
        "export",
        plan.chunks.len(),
        plan.catalog
            .tables
            .iter()
            .map(|t| t.bytes.max(0) as u64)
            .sum(),
    );
    let n = opts.jobs.clamp(1, plan.chunks.len().max(1));
    let mut workers = Vec::with_capacity(n);
    for _ in 0..n {
        workers.push(join_snapshot(source, &snapshot, &app).await?);
    }
    // Largest chunks first, so the slowest one does not start last.
    let mut items = plan.chunks.clone();
    items.sort_by_key(|c| std::cmp::Reverse(est_chunk_bytes(&plan, c)));
    let level = opts.compress_level;
    let (plan2, store2, prog) = (plan.clone(), store.clone(), progress.clone());
    let (_, parts) = run_pool(workers, items, move |w: Client, chunk: Chunk| {
        let (plan, store, prog) = (plan2.clone(), store2.clone(), prog.clone());
        async move {
            let table = &plan.catalog.tables[chunk.table];
            let key = part_key(&chunk);
            let r = copy_out::export_chunk(
                &w,
                table,
                &chunk.range,
                chunk_context(table, &chunk),
                store.as_ref(),
                &key,
                level,
            )
            .await
            .map(|(stats, compressed_bytes)| {
                prog.chunk_done(
                    &table.name,
                    stats.rows,
                    stats.bytes,
                    est_chunk_bytes(&plan, &chunk),
                );
                ExportedPart {
                    id: chunk.id(),
                    chunk: chunk.clone(),
                    key,
                    stats,
                    compressed_bytes,
                    snapshot: None,
                }
            });
            (w, r)
        }
    })
    .await?;
    let export_ms = started.elapsed().as_millis() as u64 - planned_ms;
    let mut sequences = plan.catalog.sequences.clone();
    catalog::read_sequence_values(&coord, Role::Source, &mut sequences).await?;
    let manifest = assemble(
        &plan,
        job_id,
        created_at,
        snapshot,
        parts,
        sequences,
        BTreeMap::from([
            ("plan".to_string(), planned_ms),
            ("export".to_string(), export_ms),
        ]),
    );
    store.put(manifest::KEY, &manifest.to_json()).await?;
    Ok(manifest)
}

/// Builds the manifest from a plan and the parts its chunks produced.
pub fn assemble(
    plan: &Plan,
    job_id: String,
    created_at: String,
    snapshot: String,
    mut parts: Vec<ExportedPart>,
    sequences: Vec<Sequence>,
    timings_ms: BTreeMap<String, u64>,
) -> Manifest {
    parts.sort_by(|a, b| {
        (a.chunk.table, a.chunk.seq, &a.id).cmp(&(b.chunk.table, b.chunk.seq, &b.id))
    });
    let cat: &Catalog = &plan.catalog;
    let tables: Vec<ManifestTable> = cat
        .tables
        .iter()
        .enumerate()
        .map(|(i, t)| ManifestTable {
            table: t.clone(),
            level: plan.order.levels[i],
            parts: parts
                .iter()
                .filter(|p| p.chunk.table == i)
                .map(|p| PartEntry {
                    id: p.id.clone(),
                    key: p.key.clone(),
                    range: p.chunk.range.clone(),
                    stats: p.stats.clone(),
                    compressed_bytes: p.compressed_bytes,
                    snapshot: p.snapshot.clone(),
                })
                .collect(),
        })
        .collect();
    Manifest {
        format: manifest::FORMAT.into(),
        version: manifest::VERSION,
        job_id,
        created_at,
        source: cat.server.clone(),
        consistency: if tables
            .iter()
            .flat_map(|t| &t.parts)
            .any(|p| p.snapshot.is_some())
        {
            "per_chunk".into()
        } else {
            "snapshot".into()
        },
        snapshot,
        settings: crate::conn::SESSION_SETTINGS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        compression: "gzip".into(),
        chunk_bytes: plan.chunk_bytes,
        tables,
        foreign_keys: cat.foreign_keys.clone(),
        sequences,
        timings_ms,
    }
}

/// `dbsync import`: the parts of a manifest into the target, exactly once each; running it
/// again after a failure resumes where it stopped.
pub async fn import(
    target: &ConnSpec,
    store: Arc<dyn PartStore>,
    opts: &Options,
    progress: Arc<dyn Progress>,
) -> Result<LoadReport> {
    let started = Instant::now();
    let m = Arc::new(Manifest::read(store.as_ref()).await?);
    let tables: Vec<Table> = m.tables.iter().map(|t| t.table.clone()).collect();
    let tj = prepare_manifest_target(target, &m, &tables, opts, opts.dry_run).await?;
    let mut report = LoadReport {
        job_id: m.job_id.clone(),
        tables: tables.len(),
        already_done: tj.already_done,
        ..Default::default()
    };
    if opts.dry_run {
        report.dry_run = Some(DryRun::new(&tj, &tables));
        report.sequences = m.sequences.len();
        return Ok(report);
    }
    if tj.already_done {
        progress.note("this export was imported into the target before; nothing to do");
        return Ok(report);
    }
    let all = manifest_parts(&m);
    progress.planned(
        "import",
        all.len(),
        m.tables.iter().map(|t| t.table.bytes.max(0) as u64).sum(),
    );
    let again = Arc::new(Reconnect {
        source: None,
        target: target.clone(),
        snapshot: String::new(),
        read_app: String::new(),
        job_id: m.job_id.clone(),
        replica: tj.replica,
    });
    let n = opts.jobs.clamp(1, all.len().max(1));
    let mut workers = Vec::with_capacity(n);
    for _ in 0..n {
        workers.push(retrying("opening loader sessions", || again.loader()).await?);
    }
    let countdown = TableCountdown::new(&tj.restore, &tables, |i| m.tables[i].parts.len());
    let waves = load_waves(
        &tj,
        &all,
        |(ti, _)| *ti,
        |(ti, pi)| m.tables[*ti].parts[*pi].stats.bytes,
    );
    for items in waves {
        let (m2, store2, prog, cd2, again2) = (
            m.clone(),
            store.clone(),
            progress.clone(),
            countdown.clone(),
            again.clone(),
        );
        let (back, outs) = run_pool(
            workers,
            items,
            move |w: Client, (ti, pi): (usize, usize)| {
                let (m, store, prog, countdown, again) = (
                    m2.clone(),
                    store2.clone(),
                    prog.clone(),
                    cd2.clone(),
                    again2.clone(),
                );
                async move {
                    let mt = &m.tables[ti];
                    let part = &mt.parts[pi];
                    let work = |mut w: Client| {
                        let (m, store, countdown) = (m.clone(), store.clone(), countdown.clone());
                        async move {
                            let r = async {
                                let o = import_part(&mut w, &m, &part.id, store.as_ref()).await?;
                                countdown.part_done(&w, ti).await?;
                                Ok(o)
                            }
                            .await;
                            (w, r)
                        }
                    };
                    let what = format!("loading part {} of {}", part.id, mt.table.name);
                    let (w, r, retries) = with_retries(w, &what, work, || again.loader()).await;
                    if let Ok(LoadOutcome::Loaded(s)) = &r {
                        let est = mt.table.bytes.max(0) as u64 / mt.parts.len().max(1) as u64;
                        prog.chunk_done(&mt.table.name, s.rows, s.bytes, est);
                    }
                    (w, r.map(|o| (o, retries)))
                }
            },
        )
        .await?;
        workers = back;
        tally_outcomes(&mut report, outs);
    }
    finish_target(&tj, workers, &again, &countdown, &m.job_id, &m.sequences).await?;
    report.sequences = m.sequences.len();
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// `dbsync verify`: compares the live source and target table by table.
pub async fn verify(source: &ConnSpec, target: &ConnSpec, opts: &Options) -> Result<VerifyReport> {
    let src = source.connect(Role::Source, "dbsync-verify").await?;
    let tgt = target.connect(Role::Target, "dbsync-verify").await?;
    let mut cat = catalog::load(&src, Role::Source, &opts.scope).await?;
    if cat.tables.is_empty() {
        return Err(Error::EmptyScope(scope_text(&opts.scope)));
    }
    let tcat = catalog::load(&tgt, Role::Target, &Scope::default()).await?;
    let problems: Vec<String> = compat::check(
        &cat.server,
        &cat.tables,
        &[],
        &tcat,
        compat::Purpose::Compare,
    );
    if !problems.is_empty() {
        return Err(Error::Incompatible { problems });
    }
    catalog::read_sequence_values(&src, Role::Source, &mut cat.sequences).await?;
    let mut tseqs: Vec<Sequence> = tcat
        .sequences
        .iter()
        .filter(|s| cat.sequences.iter().any(|x| x.name == s.name))
        .cloned()
        .collect();
    catalog::read_sequence_values(&tgt, Role::Target, &mut tseqs).await?;
    let n = opts.jobs.clamp(1, cat.tables.len());
    let mut workers = Vec::with_capacity(n);
    for _ in 0..n {
        workers.push(SyncWorker {
            src: source.connect(Role::Source, "dbsync-verify").await?,
            tgt: target.connect(Role::Target, "dbsync-verify").await?,
        });
    }
    let sequence_differences = verify::compare_sequences(&cat.sequences, &tseqs);
    let plan = Arc::new(Plan {
        order: FkOrder {
            levels: vec![0; cat.tables.len()],
            cyclic: vec![],
        },
        catalog: cat,
        chunks: vec![],
        chunk_bytes: 0,
    });
    let (_, tables) = compare_tables(workers, plan).await?;
    Ok(VerifyReport {
        tables,
        sequence_differences,
    })
}

/// The target side of an import, prepared once and then carried out by any number of later,
/// separate calls (one Lambda invocation per part): everything they need is here or in the
/// target's ledger, nothing in a session.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ImportPlan {
    /// The job (the manifest's job id, also the ledger key).
    pub job_id: String,
    /// Part ids in waves: every part of a wave may load in parallel; waves in order.
    pub waves: Vec<Vec<String>>,
    /// Whether part loads may run with `session_replication_role = replica`.
    pub replica: bool,
    /// The import had finished before: nothing to do.
    pub already_done: bool,
}

/// Pre-flight checks and the start of an import of manifest `m` (see [`prepare_target`]).
async fn prepare_manifest_target(
    target: &ConnSpec,
    m: &Manifest,
    tables: &[Table],
    opts: &Options,
    dry_run: bool,
) -> Result<TargetJob> {
    prepare_target(
        target,
        tables,
        &m.sequences,
        &m.source,
        &m.job_id,
        "import",
        None,
        opts.keep_indexes,
        dry_run,
        opts.restart && !dry_run,
    )
    .await
}

/// Every part of a manifest as (table index, part index).
fn manifest_parts(m: &Manifest) -> Vec<(usize, usize)> {
    m.tables
        .iter()
        .enumerate()
        .flat_map(|(ti, t)| (0..t.parts.len()).map(move |pi| (ti, pi)))
        .collect()
}

/// Step one of a stateless import: every pre-flight check, then the start of the job
/// (truncate, drop cyclic FKs and secondary indexes, disable triggers; all recorded in the
/// ledger). Running it again for the same manifest resumes instead of starting over.
pub async fn prepare_import(target: &ConnSpec, m: &Manifest, opts: &Options) -> Result<ImportPlan> {
    let tables: Vec<Table> = m.tables.iter().map(|t| t.table.clone()).collect();
    let tj = prepare_manifest_target(target, m, &tables, opts, false).await?;
    let all = manifest_parts(m);
    let waves = load_waves(
        &tj,
        &all,
        |(ti, _)| *ti,
        |(ti, pi)| m.tables[*ti].parts[*pi].stats.bytes,
    )
    .into_iter()
    .map(|w| {
        w.into_iter()
            .map(|(ti, pi)| m.tables[ti].parts[pi].id.clone())
            .collect()
    })
    .filter(|w: &Vec<String>| !w.is_empty())
    .collect();
    Ok(ImportPlan {
        job_id: m.job_id.clone(),
        waves,
        replica: tj.replica,
        already_done: tj.already_done,
    })
}

/// Opens a session for loading parts of `plan`.
pub async fn connect_part_loader(target: &ConnSpec, plan: &ImportPlan) -> Result<Client> {
    connect_loader(target, &plan.job_id, plan.replica).await
}

/// Step two: loads one part, exactly once however often it is called (retries, duplicate
/// deliveries): the ledger row is written in the part's own transaction.
pub async fn import_part(
    client: &mut Client,
    m: &Manifest,
    part_id: &str,
    store: &dyn PartStore,
) -> Result<LoadOutcome> {
    let (mt, part) = m
        .tables
        .iter()
        .find_map(|t| t.parts.iter().find(|p| p.id == part_id).map(|p| (t, p)))
        .ok_or_else(|| Error::Manifest {
            path: manifest::KEY.into(),
            message: format!("has no part {part_id}"),
        })?;
    let mut src = GzPartSource::open(store, &part.key).await?;
    copy_in::load_part(
        client,
        &m.job_id,
        &part.id,
        &mt.table,
        &mut src,
        Some(&part.stats),
    )
    .await
}

/// Step three: rebuilds dropped indexes and ANALYZEs every table, re-adds and validates
/// foreign keys, re-enables triggers, sets sequences, marks the job done. What to restore is
/// read from the ledger. Idempotent: calling it again after it finished does nothing.
pub async fn finalize_import(target: &ConnSpec, m: &Manifest) -> Result<()> {
    let client = target
        .connect(Role::Target, &app_name(&m.job_id, "fin"))
        .await?;
    let restore = match ledger::job_state(&client, &m.job_id).await? {
        JobState::Done => return Ok(()),
        JobState::New => {
            return Err(Error::Manifest {
                path: manifest::KEY.into(),
                message: format!("job {} was never prepared in this target", m.job_id),
            })
        }
        JobState::Loading(r) => r,
    };
    let all: Vec<String> = m
        .tables
        .iter()
        .flat_map(|t| t.parts.iter().map(|p| p.id.clone()))
        .collect();
    let missing = ledger::missing_parts(&client, &m.job_id, &all).await?;
    if !missing.is_empty() {
        return Err(Error::Incomplete {
            job: m.job_id.clone(),
            missing,
        });
    }
    for t in &m.tables {
        run_steps(&client, ledger::table_steps(&restore, &t.table.name)).await?;
    }
    for group in ledger::finalize_steps(&restore, &m.sequences) {
        run_steps(&client, group.steps).await?;
    }
    ledger::mark_done(&client, &m.job_id).await
}
