//! The serverless steps run as the state machine will run them, with the real stores (S3 and
//! DynamoDB in the local emulator): a held snapshot, plan, one export step per chunk item,
//! results read back from the store, assembled, imported - exact, with the job's counters right.

use super::*;
use dbsync_core::cloud::jobstore::{self, DynamoJobStore, JobChange, JobRecord, JobStore};
use dbsync_core::cloud::steps;
use dbsync_core::cloud::steps::JobPlace;
use dbsync_core::parts::{PartStore, S3Store};
use std::time::Duration;

#[tokio::test]
async fn planned_and_exported_in_separate_steps_the_job_imports_exactly() {
    let p = adversarial("steps").await;
    let bucket = dbsync_tests::s3_bucket("steps").await;
    let job_id = format!("job-{}", &p.name[p.name.len() - 8..]);
    let store: Arc<dyn PartStore> = Arc::new(
        S3Store::connect(
            &format!("s3://{bucket}/jobs/{job_id}"),
            &dbsync_tests::s3_settings(),
        )
        .await
        .expect("store"),
    );
    let ddb = jobstore::dynamodb::client(&dbsync_tests::aws_settings()).await;
    let table = format!("dbsync-jobs-{}", &p.name[p.name.len() - 8..]);
    DynamoJobStore::create_table(&ddb, &table)
        .await
        .expect("table");
    let job_store: Arc<dyn JobStore> = Arc::new(DynamoJobStore::new(ddb, &table, 30));
    job_store
        .create(&JobRecord::new(
            &job_id,
            "sync",
            serde_json::json!({"source": "src-secret"}),
            None,
        ))
        .await
        .expect("job");

    // The Hold snapshot branch.
    let (src, js, id) = (p.source_spec(), job_store.clone(), job_id.clone());
    let holder = tokio::spawn(async move {
        dbsync_core::cloud::holder::hold(
            &src,
            js.as_ref(),
            &id,
            Duration::from_secs(120),
            Duration::from_millis(100),
        )
        .await
    });
    // Plan waits for the holder to publish the snapshot, as the Plan function does.
    let snapshot = steps::await_snapshot(
        job_store.as_ref(),
        &job_id,
        std::time::Instant::now() + Duration::from_secs(60),
    )
    .await
    .expect("the holder publishes its snapshot");

    let summary = steps::plan_job(
        &p.source_spec(),
        &snapshot,
        JobPlace {
            store: store.as_ref(),
            jobs: job_store.as_ref(),
        },
        &job_id,
        dbsync_core::cloud::steps::PlanScope::new(&Default::default(), 64 * 1024),
    )
    .await
    .expect("plan");
    assert_eq!(summary.chunks_key, steps::CHUNKS_KEY);
    let items = dbsync_tests::chunk_items(store.as_ref()).await;
    assert_eq!(items.len(), summary.chunks);
    assert!(
        items.iter().any(|i| i.label.starts_with("app.orders #")),
        "labels name the table"
    );

    // The export Map: one invocation per item, looping while a continuation comes back.
    let part_ids = dbsync_tests::export_items(
        &p.source_spec(),
        &snapshot,
        store.as_ref(),
        job_store.as_ref(),
        items,
    )
    .await;
    job_store
        .update(
            &job_id,
            JobChange {
                exports_done: Some(true),
                ..Default::default()
            },
        )
        .await
        .expect("exports done");
    let (_, released) = holder.await.expect("holder").expect("hold");
    assert_eq!(released, dbsync_core::cloud::holder::Released::ExportsDone);

    let record = job_store.get(&job_id).await.expect("get").expect("job");
    assert_eq!(record.counters.chunks_done, summary.chunks as u64);
    assert_eq!(record.chunks_total, summary.chunks as u64);

    // Assemble from the durable per-part results; a missing chunk would be named.
    let m = steps::assemble_job(
        &p.source_spec(),
        JobPlace {
            store: store.as_ref(),
            jobs: job_store.as_ref(),
        },
        &job_id,
        &snapshot,
    )
    .await
    .expect("assemble");
    assert_eq!(
        m.tables.iter().flat_map(|t| &t.parts).count(),
        part_ids.len()
    );
    assert_eq!(
        m.tables
            .iter()
            .flat_map(|t| &t.parts)
            .map(|x| x.stats.rows)
            .sum::<u64>(),
        record.counters.rows
    );
    let record = job_store.get(&job_id).await.expect("get").expect("job");
    assert_eq!(record.parts_total, part_ids.len() as u64);
    import(&p, store.clone(), &tiny_chunks())
        .await
        .expect("import");
    p.assert_identical().await;

    // A chunk whose last segment never arrived stops the assembler, named.
    let last = m
        .tables
        .iter()
        .flat_map(|t| &t.parts)
        .last()
        .expect("a part")
        .id
        .clone();
    let mut r: steps::PartResult =
        serde_json::from_slice(&store.get(&steps::result_key(&last)).await.expect("result"))
            .expect("json");
    r.last = false;
    store
        .put(
            &steps::result_key(&last),
            &serde_json::to_vec(&r).expect("json"),
        )
        .await
        .expect("put");
    let err = steps::assemble_job(
        &p.source_spec(),
        JobPlace {
            store: store.as_ref(),
            jobs: job_store.as_ref(),
        },
        &job_id,
        "snap",
    )
    .await
    .expect_err("incomplete");
    assert_eq!(err.name(), "DbsyncIncomplete", "{err}");

    // The Catch path records the error and frees the target; the job had finished in the
    // target (imported above), so nothing is put back there.
    let e = dbsync_core::Error::TargetLocked("x".into());
    let out = steps::fail_job(
        job_store.as_ref(),
        &job_id,
        (&e).into(),
        Some("staging"),
        Some(&p.target_spec()),
        None,
    )
    .await
    .expect("fail");
    assert_eq!(
        out.target_state,
        Some(dbsync_core::pipeline::undo::Abandoned::Settled)
    );
    let record = job_store.get(&job_id).await.expect("get").expect("job");
    assert_eq!(record.status, jobstore::JobStatus::Failed);
    assert_eq!(record.error.expect("error").name, "DbsyncTargetLocked");
}

