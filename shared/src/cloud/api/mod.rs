//! The HTTP API (`POST /syncs`, `GET /syncs`, `GET /syncs/{id}`, `DELETE /syncs/{id}`,
//! `POST /syncs/{id}/retry`, `GET /syncs/{id}/download`, `POST /connections/test`,
//! `GET /databases`; docs/openapi.yaml is the reference) and the
//! nightly schedule's entry point: request validation (strict, before anything starts,
//! [`request`]), the refusals (unknown, protected or same-as-source targets, a locked
//! target), the job record, the target lock and the Step Functions execution named after the
//! job id. Every call returns its result or an [`ApiError`]; only [`Api::handle`], the HTTP
//! edge, turns that into a response.

pub mod body;
pub mod connections;
mod estimate;
mod launch;
pub mod reply;
pub mod request;
pub mod services;
pub mod settings;
pub mod view;

pub use reply::{ApiError, Reply};
pub use request::{
    parse_request, ApiEvent, ApiOutput, ExecutionInput, Mode, ScheduledSync, SyncRequest,
    MAX_BODY_BYTES,
};
pub use services::{Credentials, Downloads, Executions, S3Downloads, StepFunctions};
pub use settings::ApiSettings;
pub use view::{job_view, links};

use crate::cloud::jobstore::{JobChange, JobRecord, JobStatus, JobStore, DUMP_KIND};
use crate::cloud::steps::plan::parse_rules;
use crate::error::{Error, Result};
use crate::model::scope::glob;
use crate::pg::conn::ConnSpec;
use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use serde_json::{json, Value};

type ApiResult<T> = std::result::Result<T, ApiError>;

/// What the API needs for one request.
pub struct Api<'a> {
    /// The deployment's rules.
    pub settings: &'a ApiSettings,
    /// Job records and target locks.
    pub jobs: &'a dyn JobStore,
    /// Step Functions.
    pub executions: &'a dyn Executions,
    /// Secrets Manager.
    pub credentials: &'a dyn Credentials,
    /// The dumps in S3.
    pub downloads: &'a dyn Downloads,
}

fn target_is(patterns: &[String], secret: &str, identity: &str) -> bool {
    patterns
        .iter()
        .any(|p| glob(p, secret) || glob(p, identity))
}

/// Logs a compensation that failed: the refusal the caller gets matters more, and the lock's
/// TTL or the job record's status still bound the damage.
fn log_compensation(what: &str, job_id: &str, r: Result<()>) {
    if let Err(e) = r {
        tracing::warn!(job = job_id, error = %e, "{what} failed while undoing a refused start");
    }
}

/// A secret that does not exist, may not be read or does not hold what it should is the
/// caller's mistake (400); a transient failure to read it is not.
fn secret_mistake(e: Error) -> ApiError {
    match e {
        Error::Io {
            retryable: false, ..
        }
        | Error::Config { .. } => ApiError::new(400, e),
        e => e.into(),
    }
}

