//! Holding a snapshot for exports in other processes: joined sessions see the snapshot's data
//! while the source changes; the holder lets go when the job says exports are done or its
//! window ends, and joining afterwards is a clear, named error.

use super::*;
use dbsync_core::jobs::{JobChange, JobRecord, JobStore, MemoryJobStore};
use dbsync_core::snapshot::{self, Released};
use dbsync_tests::{client, scalar};
use std::time::Duration;

#[tokio::test]
async fn exports_in_other_sessions_read_the_held_snapshot_until_the_job_releases_it() {
    let p = Pair::new("snapshot_hold").await;
    p.source("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 100)")
        .await;
    let jobs: Arc<dyn JobStore> = Arc::new(MemoryJobStore::default());
    jobs.create(&JobRecord::new(
        "job-1",
        "sync",
        serde_json::json!({}),
        None,
    ))
    .await
    .expect("job");
    let (src, jobs2) = (p.source_spec(), jobs.clone());
    let holder = tokio::spawn(async move {
        snapshot::hold(
            &src,
            jobs2.as_ref(),
            "job-1",
            Duration::from_secs(60),
            Duration::from_millis(50),
        )
        .await
    });
    let snap = loop {
        if let Some(s) = jobs
            .get("job-1")
            .await
            .expect("get")
            .and_then(|j| j.snapshot)
        {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // The source changes after the snapshot was taken ...
    client(&p.source_url)
        .await
        .batch_execute(
            "INSERT INTO t SELECT generate_series(101, 150); DELETE FROM t WHERE id <= 10",
        )
        .await
        .expect("change");
    // ... but a session joining the snapshot (a chunk export) sees it as it was.
    let export = job::join_snapshot(&p.source_spec(), &snap, "export")
        .await
        .expect("join");
    let n: i64 = export
        .query_one("SELECT count(*) FROM public.t", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 100);
    assert_eq!(
        scalar(&p.source_url, "SELECT count(*)::text FROM t").await,
        "140"
    );

    jobs.update(
        "job-1",
        JobChange {
            exports_done: Some(true),
            ..Default::default()
        },
    )
    .await
    .expect("done");
    let (held, why) = holder.await.expect("join").expect("hold");
    assert_eq!((held.as_str(), why), (snap.as_str(), Released::ExportsDone));
    let err = job::join_snapshot(&p.source_spec(), &snap, "late export")
        .await
        .expect_err("released");
    assert_eq!(err.name(), "DbsyncSnapshotReleased", "{err}");
    assert!(err.to_string().contains(&snap), "{err}");
}

#[tokio::test]
async fn a_holder_lets_go_when_its_window_ends() {
    let p = Pair::new("snapshot_window").await;
    let jobs = MemoryJobStore::default();
    jobs.create(&JobRecord::new(
        "job-2",
        "sync",
        serde_json::json!({}),
        None,
    ))
    .await
    .expect("job");
    let started = std::time::Instant::now();
    let (_, why) = snapshot::hold(
        &p.source_spec(),
        &jobs,
        "job-2",
        Duration::from_millis(300),
        Duration::from_millis(50),
    )
    .await
    .expect("hold");
    assert_eq!(why, Released::WindowEnded);
    assert!(started.elapsed() < Duration::from_secs(5));
}
