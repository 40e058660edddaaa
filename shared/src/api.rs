//! The HTTP API (`POST /syncs`, `GET /syncs`, `GET /syncs/{id}`, `DELETE /syncs/{id}`) and the
//! nightly schedule's entry point: request validation (strict, before anything starts), the
//! refusals (unknown, protected or same-as-source targets, a locked target), the job record,
//! the target lock and the Step Functions execution named after the job id. API Gateway
//! events in, API Gateway responses out; the execution service sits behind [`Executions`].

use crate::conn::ConnSpec;
use crate::error::{Error, Result};
use crate::jobs::{JobChange, JobRecord, JobStatus, JobStore};
use crate::scope::{glob, Scope};
use async_trait::async_trait;
use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use aws_lambda_events::encodings::Body;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Largest request body accepted (a request is a few hundred bytes; this leaves room for long
/// table lists and refuses anything that is not a request).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What a sync request may say. Unknown fields are refused, so a misspelt option never
/// silently falls back to a default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    /// Secrets Manager id of the source's credentials.
    pub source_secret: String,
    /// Secrets Manager id of the target's credentials (not for `mode: export`).
    #[serde(default)]
    pub target_secret: Option<String>,
    /// Schemas to include (patterns).
    #[serde(default)]
    pub schemas: Vec<String>,
    /// Tables to include (patterns).
    #[serde(default)]
    pub tables: Vec<String>,
    /// Tables to leave out (patterns).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Chunk size: bytes, or text with a unit ("256MiB").
    #[serde(default)]
    pub chunk_size: Option<Value>,
    /// Chunk exports and part loads running at once (capped per database by the deployment).
    #[serde(default)]
    pub concurrency: Option<u32>,
    /// `sync` (export then load the target) or `export` (a snapshot in S3 only).
    #[serde(default)]
    pub mode: Mode,
    /// Keep the target's secondary indexes during the load.
    #[serde(default)]
    pub keep_indexes: bool,
    /// `snapshot` (every chunk reads one snapshot; fail if the window cannot cover the
    /// exports) or `per_chunk` (continue on per-chunk snapshots and say so in the manifest).
    #[serde(default)]
    pub consistency: Consistency,
    /// How long the source snapshot may be held, seconds (at most 840).
    #[serde(default)]
    pub snapshot_window_seconds: Option<u64>,
    /// Seconds of work per export invocation before it hands over a continuation (default:
    /// the invocation's own time limit less its margin). Small values force continuations.
    #[serde(default)]
    pub export_budget_seconds: Option<u64>,
    /// Rows per keyset page of an export (default 50,000).
    #[serde(default)]
    pub page_rows: Option<u64>,
}

/// What a job does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", try_from = "String")]
pub enum Mode {
    /// Export, then load the target.
    #[default]
    Sync,
    /// Export a snapshot to S3 only.
    Export,
}

/// What the exports of one job read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", try_from = "String")]
pub enum Consistency {
    /// One snapshot for every chunk.
    #[default]
    Snapshot,
    /// One snapshot for as long as it can be held, then a snapshot per chunk invocation.
    PerChunk,
}

// serde's own message for an unknown variant does not name the field; these do.
impl TryFrom<String> for Mode {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        match s.as_str() {
            "sync" => Ok(Mode::Sync),
            "export" => Ok(Mode::Export),
            _ => Err(format!("mode {s:?} is not one of \"sync\", \"export\"")),
        }
    }
}

impl TryFrom<String> for Consistency {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        match s.as_str() {
            "snapshot" => Ok(Consistency::Snapshot),
            "per_chunk" => Ok(Consistency::PerChunk),
            _ => Err(format!(
                "consistency {s:?} is not one of \"snapshot\", \"per_chunk\""
            )),
        }
    }
}

