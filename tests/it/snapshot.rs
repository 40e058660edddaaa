//! Holding a snapshot for exports in other processes: joined sessions see the snapshot's data
//! while the source changes; the holder lets go when the job says exports are done or its
//! window ends, and joining afterwards is a clear, named error; a relayed snapshot (handed
//! from holder to holder) stays the same state of the source through every relay.

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
        pending: None,
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

/// The value row `id` of the relay test's table holds once
/// the writer's transactions 1..=g committed: the last `i <= g` with `i % n == id`, or 0.
fn written_by(id: i64, g: i64, n: i64) -> i64 {
    let last = id + n * ((g - id).div_euclid(n));
    if last >= 1 && last <= g {
        last
    } else {
        0
    }
}

#[tokio::test]
async fn a_relayed_export_reads_the_state_at_its_start_while_a_writer_changes_the_source_through_many_relays(
) {
    const N: i64 = 5000;
    let p = Pair::new("snapshot_relay").await;
    p.both(
        "CREATE TABLE t (id int PRIMARY KEY, v bigint NOT NULL, pad text);
         CREATE TABLE marker (one int PRIMARY KEY, g bigint NOT NULL)",
    )
    .await;
    p.source(&format!(
        "INSERT INTO t SELECT g, 0, repeat(md5(g::text), 16) FROM generate_series(0, {}) g;
         INSERT INTO marker VALUES (1, 0)",
        N - 1
    ))
    .await;
    // Each writer transaction changes one row and the marker together, so the marker an
    // export read says exactly which changes a consistent image holds.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (url, stop2) = (p.source_url.clone(), stop.clone());
    let writer = tokio::spawn(async move {
        let c = client(&url).await;
        let mut i: i64 = 0;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            i += 1;
            c.batch_execute(&format!(
                "BEGIN; UPDATE t SET v = {i} WHERE id = {}; UPDATE marker SET g = {i}; COMMIT",
                i % N
            ))
            .await
            .expect("write");
        }
        i
    });
    while scalar(&p.source_url, "SELECT g::text FROM marker").await == "0" {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let dir = std::env::temp_dir().join(format!("dbsync-it-{}", p.name));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Arc::new(dbsync_core::parts::LocalStore::new(&dir));
    let opts = Options {
        workers: 2,
        chunk_bytes: 16 * 1024,
        // Relayed as often as it can be: a fast machine exports this in a fraction of a second.
        snapshot_relay: Some(Duration::from_millis(5)),
        ..Options::default()
    }
    .export();
    let m = pipeline::export(&p.source_spec(), store.clone(), &opts, Arc::new(NoProgress))
        .await
        .expect("export");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let last = writer.await.expect("writer");
    assert!(m.snapshot_relays >= 3, "{} relays", m.snapshot_relays);
    assert_eq!(m.consistency, "snapshot");
    assert!(m.tables.iter().map(|t| t.parts.len()).sum::<usize>() > 20);

    import(&p, store, &Options::default())
        .await
        .expect("import");
    let g: i64 = scalar(&p.target_url, "SELECT g::text FROM marker")
        .await
        .parse()
        .expect("g");
    assert!(
        g >= 1 && last > g,
        "the writer went on after the snapshot: {g} < {last}"
    );
    let rows = client(&p.target_url)
        .await
        .query("SELECT id::bigint, v FROM t ORDER BY id", &[])
        .await
        .expect("rows");
    assert_eq!(rows.len() as i64, N);
    let wrong: Vec<(i64, i64)> = rows
        .iter()
        .map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1)))
        .filter(|&(id, v)| v != written_by(id, g, N))
        .take(5)
        .collect();
    assert!(wrong.is_empty(), "rows not as of marker {g}: {wrong:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// One holder loop of the state machine: holders back to back while their window ends
/// first; returns every id held and why the last one let go.
async fn holder_loop(
    src: dbsync_core::pg::conn::ConnSpec,
    jobs: Arc<dyn JobStore>,
    delay: Duration,
    window: Duration,
) -> (Vec<String>, Released) {
    let mut held = Vec::new();
    let mut first = Some(delay);
    loop {
        let times = holder::HoldTimes {
            delay: first.take().unwrap_or_default(),
            window,
            limit: window * 3,
            poll: Duration::from_millis(20),
        };
        let (id, why) = holder::hold_after(&src, jobs.as_ref(), "job-relay", times)
            .await
            .expect("hold");
        held.push(id);
        if why != Released::WindowEnded {
            return (held, why);
        }
    }
}

#[tokio::test]
async fn two_staggered_holder_loops_keep_one_snapshot_alive_through_many_relays_while_the_source_changes(
) {
    let p = Pair::new("snapshot_loops").await;
    p.source("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 100)")
        .await;
    let jobs: Arc<dyn JobStore> = Arc::new(MemoryJobStore::default());
    jobs.create(&JobRecord::new(
        "job-relay",
        "export",
        serde_json::json!({}),
        None,
    ))
    .await
    .expect("job");
    let window = Duration::from_millis(600);
    let a = tokio::spawn(holder_loop(
        p.source_spec(),
        jobs.clone(),
        Duration::ZERO,
        window,
    ));
    let b = tokio::spawn(holder_loop(
        p.source_spec(),
        jobs.clone(),
        window / 2,
        window,
    ));
    let current = || async {
        jobs.get("job-relay")
            .await
            .expect("get")
            .and_then(|j| j.snapshot)
    };
    let first = loop {
        if let Some(s) = current().await {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let writer = client(&p.source_url).await;
    for round in 0..12 {
        writer
            .batch_execute(&format!(
                "INSERT INTO t VALUES ({}); DELETE FROM t WHERE id = {}",
                1000 + round,
                round + 1
            ))
            .await
            .expect("write");
        tokio::time::sleep(Duration::from_millis(300)).await;
        // An export joining now, under whichever id is current, reads the first state.
        let id = current().await.expect("an id is published");
        let reader = dbsync_core::pg::snapshot::join_snapshot(&p.source_spec(), &id, "export")
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        let seen: String = reader
            .query_one(
                "SELECT count(*)::text || ' ' || sum(id)::text FROM public.t",
                &[],
            )
            .await
            .expect("read")
            .get(0);
        assert_eq!(seen, "100 5050", "round {round}, snapshot {id}");
    }
    jobs.update(
        "job-relay",
        JobChange {
            exports_done: Some(true),
            ..Default::default()
        },
    )
    .await
    .expect("done");
    let (held_a, why_a) = a.await.expect("loop a");
    let (held_b, why_b) = b.await.expect("loop b");
    assert_eq!(
        (why_a, why_b),
        (Released::ExportsDone, Released::ExportsDone)
    );
    let ids: std::collections::BTreeSet<&String> = held_a.iter().chain(&held_b).collect();
    assert!(ids.len() >= 6, "{} relays: {ids:?}", ids.len());
    assert!(ids.contains(&first));
    assert_ne!(current().await.as_ref(), Some(&first), "the id moved on");
}