impl Api<'_> {
    /// The credentials behind a secret id. A secret that does not exist, may not be read or
    /// does not describe a database is the caller's mistake (400); a transient failure to
    /// read it is not.
    async fn resolve(&self, secret: &str) -> ApiResult<ConnSpec> {
        self.credentials
            .resolve(secret)
            .await
            .map_err(secret_mistake)
    }

    /// The target's lock key, after the deployment's rules and the same-database check
    /// (which a restore of the target's own backup skips).
    async fn check_target(
        &self,
        source: &ConnSpec,
        target_secret: &str,
        own_backup: bool,
    ) -> ApiResult<String> {
        let rules = self.settings;
        if !rules.allowed_targets.is_empty()
            && !rules.allowed_targets.iter().any(|p| glob(p, target_secret))
        {
            return Err(Error::Protected(format!(
                "target secret {target_secret} is not one this deployment may load (DBSYNC_ALLOWED_TARGETS)"
            ))
            .into());
        }
        let target = self.resolve(target_secret).await?;
        if target_is(&rules.protected_targets, target_secret, &target.identity()) {
            return Err(Error::Protected(format!(
                "target {} (secret {target_secret}) is protected (DBSYNC_PROTECTED_TARGETS); dbsync never loads it",
                target.identity()
            ))
            .into());
        }
        if target.identity() == source.identity() && !own_backup {
            return Err(Error::SameDatabase(target.identity()).into());
        }
        Ok(target.identity())
    }

    /// The request's data rules parse, and the hash key they need is named and readable (a
    /// 400 otherwise); the plan step checks them against the source's catalog.
    async fn check_rules(&self, req: &SyncRequest) -> ApiResult<()> {
        let rules = parse_rules(req.rules.as_ref()).map_err(|e| ApiError::new(400, e))?;
        match (&req.rules_key_secret, rules) {
            (Some(k), Some(_)) => {
                self.credentials
                    .rules_key(k)
                    .await
                    .map_err(secret_mistake)?;
                Ok(())
            }
            (Some(_), None) => Err(ApiError::new(
                400,
                Error::config("rules_key_secret", "is given without rules"),
            )),
            (None, Some(r)) if r.needs_key() => Err(ApiError::new(
                400,
                Error::config(
                    "rules_key_secret",
                    "is needed: the rules hash, email, name and phone take their key from a secret",
                ),
            )),
            _ => Ok(()),
        }
    }

    /// A job's record, or a 404 naming it.
    async fn record(&self, job_id: &str) -> ApiResult<JobRecord> {
        match self.jobs.get(job_id).await? {
            Some(j) => Ok(j),
            None => Err(Error::NoSuchJob(job_id.to_string()).into()),
        }
    }

    /// A job's status, phase, progress and error.
    pub async fn get(&self, job_id: &str) -> ApiResult<Value> {
        let j = self.record(job_id).await?;
        Ok(job_view(
            &j,
            &self.settings.execution_arn(j.execution_name()),
        ))
    }

    /// Recent jobs, newest first.
    pub async fn list(&self, limit: usize) -> ApiResult<Value> {
        let jobs = self.jobs.recent(limit).await?;
        Ok(json!({
            "jobs": jobs
                .iter()
                .map(|j| job_view(j, &self.settings.execution_arn(j.execution_name())))
                .collect::<Vec<_>>()
        }))
    }

    /// Cancels a running job: stops its execution, marks it cancelled (the snapshot holder
    /// lets go when it sees that) and releases the target's lock. The target keeps what was
    /// loaded, recorded in its ledger; the next job on it truncates and starts over.
    pub async fn cancel(&self, job_id: &str) -> ApiResult<Value> {
        let job = self.record(job_id).await?;
        if matches!(
            job.status,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled
        ) {
            return Err(Error::JobEnded {
                job: job_id.to_string(),
                status: job.status.as_str().to_string(),
                waiting_for: "it could be cancelled".into(),
            }
            .into());
        }
        let execution = self.settings.execution_arn(job.execution_name());
        self.executions
            .stop(&execution, "cancelled through DELETE /syncs/{id}")
            .await?;
        let cancelled = JobChange {
            status: Some(JobStatus::Cancelled),
            exports_done: Some(true),
            ..Default::default()
        };
        self.jobs.update(job_id, cancelled.clone()).await?;
        if let Some(t) = &job.target {
            self.jobs.release_target(t, job_id).await?;
        }
        if job.request["backup"] == json!(true) {
            let backup = view::backup_job_id(job_id);
            let stopped = self.stop_backup(&backup, cancelled).await;
            log_compensation("cancelling the backup", &backup, stopped);
        }
        Ok(json!({ "job_id": job_id, "status": "cancelled", "links": links(job_id, &execution) }))
    }

    /// Cancels a cancelled job's backup too while it runs: nothing will load after it.
    async fn stop_backup(&self, backup: &str, cancelled: JobChange) -> Result<()> {
        match self.jobs.get(backup).await? {
            Some(b) if matches!(b.status, JobStatus::Queued | JobStatus::Running) => {
                let execution = self.settings.execution_arn(b.execution_name());
                self.executions
                    .stop(&execution, "the job it backs up was cancelled")
                    .await?;
                self.jobs.update(backup, cancelled).await
            }
            _ => Ok(()),
        }
    }

    /// `POST /syncs`.
    async fn post_sync(&self, event: &ApiGatewayProxyRequest) -> ApiResult<Reply> {
        let dry_run = match event.query_string_parameters.first("dry_run") {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => return Err(Error::config("dry_run", "must be true or false").into()),
        };
        let body = request_body(event)?;
        let req = parse_request(&body, self.settings)?;
        if dry_run {
            return self.dry_run(req).await.map(|b| Reply::ok(200, b));
        }
        let origin = json!({
            "api": {
                "caller": event.request_context.identity.user_arn,
                "request_id": event.request_context.request_id,
            }
        });
        self.start(req, origin).await.map(|b| Reply::ok(202, b))
    }

    /// `GET /syncs/{id}/download`: a short-lived link to a finished dump job's file.
    pub async fn download(&self, job_id: &str) -> ApiResult<Value> {
        let job = self.record(job_id).await?;
        let refuse =
            |status, message: String| Err(ApiError::new(status, Error::config("job", message)));
        if job.kind != DUMP_KIND {
            return refuse(409, format!(
                "job {job_id} is a {}, not a dump: start one with {{\"mode\": \"dump\", \"from\": \"{job_id}\"}}",
                job.kind
            ));
        }
        if job.status != JobStatus::Succeeded {
            return refuse(
                409,
                format!(
                    "job {job_id} is {}: its dump is not complete",
                    job.status.as_str()
                ),
            );
        }
        let Some(bytes) = self.downloads.size(job_id).await? else {
            return refuse(
                410,
                format!(
                    "the dump of job {job_id} is gone (the bucket's lifecycle removes job data)"
                ),
            );
        };
        let expires = std::time::Duration::from_secs(self.settings.download_expiry_secs);
        let url = self.downloads.link(job_id, expires).await?;
        let until = std::time::SystemTime::now() + expires;
        Ok(json!({
            "job_id": job_id,
            "url": url,
            "bytes": bytes,
            "expires_in_seconds": expires.as_secs(),
            "expires_at": humantime::format_rfc3339_seconds(until).to_string(),
        }))
    }

    /// `POST /connections/test`.
    async fn post_connection_test(&self, event: &ApiGatewayProxyRequest) -> ApiResult<Value> {
        let body = request_body(event)?;
        let test = connections::parse_connection_test(&body)?;
        self.test_connection(&test.secret).await
    }

    /// `GET /syncs?limit=`.
    async fn list_syncs(&self, event: &ApiGatewayProxyRequest) -> ApiResult<Value> {
        let limit = event
            .query_string_parameters
            .first("limit")
            .map(|l| l.parse::<usize>())
            .unwrap_or(Ok(20));
        match limit {
            Ok(l) if (1..=100).contains(&l) => self.list(l).await,
            _ => Err(Error::config("limit", "must be a whole number from 1 to 100").into()),
        }
    }

    /// Routes one API Gateway request: the HTTP edge, where results become responses.
    pub async fn handle(&self, event: &ApiGatewayProxyRequest) -> Reply {
        let method = event.http_method.as_str().to_ascii_uppercase();
        let path = event.path.clone().unwrap_or_default();
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let result = match (method.as_str(), segments.as_slice()) {
            ("POST", ["syncs"]) => self.post_sync(event).await,
            ("GET", ["syncs"]) => self.list_syncs(event).await.map(|b| Reply::ok(200, b)),
            ("GET", ["syncs", id]) => self.get(id).await.map(|b| Reply::ok(200, b)),
            ("DELETE", ["syncs", id]) => self.cancel(id).await.map(|b| Reply::ok(202, b)),
            ("POST", ["syncs", id, "retry"]) => self.retry(id).await.map(|b| Reply::ok(202, b)),
            ("GET", ["syncs", id, "download"]) => {
                self.download(id).await.map(|b| Reply::ok(200, b))
            }
            ("POST", ["connections", "test"]) => self
                .post_connection_test(event)
                .await
                .map(|b| Reply::ok(200, b)),
            ("GET", ["databases"]) => self.databases().await.map(|b| Reply::ok(200, b)),
            (_, ["syncs"])
            | (_, ["syncs", _])
            | (_, ["syncs", _, "retry" | "download"])
            | (_, ["connections", "test"])
            | (_, ["databases"]) => Err(ApiError::no_route(
                405,
                format!("{method} is not allowed on {path}"),
            )),
            _ => Err(ApiError::no_route(404, format!("no route {method} {path}"))),
        };
        result.unwrap_or_else(Reply::from)
    }

    /// Starts the sync a schedule's constant input describes (the same checks as `POST`);
    /// a refusal is the core error itself, under its own stable name.
    pub async fn scheduled(&self, event: &ScheduledSync) -> Result<Value> {
        let body = serde_json::to_vec(&event.request).unwrap_or_default();
        let req = parse_request(&body, self.settings)?;
        self.start(req, json!({ "schedule": event.schedule }))
            .await
            .map_err(ApiError::into_core)
    }
}

fn request_body(event: &ApiGatewayProxyRequest) -> ApiResult<Vec<u8>> {
    let raw = event.body.clone().unwrap_or_default();
    if event.is_base64_encoded {
        aws_smithy_types::base64::decode(raw.trim())
            .map_err(|_| Error::config("request body", "is not valid base64").into())
    } else {
        Ok(raw.into_bytes())
    }
}