/// The state machine's input: a validated request, with the job id and the target's lock key.
/// Secret ids only, never secret values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionInput {
    /// The job (also the execution's name).
    pub job_id: String,
    /// `sync` or `export`.
    pub mode: Mode,
    /// Source credentials' secret id.
    pub source_secret: String,
    /// Target credentials' secret id (absent for an export).
    pub target_secret: Option<String>,
    /// The target's lock key (`host:port/db`).
    pub lock_key: Option<String>,
    /// Tables in scope.
    pub scope: Scope,
    /// Chunk size, bytes.
    pub chunk_bytes: u64,
    /// Exports and loads at once.
    pub concurrency: u32,
    /// Keep secondary indexes.
    pub keep_indexes: bool,
    /// Snapshot or per-chunk consistency.
    pub consistency: Consistency,
    /// Snapshot window, seconds.
    pub window_seconds: u64,
    /// Per-invocation export budget, seconds (absent: the invocation's limit).
    pub budget_seconds: Option<u64>,
    /// Rows per keyset page.
    pub page_rows: Option<u64>,
}

/// The nightly schedule's event: the same request as `POST /syncs`, as the rule's constant
/// input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduledSync {
    /// Which schedule fired (recorded on the job).
    pub schedule: String,
    /// The sync to start.
    pub request: Value,
}

/// The deployment's rules for requests.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// `DBSYNC_STATE_MACHINE_ARN`: the state machine executions start on.
    pub state_machine_arn: String,
    /// `DBSYNC_ALLOWED_TARGETS`: comma-separated secret-id patterns a job may load; empty:
    /// any secret the function can read.
    pub allowed_targets: Vec<String>,
    /// `DBSYNC_PROTECTED_TARGETS`: comma-separated patterns, matched against the target's
    /// secret id and its `host:port/db`, that no job may load (production).
    pub protected_targets: Vec<String>,
    /// `DBSYNC_MAX_CONCURRENCY` (default 16): the cap on a request's concurrency, per database.
    pub max_concurrency: u32,
    /// `DBSYNC_LOCK_TTL_SECONDS` (default 43,200): how long a target lock lasts if a job
    /// never releases it.
    pub lock_ttl_secs: u64,
}

impl ApiSettings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(&|k| std::env::var(k).ok())
    }

    /// Reads settings through `env`.
    pub fn from_lookup(env: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        let list = |k: &str| -> Vec<String> {
            env(k)
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        };
        let number = |k: &str, default: u64| {
            Ok::<_, Error>(crate::lambda::env_number(env, k)?.unwrap_or(default))
        };
        Ok(ApiSettings {
            state_machine_arn: env("DBSYNC_STATE_MACHINE_ARN")
                .filter(|v| !v.is_empty())
                .ok_or_else(|| Error::config("DBSYNC_STATE_MACHINE_ARN", "is not set"))?,
            allowed_targets: list("DBSYNC_ALLOWED_TARGETS"),
            protected_targets: list("DBSYNC_PROTECTED_TARGETS"),
            max_concurrency: number("DBSYNC_MAX_CONCURRENCY", 16)?.clamp(1, 1000) as u32,
            lock_ttl_secs: number("DBSYNC_LOCK_TTL_SECONDS", 43_200)?,
        })
    }

    /// The ARN of the execution of job `job_id`.
    pub fn execution_arn(&self, job_id: &str) -> String {
        format!(
            "{}:{job_id}",
            self.state_machine_arn
                .replacen(":stateMachine:", ":execution:", 1)
        )
    }
}

/// Starting and stopping executions (Step Functions; tests may record instead).
#[async_trait]
pub trait Executions: Send + Sync {
    /// Starts an execution named `name` with `input`; returns its ARN.
    async fn start(&self, name: &str, input: &str) -> Result<String>;
    /// Stops an execution.
    async fn stop(&self, execution_arn: &str, cause: &str) -> Result<()>;
}

/// Executions of one Step Functions state machine.
pub struct StepFunctions {
    client: aws_sdk_sfn::Client,
    state_machine_arn: String,
}

