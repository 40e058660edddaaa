//! Holding a snapshot for exports in other processes: joined sessions see the snapshot's data
//! while the source changes; the holder lets go when the job says exports are done or its
//! window ends, and joining afterwards is a clear, named error.

use super::*;
use dbsync_core::cloud::holder::{self, Released};
use dbsync_core::cloud::jobstore::{JobChange, JobRecord, JobStore, MemoryJobStore};
use dbsync_core::cloud::steps::JobPlace;
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
        holder::hold(
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
    let export = dbsync_core::pg::snapshot::join_snapshot(&p.source_spec(), &snap, "export")
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
    let err = dbsync_core::pg::snapshot::join_snapshot(&p.source_spec(), &snap, "late export")
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
    let (_, why) = holder::hold(
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

#[tokio::test]
async fn after_the_window_per_chunk_consistency_reads_a_snapshot_of_its_own_and_says_so() {
    use dbsync_core::cloud::steps::{self, ExportStep};
    use dbsync_core::model::manifest::Consistency;
    let f = dbsync_tests::FunctionFixture::new(
        "per_chunk",
        "job-per-chunk",
        "CREATE TABLE t (id int PRIMARY KEY, v text)",
        "INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 3000) g",
    )
    .await;
    let (store, jobs, src) = (f.store(), f.clients.jobs(), f.pair.source_spec());
    let (holder, snapshot) = dbsync_core::pg::snapshot::open_snapshot(&src, "holder")
        .await
        .expect("snapshot");
    steps::plan_job(
        &src,
        &snapshot,
        JobPlace {
            store: &store,
            jobs: &jobs,
        },
        &f.job_id,
        dbsync_core::cloud::steps::PlanScope::new(&Default::default(), 1 << 30),
    )
    .await
    .expect("plan");
    // The window ends: the holder lets go before the chunk is exported.
    drop(holder);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let items = dbsync_tests::chunk_items(&store).await;
    let mut step = ExportStep {
        item: items[0].clone(),
        segment: 0,
        resume: None,
        tuning: Default::default(),
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let e = steps::export_step(
        &src,
        &snapshot,
        JobPlace {
            store: &store,
            jobs: &jobs,
        },
        &step,
        deadline,
        1,
    )
    .await
    .expect_err("snapshot consistency refuses");
    assert_eq!(e.name(), "DbsyncSnapshotReleased");
    assert!(e.to_string().contains("per-chunk"), "{e}");

    step.tuning.consistency = Consistency::PerChunk;
    let out = steps::export_step(
        &src,
        &snapshot,
        JobPlace {
            store: &store,
            jobs: &jobs,
        },
        &step,
        deadline,
        1,
    )
    .await
    .expect("per-chunk export");
    assert!(out.done);
    assert_eq!(out.rows, 3000);
    let m = steps::assemble_job(
        &src,
        JobPlace {
            store: &store,
            jobs: &jobs,
        },
        &f.job_id,
        &snapshot,
    )
    .await
    .expect("assemble");
    assert_eq!(m.consistency, "per_chunk");
    let part = &m.tables[0].parts[0];
    assert!(part.snapshot.as_deref().is_some_and(|s| s != snapshot));
}
