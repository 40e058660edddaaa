//! The serverless pipeline's steps, one file per step, each one function a Lambda handler
//! calls, with its event types: state moves between invocations only through the part store
//! (plan, chunk list, parts, per-part results) and the job store (snapshot id, totals,
//! counters). Handlers resolve credentials and settings; nothing here knows about Lambda or
//! Step Functions.

use crate::cloud::jobstore::JobStore;
use crate::error::{Error, Result};
use crate::model::chunk::Plan;
use crate::model::manifest::Manifest;
use crate::model::part::ExportedPart;
use crate::parts::{read_manifest, PartStore};
use serde::{Deserialize, Serialize};

pub mod assemble;
pub mod dump;
pub mod export;
pub mod fail;
pub mod finalize;
pub mod hold;
pub mod import;
pub mod plan;
pub mod prepare;
pub mod refresh;

pub use assemble::{assemble_job, AssembleEvent, AssembleOutput};
pub use dump::{write_dump, WriteDumpEvent, DUMP_KEY};
pub use export::{
    export_step, ExportChunkEvent, ExportChunkOutput, ExportStep, ExportStepResult, ExportTuning,
};
pub use fail::{fail_job, CaughtError, FailEvent, FailOutput};
pub use finalize::{finalize_job, finish_export, FinalizeEvent, FinalizeOutput};
pub use hold::{HoldSnapshotEvent, HoldSnapshotOutput};
pub use import::{import_step, ImportPartEvent, ImportPartOutput};
pub use plan::{await_snapshot, plan_job, PlanEvent, PlanOutput, PlanScope, PlanSummary};
pub use prepare::{prepare, PrepareEvent, PrepareOutput, WaveRef};
pub use refresh::{assemble_refresh, finish_refresh, refresh_step};

/// Where a job's state lives between invocations: its folder in the part store and its
/// record in the job store.
#[derive(Clone, Copy)]
pub struct JobPlace<'a> {
    /// The job's folder (plan, chunk list, parts, results, manifest).
    pub store: &'a dyn PartStore,
    /// Job records and target locks.
    pub jobs: &'a dyn JobStore,
}

/// Store key of the plan (catalog, FK order, chunks).
pub const PLAN_KEY: &str = "plan.json";
/// Where the plan step keeps what creating the tables would take (`create_schema`).
pub const SCHEMA_KEY: &str = "schema.json";
/// Store key of the chunk list the export Map reads its items from.
pub const CHUNKS_KEY: &str = "chunks.json";

/// The object key, within `bucket`, of `key` in `store` - what a Distributed Map's
/// ItemReader needs.
pub fn bucket_key(store: &dyn PartStore, bucket: &str, key: &str) -> String {
    store
        .location(key)
        .trim_start_matches(&format!("s3://{bucket}/"))
        .to_string()
}

/// Store key of the result record of a part.
pub fn result_key(part_id: &str) -> String {
    format!("results/{part_id}.json")
}

/// What an export invocation records next to its part, for the assembler.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartResult {
    /// The part.
    pub part: ExportedPart,
    /// The chunk's last segment: the chunk is complete.
    pub last: bool,
}

/// One item of the export Map: a chunk to export (in a refresh, a span to compare and
/// replace), labelled for the console.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkItem {
    /// The job.
    pub job_id: String,
    /// Table index in the plan.
    pub table: usize,
    /// Chunk position within the table (in a refresh, the span's position in the job's).
    pub chunk: usize,
    /// `schema.table #n`, shown in the execution view.
    pub label: String,
}

impl ChunkItem {
    /// The connection lease holder of this chunk's `segment`th invocation.
    pub fn lease_holder(&self, segment: u32) -> String {
        format!("{}{segment}", lease_prefix(&self.job_id, &self.label))
    }
}

/// What the lease holder of every invocation of one chunk starts with (the trailing slash
/// keeps `t #1` from matching `t #10`).
pub fn lease_prefix(job_id: &str, label: &str) -> String {
    format!("{job_id}/{label}/")
}

/// JSON bytes of our own plain data types, which always serialise.
pub(crate) fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// Reads the plan a [`plan_job`] wrote.
pub async fn read_plan(store: &dyn PartStore) -> Result<Plan> {
    let data = store.get(PLAN_KEY).await?;
    serde_json::from_slice(&data).map_err(|e| Error::JobData {
        path: store.location(PLAN_KEY),
        message: format!("unreadable plan: {e}"),
    })
}

/// The manifest of the export a job loads, as that job's: a load of an earlier job's export
/// (`"from"`) keeps its target ledger rows, counters and put-backs under its own job id, so
/// one export loads into any number of targets, or into the same one again.
pub async fn job_manifest(store: &dyn PartStore, job_id: &str) -> Result<Manifest> {
    let mut m = read_manifest(store).await?;
    m.job_id = job_id.to_string();
    Ok(m)
}

/// The job whose folder holds the parts a load step reads: the export it loads, or itself.
pub fn data_job<'a>(job_id: &'a str, data_job_id: &'a Option<String>) -> &'a str {
    data_job_id.as_deref().unwrap_or(job_id)
}
