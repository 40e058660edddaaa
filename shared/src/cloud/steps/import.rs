//! The import-part step: one part loaded exactly once, counted on the job when loaded now.

use super::JobPlace;
use crate::cloud::jobstore::Counters;
use crate::error::Result;
use crate::model::part::LoadOutcome;
use crate::parts::read_manifest;
use crate::pg::conn::ConnSpec;
use crate::pipeline::import::{connect_part_loader, import_part, ImportPlan};
use serde::{Deserialize, Serialize};

/// One import invocation: loads one part (exactly once) and adds it to the job's counters
/// when it was loaded now.
pub async fn import_step(
    target: &ConnSpec,
    place: JobPlace<'_>,
    plan: &ImportPlan,
    part_id: &str,
) -> Result<LoadOutcome> {
    let JobPlace { store, jobs } = place;
    let m = read_manifest(store).await?;
    let mut client = connect_part_loader(target, plan).await?;
    let outcome = import_part(&mut client, &m, part_id, store, plan.shadow).await?;
    if let LoadOutcome::Loaded(s) = &outcome {
        jobs.add(
            &m.job_id,
            Counters {
                chunks_done: 0,
                parts_done: 1,
                rows: s.rows,
                bytes: s.bytes,
            },
        )
        .await?;
    }
    Ok(outcome)
}

/// The import-part function's input: one item of a wave's Distributed Map. Small on purpose
/// (Step Functions state is capped at 256 KiB): never the whole plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportPartEvent {
    /// Secrets Manager id of the target's credentials.
    pub target_secret: String,
    /// The job.
    pub job_id: String,
    /// Whether loads may run with `session_replication_role = replica` (from prepare).
    pub replica: bool,
    /// The part to load.
    pub part_id: String,
    /// An atomic import: the part loads into its table's shadow (from prepare).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shadow: bool,
}

impl ImportPartEvent {
    /// The minimal plan a part load needs.
    pub fn plan(&self) -> ImportPlan {
        ImportPlan {
            job_id: self.job_id.clone(),
            waves: Vec::new(),
            replica: self.replica,
            already_done: false,
            shadow: self.shadow,
        }
    }
}

/// The import-part function's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportPartOutput {
    /// The part.
    pub part_id: String,
    /// Loaded now (false: an earlier delivery had loaded it).
    pub loaded: bool,
    /// Rows loaded now.
    pub rows: u64,
}
