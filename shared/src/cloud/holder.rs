//! Holding one exported source snapshot for chunk exports that run as separate processes
//! (Lambda invocations): a snapshot lives only as long as the transaction that exported it, so
//! a holder keeps that transaction open, publishes the snapshot id on the job record, and lets
//! go when the job record says every chunk is exported, the job stopped, or its window ended.
//! A holder lives at most one invocation, so holders relay the snapshot: each new one imports
//! the current id while its holder is alive and exports it again under a new id (the same
//! data), so an export of any length reads one snapshot.

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
    /// Its window ended; the state machine starts the next holder, which relays the
    /// snapshot from the other holder still alive.
    WindowEnded,
    /// The snapshot to relay was no longer held (no holder was alive to hand it over):
    /// exports that still need it fail with [`Error::SnapshotReleased`], or read their own
    /// snapshot under per-chunk consistency.
    Lost,
}

/// Why the holders of `job_id` should stop now, if they should, and the snapshot id the job
/// record holds.
async fn job_state(
    jobs: &dyn JobStore,
    job_id: &str,
) -> Result<(Option<Released>, Option<String>)> {
    Ok(match jobs.get(job_id).await? {
        Some(j) if j.exports_done => (Some(Released::ExportsDone), j.snapshot),
        Some(j) if matches!(j.status, JobStatus::Failed | JobStatus::Cancelled) => {
            (Some(Released::JobStopped), j.snapshot)
        }
        Some(j) => (None, j.snapshot),
        None => (Some(Released::JobStopped), None),
    })
}

/// How long a holder holds.
#[derive(Debug, Clone, Copy)]
pub struct HoldTimes {
    /// Wait this long first (the second holder loop), returning early when the job no
    /// longer needs a holder.
    pub delay: Duration,
    /// Hold this long, then let go once a successor has published its id.
    pub window: Duration,
    /// Let go by this time whatever happens (the invocation's own limit).
    pub limit: Duration,
    /// Check the job record this often.
    pub poll: Duration,
}

/// Holds the job's snapshot for `window`, checking the job record every `poll`: the first
/// holder exports one; every later holder relays the id the record holds (imports it while
/// its holder is still alive and exports it again), publishes the new id, and keeps it
/// until released (see [`Released`]). Exports and plans join whichever id is current.
pub async fn hold(
    source: &ConnSpec,
    jobs: &dyn JobStore,
    job_id: &str,
    window: Duration,
    poll: Duration,
) -> Result<(String, Released)> {
    let times = HoldTimes {
        delay: Duration::ZERO,
        window,
        limit: window,
        poll,
    };
    hold_for(source, jobs, job_id, times).await
}

async fn hold_for(
    source: &ConnSpec,
    jobs: &dyn JobStore,
    job_id: &str,
    times: HoldTimes,
) -> Result<(String, Released)> {
    let started = Instant::now();
    let (stop, current) = job_state(jobs, job_id).await?;
    if let Some(why) = stop {
        return Ok((current.unwrap_or_default(), why));
    }
    let app = format!("dbsync-{job_id}-snap");
    let (client, snapshot) = match &current {
        None => crate::pg::snapshot::open_snapshot(source, &app).await?,
        Some(held) => match crate::pg::snapshot::relay_snapshot(source, held, &app).await {
            Ok(relayed) => relayed,
            Err(Error::SnapshotReleased(_)) => {
                tracing::warn!(job = job_id, snapshot = %held, "no holder was alive to hand the snapshot over");
                return Ok((held.clone(), Released::Lost));
            }
            Err(e) => return Err(e),
        },
    };
    jobs.update(
        job_id,
        JobChange {
            snapshot: Some(snapshot.clone()),
            ..Default::default()
        },
    )
    .await?;
    tracing::info!(job = job_id, snapshot = %snapshot, relayed_from = ?current,
        window_s = times.window.as_secs(), "holding the snapshot");
    let released = loop {
        let elapsed = started.elapsed();
        if elapsed >= times.limit {
            break Released::WindowEnded;
        }
        tokio::time::sleep(times.poll.min(times.limit.saturating_sub(elapsed))).await;
        if client.is_closed() {
            return Err(Error::SnapshotReleased(snapshot));
        }
        match job_state(jobs, job_id).await? {
            (Some(why), _) => break why,
            // Past its window, a holder lets go once a successor holds the snapshot: a
            // successor that starts late does not break the chain.
            (None, now) if started.elapsed() >= times.window && now.as_ref() != Some(&snapshot) => {
                break Released::WindowEnded
            }
            _ => {}
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

/// [`hold`] after `times.delay` (returning early when the job no longer needs a holder),
/// past its window until a successor took over or `times.limit`: the second holder loop
/// starts half a window after the first, so one of them is always alive while the other
/// hands over.
pub async fn hold_after(
    source: &ConnSpec,
    jobs: &dyn JobStore,
    job_id: &str,
    times: HoldTimes,
) -> Result<(String, Released)> {
    let started = Instant::now();
    while started.elapsed() < times.delay {
        tokio::time::sleep(
            times
                .poll
                .min(times.delay.saturating_sub(started.elapsed())),
        )
        .await;
        if let (Some(why), current) = job_state(jobs, job_id).await? {
            return Ok((current.unwrap_or_default(), why));
        }
    }
    let left = HoldTimes {
        limit: times.limit.saturating_sub(started.elapsed()),
        ..times
    };
    hold_for(source, jobs, job_id, left).await
}
