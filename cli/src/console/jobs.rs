//! The console's local jobs: each sync runs in this process with the command line's
//! pipeline, its record (request, status, live progress, result or error) kept in memory and
//! written to `<state dir>/jobs/<id>.json` at every change of status, so a restarted console
//! lists them again; one that was running when the console stopped reads `interrupted`, and
//! starting it again resumes it as `dbsync sync` would.

use dbsync_core::cloud::api::request;
use dbsync_core::model::ident::QualName;
use dbsync_core::model::options::{Mode, Spelling};
use dbsync_core::model::scope::Scope;
use dbsync_core::pg::conn::ConnSpec;
use dbsync_core::pipeline::interrupt::Interrupt;
use dbsync_core::pipeline::progress::Progress;
use dbsync_core::pipeline::{self, Options};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// What a person asks for on the new-sync page: the API's own request (`POST /syncs`, the
/// same JSON in both backends), its `source_secret` and `target_secret` naming databases of
/// this console.
pub use dbsync_core::cloud::api::request::SyncRequest as SyncAsk;

/// A job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Running,
    Succeeded,
    Failed,
    Cancelled,
    /// The console stopped while it ran; starting it again resumes it.
    Interrupted,
}

/// A job as the pages read it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRecord {
    pub job_id: String,
    pub status: Status,
    pub request: SyncAsk,
    /// A dry run: checks everything against the target and changes nothing.
    #[serde(default)]
    pub dry_run: bool,
    pub started_at: String,
    #[serde(default)]
    pub finished_at: Option<String>,
    /// Live figures while it runs, the last ones after.
    #[serde(default)]
    pub progress: Value,
    /// The sync's report (per table, rows, bytes) once it succeeded; a dry run's findings.
    #[serde(default)]
    pub result: Option<Value>,
    /// `{"name", "message"}` once it failed.
    #[serde(default)]
    pub error: Option<Value>,
}

/// The jobs of this console.
pub struct Jobs {
    dir: PathBuf,
    databases: BTreeMap<String, ConnSpec>,
    jobs: Mutex<BTreeMap<String, Running>>,
}

struct Running {
    record: JobRecord,
    live: Option<Arc<Live>>,
    interrupt: Interrupt,
}

fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

impl Jobs {
    /// The jobs under `dir` (made if missing); those recorded running are interrupted now.
    pub fn open(dir: PathBuf, databases: BTreeMap<String, ConnSpec>) -> anyhow::Result<Self> {
        let jobs_dir = dir.join("jobs");
        std::fs::create_dir_all(&jobs_dir)?;
        let mut jobs = BTreeMap::new();
        let mut interrupted = Vec::new();
        for e in std::fs::read_dir(&jobs_dir)?.flatten() {
            let Ok(text) = std::fs::read_to_string(e.path()) else {
                continue;
            };
            let Ok(mut record) = serde_json::from_str::<JobRecord>(&text) else {
                continue;
            };
            if record.status == Status::Running {
                record.status = Status::Interrupted;
                interrupted.push(record.clone());
            }
            jobs.insert(
                record.job_id.clone(),
                Running {
                    record,
                    live: None,
                    interrupt: Interrupt::default(),
                },
            );
        }
        let me = Jobs {
            dir: jobs_dir,
            databases,
            jobs: Mutex::new(jobs),
        };
        // Only the records whose status changed are written again.
        for r in &interrupted {
            me.save(r);
        }
        Ok(me)
    }

    /// The databases, by name, with their redacted endpoints (never a password).
    pub fn databases(&self) -> Value {
        Value::Array(
            self.databases
                .iter()
                .map(|(name, spec)| json!({ "name": name, "endpoint": spec.redacted() }))
                .collect(),
        )
    }

    fn save(&self, r: &JobRecord) {
        if let Ok(text) = serde_json::to_string_pretty(r) {
            let _ = std::fs::write(self.dir.join(format!("{}.json", r.job_id)), text);
        }
    }

