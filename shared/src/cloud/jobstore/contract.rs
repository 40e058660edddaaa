//! The behaviour every job store must show, run by the tests against each implementation
//! (memory here, DynamoDB through the emulator).

use super::*;

/// Behaviour every implementation must show; run against each of them by the tests.
pub async fn check_contract(store: &dyn JobStore, prefix: &str) {
    records(store, prefix).await;
    counters_and_status(store, prefix).await;
    progress_and_retry(store, prefix).await;
    target_locks(store, prefix).await;
    leases(store, prefix).await;
}

/// Jobs are created once, read back whole, and listed newest first.
async fn records(store: &dyn JobStore, prefix: &str) {
    let id = |n: &str| format!("{prefix}-{n}");
    let mut a = JobRecord::new(
        &id("a"),
        "sync",
        serde_json::json!({"source": "prod/db"}),
        Some(id("t")),
    );
    a.created_at = "2026-11-25T10:00:00Z".into();
    let mut b = JobRecord::new(&id("b"), "sync", serde_json::json!({}), None);
    b.created_at = "2026-11-25T11:00:00Z".into();
    store.create(&a).await.expect("create a");
    store.create(&b).await.expect("create b");
    assert!(store.create(&a).await.is_err(), "a job id is created once");
    let got = store.get(&id("a")).await.expect("get").expect("found");
    assert_eq!(got.request, a.request);
    assert_eq!(got.target, a.target);
    assert!(store.get(&id("zzz")).await.expect("get").is_none());

    store
        .update(
            &id("b"),
            JobChange {
                snapshot: Some("00000003-0000001B-1".into()),
                exports_done: Some(true),
                ..Default::default()
            },
        )
        .await
        .expect("snapshot");
    let got = store.get(&id("b")).await.expect("get").expect("found");
    assert_eq!(
        (got.snapshot.as_deref(), got.exports_done),
        (Some("00000003-0000001B-1"), true)
    );

    let recent = store.recent(10).await.expect("recent");
    let ours: Vec<_> = recent
        .iter()
        .filter(|j| j.job_id.starts_with(prefix))
        .map(|j| j.job_id.clone())
        .collect();
    assert_eq!(ours, vec![id("b"), id("a")], "newest first");
}

/// Concurrent counter additions all count; status changes and errors are kept.
async fn counters_and_status(store: &dyn JobStore, prefix: &str) {
    let id = |n: &str| format!("{prefix}-{n}");
    store
        .update(
            &id("a"),
            JobChange {
                status: Some(JobStatus::Running),
                phase: Some(Phase::Exporting),
                totals: Some((4, 4)),
                ..Default::default()
            },
        )
        .await
        .expect("update");
    let a_id = id("a");
    let adds = (0..8).map(|_| {
        store.add(
            &a_id,
            Counters {
                chunks_done: 1,
                parts_done: 0,
                rows: 10,
                bytes: 100,
            },
        )
    });
    for r in futures_util::future::join_all(adds).await {
        r.expect("add");
    }
    let got = store.get(&id("a")).await.expect("get").expect("found");
    assert_eq!(
        got.counters.chunks_done, 8,
        "concurrent adds must all count"
    );
    assert_eq!(got.counters.rows, 80);
    assert_eq!(
        (got.status, got.phase, got.chunks_total),
        (JobStatus::Running, Phase::Exporting, 4)
    );
    let err = JobError {
        name: "DbsyncConnect".into(),
        message: "cannot connect".into(),
    };
    store
        .update(
            &id("a"),
            JobChange {
                status: Some(JobStatus::Failed),
                error: Some(err.clone()),
                ..Default::default()
            },
        )
        .await
        .expect("fail");
    assert_eq!(
        store
            .get(&id("a"))
            .await
            .expect("get")
            .expect("found")
            .error,
        Some(err)
    );
}

