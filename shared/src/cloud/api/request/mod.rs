//! What a sync request may say, parsed strictly before anything starts (unknown fields,
//! bad values and oversized bodies refused, naming the field), and what the state machine
//! is given for it; the api function's event and output shapes.

use crate::cloud::lambda::MAX_SNAPSHOT_WINDOW_SECONDS;
use crate::error::{Error, Result};
use crate::model::chunk::DEFAULT_CHUNK_BYTES;
use crate::model::manifest::Consistency;
pub use crate::model::options::{Analyze, Mode};
use crate::model::options::{LoadChoices, Spelling};
use crate::model::scope::Scope;
use crate::model::settings::first_given;
use crate::model::size::parse_size;
use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::settings::ApiSettings;

/// Largest request body accepted (a request is a few hundred bytes; this leaves room for long
/// table lists and refuses anything that is not a request).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What a sync request may say. Unknown fields are refused, so a misspelt option never
/// silently falls back to a default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    /// Secrets Manager id of the source's credentials (none with `from`: the export's).
    #[serde(default)]
    pub source_secret: String,
    /// Load an earlier job's export (its job id) into the target instead of exporting:
    /// export once, load many. The export decides the source, tables, snapshot and rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
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
    /// A `tables` glob that matches no table is not an error (an exact name always is).
    #[serde(default)]
    pub allow_empty_patterns: bool,
    /// Chunk size: bytes, or text with a unit ("256MiB").
    #[serde(default)]
    pub chunk_size: Option<Value>,
    /// Chunk exports and part loads running at once (capped per database by the deployment).
    #[serde(default)]
    pub concurrency: Option<u32>,
    /// `sync` (export then load the target), `export` (a snapshot in S3 only) or `dump` (a
    /// snapshot written as one SQL file in S3).
    #[serde(default)]
    pub mode: Mode,
    /// Keep the target's secondary indexes during the load.
    #[serde(default)]
    pub keep_indexes: bool,
    /// How each loaded table gets statistics, so the target is ready to query: `copy` (the
    /// default; the source's on PostgreSQL 18+, ANALYZE elsewhere), `on` (always ANALYZE),
    /// `off`; `true` and `false`, as before the field had three values, read as copy and off.
    #[serde(default)]
    pub analyze: Analyze,
    /// The target keeps its old data until the whole load commits: parts load into shadow
    /// tables, swapped in by one transaction in the finalize step (see
    /// [`crate::pipeline::shadow`]); up to 8 GiB on the source, since the swap is one
    /// finalize invocation's work.
    #[serde(default)]
    pub atomic: bool,
    /// `snapshot` (every chunk reads one snapshot, relayed from holder to holder for as long
    /// as the exports take; fail if the chain of holders breaks) or `per_chunk` (continue on
    /// per-chunk snapshots then, and say so in the manifest).
    #[serde(default)]
    pub consistency: Consistency,
    /// How long one holder invocation holds the source snapshot before the next relays it,
    /// seconds (at most [`MAX_SNAPSHOT_WINDOW_SECONDS`]; the snapshot itself lasts as long as
    /// the exports).
    #[serde(default)]
    pub snapshot_window_seconds: Option<u64>,
    /// Seconds of work per export invocation before it hands over a continuation (default:
    /// the invocation's own time limit less its margin). Small values force continuations.
    #[serde(default)]
    pub export_budget_seconds: Option<u64>,
    /// Seconds of work per Finalize invocation before it hands over to the next, the step
    /// under way running on in the target (default: the invocation's own time limit less its
    /// margin). Small values force continuations.
    #[serde(default)]
    pub finalize_budget_seconds: Option<u64>,
    /// Rows per keyset page of an export (default 50,000).
    #[serde(default)]
    pub page_rows: Option<u64>,
    /// Data rules applied at export, as in a `--rules` file (`{"tables": {...}}`).
    #[serde(default)]
    pub rules: Option<Value>,
    /// Secrets Manager id of the hash key of the rules `hash`, `email`, `name`, `phone`
    /// (the secret's string, or its `"key"` field).
    #[serde(default)]
    pub rules_key_secret: Option<String>,
    /// Create the tables in scope the target lacks (and what they need) from the source's
    /// catalog before the load.
    #[serde(default)]
    pub create_schema: bool,
    /// Back the target up before emptying anything: its tables in scope are exported to S3
    /// by a job of their own (`<job id>-backup`, a snapshot of the target), and the load
    /// starts only once that job has succeeded. `"from": "<job id>-backup"` restores it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub backup: bool,
    /// At most this many of the source's sessions for chunk exports at once, counting every
    /// job reading that database (connection leases); default the source's
    /// `max_connections` less a reserve, and the deployment's `DBSYNC_SOURCE_CONNECTIONS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_connections: Option<u32>,
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
    /// How loaded tables get statistics (executions started before the field existed, or
    /// when it was a boolean, read as before: absent or true is copy).
    #[serde(default)]
    pub analyze: Analyze,
    /// Load into shadow tables and swap them in at the end (the target keeps its old data
    /// until then).
    #[serde(default)]
    pub atomic: bool,
    /// Snapshot or per-chunk consistency.
    pub consistency: Consistency,
    /// Snapshot window, seconds (the request's, or the default). Executions started before
    /// it had the request's name called it `window_seconds`.
    #[serde(alias = "window_seconds")]
    pub snapshot_window_seconds: u64,
    /// Per-invocation export budget, seconds (absent: the invocation's limit); formerly
    /// `budget_seconds`.
    #[serde(alias = "budget_seconds")]
    pub export_budget_seconds: Option<u64>,
    /// Per-invocation finalize budget, seconds (absent: the invocation's limit). Always
    /// present, null when none.
    #[serde(default)]
    pub finalize_budget_seconds: Option<u64>,
    /// Rows per keyset page.
    pub page_rows: Option<u64>,
    /// Data rules (checked shape; the plan step checks them against the catalog). Always
    /// present, null when none: the state machine's paths need the field.
    #[serde(default)]
    pub rules: Option<Value>,
    /// The hash key's secret id (null when none).
    #[serde(default)]
    pub rules_key_secret: Option<String>,
    /// Create the tables the target lacks before the load.
    #[serde(default)]
    pub create_schema: bool,
    /// The job whose parts are loaded when it is not this one (a load `from` an earlier
    /// export, a retry resuming a load): the state machine skips the export. Always
    /// present, null when the job exports.
    #[serde(default)]
    pub data_job_id: Option<String>,
    /// The job backing the target up (`"backup": true`): the prepare step empties nothing
    /// until it has succeeded. Always present, null when none.
    #[serde(default)]
    pub backup_job_id: Option<String>,
    /// The request's cap on chunk exports at once on the source. Always present, null when
    /// none.
    #[serde(default)]
    pub source_connections: Option<u32>,
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

