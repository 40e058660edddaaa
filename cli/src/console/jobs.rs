//! The console's local jobs: each sync runs in this process with the command line's
//! pipeline, its record (request, status, live figures, report or error) kept in memory and
//! written to `<state dir>/jobs/<id>.json` at every change of status, so a restarted console
//! lists them again; one that was running when the console stopped reads as failed with
//! `DbsyncInterrupted`, and retrying it resumes it as `dbsync sync` would. Jobs are shown as
//! the API shows its own ([`Jobs::view`]: docs/openapi.yaml's `Job`).

use dbsync_core::cloud::api::view::estimates;
use dbsync_core::cloud::api::{request, ApiError};
use dbsync_core::model::options::{Mode, Spelling};
use dbsync_core::model::rules::RulesFile;
use dbsync_core::model::scope::{glob, Scope};
use dbsync_core::model::settings::first_given;
use dbsync_core::pg::conn::ConnSpec;
use dbsync_core::pipeline::interrupt::Interrupt;
use dbsync_core::pipeline::progress::NoProgress;
use dbsync_core::pipeline::tally::{Figures, Tally};
use dbsync_core::pipeline::{self, DryRun, Options};
use dbsync_core::plan::refresh::DEFAULT_MAX_SHARE;
use dbsync_core::Error;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// What a person asks for on the new-sync page: the API's own request (`POST /syncs`, the
/// same JSON in both backends), its `source_secret` and `target_secret` naming databases of
/// this console.
pub use dbsync_core::cloud::api::request::SyncRequest as SyncAsk;

/// A job's state as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Running,
    Succeeded,
    Failed,
    Cancelled,
    /// The console stopped while it ran; retrying it resumes it.
    Interrupted,
}

/// A job as kept under the state directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRecord {
    pub job_id: String,
    pub status: Status,
    pub request: SyncAsk,
    pub started_at: String,
    #[serde(default)]
    pub finished_at: Option<String>,
    /// How many times it was started again.
    #[serde(default)]
    pub retries: u64,
    /// The last figures (while it runs, its [`Tally`] has the live ones).
    #[serde(default)]
    pub figures: Figures,
    /// The sync's report (per table, rows, bytes) once it succeeded.
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
    /// Targets never loaded (`--protected`, DBSYNC_PROTECTED_TARGETS): names or endpoints.
    protected: Vec<String>,
    jobs: Mutex<BTreeMap<String, Running>>,
}

struct Running {
    record: JobRecord,
    live: Option<Arc<Tally>>,
    interrupt: Interrupt,
}

fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// A refusal, answered as the API answers its own (status, name, message, field).
pub type Refusal = ApiError;

/// A 409 about job `id`, as the API words its own.
fn conflict(message: String) -> Refusal {
    ApiError::new(409, Error::config("job", message))
}

