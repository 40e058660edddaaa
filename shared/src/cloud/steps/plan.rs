//! The plan step: the job planned inside the held snapshot (waited for when the holder
//! publishes it beside this step), the plan and the labelled chunk list written to the store.

use super::refresh::refresh_items;
use super::{to_json, ChunkItem, JobPlace, CHUNKS_KEY, PLAN_KEY, SCHEMA_KEY};
use crate::cloud::jobstore::{JobChange, JobStatus, JobStore, Phase};
use crate::error::{Error, Result, Role};
use crate::model::options::Mode;
use crate::model::rules::RulesFile;
use crate::model::scope::Scope;
use crate::pg::conn::ConnSpec;
use crate::pg::snapshot::join_snapshot;
use crate::pipeline::build_plan;
use crate::pipeline::planning::apply_rules;
use crate::pipeline::refresh::span_sizing;
use crate::pipeline::refresh::SpanSetup;
use crate::plan::chunks::Sizing;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// What a job plans: its scope, chunk size and data rules.
#[derive(Debug, Clone, Copy)]
pub struct PlanScope<'a> {
    /// Tables in scope.
    pub scope: &'a Scope,
    /// Chunk size, bytes.
    pub chunk_bytes: u64,
    /// Data rules applied at export.
    pub rules: Option<&'a RulesFile>,
    /// Also read what creating the tables would take, for the prepare step
    /// (`create_schema`).
    pub create_schema: bool,
    /// A refresh of this target: ranges of at most 8 MiB in spans of `chunk_bytes`
    /// ([`span_sizing`]), the target checked, the chunk list one item per span.
    pub refresh: Option<&'a ConnSpec>,
}

impl<'a> PlanScope<'a> {
    /// A scope at a chunk size, without rules.
    pub fn new(scope: &'a Scope, chunk_bytes: u64) -> Self {
        PlanScope {
            scope,
            chunk_bytes,
            rules: None,
            create_schema: false,
            refresh: None,
        }
    }
}

/// What planning found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSummary {
    /// Tables in scope.
    pub tables: usize,
    /// Chunks to export.
    pub chunks: usize,
    /// Where the chunk list is, in the store.
    pub chunks_key: String,
    /// Chunk exports the source takes at once, all jobs together (its `max_connections` less
    /// a reserve).
    pub connection_limit: u32,
}

/// Plans the job inside the held snapshot and writes the plan and the chunk list to the store
/// (Step Functions state is capped at 256 KiB: thousands of chunks never travel inline).
pub async fn plan_job(
    source: &ConnSpec,
    snapshot: &str,
    place: JobPlace<'_>,
    job_id: &str,
    what: PlanScope<'_>,
) -> Result<PlanSummary> {
    let JobPlace { store, jobs } = place;
    let app = format!("dbsync-{job_id}-plan");
    let client = join_snapshot(source, snapshot, &app).await?;
    let sizing = match what.refresh {
        Some(_) => span_sizing(what.chunk_bytes),
        None => Sizing::fixed(what.chunk_bytes),
    };
    let mut plan = build_plan(&client, what.scope, sizing).await?;
    apply_rules(
        &client,
        &mut plan.catalog,
        what.rules,
        source.has_rules_key(),
    )
    .await?;
    if what.create_schema {
        let schema = crate::pipeline::bootstrap::read_schema(&client, &plan).await?;
        store.put(SCHEMA_KEY, &to_json(&schema)).await?;
    }
    store.put(PLAN_KEY, &to_json(&plan)).await?;
    let items: Vec<ChunkItem> = match what.refresh {
        Some(target) => {
            let s = SpanSetup {
                reader: &client,
                app: &app,
                target,
                plan: &plan,
                job_id,
                chunk_bytes: what.chunk_bytes,
            };
            refresh_items(s, store).await?
        }
        None => plan
            .chunks
            .iter()
            .map(|c| ChunkItem {
                job_id: job_id.to_string(),
                table: c.table,
                chunk: c.seq,
                label: format!("{} #{}", plan.catalog.tables[c.table].name, c.seq),
            })
            .collect(),
    };
    store.put(CHUNKS_KEY, &to_json(&items)).await?;
    jobs.update(
        job_id,
        JobChange {
            phase: Some(Phase::Exporting),
            totals: Some((items.len() as u64, 0)),
            tables_total: Some(plan.catalog.tables.len() as u64),
            ..Default::default()
        },
    )
    .await?;
    Ok(PlanSummary {
        tables: plan.catalog.tables.len(),
        chunks: items.len(),
        chunks_key: CHUNKS_KEY.to_string(),
        connection_limit: crate::pg::catalog::connection_limit(&client, Role::Source).await?,
    })
}

