//! The service's refresh (`"mode": "refresh"`) through the API and the state machine: one
//! invocation per span of key ranges compares it with the target in the job's snapshot and
//! replaces what differs; no parts are written.

use super::*;
use crate::refresh::{CHANGES, EXTRA, EXTRA_DATA};

/// The newest transaction that wrote a row of `table` in the target.
async fn last_writer(c: &Cloud, table: &str) -> String {
    let sql = format!("SELECT coalesce(max(xmin::text::bigint), 0)::text FROM {table}");
    dbsync_tests::scalar(&c.pair.target_url, &sql).await
}

#[tokio::test]
async fn a_refresh_through_the_api_replaces_only_what_changed_and_ends_identical() {
    let _one = ONE_AT_A_TIME.lock().await;
    let c = Cloud::new("e2e_refresh", SCHEMA, DATA).await;
    c.pair.both(EXTRA).await;
    c.pair.source(EXTRA_DATA).await;
    // Last night's full sync.
    let first = c.start(json!({})).await;
    let (status, error) = c.finish(&first).await;
    assert_eq!(status, ExecutionStatus::Succeeded, "{error:?}");
    c.pair.assert_identical().await;
    let untouched = last_writer(&c, "app.all_types").await;
    // Today's changes at the source, and a row someone changed in the target.
    c.pair.source(CHANGES).await;
    c.pair
        .target("UPDATE app.big SET v = 'edited on staging' WHERE id = 15000")
        .await;
    // A budget of nothing: every span's replacements continue over several invocations.
    // Ranges of about 1,700 rows, which a change of a few rows narrows to runs of 256.
    let job_id = c
        .start(json!({ "mode": "refresh", "export_budget_seconds": 0, "chunk_size": "256KiB" }))
        .await;
    let (status, error) = c.finish(&job_id).await;
    assert_eq!(status, ExecutionStatus::Succeeded, "{error:?}");
    c.pair.assert_identical().await;
    assert_eq!(
        last_writer(&c, "app.all_types").await,
        untouched,
        "a table that did not change is not written"
    );
    let job = c.job(&job_id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["phase"], "done", "{job}");
    let p = &job["progress"];
    assert_eq!(p["chunks_done"], p["chunks_total"], "{job}");
    assert!(
        p["rows"].as_u64() < Some(20_000),
        "far fewer rows than a full copy: {job}"
    );
    // The report per table is in the job's folder; no part was written.
    let store = c.clients.store_for(&job_id).expect("store");
    let report: Value = serde_json::from_slice(
        &dbsync_core::parts::PartStore::get(&store, "refresh-report.json")
            .await
            .expect("the report is in S3"),
    )
    .expect("json");
    let action = |t: &str| {
        report["tables"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["table"] == t))
            .map(|x| x["action"].clone())
            .unwrap_or_default()
    };
    assert_eq!(action("app.big"), "ranges", "{report}");
    let big = report["tables"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["table"] == "app.big"))
        .cloned()
        .unwrap_or_default();
    // Four ranges differ (two rows updated, two deleted, one edited on staging, 40 new);
    // narrowed, far fewer rows than the ranges hold go in.
    assert!(
        big["rows"].as_u64() < Some(3_000),
        "the differing ranges narrowed to their runs: {big}"
    );
    assert_eq!(action("app.no_key"), "whole", "{report}");
    assert_eq!(action("app.all_types"), "unchanged", "{report}");
    assert_eq!(
        action("app.swap"),
        "whole",
        "a swapped unique value: {report}"
    );
    let parts = dbsync_core::parts::PartStore::list(&store, "parts/").await;
    assert!(parts.map(|p| p.is_empty()).unwrap_or(true), "no parts");
    c.assert_target_free(&job).await;
    // The target's ledger holds the refresh, done, with the ranges it replaced.
    let sql = format!(
        "SELECT state || ' ' || (SELECT count(*) > 0 FROM dbsync.parts p WHERE p.job_id = j.job_id)
           FROM dbsync.jobs j WHERE job_id = '{job_id}' AND kind = 'refresh'"
    );
    assert_eq!(
        dbsync_tests::scalar(&c.pair.target_url, &sql).await,
        "done true"
    );

    // A target that no longer fits the source fails the refresh before anything changes.
    c.pair
        .source("UPDATE app.big SET v = 'again' WHERE id = 1")
        .await;
    c.pair.target("ALTER TABLE app.big DROP COLUMN at").await;
    let before = dbsync_tests::fingerprint(&c.pair.target_url).await;
    let failed = c.start(json!({ "mode": "refresh" })).await;
    let (status, _) = c.finish(&failed).await;
    assert_eq!(status, ExecutionStatus::Failed);
    let job = c.job(&failed).await;
    assert_eq!(job["error"]["name"], "DbsyncIncompatible", "{job}");
    assert!(
        job["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("app.big"),
        "{job}"
    );
    assert_eq!(dbsync_tests::fingerprint(&c.pair.target_url).await, before);
    c.assert_target_free(&job).await;

    // A refresh is re-run, never retried; and refuses what it cannot honour, starting nothing.
    let (status, body) = c.api("POST", &format!("/syncs/{job_id}/retry"), None).await;
    assert_eq!(status, 409, "{body}");
    let before = c.executions().await;
    let body = c.request(json!({ "mode": "refresh", "atomic": true }));
    let (status, answer) = c.api("POST", "/syncs", Some(body)).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(c.executions().await, before);
}