/// An export invocation killed after it wrote its part (and its result) is retried by Step
/// Functions with the same input: it writes the same part again, and the job's counters count
/// the chunk once, not twice.
#[tokio::test]
async fn an_export_step_retried_after_its_upload_rewrites_the_same_part_and_counts_it_once() {
    let f = dbsync_tests::FunctionFixture::new(
        "export_retry",
        "job-export-retry",
        "CREATE TABLE t (id int PRIMARY KEY, v text)",
        "INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 3000) g",
    )
    .await;
    let (src, store, jobs) = (f.pair.source_spec(), f.store(), f.clients.jobs());
    let (_holder, snapshot) = dbsync_core::pg::snapshot::open_snapshot(&src, "holder")
        .await
        .expect("snapshot");
    let place = JobPlace {
        store: &store,
        jobs: &jobs,
    };
    steps::plan_job(
        &src,
        &snapshot,
        place,
        &f.job_id,
        dbsync_core::cloud::steps::PlanScope::new(&Default::default(), 32 * 1024),
    )
    .await
    .expect("plan");
    let items = dbsync_tests::chunk_items(&store).await;
    assert!(items.len() > 1, "several chunks");
    let counters = || async {
        jobs.get(&f.job_id)
            .await
            .expect("get")
            .expect("job")
            .counters
    };
    let sizes = || async { store.list("parts/").await.expect("list") };
    let ids = dbsync_tests::export_items(&src, &snapshot, &store, &jobs, items.clone()).await;
    let (once, parts) = (counters().await, sizes().await);
    assert_eq!((once.rows, once.chunks_done), (3000, items.len() as u64));
    // Every invocation retried, as after a kill between its upload and its reply.
    let again = dbsync_tests::export_items(&src, &snapshot, &store, &jobs, items).await;
    assert_eq!(again, ids);
    assert_eq!(counters().await, once, "a retried invocation counts once");
    assert_eq!(sizes().await, parts, "the same parts, the same sizes");
}