/// Parses and checks a request body without touching anything: a 400 names the field.
pub fn parse_request(body: &[u8], settings: &ApiSettings) -> Result<SyncRequest> {
    let req = read_request(body)?;
    check_request(&req, settings)?;
    Ok(req)
}

/// Reads a request body as a [`SyncRequest`] (no deployment rules applied): a mistake names
/// the field it is in (`analyze`, an unknown `tablez`), else `request body`.
pub fn read_request(body: &[u8]) -> Result<SyncRequest> {
    let bad = |m: String| Error::config("request body", m);
    if body.len() > MAX_BODY_BYTES {
        return Err(bad(format!(
            "is {} bytes; the limit is {MAX_BODY_BYTES}",
            body.len()
        )));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(bad(
            "is empty; send a JSON object with at least \"source_secret\" and \"target_secret\""
                .into(),
        ));
    }
    super::body::read_json(body, "request body", "is not a valid sync request")
}

/// The fields `req` gives: those whose value is not the one an absent field takes.
pub fn given_fields(req: &SyncRequest) -> std::collections::BTreeSet<String> {
    let (Ok(Value::Object(given)), Ok(Value::Object(absent))) = (
        serde_json::to_value(req),
        serde_json::to_value(SyncRequest::default()),
    ) else {
        return Default::default();
    };
    given
        .into_iter()
        .filter(|(k, v)| absent.get(k) != Some(v))
        .map(|(k, _)| k)
        .collect()
}

