//! Holding one exported source snapshot for chunk exports that run as separate processes
//! (Lambda invocations): a snapshot lives only as long as the transaction that exported it, so
//! a holder keeps that transaction open, publishes the snapshot id on the job record, and lets
//! go when the job record says every chunk is exported, the job stopped, or its window ended.

use crate::cloud::jobstore::{JobChange, JobStatus, JobStore};
use crate::error::{Error, Result};
use crate::pg::conn::ConnSpec;
use std::time::{Duration, Instant};

/// Why a holder let go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Released {
    /// Every chunk was exported.
    ExportsDone,
    /// The job failed or was cancelled.
    JobStopped,
    /// The window ended first; exports that still need the snapshot will fail with
    /// [`Error::SnapshotReleased`].
    WindowEnded,
}

/// Exports a snapshot, records it on job `job_id`, and holds it until released (see
/// [`Released`]), checking the job record every `poll`.
pub async fn hold(
    source: &ConnSpec,
    jobs: &dyn JobStore,
    job_id: &str,
    window: Duration,
    poll: Duration,
) -> Result<(String, Released)> {
    let started = Instant::now();
    let (client, snapshot) =
        crate::pg::snapshot::open_snapshot(source, &format!("dbsync-{job_id}-snap")).await?;
    jobs.update(
        job_id,
        JobChange {
            snapshot: Some(snapshot.clone()),
            ..Default::default()
        },
    )
    .await?;
    tracing::info!(job = job_id, snapshot = %snapshot, window_s = window.as_secs(), "holding the snapshot");
    let released = loop {
        if started.elapsed() >= window {
            break Released::WindowEnded;
        }
        tokio::time::sleep(poll.min(window.saturating_sub(started.elapsed()))).await;
        if client.is_closed() {
            return Err(Error::SnapshotReleased(snapshot));
        }
        let job = jobs.get(job_id).await?;
        match job {
            Some(j) if j.exports_done => break Released::ExportsDone,
            Some(j) if matches!(j.status, JobStatus::Failed | JobStatus::Cancelled) => {
                break Released::JobStopped
            }
            Some(_) => {}
            None => break Released::JobStopped,
        }
    };
    drop(client);
    tracing::info!(
        job = job_id,
        ?released,
        held_ms = started.elapsed().as_millis() as u64,
        "snapshot released"
    );
    Ok((snapshot, released))
}