impl StepFunctions {
    /// Executions of `state_machine_arn`.
    pub fn new(client: aws_sdk_sfn::Client, state_machine_arn: &str) -> Self {
        StepFunctions {
            client,
            state_machine_arn: state_machine_arn.to_string(),
        }
    }
}

#[async_trait]
impl Executions for StepFunctions {
    async fn start(&self, name: &str, input: &str) -> Result<String> {
        let out = self
            .client
            .start_execution()
            .state_machine_arn(&self.state_machine_arn)
            .name(name)
            .input(input)
            .send()
            .await
            .map_err(|e| {
                crate::aws::sdk_error(&self.state_machine_arn, "starting an execution", e)
            })?;
        Ok(out.execution_arn().to_string())
    }

    async fn stop(&self, execution_arn: &str, cause: &str) -> Result<()> {
        self.client
            .stop_execution()
            .execution_arn(execution_arn)
            .error("DbsyncCancelled")
            .cause(cause)
            .send()
            .await
            .map_err(|e| crate::aws::sdk_error(execution_arn, "stopping the execution", e))?;
        Ok(())
    }
}

/// Resolves secret ids to connection specs (Secrets Manager; tests may use a map).
#[async_trait]
pub trait Credentials: Send + Sync {
    /// The connection a secret describes; an error naming the secret when it cannot be read.
    async fn resolve(&self, secret_id: &str) -> Result<ConnSpec>;
}

#[async_trait]
impl Credentials for aws_sdk_secretsmanager::Client {
    async fn resolve(&self, secret_id: &str) -> Result<ConnSpec> {
        crate::secrets::fetch(self, secret_id).await
    }
}

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
}

/// An answer: HTTP status and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: Value,
}

impl Reply {
    fn ok(status: u16, body: Value) -> Self {
        Reply { status, body }
    }

    fn error(status: u16, name: &str, message: impl Into<String>) -> Self {
        Reply {
            status,
            body: json!({ "error": { "name": name, "message": message.into() } }),
        }
    }

    /// The reply for a core error: its stable name, its message, a status that says whose
    /// fault it is.
    fn from_error(e: &Error) -> Self {
        let status = match e {
            Error::Config { .. } | Error::SameDatabase(_) | Error::EmptyScope(_) => 400,
            Error::TargetLocked(_) => 409,
            _ if e.is_retryable() => 503,
            _ => 500,
        };
        Reply::error(status, e.name(), e.to_string())
    }

    /// As an API Gateway proxy response.
    pub fn into_response(self) -> ApiGatewayProxyResponse {
        let mut headers = aws_lambda_events::http::HeaderMap::new();
        headers.insert(
            "content-type",
            aws_lambda_events::http::HeaderValue::from_static("application/json"),
        );
        let mut r = ApiGatewayProxyResponse::default();
        r.status_code = i64::from(self.status);
        r.headers = headers;
        r.body = Some(Body::Text(self.body.to_string()));
        r
    }
}

/// Parses and checks a request body without touching anything: a 400 names the field.
pub fn parse_request(
    body: &[u8],
    settings: &ApiSettings,
) -> std::result::Result<SyncRequest, Reply> {
    let bad = |m: String| Reply::error(400, "DbsyncConfig", m);
    if body.len() > MAX_BODY_BYTES {
        return Err(bad(format!(
            "request body is {} bytes; the limit is {MAX_BODY_BYTES}",
            body.len()
        )));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(bad("request body is empty; send a JSON object with at least \"source_secret\" and \"target_secret\"".into()));
    }
    let req: SyncRequest = serde_json::from_slice(body)
        .map_err(|e| bad(format!("request body is not a valid sync request: {e}")))?;
    check_request(&req, settings).map_err(|e| Reply::from_error(&e))?;
    Ok(req)
}

