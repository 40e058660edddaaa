//! Starting executions: a new job (`POST /syncs`, the schedule), a load of an earlier job's
//! export into a target (`"from"`), and a retry of a failed load (`POST /syncs/{id}/retry`),
//! which resumes from the target's ledger and the parts already in S3. Each checks what it
//! needs, takes the target's lock, records the job and starts the execution; nothing is left
//! started or locked when a step refuses.

use super::request::{chunk_bytes, Analyze, ExecutionInput, Mode, SyncRequest};
use super::view::{backup_job_id, links};
use super::{log_compensation, Api, ApiError, ApiResult};
use crate::cloud::jobstore::{
    JobChange, JobRecord, JobStatus, Phase, BACKUP_KIND, DUMP_KIND, IMPORT_KIND,
};
use crate::cloud::lambda::MAX_SNAPSHOT_WINDOW_SECONDS;
use crate::cloud::steps::fail_job;
use crate::error::{Error, Result};
use crate::pg::conn::ConnSpec;
use serde_json::{json, Value};

/// The export a backup runs: the target's tables in `scope_of`'s scope (those the load
/// empties), as they are (no data rules), sized like the load. A pattern matching none of
/// the target's tables backs up nothing rather than failing: the load may create them.
fn backup_request(scope_of: &SyncRequest, req: &SyncRequest, target: String) -> SyncRequest {
    SyncRequest {
        source_secret: target,
        from: None,
        target_secret: None,
        schemas: scope_of.schemas.clone(),
        tables: scope_of.tables.clone(),
        exclude: scope_of.exclude.clone(),
        allow_empty_patterns: true,
        chunk_size: scope_of.chunk_size.clone(),
        concurrency: req.concurrency,
        mode: Mode::Export,
        keep_indexes: false,
        analyze: Analyze::Copy,
        atomic: false,
        consistency: Default::default(),
        snapshot_window_seconds: None,
        export_budget_seconds: None,
        finalize_budget_seconds: None,
        page_rows: None,
        rules: None,
        rules_key_secret: None,
        create_schema: false,
        backup: false,
        source_connections: req.source_connections,
    }
}

/// What [`Api::check_start`] found.
pub(super) struct Checked {
    /// The export a `"from"` load loads.
    pub export: Option<JobRecord>,
    /// The source's credentials.
    pub source: ConnSpec,
    /// The target's lock key.
    pub lock_key: Option<String>,
}

/// A 409 naming why a job cannot be used the way the request asks.
fn conflict(field: &str, message: String) -> ApiError {
    ApiError::new(409, Error::config(field, message))
}

/// The request a job was started with (as recorded, without who asked).
fn recorded_request(job: &JobRecord) -> Result<SyncRequest> {
    let mut request = job.request.clone();
    if let Value::Object(m) = &mut request {
        m.remove("origin");
    }
    serde_json::from_value(request).map_err(|e| {
        Error::Internal(format!(
            "job {} holds a request this version cannot read: {e}",
            job.job_id
        ))
    })
}