    /// Every job, newest first, with its live figures.
    pub fn list(&self) -> Vec<JobRecord> {
        let Ok(jobs) = self.jobs.lock() else {
            return Vec::new();
        };
        let mut out: Vec<JobRecord> = jobs.values().map(Running::view).collect();
        out.sort_by(|a, b| b.started_at.cmp(&a.started_at));
        out
    }

    /// One job.
    pub fn get(&self, id: &str) -> Option<JobRecord> {
        self.jobs.lock().ok()?.get(id).map(Running::view)
    }

    /// Checks `ask` and starts it; a bad request is refused naming its field.
    pub fn start(
        self: &Arc<Self>,
        ask: SyncAsk,
        dry_run: bool,
    ) -> Result<JobRecord, (String, String)> {
        let (source, target, mut opts) = self.resolve(&ask)?;
        opts.dry_run = dry_run;
        let job_id = uuid::Uuid::new_v4().to_string();
        self.launch(job_id, ask, source, target, opts)
    }

    /// Starts a failed, cancelled or interrupted job again under its id: the target's ledger
    /// resumes what it had loaded.
    pub fn retry(self: &Arc<Self>, id: &str) -> Result<JobRecord, (String, String)> {
        let (ask, dry_run) = match self.get(id) {
            Some(r) if r.status != Status::Running && r.status != Status::Succeeded => {
                (r.request, r.dry_run)
            }
            Some(_) => return Err(("job".into(), format!("job {id} is running or succeeded"))),
            None => return Err(("job".into(), format!("no job {id}"))),
        };
        let (source, target, mut opts) = self.resolve(&ask)?;
        opts.dry_run = dry_run;
        self.launch(id.to_string(), ask, source, target, opts)
    }

    /// Asks a running job to stop; it puts back what it took away (an atomic one rolls back).
    pub fn cancel(&self, id: &str) -> bool {
        match self
            .jobs
            .lock()
            .ok()
            .and_then(|j| j.get(id).map(|r| (r.record.status, r.interrupt.clone())))
        {
            Some((Status::Running, i)) => {
                i.fire("cancel");
                true
            }
            _ => false,
        }
    }

    fn resolve(&self, ask: &SyncAsk) -> Result<(ConnSpec, ConnSpec, Options), (String, String)> {
        let bad = |field: &str, m: String| (field.to_string(), m);
        let db = |field: &str, name: &str| {
            self.databases.get(name).cloned().ok_or_else(|| {
                bad(
                    field,
                    format!("{name:?} is not a database this console knows"),
                )
            })
        };
        let source = db("source_secret", &ask.source_secret)?;
        let target_name = ask.target_secret.as_deref().unwrap_or_default();
        let target = db("target_secret", target_name)?;
        if ask.source_secret == target_name {
            return Err(bad(
                "target_secret",
                "is the source; pick another database".into(),
            ));
        }
        if let Some(field) = cloud_only(ask) {
            return Err(bad(
                field,
                "is a setting of the deployed service; the local console does not take it".into(),
            ));
        }
        let scope = Scope {
            allow_empty_patterns: ask.allow_empty_patterns,
            ..Scope::from_lists(&ask.schemas, &ask.tables, &ask.exclude)
                .map_err(|e| bad("tables", e.to_string()))?
        };
        // The API's own reading of the field, so both backends take the same sizes.
        let chunk_bytes = request::chunk_bytes(ask).map_err(field_of)?;
        let opts = Options {
            scope,
            chunk_bytes,
            workers: ask.concurrency.unwrap_or(4).max(1) as usize,
            keep_indexes: ask.keep_indexes,
            analyze: ask.analyze,
            atomic: ask.atomic,
            create_schema: ask.create_schema,
            interrupt: Interrupt::default(),
            ..Options::default()
        };
        opts.choices(false)
            .check(Spelling::Field)
            .map_err(field_of)?;
        Ok((source, target, opts))
    }