fn check_request(req: &SyncRequest, settings: &ApiSettings) -> Result<()> {
    if req.source_secret.trim().is_empty() {
        return Err(Error::config("source_secret", "is empty"));
    }
    match (&req.target_secret, req.mode) {
        (None, Mode::Sync) => {
            return Err(Error::config(
                "target_secret",
                "is required for mode \"sync\" (use mode \"export\" for a snapshot only)",
            ))
        }
        (Some(_), Mode::Export) => {
            return Err(Error::config(
                "target_secret",
                "is not used by mode \"export\"; leave it out",
            ))
        }
        (Some(t), Mode::Sync) if t.trim().is_empty() => {
            return Err(Error::config("target_secret", "is empty"))
        }
        (Some(t), Mode::Sync) if *t == req.source_secret => {
            return Err(Error::SameDatabase(format!("both are secret {t}")))
        }
        _ => {}
    }
    if let Some(c) = req.concurrency {
        if c == 0 || c > settings.max_concurrency {
            return Err(Error::config(
                "concurrency",
                format!(
                    "{c} is out of range: 1 to {} (DBSYNC_MAX_CONCURRENCY)",
                    settings.max_concurrency
                ),
            ));
        }
    }
    if let Some(w) = req.snapshot_window_seconds {
        if !(1..=840).contains(&w) {
            return Err(Error::config(
                "snapshot_window_seconds",
                format!("{w} is out of range: 1 to 840 (a Lambda runs at most 15 minutes)"),
            ));
        }
    }
    if req.page_rows == Some(0) {
        return Err(Error::config("page_rows", "must be at least 1"));
    }
    chunk_bytes(req)?;
    Scope::from_lists(&req.schemas, &req.tables, &req.exclude)?;
    Ok(())
}

fn chunk_bytes(req: &SyncRequest) -> Result<u64> {
    let bytes = match &req.chunk_size {
        None => crate::plan::DEFAULT_CHUNK_BYTES,
        Some(Value::Number(n)) => n.as_u64().ok_or_else(|| {
            Error::config("chunk_size", format!("{n} is not a whole number of bytes"))
        })?,
        Some(Value::String(s)) => crate::size::parse_size(s, "chunk_size")?,
        Some(_) => {
            return Err(Error::config(
                "chunk_size",
                "must be a number of bytes or a size such as \"256MiB\"",
            ))
        }
    };
    if bytes < 64 * 1024 {
        return Err(Error::config("chunk_size", "must be at least 64KiB"));
    }
    Ok(bytes)
}

fn target_is(patterns: &[String], secret: &str, identity: &str) -> bool {
    patterns
        .iter()
        .any(|p| glob(p, secret) || glob(p, identity))
}