/// What a load `from` an earlier export may not say, because the export decided it
/// ([`Setting::export_decides`](crate::model::settings::Setting)).
fn check_from(req: &SyncRequest, from: &str) -> Result<()> {
    if from.trim().is_empty() {
        return Err(Error::config("from", "is empty; name an export's job id"));
    }
    let given = given_fields(req);
    if let Some(field) = first_given(|s| s.export_decides, |f| given.contains(f)) {
        return Err(Error::config(
            field,
            format!("is decided by the export {from}; leave it out of a load \"from\" an export"),
        ));
    }
    if matches!(req.mode, Mode::Export | Mode::Refresh) {
        return Err(Error::config(
            "mode",
            "\"from\" loads an export into a target (mode \"sync\") or dumps it (mode \"dump\"); a refresh compares the live source with the target",
        ));
    }
    Ok(())
}

fn check_request(req: &SyncRequest, settings: &ApiSettings) -> Result<()> {
    match &req.from {
        Some(from) => check_from(req, from)?,
        None if req.source_secret.trim().is_empty() => {
            return Err(Error::config(
                "source_secret",
                "is empty (name the source's secret, or an export to load with \"from\")",
            ))
        }
        None => {}
    }
    match (&req.target_secret, req.mode) {
        (None, Mode::Sync | Mode::Refresh) => {
            return Err(Error::config(
                "target_secret",
                format!(
                "is required for mode \"{}\" (use mode \"export\" or \"dump\" for a snapshot only)",
                req.mode.as_str()
            ),
            ))
        }
        (Some(_), Mode::Export | Mode::Dump) => {
            return Err(Error::config(
                "target_secret",
                "is not used by modes \"export\" and \"dump\"; leave it out",
            ))
        }
        (Some(t), Mode::Sync | Mode::Refresh) if t.trim().is_empty() => {
            return Err(Error::config("target_secret", "is empty"))
        }
        (Some(t), Mode::Sync | Mode::Refresh) if *t == req.source_secret => {
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
        if !(1..=MAX_SNAPSHOT_WINDOW_SECONDS).contains(&w) {
            return Err(Error::config(
                "snapshot_window_seconds",
                format!("{w} is out of range: 1 to {MAX_SNAPSHOT_WINDOW_SECONDS} (a Lambda runs at most 15 minutes)"),
            ));
        }
    }
    LoadChoices {
        loads_target: req.mode.loads() && req.target_secret.is_some(),
        atomic: req.atomic,
        create_schema: req.create_schema,
        backup: req.backup,
        changed_only: req.mode == Mode::Refresh,
        ..LoadChoices::default()
    }
    .check(Spelling::Field)?;
    if req.source_connections == Some(0) {
        return Err(Error::config("source_connections", "must be at least 1"));
    }
    if req.page_rows == Some(0) {
        return Err(Error::config("page_rows", "must be at least 1"));
    }
    chunk_bytes(req)?;
    Scope::from_lists(&req.schemas, &req.tables, &req.exclude)?;
    Ok(())
}

impl SyncRequest {
    /// The tables in scope its patterns name.
    pub(crate) fn scope(&self) -> Result<Scope> {
        Ok(Scope {
            allow_empty_patterns: self.allow_empty_patterns,
            ..Scope::from_lists(&self.schemas, &self.tables, &self.exclude)?
        })
    }

    /// Exports and loads at once: its own (default 4), never over the deployment's cap.
    pub(crate) fn fanout(&self, max_concurrency: u32) -> u32 {
        self.concurrency.unwrap_or(4).min(max_concurrency)
    }
}

/// The request's `chunk_size` in bytes (default 256 MiB, at least 64 KiB).
pub fn chunk_bytes(req: &SyncRequest) -> Result<u64> {
    let bytes = match &req.chunk_size {
        None => DEFAULT_CHUNK_BYTES,
        Some(Value::Number(n)) => n.as_u64().ok_or_else(|| {
            Error::config("chunk_size", format!("{n} is not a whole number of bytes"))
        })?,
        Some(Value::String(s)) => parse_size(s, "chunk_size")?,
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
mod tests;