impl Api<'_> {
    /// The state machine's input for an accepted request.
    fn execution_input(
        &self,
        req: &SyncRequest,
        job_id: &str,
        lock_key: Option<String>,
    ) -> Result<ExecutionInput> {
        Ok(ExecutionInput {
            job_id: job_id.to_string(),
            mode: req.mode,
            source_secret: req.source_secret.clone(),
            target_secret: req.target_secret.clone(),
            lock_key,
            scope: req.scope()?,
            chunk_bytes: chunk_bytes(req)?,
            concurrency: req.fanout(self.settings.max_concurrency),
            keep_indexes: req.keep_indexes,
            analyze: req.analyze,
            atomic: req.atomic,
            consistency: req.consistency,
            snapshot_window_seconds: req
                .snapshot_window_seconds
                .unwrap_or(MAX_SNAPSHOT_WINDOW_SECONDS),
            export_budget_seconds: req.export_budget_seconds,
            finalize_budget_seconds: req.finalize_budget_seconds,
            page_rows: req.page_rows,
            rules: req.rules.clone(),
            rules_key_secret: req.rules_key_secret.clone(),
            create_schema: req.create_schema,
            data_job_id: req.from.clone(),
            backup_job_id: req.backup.then(|| backup_job_id(job_id)),
            source_connections: req.source_connections,
        })
    }

    /// The export a `"from"` request uses: a succeeded job that exported (a sync, an export
    /// or a dump; a job that used another's export has none of its own), with what it was
    /// made with. The request takes its source from it, so the same-database check holds.
    async fn export_to_load(&self, req: &mut SyncRequest) -> ApiResult<Option<JobRecord>> {
        let Some(from) = req.from.clone() else {
            return Ok(None);
        };
        let job = self.record(&from).await?;
        if let Some(origin) = job.request["from"].as_str() {
            return Err(conflict(
                "from",
                format!("job {from} used another job's export; use {origin} instead"),
            ));
        }
        if job.status != JobStatus::Succeeded {
            return Err(conflict(
                "from",
                format!(
                    "job {from} is {}; only a succeeded export can be loaded",
                    job.status.as_str()
                ),
            ));
        }
        let made = recorded_request(&job)?;
        if req.create_schema && !made.create_schema {
            return Err(ApiError::new(
                400,
                Error::config(
                    "create_schema",
                    format!("export {from} was made without create_schema, so it holds no table definitions"),
                ),
            ));
        }
        req.source_secret = made.source_secret;
        Ok(Some(job))
    }

    /// Starts a sync from a request [`super::parse_request`] accepted: checks both databases,
    /// takes the target's lock, records the job and starts the execution named after it.
    /// Nothing is started when any step refuses, and a lock taken is given back.
    /// Every check a start makes before anything is recorded: the export a `"from"` load
    /// uses (its source becomes the request's), the rules, the source, the target's rules
    /// and lock key.
    pub(super) async fn check_start(&self, req: &mut SyncRequest) -> ApiResult<Checked> {
        let export = self.export_to_load(req).await?;
        self.check_rules(req).await?;
        let source = self.resolve(&req.source_secret).await?;
        // A backup goes back into the database it was taken from.
        let restores_backup = export.as_ref().is_some_and(|e| e.kind == BACKUP_KIND);
        let lock_key = match &req.target_secret {
            None => None,
            Some(t) => Some(self.check_target(&source, t, restores_backup).await?),
        };
        Ok(Checked {
            export,
            source,
            lock_key,
        })
    }

    pub(super) async fn start(&self, mut req: SyncRequest, origin: Value) -> ApiResult<Value> {
        let Checked {
            export,
            source,
            lock_key,
        } = self.check_start(&mut req).await?;
        let estimate = self.quick_estimate(&req, &source, export.as_ref()).await;
        let job_id = uuid::Uuid::new_v4().to_string();
        let input = self.execution_input(&req, &job_id, lock_key.clone())?;
        if let Some(k) = &lock_key {
            self.jobs
                .lock_target(k, &job_id, self.settings.lock_ttl_secs)
                .await?;
        }
        let mut request = serde_json::to_value(&req).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut request {
            m.insert("origin".into(), origin);
        }
        let kind = match (req.mode, &req.from) {
            (Mode::Dump, _) => DUMP_KIND,
            (_, Some(_)) => IMPORT_KIND,
            (Mode::Sync, None) => "sync",
            (Mode::Export, None) => "export",
            (Mode::Refresh, None) => "refresh",
        };
        let record = JobRecord::new(&job_id, kind, request, lock_key.clone());
        let started = match &input.backup_job_id {
            Some(b) => {
                self.launch_with_backup(&record, &input, &req, export, b)
                    .await
            }
            None => self.launch(&record, &input).await,
        };
        let mut answer = self.answer(&job_id, lock_key.as_deref(), started).await?;
        if let Some(b) = &input.backup_job_id {
            answer["backup_job_id"] = json!(b);
        }
        answer["estimate"] = json!(estimate);
        Ok(answer)
    }

    /// Starts the backup job (an export of the target's tables in scope: the request's, or
    /// those of the export a `"from"` load loads), then the job itself, whose prepare step
    /// waits for it. When the job cannot start, the backup is stopped again.
    async fn launch_with_backup(
        &self,
        record: &JobRecord,
        input: &ExecutionInput,
        req: &SyncRequest,
        export: Option<JobRecord>,
        backup_id: &str,
    ) -> std::result::Result<String, (Error, bool)> {
        let scope_of = match &export {
            Some(e) => recorded_request(e).map_err(|e| (e, false))?,
            None => req.clone(),
        };
        let target = req.target_secret.clone().unwrap_or_default();
        let backup = backup_request(&scope_of, req, target);
        let backup_input = self
            .execution_input(&backup, backup_id, None)
            .map_err(|e| (e, false))?;
        let mut request = serde_json::to_value(&backup).unwrap_or(Value::Null);
        request["origin"] = json!({ "backup_for": record.job_id });
        let backup_record = JobRecord::new(backup_id, BACKUP_KIND, request, None);
        let backup_execution = self.launch(&backup_record, &backup_input).await?;
        let started = self.launch(record, input).await;
        if started.is_err() {
            let stopped = self
                .executions
                .stop(&backup_execution, "the job it backs up could not start")
                .await;
            log_compensation("stopping the backup", backup_id, stopped);
        }
        started
    }

    /// The answer to a start: the job and its links, or the refusal once the job is marked
    /// failed (when it was recorded) and the target's lock given back.
    async fn answer(
        &self,
        job_id: &str,
        lock_key: Option<&str>,
        started: std::result::Result<String, (Error, bool)>,
    ) -> ApiResult<Value> {
        match started {
            Ok(execution) => Ok(json!({
                "job_id": job_id,
                "status": "running",
                "links": links(job_id, &execution),
            })),
            Err((e, recorded)) => {
                if recorded {
                    let failed = fail_job(self.jobs, job_id, (&e).into(), None, None, None)
                        .await
                        .map(|_| ());
                    log_compensation("recording the failure", job_id, failed);
                }
                if let Some(k) = lock_key {
                    let released = self.jobs.release_target(k, job_id).await;
                    log_compensation("releasing the target lock", job_id, released);
                }
                Err(e.into())
            }
        }
    }

    /// Records the job and starts its execution; on failure, the error and whether the job
    /// record exists (so it can be marked failed).
    async fn launch(
        &self,
        record: &JobRecord,
        input: &ExecutionInput,
    ) -> std::result::Result<String, (Error, bool)> {
        self.jobs.create(record).await.map_err(|e| (e, false))?;
        let input_json = serde_json::to_string(input).unwrap_or_default();
        let execution = self
            .executions
            .start(&record.job_id, &input_json)
            .await
            .map_err(|e| (e, true))?;
        let running = JobChange {
            status: Some(JobStatus::Running),
            ..Default::default()
        };
        // The execution runs either way; a job left `queued` is only a stale status.
        if let Err(e) = self.jobs.update(&record.job_id, running).await {
            tracing::warn!(job = %record.job_id, error = %e, "could not mark the job running");
        }
        Ok(execution)
    }

    /// The export a retry of `job` loads: its own (a sync that failed once its export was
    /// complete) or the one it was loading (`"from"`). A job that stopped before its export
    /// was complete cannot resume consistently: the snapshot it read is gone.
    fn export_of_retry(job: &JobRecord, req: &SyncRequest) -> ApiResult<String> {
        let exported = matches!(job.phase, Phase::Importing | Phase::Finalizing);
        match (&req.from, req.mode) {
            (Some(from), Mode::Sync) => Ok(from.clone()),
            (None, Mode::Sync) if exported => Ok(job.job_id.clone()),
            (_, Mode::Export | Mode::Dump) => Err(conflict(
                "job",
                format!("job {} is an export or a dump; start a new one (its snapshot is gone)", job.job_id),
            )),
            (_, Mode::Refresh) => Err(conflict(
                "job",
                format!("job {} is a refresh; start a new one: it compares again and replaces only what still differs (every range it replaced was one transaction)", job.job_id),
            )),
            (None, Mode::Sync) => Err(conflict(
                "job",
                format!(
                    "job {} stopped while {}, before its export was complete: the snapshot it read is gone, so it cannot resume consistently; start a new job",
                    job.job_id,
                    job.phase.as_str()
                ),
            )),
        }
    }

    /// `POST /syncs/{id}/retry`: resumes a failed or cancelled load as a new execution of the
    /// same job (`<job id>-retry-<n>`): parts the target's ledger records stay loaded, the
    /// rest load from the parts in S3, and what the failure put back is taken again.
    pub async fn retry(&self, job_id: &str) -> ApiResult<Value> {
        let job = self.record(job_id).await?;
        if !matches!(job.status, JobStatus::Failed | JobStatus::Cancelled) {
            return Err(conflict(
                "job",
                format!(
                    "job {job_id} is {}; only a failed or cancelled job can be retried",
                    job.status.as_str()
                ),
            ));
        }
        let req = recorded_request(&job)?;
        let mut input = self.execution_input(&req, job_id, job.target.clone())?;
        input.data_job_id = Some(Self::export_of_retry(&job, &req)?);
        if let Some(k) = &job.target {
            self.jobs
                .lock_target(k, job_id, self.settings.lock_ttl_secs)
                .await?;
        }
        let name = format!("{job_id}-retry-{}", job.retries + 1);
        let retrying = JobChange {
            status: Some(JobStatus::Running),
            retry: Some(name.clone()),
            ..Default::default()
        };
        let input_json = serde_json::to_string(&input).unwrap_or_default();
        let started = match self.jobs.update(job_id, retrying).await {
            Err(e) => Err((e, false)),
            Ok(()) => self
                .executions
                .start(&name, &input_json)
                .await
                .map_err(|e| (e, true)),
        };
        let mut answer = self.answer(job_id, job.target.as_deref(), started).await?;
        answer["retries"] = json!(job.retries + 1);
        Ok(answer)
    }
}