impl Api<'_> {
    /// Starts a sync from a request [`parse_request`] accepted: checks both databases, takes
    /// the target's lock, records the job and starts the execution named after it. Nothing is
    /// started when any step refuses, and a lock taken is given back.
    async fn start(&self, req: SyncRequest, origin: Value) -> std::result::Result<Value, Reply> {
        // A secret that does not exist, may not be read or does not describe a database is
        // the caller's mistake (400); a transient failure to read it is not.
        let unknown = |which: &str, e: Error| match e {
            Error::Io {
                retryable: false, ..
            }
            | Error::Config { .. } => Reply::error(400, e.name(), format!("unknown {which}: {e}")),
            e => Reply::from_error(&e),
        };
        let source = self
            .credentials
            .resolve(&req.source_secret)
            .await
            .map_err(|e| unknown("source", e))?;
        let lock_key = match &req.target_secret {
            None => None,
            Some(t) => {
                if !self.settings.allowed_targets.is_empty()
                    && !self.settings.allowed_targets.iter().any(|p| glob(p, t))
                {
                    return Err(Reply::error(
                        403,
                        "DbsyncConfig",
                        format!("target secret {t} is not one this deployment may load (DBSYNC_ALLOWED_TARGETS)"),
                    ));
                }
                let target = self
                    .credentials
                    .resolve(t)
                    .await
                    .map_err(|e| unknown("target", e))?;
                if target_is(&self.settings.protected_targets, t, &target.identity()) {
                    return Err(Reply::error(
                        403,
                        "DbsyncConfig",
                        format!(
                            "target {} (secret {t}) is protected (DBSYNC_PROTECTED_TARGETS); dbsync never loads it",
                            target.identity()
                        ),
                    ));
                }
                if target.identity() == source.identity() {
                    return Err(Reply::from_error(&Error::SameDatabase(target.identity())));
                }
                Some(target.identity())
            }
        };
        let job_id = uuid::Uuid::new_v4().to_string();
        let input = ExecutionInput {
            job_id: job_id.clone(),
            mode: req.mode,
            source_secret: req.source_secret.clone(),
            target_secret: req.target_secret.clone(),
            lock_key: lock_key.clone(),
            scope: Scope::from_lists(&req.schemas, &req.tables, &req.exclude)
                .map_err(|e| Reply::from_error(&e))?,
            chunk_bytes: chunk_bytes(&req).map_err(|e| Reply::from_error(&e))?,
            concurrency: req
                .concurrency
                .unwrap_or(4)
                .min(self.settings.max_concurrency),
            keep_indexes: req.keep_indexes,
            consistency: req.consistency,
            window_seconds: req.snapshot_window_seconds.unwrap_or(840),
            budget_seconds: req.export_budget_seconds,
            page_rows: req.page_rows,
        };
        if let Some(k) = &lock_key {
            self.jobs
                .lock_target(k, &job_id, self.settings.lock_ttl_secs)
                .await
                .map_err(|e| Reply::from_error(&e))?;
        }
        let release = || async {
            if let Some(k) = &lock_key {
                let _ = self.jobs.release_target(k, &job_id).await;
            }
        };
        let mut request = serde_json::to_value(&req).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut request {
            m.insert("origin".into(), origin);
        }
        let kind = match req.mode {
            Mode::Sync => "sync",
            Mode::Export => "export",
        };
        let record = JobRecord::new(&job_id, kind, request, lock_key.clone());
        if let Err(e) = self.jobs.create(&record).await {
            release().await;
            return Err(Reply::from_error(&e));
        }
        let input_json = serde_json::to_string(&input).unwrap_or_default();
        match self.executions.start(&job_id, &input_json).await {
            Ok(execution) => {
                let _ = self
                    .jobs
                    .update(
                        &job_id,
                        JobChange {
                            status: Some(JobStatus::Running),
                            ..Default::default()
                        },
                    )
                    .await;
                Ok(json!({
                    "job_id": job_id,
                    "status": "running",
                    "links": links(&job_id, &execution),
                }))
            }
            Err(e) => {
                let _ = crate::serverless::fail_job(
                    self.jobs,
                    &job_id,
                    (&e).into(),
                    lock_key.as_deref(),
                )
                .await;
                release().await;
                Err(Reply::from_error(&e))
            }
        }
    }

    /// A job's status, phase, progress and error.
    pub async fn get(&self, job_id: &str) -> std::result::Result<Value, Reply> {
        match self.jobs.get(job_id).await {
            Ok(Some(j)) => Ok(job_view(&j, &self.settings.execution_arn(job_id))),
            Ok(None) => Err(no_such_job(job_id)),
            Err(e) => Err(Reply::from_error(&e)),
        }
    }

    /// Recent jobs, newest first.
    pub async fn list(&self, limit: usize) -> std::result::Result<Value, Reply> {
        let jobs = self
            .jobs
            .recent(limit)
            .await
            .map_err(|e| Reply::from_error(&e))?;
        Ok(json!({
            "jobs": jobs
                .iter()
                .map(|j| job_view(j, &self.settings.execution_arn(&j.job_id)))
                .collect::<Vec<_>>()
        }))
    }

    /// Cancels a running job: stops its execution, marks it cancelled (the snapshot holder
    /// lets go when it sees that) and releases the target's lock. The target keeps what was
    /// loaded, recorded in its ledger; the next job on it truncates and starts over.
    pub async fn cancel(&self, job_id: &str) -> std::result::Result<Value, Reply> {
        let job = match self.jobs.get(job_id).await {
            Ok(Some(j)) => j,
            Ok(None) => return Err(no_such_job(job_id)),
            Err(e) => return Err(Reply::from_error(&e)),
        };
        if matches!(
            job.status,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled
        ) {
            return Err(Reply::error(
                409,
                "DbsyncConfig",
                format!("job {job_id} has already ended ({})", job.status.as_str()),
            ));
        }
        let execution = self.settings.execution_arn(job_id);
        self.executions
            .stop(&execution, "cancelled through DELETE /syncs/{id}")
            .await
            .map_err(|e| Reply::from_error(&e))?;
        self.jobs
            .update(
                job_id,
                JobChange {
                    status: Some(JobStatus::Cancelled),
                    exports_done: Some(true),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| Reply::from_error(&e))?;
        if let Some(t) = &job.target {
            self.jobs
                .release_target(t, job_id)
                .await
                .map_err(|e| Reply::from_error(&e))?;
        }
        Ok(json!({ "job_id": job_id, "status": "cancelled", "links": links(job_id, &execution) }))
    }

    /// Routes one API Gateway request.
    pub async fn handle(&self, event: &ApiGatewayProxyRequest) -> Reply {
        let method = event.http_method.as_str().to_ascii_uppercase();
        let path = event.path.clone().unwrap_or_default();
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let result = match (method.as_str(), segments.as_slice()) {
            ("POST", ["syncs"]) => match request_body(event) {
                Ok(body) => match parse_request(&body, self.settings) {
                    Ok(req) => {
                        let origin = json!({
                            "api": {
                                "caller": event.request_context.identity.user_arn,
                                "request_id": event.request_context.request_id,
                            }
                        });
                        self.start(req, origin).await.map(|b| Reply::ok(202, b))
                    }
                    Err(r) => Err(r),
                },
                Err(r) => Err(r),
            },
            ("GET", ["syncs"]) => {
                let limit = event
                    .query_string_parameters
                    .first("limit")
                    .map(|l| l.parse::<usize>())
                    .unwrap_or(Ok(20));
                match limit {
                    Ok(l) if (1..=100).contains(&l) => {
                        self.list(l).await.map(|b| Reply::ok(200, b))
                    }
                    _ => Err(Reply::error(
                        400,
                        "DbsyncConfig",
                        "query parameter limit must be a whole number from 1 to 100",
                    )),
                }
            }
            ("GET", ["syncs", id]) => self.get(id).await.map(|b| Reply::ok(200, b)),
            ("DELETE", ["syncs", id]) => self.cancel(id).await.map(|b| Reply::ok(202, b)),
            (_, ["syncs"]) | (_, ["syncs", _]) => Err(Reply::error(
                405,
                "DbsyncConfig",
                format!("{method} is not allowed on {path}"),
            )),
            _ => Err(Reply::error(
                404,
                "DbsyncConfig",
                format!("no route {method} {path}"),
            )),
        };
        result.unwrap_or_else(|r| r)
    }

    /// Starts the sync a schedule's constant input describes (the same checks as `POST`).
    pub async fn scheduled(&self, event: &ScheduledSync) -> Result<Value> {
        let body = serde_json::to_vec(&event.request).unwrap_or_default();
        let req = parse_request(&body, self.settings).map_err(reply_error)?;
        self.start(req, json!({ "schedule": event.schedule }))
            .await
            .map_err(reply_error)
    }
}

