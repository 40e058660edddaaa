//! Translates a hold-snapshot event into one core call.

use dbsync_core::cloud::lambda::{Clients, FunctionError};
use dbsync_core::cloud::steps::{HoldSnapshotEvent, HoldSnapshotOutput};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Holds the snapshot for at most the requested window and never past `deadline`.
pub async fn handle(
    clients: Arc<Clients>,
    event: HoldSnapshotEvent,
    deadline: Instant,
) -> Result<HoldSnapshotOutput, FunctionError> {
    let source = dbsync_core::cloud::secrets::fetch(&clients.secrets, &event.source_secret).await?;
    let window = Duration::from_secs(event.window_seconds.unwrap_or(840))
        .min(deadline.saturating_duration_since(Instant::now()));
    let (snapshot, released) = dbsync_core::cloud::holder::hold(
        &source,
        &clients.jobs(),
        &event.job_id,
        window,
        Duration::from_secs(2),
    )
    .await?;
    Ok(HoldSnapshotOutput {
        job_id: event.job_id,
        snapshot,
        released,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbsync_core::cloud::holder::Released;
    use dbsync_core::cloud::jobstore::JobStore;

    #[tokio::test]
    async fn the_sample_event_holds_until_its_invocation_deadline_caps_the_window() {
        let mut event: HoldSnapshotEvent =
            serde_json::from_str(include_str!("../../../events/hold-snapshot.json"))
                .expect("sample");
        let f = dbsync_tests::FunctionFixture::new(
            "fn_hold",
            &event.job_id,
            "CREATE TABLE t (id int)",
            "",
        )
        .await;
        event.source_secret = f.source_secret.clone();
        let started = Instant::now();
        // The invocation has 1.5 s left: the 840 s window must give way.
        let out = handle(
            Arc::new(f.clients.clone()),
            event,
            Instant::now() + Duration::from_millis(1500),
        )
        .await
        .expect("hold");
        assert_eq!(out.released, Released::WindowEnded);
        assert!(started.elapsed() < Duration::from_secs(10));
        let job = f
            .clients
            .jobs()
            .get(&f.job_id)
            .await
            .expect("get")
            .expect("job");
        assert_eq!(job.snapshot.as_deref(), Some(out.snapshot.as_str()));
    }
}
