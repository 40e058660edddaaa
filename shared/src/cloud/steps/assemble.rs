//! The assemble step: the manifest from every part's durable result, refusing while a
//! planned chunk lacks its last segment; sequences read after the data.

use super::{read_plan, JobPlace, PartResult};
use crate::cloud::jobstore::{now_rfc3339, JobChange, Phase};
use crate::error::{Error, Result, Role};
use crate::model::catalog::Sequence;
use crate::model::chunk::Plan;
use crate::model::manifest::{self, Manifest};
use crate::model::options::Mode;
use crate::pg::catalog::read_sequence_values;
use crate::pg::conn::ConnSpec;
use crate::pipeline::{assemble_manifest, ManifestHeader};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

/// Assembles the job: reads every part's result from the store, checks that every planned
/// chunk got its last segment, reads the sequences (after the data, so never behind it),
/// writes the manifest and moves the job to importing with its part total.
pub async fn assemble_job(
    source: &ConnSpec,
    place: JobPlace<'_>,
    job_id: &str,
    snapshot: &str,
) -> Result<Manifest> {
    let JobPlace { store, jobs } = place;
    let started = Instant::now();
    let plan = read_plan(store).await?;
    let mut parts = Vec::new();
    let mut complete = BTreeSet::new();
    for key in store.list("results/").await?.into_iter().map(|o| o.key) {
        let data = store.get(&key).await?;
        let r: PartResult = serde_json::from_slice(&data).map_err(|e| Error::JobData {
            path: store.location(&key),
            message: format!("unreadable part result: {e}"),
        })?;
        if r.last {
            complete.insert((r.part.chunk.table, r.part.chunk.seq));
        }
        parts.push(r.part);
    }
    let missing: Vec<String> = plan
        .chunks
        .iter()
        .filter(|c| !complete.contains(&(c.table, c.seq)))
        .map(|c| format!("{} #{}", plan.catalog.tables[c.table].name, c.seq))
        .collect();
    let sequences = sequences_once_complete(source, job_id, &plan, missing).await?;
    let n_parts = parts.len() as u64;
    let header = ManifestHeader {
        job_id: job_id.to_string(),
        created_at: now_rfc3339(),
        snapshot: snapshot.to_string(),
        timings_ms: BTreeMap::from([(
            "assemble".to_string(),
            started.elapsed().as_millis() as u64,
        )]),
    };
    let m = assemble_manifest(&plan, header, parts, sequences);
    store.put(manifest::KEY, &m.to_json()).await?;
    jobs.update(
        job_id,
        JobChange {
            phase: Some(Phase::Importing),
            totals: Some((plan.chunks.len() as u64, n_parts)),
            // Every chunk is exported: the snapshot holder may let go.
            exports_done: Some(true),
            ..Default::default()
        },
    )
    .await?;
    Ok(m)
}

/// The plan's sequences with the source's values, read once every chunk is done (so never
/// behind the data the exports read); refused while `missing` names chunks not done.
pub(super) async fn sequences_once_complete(
    source: &ConnSpec,
    job_id: &str,
    plan: &Plan,
    missing: Vec<String>,
) -> Result<Vec<Sequence>> {
    if !missing.is_empty() {
        return Err(Error::Incomplete {
            job: job_id.to_string(),
            missing,
        });
    }
    let client = source
        .connect(Role::Source, &format!("dbsync-{job_id}-asm"))
        .await?;
    let mut sequences = plan.catalog.sequences.clone();
    read_sequence_values(&client, Role::Source, &mut sequences).await?;
    Ok(sequences)
}

/// The assemble function's input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssembleEvent {
    /// The job.
    pub job_id: String,
    /// Secrets Manager id of the source's credentials (sequences are read after the data).
    pub source_secret: String,
    /// The snapshot the exports read, recorded in the manifest.
    pub snapshot: String,
    /// `refresh`: the spans' results are checked instead of parts, no manifest written.
    #[serde(default)]
    pub mode: Mode,
}

/// The assemble function's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssembleOutput {
    /// The job.
    pub job_id: String,
    /// Tables in the manifest.
    pub tables: usize,
    /// Parts in the manifest.
    pub parts: usize,
    /// Where the manifest is, in the job's folder.
    pub manifest: String,
}