/// A refusal as a core error, for callers without HTTP (the schedule).
fn reply_error(r: Reply) -> Error {
    let name = r.body["error"]["name"].as_str().unwrap_or("DbsyncConfig");
    let message = r.body["error"]["message"]
        .as_str()
        .unwrap_or("refused")
        .to_string();
    match name {
        "DbsyncTargetLocked" => Error::TargetLocked(message),
        "DbsyncSameDatabase" => Error::SameDatabase(message),
        _ => Error::config("scheduled request", message),
    }
}

fn request_body(event: &ApiGatewayProxyRequest) -> std::result::Result<Vec<u8>, Reply> {
    let raw = event.body.clone().unwrap_or_default();
    if event.is_base64_encoded {
        aws_smithy_types::base64::decode(raw.trim())
            .map_err(|_| Reply::error(400, "DbsyncConfig", "request body is not valid base64"))
    } else {
        Ok(raw.into_bytes())
    }
}

fn no_such_job(job_id: &str) -> Reply {
    Reply::error(404, "DbsyncConfig", format!("no job {job_id}"))
}

fn links(job_id: &str, execution_arn: &str) -> Value {
    let region = execution_arn.split(':').nth(3).unwrap_or("us-east-1");
    json!({
        "self": format!("/syncs/{job_id}"),
        "execution": execution_arn,
        "console": format!(
            "https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{execution_arn}"
        ),
    })
}