/// Table progress only moves forward; a retry records its execution, counts itself and
/// clears the error it is retrying.
async fn progress_and_retry(store: &dyn JobStore, prefix: &str) {
    let id = format!("{prefix}-a");
    store.progress(&id, "public.b", 2).await.expect("progress");
    store
        .progress(&id, "public.a", 1)
        .await
        .expect("a late report");
    let got = store.get(&id).await.expect("get").expect("found");
    assert_eq!(
        (got.current_table.as_deref(), got.tables_done),
        (Some("public.b"), 2)
    );
    let retry = JobChange {
        status: Some(JobStatus::Running),
        tables_total: Some(3),
        retry: Some(format!("{id}-retry-1")),
        ..Default::default()
    };
    store.update(&id, retry).await.expect("retry");
    let got = store.get(&id).await.expect("get").expect("found");
    assert_eq!(got.execution_name(), format!("{id}-retry-1"));
    assert_eq!((got.retries, got.tables_total), (1, 3));
    assert_eq!((got.status, got.error), (JobStatus::Running, None));
}

/// A target lock is held by one job at a time, extended by its holder, released only by it,
/// and taken over once it expires.
async fn target_locks(store: &dyn JobStore, prefix: &str) {
    let id = |n: &str| format!("{prefix}-{n}");
    let t = id("target");
    store.lock_target(&t, &id("a"), 60).await.expect("lock");
    store
        .lock_target(&t, &id("a"), 60)
        .await
        .expect("the holder may extend");
    let e = store.lock_target(&t, &id("b"), 60).await.expect_err("held");
    assert_eq!(e.name(), "DbsyncTargetLocked");
    store
        .release_target(&t, &id("b"))
        .await
        .expect("not the holder: no-op");
    assert!(
        store.lock_target(&t, &id("b"), 60).await.is_err(),
        "still held by a"
    );
    store.release_target(&t, &id("a")).await.expect("release");
    store
        .lock_target(&t, &id("b"), 0)
        .await
        .expect("free again");
    // A lock whose time is up no longer blocks anyone.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    store
        .lock_target(&t, &id("a"), 60)
        .await
        .expect("expired lock taken over");
}

/// At most `limit` unexpired holders per endpoint; taking one again refreshes it; giving one
/// back frees a place; an expired one frees its place by itself.
async fn leases(store: &dyn JobStore, prefix: &str) {
    let db = format!("{prefix}-db.internal:5432/app");
    let other = format!("{prefix}-other:5432/app");
    for h in ["a", "b"] {
        assert!(store.acquire_lease(&db, h, 2, 60).await.expect("take"));
    }
    assert!(!store.acquire_lease(&db, "c", 2, 60).await.expect("full"));
    assert!(
        store.acquire_lease(&db, "a", 2, 60).await.expect("again"),
        "a holder takes its own again"
    );
    assert!(store
        .acquire_lease(&other, "c", 2, 60)
        .await
        .expect("per database"));
    store.release_lease(&db, "a").await.expect("give back");
    store.release_lease(&db, "a").await.expect("twice: no-op");
    assert!(store.acquire_lease(&db, "c", 2, 0).await.expect("freed"));
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert!(store
        .acquire_lease(&db, "d", 2, 60)
        .await
        .expect("expired place taken"));
    assert!(!store
        .acquire_lease(&db, "e", 2, 60)
        .await
        .expect("full again"));
    // The Fail path gives back what one chunk's invocations held, and only that.
    let third = format!("{prefix}-third:5432/app");
    for h in ["job1/t.1/0", "job1/t.1/1", "job1/t.10/0", "job2/t.1/0"] {
        assert!(store.acquire_lease(&third, h, 4, 60).await.expect("take"));
    }
    let given = store.release_leases_of(&third, "job1/t.1/").await;
    assert_eq!(given.expect("give back a chunk's"), 2);
    assert!(!store
        .acquire_lease(&third, "x", 2, 60)
        .await
        .expect("two left"));
    assert!(store
        .acquire_lease(&third, "x", 3, 60)
        .await
        .expect("freed"));
    let none = store
        .release_leases_of(&format!("{prefix}-none:1/x"), "job1/")
        .await;
    assert_eq!(none.expect("no item"), 0);
}