impl Jobs {
    /// The jobs under `dir` (made if missing); those recorded running are interrupted now.
    pub fn open(
        dir: PathBuf,
        databases: BTreeMap<String, ConnSpec>,
        protected: Vec<String>,
    ) -> anyhow::Result<Self> {
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
            protected,
            jobs: Mutex::new(jobs),
        };
        // Only the records whose status changed are written again.
        for r in &interrupted {
            me.save(r);
        }
        Ok(me)
    }

    fn is_protected(&self, name: &str, spec: &ConnSpec) -> bool {
        let identity = spec.identity();
        self.protected
            .iter()
            .any(|p| glob(p, name) || glob(p, &identity))
    }

    fn uses(&self, name: &str, spec: &ConnSpec) -> Value {
        let protected = self.is_protected(name, spec);
        json!({ "source_allowed": true, "target_allowed": !protected, "protected": protected })
    }

    /// A database by name, with what it may be used as.
    pub fn database(&self, name: &str) -> dbsync_core::Result<(ConnSpec, Value)> {
        let spec = self.databases.get(name).ok_or_else(|| {
            Error::config(
                "secret",
                format!("{name:?} is not a database this console knows"),
            )
        })?;
        Ok((spec.clone(), self.uses(name, spec)))
    }

    /// The databases as the API's `GET /databases` lists its secrets: name, endpoint (never
    /// a password) and what each may be used as.
    pub fn databases(&self) -> Value {
        let list: Vec<Value> = self
            .databases
            .iter()
            .map(|(name, spec)| {
                json!({ "secret": name, "endpoint": spec.identity(), "uses": self.uses(name, spec) })
            })
            .collect();
        json!({ "prefix": "", "databases": list, "other_secrets": [] })
    }

    fn save(&self, r: &JobRecord) {
        if let Ok(text) = serde_json::to_string_pretty(r) {
            let _ = std::fs::write(self.dir.join(format!("{}.json", r.job_id)), text);
        }
    }

    /// Every job, newest first, as the API shows jobs.
    pub fn list(&self, limit: usize) -> Vec<Value> {
        let Ok(jobs) = self.jobs.lock() else {
            return Vec::new();
        };
        let mut all: Vec<&Running> = jobs.values().collect();
        all.sort_by(|a, b| b.record.started_at.cmp(&a.record.started_at));
        all.into_iter().take(limit).map(|r| self.view(r)).collect()
    }

    /// One job as the API shows it.
    pub fn get(&self, id: &str) -> Option<Value> {
        let jobs = self.jobs.lock().ok()?;
        jobs.get(id).map(|r| self.view(r))
    }

    /// The API's `Job` of a record: status, phase, progress with rate-based estimate,
    /// current table, and (the local backend's own) each table's figures.
    fn view(&self, r: &Running) -> Value {
        let rec = &r.record;
        let f = r
            .live
            .as_ref()
            .map_or_else(|| rec.figures.clone(), |l| l.figures());
        let running = rec.status == Status::Running;
        let updated = rec.finished_at.clone().unwrap_or_else(now);
        let (eta, duration) = estimates(&rec.started_at, &updated, running, f.percent());
        let error = match rec.status {
            Status::Running | Status::Succeeded => None,
            Status::Interrupted => Some(json!({
                "name": "DbsyncInterrupted",
                "message": "the console stopped while this job ran; retry resumes it",
            })),
            _ => rec.error.clone(),
        };
        let status = word(rec.status);
        let phase = match () {
            _ if !running => "done",
            _ if !f.finishing.is_empty() => "finalizing",
            _ if !f.planned => "planning",
            _ => "importing",
        };
        let target = rec
            .request
            .target_secret
            .as_deref()
            .and_then(|t| self.databases.get(t))
            .map(ConnSpec::identity);
        let tables: Vec<Value> = f
            .tables
            .iter()
            .map(|(t, x)| {
                json!({
                    "table": t, "state": x.state(), "rows": x.rows, "bytes": x.bytes,
                    "chunks_done": x.chunks_done, "chunks_total": x.chunks_total,
                })
            })
            .collect();
        let percent = if rec.status == Status::Succeeded {
            100.0
        } else {
            f.percent()
        };
        json!({
            "job_id": rec.job_id,
            "kind": if r.record.request.mode == Mode::Refresh { "refresh" } else { "sync" },
            "status": status,
            "phase": phase,
            "request": rec.request,
            "target": target,
            "created_at": rec.started_at,
            "updated_at": updated,
            "current_table": f.current_table(),
            "tables_done": f.tables_done(),
            "tables_total": f.tables.len(),
            "estimated_duration_seconds": duration,
            "retries": rec.retries,
            "backup_job_id": null,
            "progress": {
                "chunks_done": f.chunks_done, "chunks_total": f.chunks_total,
                "parts_done": f.chunks_done, "parts_total": f.chunks_total,
                "rows": f.rows, "bytes": f.bytes, "percent": percent, "eta_seconds": eta,
            },
            "error": error,
            "links": { "self": format!("/syncs/{}", rec.job_id), "execution": null, "console": null },
            "tables": tables,
            "finishing": f.finishing,
        })
    }

    /// Checks `ask` against the target as a start would and answers what the load would do
    /// to it, changing nothing.
    pub async fn dry_run(&self, ask: &SyncAsk) -> Result<DryRun, Refusal> {
        let (source, target, mut opts) = self.resolve(ask)?;
        opts.dry_run = true;
        let report = pipeline::sync(&source, &target, &opts, Arc::new(NoProgress)).await?;
        Ok(report.dry_run.unwrap_or_default())
    }

    /// Checks `ask` and starts it; a bad request is refused naming its field.
    pub fn start(self: &Arc<Self>, ask: SyncAsk) -> Result<String, Refusal> {
        let (source, target, opts) = self.resolve(&ask)?;
        let job_id = uuid::Uuid::new_v4().to_string();
        self.launch(job_id.clone(), ask, 0, source, target, opts)?;
        Ok(job_id)
    }

    /// Starts a failed, cancelled or interrupted job again under its id: the target's ledger
    /// resumes what it had loaded. Answers how many times it was retried.
    pub fn retry(self: &Arc<Self>, id: &str) -> Result<u64, Refusal> {
        let (ask, retries) = match self.jobs.lock().ok().and_then(|j| {
            j.get(id)
                .map(|r| (r.record.status, r.record.request.clone(), r.record.retries))
        }) {
            Some((s @ (Status::Running | Status::Succeeded), ..)) => {
                return Err(conflict(format!(
                    "job {id} is {}: only a failed or cancelled job is retried",
                    word(s)
                )))
            }
            Some((_, ask, retries)) => (ask, retries + 1),
            None => return Err(Error::NoSuchJob(id.to_string()).into()),
        };
        let (source, target, opts) = self.resolve(&ask)?;
        self.launch(id.to_string(), ask, retries, source, target, opts)?;
        Ok(retries)
    }

    /// Asks a running job to stop; it puts back what it took away (an atomic one rolls back).
    pub fn cancel(&self, id: &str) -> Result<(), Refusal> {
        let found = self
            .jobs
            .lock()
            .ok()
            .and_then(|j| j.get(id).map(|r| (r.record.status, r.interrupt.clone())));
        match found {
            Some((Status::Running, i)) => {
                i.fire("cancel");
                Ok(())
            }
            Some((s, _)) => Err(conflict(format!("job {id} is {}, not running", word(s)))),
            None => Err(Error::NoSuchJob(id.to_string()).into()),
        }
    }

    fn resolve(&self, ask: &SyncAsk) -> dbsync_core::Result<(ConnSpec, ConnSpec, Options)> {
        let db = |field: &str, name: &str| {
            self.databases.get(name).cloned().ok_or_else(|| {
                Error::config(
                    field,
                    format!("{name:?} is not a database this console knows"),
                )
            })
        };
        let (rules, source) = rules(ask, db("source_secret", &ask.source_secret)?)?;
        let target_name = ask.target_secret.as_deref().unwrap_or_default();
        let target = db("target_secret", target_name)?;
        if ask.source_secret == target_name {
            return Err(Error::config(
                "target_secret",
                "is the source; pick another database",
            ));
        }
        if let Some(field) = cloud_only(ask) {
            return Err(Error::config(
                field,
                "is a setting of the deployed service; the local console does not take it",
            ));
        }
        let scope = Scope {
            allow_empty_patterns: ask.allow_empty_patterns,
            ..Scope::from_lists(&ask.schemas, &ask.tables, &ask.exclude)
                .map_err(|e| Error::config("tables", e.to_string()))?
        };
        // The API's own reading of the field, so both backends take the same sizes.
        let chunk_bytes = request::chunk_bytes(ask)?;
        let opts = Options {
            scope,
            chunk_bytes,
            workers: ask.concurrency.unwrap_or(4).max(1) as usize,
            keep_indexes: ask.keep_indexes,
            analyze: ask.analyze,
            atomic: ask.atomic,
            create_schema: ask.create_schema,
            changed_only: (ask.mode == Mode::Refresh).then_some(DEFAULT_MAX_SHARE),
            protected: self.protected.clone(),
            rules,
            interrupt: Interrupt::default(),
            ..Options::default()
        };
        if self.is_protected(target_name, &target) {
            return Err(Error::Protected(format!(
                "target {target_name} ({}) is protected; the console never loads it",
                target.identity()
            )));
        }
        opts.choices(false).check(Spelling::Field)?;
        Ok((source, target, opts))
    }

    fn launch(
        self: &Arc<Self>,
        job_id: String,
        ask: SyncAsk,
        retries: u64,
        source: ConnSpec,
        target: ConnSpec,
        opts: Options,
    ) -> Result<(), Refusal> {
        let live = Arc::new(Tally::default());
        let record = JobRecord {
            job_id: job_id.clone(),
            status: Status::Running,
            request: ask,
            started_at: now(),
            finished_at: None,
            retries,
            figures: Figures::default(),
            result: None,
            error: None,
        };
        {
            let mut jobs = self
                .jobs
                .lock()
                .map_err(|_| Error::Internal("the job list is unavailable".into()))?;
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
        Ok(())
    }

    fn finish(&self, id: &str, outcome: dbsync_core::Result<pipeline::LoadReport>, i: &Interrupt) {
        let Ok(mut jobs) = self.jobs.lock() else {
            return;
        };
        let Some(r) = jobs.get_mut(id) else {
            return;
        };
        if let Some(l) = &r.live {
            r.record.figures = l.figures();
        }
        r.record.finished_at = Some(now());
        match outcome {
            Ok(report) => {
                r.record.status = Status::Succeeded;
                r.record.result = serde_json::to_value(&report).ok();
                r.record.error = None;
            }
            Err(e) => {
                r.record.status = if i.fired().is_some() {
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

/// The request's data rules (the JSON of a `--rules` file), and the source whose sessions
/// hold their hash key: DBSYNC_RULES_KEY of the console's environment, as the command
/// line reads it (the request's `rules_key_secret` is the service's).
fn rules(ask: &SyncAsk, source: ConnSpec) -> dbsync_core::Result<(Option<RulesFile>, ConnSpec)> {
    let Some(v) = &ask.rules else {
        return Ok((None, source));
    };
    let file = RulesFile::parse(&v.to_string()).map_err(|m| Error::config("rules", m))?;
    Ok((Some(file), crate::args::with_rules_key(source)?))
}

/// A status in the API's words.
fn word(s: Status) -> &'static str {
    match s {
        Status::Running => "running",
        Status::Succeeded => "succeeded",
        Status::Cancelled => "cancelled",
        Status::Failed | Status::Interrupted => "failed",
    }
}

/// The first request field only the deployed service takes, if `ask` gives one.
fn cloud_only(ask: &SyncAsk) -> Option<&'static str> {
    let mut given = request::given_fields(ask);
    // The one mode a local sync has besides its own: the refresh (sync --changed-only).
    if ask.mode == Mode::Refresh {
        given.remove("mode");
    }
    first_given(|s| s.service_only, |f| given.contains(f))
}
