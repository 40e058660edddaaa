//! Translates a hold-snapshot event into one core call.

use dbsync_core::cloud::lambda::{Clients, FunctionError};
use dbsync_core::cloud::steps::{HoldSnapshotEvent, HoldSnapshotOutput};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Holds (or relays) the snapshot for at most the requested window and never past
/// `deadline`; a staggered holder first waits half of that window.
pub async fn handle(
    clients: Arc<Clients>,
    event: HoldSnapshotEvent,
    deadline: Instant,
) -> Result<HoldSnapshotOutput, FunctionError> {
    let source = dbsync_core::cloud::secrets::fetch(&clients.secrets, &event.source_secret).await?;
    let left = deadline.saturating_duration_since(Instant::now());
    let window = Duration::from_secs(event.snapshot_window_seconds.unwrap_or(840)).min(left);
    let delay = if event.stagger {
        window / 2
    } else {
        Duration::ZERO
    };
    // Past its window a holder waits for its successor, up to the invocation's limit.
    let times = dbsync_core::cloud::holder::HoldTimes {
        delay,
        window,
        limit: left,
        poll: Duration::from_secs(2),
    };
    let (snapshot, released) =
        dbsync_core::cloud::holder::hold_after(&source, &clients.jobs(), &event.job_id, times)
            .await?;
    Ok(HoldSnapshotOutput {
        job_id: event.job_id,
        source_secret: event.source_secret,
        snapshot_window_seconds: event.snapshot_window_seconds,
        stagger: false,
        snapshot,
        released,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbsync_core::cloud::holder::Released;
    use dbsync_core::cloud::jobstore::JobStore;

    /// The sample event, pointed at a fresh source with the job recorded.
    async fn sample(hint: &str) -> (HoldSnapshotEvent, dbsync_tests::FunctionFixture) {
        let mut event: HoldSnapshotEvent =
            serde_json::from_str(include_str!("../../../events/hold-snapshot.json"))
                .expect("sample");
        let f =
            dbsync_tests::FunctionFixture::new(hint, &event.job_id, "CREATE TABLE t (id int)", "")
                .await;
        event.source_secret = f.source_secret.clone();
        (event, f)
    }

    /// The snapshot id the job record holds.
    async fn published(f: &dbsync_tests::FunctionFixture) -> Option<String> {
        let job = f.clients.jobs().get(&f.job_id).await.expect("get");
        job.expect("job").snapshot
    }

    #[tokio::test]
    async fn the_sample_event_holds_until_its_invocation_deadline_caps_the_window() {
        let (event, f) = sample("fn_hold").await;
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
        assert_eq!(published(&f).await, Some(out.snapshot));
    }

    #[tokio::test]
    async fn a_staggered_holder_relays_the_snapshot_while_the_first_still_holds_it() {
        let (event, f) = sample("fn_relay").await;
        let first = HoldSnapshotEvent {
            snapshot_window_seconds: Some(4),
            ..event
        };
        let second = HoldSnapshotEvent {
            stagger: true,
            ..first.clone()
        };
        let clients = Arc::new(f.clients.clone());
        // The second has no successor: it holds past its window until its deadline.
        let now = Instant::now();
        let (a, b) = tokio::join!(
            handle(clients.clone(), first, now + Duration::from_secs(60)),
            handle(clients.clone(), second, now + Duration::from_secs(7))
        );
        assert!(now.elapsed() < Duration::from_secs(15));
        let (a, b) = (a.expect("first"), b.expect("second"));
        assert_eq!(
            (a.released, b.released),
            (Released::WindowEnded, Released::WindowEnded)
        );
        assert_ne!(
            a.snapshot, b.snapshot,
            "the second holder exported the snapshot again"
        );
        assert!(!b.stagger, "the loop's next holder does not wait");
        assert_eq!(published(&f).await, Some(b.snapshot));
    }
}