/// A job as the API shows it: no secrets (the record never holds any).
pub fn job_view(j: &JobRecord, execution_arn: &str) -> Value {
    let pct = j.progress_pct();
    let elapsed = humantime::parse_rfc3339(&j.created_at)
        .ok()
        .and_then(|t| std::time::SystemTime::now().duration_since(t).ok())
        .map(|d| d.as_secs_f64());
    let running = matches!(j.status, JobStatus::Queued | JobStatus::Running);
    let eta = match (running, elapsed) {
        (true, Some(e)) if pct > 0.5 => Some(((e * (100.0 - pct)) / pct).round() as u64),
        _ => None,
    };
    json!({
        "job_id": j.job_id,
        "kind": j.kind,
        "status": j.status.as_str(),
        "phase": j.phase.as_str(),
        "request": j.request,
        "target": j.target,
        "created_at": j.created_at,
        "updated_at": j.updated_at,
        "progress": {
            "chunks_done": j.counters.chunks_done,
            "chunks_total": j.chunks_total,
            "parts_done": j.counters.parts_done,
            "parts_total": j.parts_total,
            "rows": j.counters.rows,
            "bytes": j.counters.bytes,
            "percent": (pct * 10.0).round() / 10.0,
            "eta_seconds": eta,
        },
        "error": j.error,
        "links": links(&j.job_id, execution_arn),
    })
}

/// The api function's input: an API Gateway request, or the schedule's constant input.
#[derive(Debug, Clone)]
pub enum ApiEvent {
    /// `POST/GET/DELETE /syncs...`.
    Http(Box<ApiGatewayProxyRequest>),
    /// The nightly schedule.
    Schedule(ScheduledSync),
}

impl<'de> Deserialize<'de> for ApiEvent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let v = Value::deserialize(d)?;
        if v.get("httpMethod").is_some() {
            serde_json::from_value(v)
                .map(|r| ApiEvent::Http(Box::new(r)))
                .map_err(D::Error::custom)
        } else if v.get("schedule").is_some() {
            serde_json::from_value(v)
                .map(ApiEvent::Schedule)
                .map_err(D::Error::custom)
        } else {
            Err(D::Error::custom(
                "neither an API Gateway request (httpMethod) nor a schedule input (schedule, request)",
            ))
        }
    }
}

