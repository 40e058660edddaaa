//! The import-part step: one part loaded exactly once, counted on the job when loaded now.

use super::{job_manifest, JobPlace};
use crate::cloud::jobstore::Counters;
use crate::error::Result;
use crate::model::manifest::Manifest;
use crate::model::part::LoadOutcome;
use crate::pg::conn::ConnSpec;
use crate::pg::ledger;
use crate::pipeline::import::{connect_part_loader, import_part, ImportPlan, PartLoad};
use crate::pipeline::progress::NoProgress;
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
    let m = job_manifest(store, &plan.job_id).await?;
    let mut client = connect_part_loader(target, plan).await?;
    let load = PartLoad {
        manifest: &m,
        part_id,
        store,
        shadow: plan.shadow,
        progress: &NoProgress,
    };
    let outcome = import_part(&mut client, load).await?;
    if let LoadOutcome::Loaded(s) = &outcome {
        let loaded = ledger::loaded_rows(&client, &m.job_id).await?;
        let expected: Vec<(String, usize)> = m
            .tables
            .iter()
            .map(|t| (t.table.name.to_string(), t.parts.len()))
            .collect();
        if let Some(table) = table_of(&m, part_id) {
            jobs.progress(&m.job_id, &table, tables_done(&expected, &loaded))
                .await?;
        }
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

/// The table a part belongs to.
fn table_of(m: &Manifest, part_id: &str) -> Option<String> {
    m.tables
        .iter()
        .find(|t| t.parts.iter().any(|p| p.id == part_id))
        .map(|t| t.table.name.to_string())
}

/// How many tables (`(name, parts)`) have every part loaded, by the ledger's part counts
/// per table (`(table, parts, rows)`).
fn tables_done(expected: &[(String, usize)], loaded: &[(String, i64, i64)]) -> u64 {
    expected
        .iter()
        .filter(|(name, want)| {
            let parts = loaded
                .iter()
                .find(|(n, _, _)| n == name)
                .map_or(0, |(_, p, _)| *p);
            parts.max(0) as usize >= *want
        })
        .count() as u64
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
    /// The job whose export holds the part, when not this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_job_id: Option<String>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_is_done_once_the_ledger_holds_every_one_of_its_parts() {
        let expected = vec![("a.t".to_string(), 3), ("a.empty".to_string(), 0)];
        assert_eq!(
            tables_done(&expected, &[]),
            1,
            "a table without parts is done"
        );
        assert_eq!(tables_done(&expected, &[("a.t".into(), 2, 10)]), 1);
        assert_eq!(tables_done(&expected, &[("a.t".into(), 3, 10)]), 2);
    }
}