    fn launch(
        self: &Arc<Self>,
        job_id: String,
        ask: SyncAsk,
        source: ConnSpec,
        target: ConnSpec,
        opts: Options,
    ) -> Result<JobRecord, (String, String)> {
        let live = Arc::new(Live::default());
        let record = JobRecord {
            job_id: job_id.clone(),
            status: Status::Running,
            request: ask,
            dry_run: opts.dry_run,
            started_at: now(),
            finished_at: None,
            progress: Value::Null,
            result: None,
            error: None,
        };
        {
            let mut jobs = self
                .jobs
                .lock()
                .map_err(|_| ("job".to_string(), "the job list is unavailable".to_string()))?;
            jobs.insert(
                job_id.clone(),
                Running {
                    record: record.clone(),
                    live: Some(live.clone()),
                    interrupt: opts.interrupt.clone(),
                },
            );
        }
        self.save(&record);
        let me = self.clone();
        tokio::spawn(async move {
            let outcome = pipeline::sync(&source, &target, &opts, live.clone()).await;
            me.finish(&job_id, outcome, &opts.interrupt);
        });
        Ok(record)
    }

    fn finish(
        &self,
        id: &str,
        outcome: dbsync_core::Result<pipeline::LoadReport>,
        interrupt: &Interrupt,
    ) {
        let Ok(mut jobs) = self.jobs.lock() else {
            return;
        };
        let Some(r) = jobs.get_mut(id) else {
            return;
        };
        r.record.progress = r.live.as_ref().map(|l| l.view()).unwrap_or(Value::Null);
        r.record.finished_at = Some(now());
        match outcome {
            Ok(report) => {
                r.record.status = Status::Succeeded;
                r.record.result = serde_json::to_value(&report).ok();
            }
            Err(e) => {
                r.record.status = if interrupt.fired().is_some() {
                    Status::Cancelled
                } else {
                    Status::Failed
                };
                r.record.error = Some(json!({ "name": e.name(), "message": e.to_string() }));
            }
        }
        r.live = None;
        let record = r.record.clone();
        drop(jobs);
        self.save(&record);
    }
}

/// A refusal as the page shows it: the field a setting error names, and its message.
fn field_of(e: dbsync_core::Error) -> (String, String) {
    match e {
        dbsync_core::Error::Config { setting, message } => (setting, message),
        e => ("request".into(), e.to_string()),
    }
}

/// The first request field only the deployed service takes, if `ask` gives one.
fn cloud_only(ask: &SyncAsk) -> Option<&'static str> {
    [
        ("from", ask.from.is_some()),
        ("mode", ask.mode != Mode::Sync),
        ("backup", ask.backup),
        ("consistency", ask.consistency != Default::default()),
        (
            "snapshot_window_seconds",
            ask.snapshot_window_seconds.is_some(),
        ),
        ("export_budget_seconds", ask.export_budget_seconds.is_some()),
        (
            "finalize_budget_seconds",
            ask.finalize_budget_seconds.is_some(),
        ),
        ("page_rows", ask.page_rows.is_some()),
        ("source_connections", ask.source_connections.is_some()),
        ("rules", ask.rules.is_some()),
        ("rules_key_secret", ask.rules_key_secret.is_some()),
    ]
    .into_iter()
    .find_map(|(field, given)| given.then_some(field))
}

impl Running {
    fn view(&self) -> JobRecord {
        let mut r = self.record.clone();
        if let Some(l) = &self.live {
            r.progress = l.view();
        }
        r
    }
}