/// The api function's output: an API Gateway response, or the started job for a schedule.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum ApiOutput {
    /// For API Gateway.
    Http(Box<ApiGatewayProxyResponse>),
    /// For the schedule: the job started.
    Schedule(Value),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ApiSettings {
        ApiSettings::from_lookup(&|k| match k {
            "DBSYNC_STATE_MACHINE_ARN" => {
                Some("arn:aws:states:eu-west-1:123456789012:stateMachine:dbsync".into())
            }
            "DBSYNC_MAX_CONCURRENCY" => Some("8".into()),
            _ => None,
        })
        .expect("settings")
    }

    fn refused(body: &str) -> String {
        let r = parse_request(body.as_bytes(), &settings()).expect_err("refused");
        assert_eq!(r.status, 400, "{body}: {:?}", r.body);
        r.body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    #[test]
    fn a_minimal_request_is_accepted_with_defaults() {
        let r = parse_request(
            br#"{"source_secret":"prod/db","target_secret":"staging/db"}"#,
            &settings(),
        )
        .expect("accepted");
        assert_eq!(r.mode, Mode::Sync);
        assert_eq!(r.consistency, Consistency::Snapshot);
        assert_eq!(
            chunk_bytes(&r).expect("size"),
            crate::plan::DEFAULT_CHUNK_BYTES
        );
    }

    #[test]
    fn bad_bodies_get_a_400_that_names_the_problem() {
        assert!(refused("").contains("empty"));
        assert!(refused("{not json").contains("not a valid sync request"));
        assert!(
            refused(r#"{"source_secret":"a","target_secret":"b","chunk_sise":1}"#)
                .contains("unknown field `chunk_sise`")
        );
        assert!(refused(r#"{"source_secret":"a"}"#).contains("target_secret"));
        assert!(refused(r#"{"source_secret":"a","target_secret":"a"}"#).contains("same database"));
        assert!(
            refused(r#"{"source_secret":"a","target_secret":"b","concurrency":9}"#)
                .contains("1 to 8")
        );
        assert!(
            refused(r#"{"source_secret":"a","target_secret":"b","chunk_size":"lots"}"#)
                .contains("chunk_size")
        );
        assert!(
            refused(r#"{"source_secret":"a","target_secret":"b","mode":"mirror"}"#)
                .contains("mode")
        );
        assert!(
            refused(r#"{"source_secret":"a","target_secret":"b","tables":["a.b.c"]}"#)
                .contains("more than one dot")
        );
        assert!(refused(
            r#"{"source_secret":"a","target_secret":"b","snapshot_window_seconds":3600}"#
        )
        .contains("840"));
        let big = format!(
            r#"{{"source_secret":"a","target_secret":"b","tables":["{}"]}}"#,
            "t".repeat(MAX_BODY_BYTES)
        );
        assert!(refused(&big).contains("limit"));
    }

    #[test]
    fn an_export_needs_no_target_and_refuses_one() {
        let r = parse_request(br#"{"source_secret":"a","mode":"export"}"#, &settings())
            .expect("export");
        assert_eq!(r.mode, Mode::Export);
        assert!(
            refused(r#"{"source_secret":"a","target_secret":"b","mode":"export"}"#)
                .contains("not used")
        );
    }

    #[test]
    fn the_execution_arn_follows_from_the_state_machine_and_the_job_id() {
        assert_eq!(
            settings().execution_arn("j1"),
            "arn:aws:states:eu-west-1:123456789012:execution:dbsync:j1"
        );
    }

    #[test]
    fn an_event_is_either_an_api_request_or_a_schedule_input() {
        let api: ApiEvent =
            serde_json::from_str(include_str!("../../events/api-post-sync.json")).expect("api");
        assert!(matches!(api, ApiEvent::Http(_)));
        let s: ApiEvent =
            serde_json::from_str(include_str!("../../events/schedule.json")).expect("schedule");
        assert!(matches!(s, ApiEvent::Schedule(_)));
        assert!(serde_json::from_str::<ApiEvent>(r#"{"hello":1}"#).is_err());
    }
}