/// Waits for the snapshot holder running beside the plan to publish its snapshot on the job
/// record; refuses when the job stops first or nothing is published before `deadline`.
pub async fn await_snapshot(
    jobs: &dyn JobStore,
    job_id: &str,
    deadline: Instant,
) -> Result<String> {
    let waited = Instant::now();
    loop {
        match jobs.get(job_id).await? {
            Some(j) if j.snapshot.is_some() => return Ok(j.snapshot.unwrap_or_default()),
            Some(j) if matches!(j.status, JobStatus::Failed | JobStatus::Cancelled) => {
                return Err(Error::JobEnded {
                    job: job_id.to_string(),
                    status: j.status.as_str().to_string(),
                    waiting_for: "its source snapshot was published".into(),
                })
            }
            Some(_) => {}
            None => return Err(Error::NoSuchJob(job_id.to_string())),
        }
        if Instant::now() >= deadline {
            return Err(Error::SnapshotTimeout {
                job: job_id.to_string(),
                waited_seconds: waited.elapsed().as_secs(),
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// The plan function's input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanEvent {
    /// The job.
    pub job_id: String,
    /// Secrets Manager id of the source's credentials.
    pub source_secret: String,
    /// The held snapshot to plan in; absent: the one the job's snapshot holder (running
    /// beside this step) publishes on the job record, waited for.
    #[serde(default)]
    pub snapshot: Option<String>,
    /// Tables in scope.
    #[serde(default)]
    pub scope: Scope,
    /// Chunk size in bytes (default 256 MiB).
    #[serde(default)]
    pub chunk_bytes: Option<u64>,
    /// Data rules applied at export (a `--rules` file's JSON).
    #[serde(default)]
    pub rules: Option<serde_json::Value>,
    /// Secrets Manager id of the rules' hash key.
    #[serde(default)]
    pub rules_key_secret: Option<String>,
    /// Read what creating the tables would take, for the prepare step.
    #[serde(default)]
    pub create_schema: bool,
    /// The request's cap on this job's chunk exports at once on the source (`source_connections`).
    #[serde(default)]
    pub source_connections: Option<u32>,
    /// `refresh`: plan the spans of a refresh of the target (`target_secret`) instead of
    /// chunks to export.
    #[serde(default)]
    pub mode: Mode,
    /// Secrets Manager id of the target's credentials (a refresh's; ignored otherwise).
    #[serde(default)]
    pub target_secret: Option<String>,
}

impl PlanEvent {
    /// The event's rules, parsed (a 400 at the API made sure they parse).
    pub fn rules_file(&self) -> Result<Option<RulesFile>> {
        parse_rules(self.rules.as_ref())
    }
}

/// Parses rules given as JSON in a request or an event, naming the field.
pub fn parse_rules(rules: Option<&serde_json::Value>) -> Result<Option<RulesFile>> {
    match rules {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => RulesFile::parse(&v.to_string())
            .map(Some)
            .map_err(|m| Error::config("rules", m)),
    }
}

/// The plan function's output: what the export Map's ItemReader reads, and what it passes on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanOutput {
    /// The job.
    pub job_id: String,
    /// Passed on to the exports.
    pub source_secret: String,
    /// Passed on to the exports.
    pub snapshot: String,
    /// Tables in scope.
    pub tables: usize,
    /// Chunks to export.
    pub chunks: usize,
    /// Bucket of the chunk list (ItemReader `Bucket`).
    pub items_bucket: String,
    /// Key of the chunk list (ItemReader `Key`).
    pub items_key: String,
    /// Chunk exports the source takes at once, all jobs together (the leases' cap).
    #[serde(default)]
    pub connection_limit: Option<u32>,
    /// A refresh: the target's secret id, for every span's invocation (null otherwise: the
    /// items are chunks to export).
    #[serde(default)]
    pub refresh_target_secret: Option<String>,
}