/// A running job's figures, kept by the pipeline's progress events: rows and bytes as they
/// stream, chunks done, the tables streaming now and the finishing statement under way.
#[derive(Default)]
pub struct Live {
    phase: Mutex<String>,
    chunks: AtomicU64,
    est_total: AtomicU64,
    done_chunks: AtomicU64,
    done_est: AtomicU64,
    done_rows: AtomicU64,
    done_bytes: AtomicU64,
    flow_rows: AtomicU64,
    flow_bytes: AtomicU64,
    flow_est: AtomicU64,
    tables: Mutex<BTreeMap<String, TableFigures>>,
    finishing: Mutex<Vec<String>>,
}

/// One table's figures.
#[derive(Default, Clone, Serialize)]
struct TableFigures {
    streaming: usize,
    chunks_done: u64,
    rows: u64,
    bytes: u64,
}

impl Live {
    fn view(&self) -> Value {
        let total = self.est_total.load(Ordering::Relaxed).max(1);
        let done =
            self.done_est.load(Ordering::Relaxed) + self.flow_est.load(Ordering::Relaxed) / 2;
        let percent = (done as f64 / total as f64 * 100.0).min(100.0);
        let tables = self.tables.lock().map(|t| t.clone()).unwrap_or_default();
        json!({
            "phase": self.phase.lock().map(|p| p.clone()).unwrap_or_default(),
            "chunks_total": self.chunks.load(Ordering::Relaxed),
            "chunks_done": self.done_chunks.load(Ordering::Relaxed),
            "rows": self.done_rows.load(Ordering::Relaxed) + self.flow_rows.load(Ordering::Relaxed),
            "bytes": self.done_bytes.load(Ordering::Relaxed) + self.flow_bytes.load(Ordering::Relaxed),
            "percent": (percent * 10.0).round() / 10.0,
            "tables": tables,
            "finishing": self.finishing.lock().map(|f| f.clone()).unwrap_or_default(),
        })
    }

    fn table(&self, t: &QualName, f: impl FnOnce(&mut TableFigures)) {
        if let Ok(mut m) = self.tables.lock() {
            f(m.entry(t.to_string()).or_default());
        }
    }
}

impl Progress for Live {
    fn planned(&self, phase: &str, chunks: usize, est_bytes: u64) {
        if let Ok(mut p) = self.phase.lock() {
            *p = phase.to_string();
        }
        self.chunks.store(chunks as u64, Ordering::Relaxed);
        self.est_total.store(est_bytes, Ordering::Relaxed);
    }

    fn chunk_done(&self, table: &QualName, rows: u64, bytes: u64, est_bytes: u64) {
        self.done_chunks.fetch_add(1, Ordering::Relaxed);
        self.done_est.fetch_add(est_bytes, Ordering::Relaxed);
        self.done_rows.fetch_add(rows, Ordering::Relaxed);
        self.done_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.table(table, |f| {
            f.chunks_done += 1;
            f.rows += rows;
            f.bytes += bytes;
        });
    }

    fn note(&self, _message: &str) {}

    fn stream_started(&self, table: &QualName, est_bytes: u64) {
        self.flow_est.fetch_add(est_bytes, Ordering::Relaxed);
        self.table(table, |f| f.streaming += 1);
    }

    fn streamed(&self, rows: u64, bytes: u64) {
        self.flow_rows.fetch_add(rows, Ordering::Relaxed);
        self.flow_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    // A stream's figures are taken back when it ends: chunk_done counts a loaded chunk once,
    // so a retried one is not counted twice.
    fn stream_ended(&self, table: &QualName, rows: u64, bytes: u64, est_bytes: u64) {
        for (c, n) in [
            (&self.flow_est, est_bytes),
            (&self.flow_rows, rows),
            (&self.flow_bytes, bytes),
        ] {
            let _ = c.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(n))
            });
        }
        self.table(table, |f| f.streaming = f.streaming.saturating_sub(1));
    }

    fn activity(&self, what: &str, running: bool) {
        if let Ok(mut f) = self.finishing.lock() {
            if running {
                f.push(what.to_string());
            } else if let Some(i) = f.iter().position(|w| w == what) {
                f.remove(i);
            }
        }
    }
}
