//! Loads of parts already in S3, end to end through the emulator: an export loaded later
//! into a target with `"from"` (export once, load many), and `POST /syncs/{id}/retry`
//! resuming a failed load as the same job, and `"backup": true` (the target exported first by
//! a job of its own, loaded back with `"from"`). Part of [`super`] (same services, one at a
//! time).

use super::*;

/// The export job `c` runs of its source; returns its id once it succeeded.
async fn exported(c: &Cloud) -> String {
    let (status, body) = c
        .api(
            "POST",
            "/syncs",
            Some(json!({
                "source_secret": c.source_secret,
                "mode": "export",
                "chunk_size": "64KiB",
                "snapshot_window_seconds": 300,
            })),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["job_id"].as_str().expect("job id").to_string();
    let (status, error) = c.finish(&id).await;
    assert_eq!(status, ExecutionStatus::Succeeded, "{error:?}");
    id
}

/// Status and body of `POST /syncs` for a load of `from` into the target, plus `extra`.
async fn load_from(c: &Cloud, from: &str, extra: Value) -> (u16, Value) {
    let mut body = json!({ "from": from, "target_secret": c.target_secret, "concurrency": 4 });
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    c.api("POST", "/syncs", Some(body)).await
}

/// Starts a load of `from`, waits for it, and checks the job's status answer.
async fn load_and_check(c: &Cloud, from: &str, tables: usize) -> Value {
    let (status, body) = load_from(c, from, json!({})).await;
    assert_eq!(status, 202, "{body}");
    let id = body["job_id"].as_str().expect("job id").to_string();
    assert_ne!(id, from, "a load is a job of its own");
    let (status, error) = c.finish(&id).await;
    assert_eq!(status, ExecutionStatus::Succeeded, "{error:?}");
    let job = c.job(&id).await;
    assert_eq!(
        (job["kind"].as_str(), job["status"].as_str()),
        (Some("import"), Some("succeeded")),
        "{job}"
    );
    assert_eq!(job["tables_total"].as_u64(), Some(tables as u64), "{job}");
    assert_eq!(job["tables_done"], job["tables_total"], "{job}");
    assert!(job["current_table"].is_string(), "{job}");
    assert!(job["estimated_duration_seconds"].is_u64(), "{job}");
    assert_eq!(job["progress"]["percent"], 100.0, "{job}");
    assert_eq!(
        job["progress"]["parts_done"],
        job["progress"]["parts_total"]
    );
    assert_eq!(job["request"]["source_secret"], c.source_secret.as_str());
    job
}

#[tokio::test]
async fn an_export_loads_into_a_target_later_with_from_again_and_again_and_bad_loads_change_nothing(
) {
    let _one = ONE_AT_A_TIME.lock().await;
    let c = Cloud::new("e2e_from", SCHEMA, DATA).await;
    let export = exported(&c).await;
    let tables = c.manifest(&export).await.tables.len();
    let export_view = c.job(&export).await;
    assert_eq!(export_view["tables_done"].as_u64(), Some(tables as u64));
    assert!(export_view["current_table"].is_string(), "{export_view}");

    let first = load_and_check(&c, &export, tables).await;
    c.pair.assert_identical().await;
    // The target drifts; the same export, loaded again, puts it back exactly.
    c.pair
        .target("DELETE FROM app.all_types WHERE id % 2 = 0")
        .await;
    let second = load_and_check(&c, &export, tables).await;
    assert_ne!(first["job_id"], second["job_id"]);
    c.pair.assert_identical().await;

    let before = c.executions().await;
    let target_before = dbsync_tests::fingerprint(&c.pair.target_url).await;
    let (status, body) = load_from(&c, "no-such-job", json!({})).await;
    assert_eq!(
        (status, &body["error"]["name"]),
        (404, &json!("DbsyncNoSuchJob"))
    );
    let (status, body) = load_from(&c, &export, json!({ "schemas": ["app"] })).await;
    assert_eq!(status, 400, "{body}");
    let m = body["error"]["message"].as_str().unwrap_or_default();
    assert!(m.contains("schemas") && m.contains(&export), "{m}");
    let (status, body) = load_from(&c, &export, json!({ "create_schema": true })).await;
    assert_eq!(status, 400, "{body}");
    let load = first["job_id"].as_str().expect("id");
    let (status, body) = load_from(&c, load, json!({})).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains(&export)));
    let (status, body) = c.api("POST", &format!("/syncs/{export}/retry"), None).await;
    assert_eq!(status, 409, "a succeeded job is not retried: {body}");
    assert_eq!(c.executions().await, before, "nothing was started");
    assert_eq!(
        dbsync_tests::fingerprint(&c.pair.target_url).await,
        target_before
    );
}

#[tokio::test]
async fn a_failed_load_retried_after_the_fix_resumes_as_the_same_job_and_ends_identical() {
    let _one = ONE_AT_A_TIME.lock().await;
    let c = cloud_with_a_rule_only_the_target_has("e2e_retry", "").await;
    let job_id = c.start(json!({})).await;
    let (status, error) = c.finish(&job_id).await;
    assert_eq!(status, ExecutionStatus::Failed, "{error:?}");
    let loaded_before = dbsync_tests::scalar(
        &c.pair.target_url,
        &format!("SELECT count(*)::text FROM dbsync.parts WHERE job_id = '{job_id}'"),
    )
    .await;
    assert_ne!(
        loaded_before, "0",
        "the parent's parts loaded before the failure"
    );
    let (status, _) = c.api("POST", "/syncs/no-such-job/retry", None).await;
    assert_eq!(status, 404);

    c.pair
        .target("ALTER TABLE child DROP CONSTRAINT child_small")
        .await;
    let (status, body) = c.api("POST", &format!("/syncs/{job_id}/retry"), None).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["retries"], 1);
    let (status, body) = c.api("POST", &format!("/syncs/{job_id}/retry"), None).await;
    assert_eq!(status, 409, "a running job is not retried again: {body}");
    let (status, error) = c.finish_execution(&format!("{job_id}-retry-1")).await;
    assert_eq!(status, ExecutionStatus::Succeeded, "{error:?}");
    c.pair.assert_identical().await;

    let job = c.job(&job_id).await;
    assert_complete(&job, &c.manifest(&job_id).await);
    assert_eq!(
        (job["retries"].as_u64(), &job["error"]),
        (Some(1), &Value::Null)
    );
    assert!(job["links"]["execution"]
        .as_str()
        .is_some_and(|e| e.ends_with("-retry-1")));
    assert_eq!(job["tables_done"], 2);
    c.assert_target_free(&job).await;
}

#[tokio::test]
async fn a_job_that_failed_before_its_export_was_complete_is_not_retried() {
    let _one = ONE_AT_A_TIME.lock().await;
    let c = Cloud::new("e2e_noretry", "CREATE TABLE t (id int PRIMARY KEY)", "").await;
    // The source is unreachable once the job is recorded: it fails while planning.
    c.clients
        .secrets
        .put_secret_value()
        .secret_id(&c.source_secret)
        .secret_string(json!({ "url": "postgresql://postgres@127.0.0.1:1/postgres" }).to_string())
        .send()
        .await
        .expect("break the source");
    let job_id = c.start(json!({})).await;
    let (status, error) = c.finish(&job_id).await;
    assert_eq!(status, ExecutionStatus::Failed, "{error:?}");
    let before = c.executions().await;
    let (status, body) = c.api("POST", &format!("/syncs/{job_id}/retry"), None).await;
    assert_eq!(status, 409, "{body}");
    let m = body["error"]["message"].as_str().unwrap_or_default();
    assert!(m.contains("before its export was complete"), "{m}");
    assert_eq!(c.executions().await, before);
    assert_eq!(c.job(&job_id).await["status"], "failed");
}

#[tokio::test]
async fn a_sync_with_backup_empties_nothing_before_its_backup_and_loading_that_backup_restores_the_target_exactly(
) {
    let _one = ONE_AT_A_TIME.lock().await;
    let c = Cloud::new("e2e_backup", SCHEMA, DATA).await;
    let first = c.start(json!({})).await;
    assert_eq!(c.finish(&first).await.0, ExecutionStatus::Succeeded);
    // The target's own state, which the next sync overwrites.
    c.pair
        .target("DELETE FROM app.all_types WHERE id % 3 = 0; UPDATE app.all_types SET t_text = 'the target''s own' WHERE id % 3 = 1")
        .await;
    let before = dbsync_tests::fingerprint(&c.pair.target_url).await;

    let (status, body) = c
        .api("POST", "/syncs", Some(c.request(json!({ "backup": true }))))
        .await;
    assert_eq!(status, 202, "{body}");
    let job_id = body["job_id"].as_str().expect("job id").to_string();
    let backup = body["backup_job_id"]
        .as_str()
        .expect("backup id")
        .to_string();
    assert_eq!(backup, format!("{job_id}-backup"));
    let (status, error) = c.finish(&job_id).await;
    assert_eq!(status, ExecutionStatus::Succeeded, "{error:?}");
    c.pair.assert_identical().await;
    let view = c.job(&backup).await;
    assert_eq!(
        (view["kind"].as_str(), view["status"].as_str()),
        (Some("backup"), Some("succeeded")),
        "{view}"
    );
    assert_eq!(view["request"]["origin"]["backup_for"], job_id.as_str());
    assert_eq!(c.job(&job_id).await["backup_job_id"], backup.as_str());
    let recorded = dbsync_tests::scalar(
        &c.pair.target_url,
        &format!(
            "SELECT location || ' ' || backup_job FROM dbsync.backups WHERE job_id = '{job_id}'"
        ),
    )
    .await;
    assert_eq!(recorded, format!("s3://{BUCKET}/jobs/{backup} {backup}"));

    // Loading the backup back into the database it came from restores it byte for byte.
    let (status, body) = load_from(&c, &backup, json!({})).await;
    assert_eq!(status, 202, "{body}");
    let restore = body["job_id"].as_str().expect("job id").to_string();
    let (status, error) = c.finish(&restore).await;
    assert_eq!(status, ExecutionStatus::Succeeded, "{error:?}");
    assert_eq!(dbsync_tests::fingerprint(&c.pair.target_url).await, before);
}

#[tokio::test]
async fn a_backup_that_fails_fails_its_sync_before_the_target_changes_and_bad_backup_requests_never_start(
) {
    let _one = ONE_AT_A_TIME.lock().await;
    let c = Cloud::new("e2e_nobackup", "", "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, g::text FROM generate_series(1, 100) g").await;
    c.pair
        .target("CREATE SCHEMA keep; CREATE TABLE keep.mine (id int)")
        .await;
    let before = c.executions().await;
    for (body, field) in [
        (json!({ "backup": true, "atomic": true }), "atomic"),
        (
            json!({ "backup": true, "mode": "export", "target_secret": null }),
            "backup",
        ),
    ] {
        let (status, answer) = c.api("POST", "/syncs", Some(c.request(body))).await;
        assert_eq!(status, 400, "{answer}");
        let m = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(m.contains(field), "{m}");
    }
    assert_eq!(c.executions().await, before, "nothing was started");

    // The target has none of the tables in scope: a backup of nothing is refused, and the
    // sync that waited for it fails with its reason, having created and emptied nothing.
    let target_before = dbsync_tests::fingerprint(&c.pair.target_url).await;
    let job_id = c
        .start(json!({ "backup": true, "create_schema": true, "schemas": ["public"] }))
        .await;
    let (status, _) = c.finish(&job_id).await;
    assert_eq!(status, ExecutionStatus::Failed);
    let job = c.job(&job_id).await;
    let m = job["error"]["message"].as_str().unwrap_or_default();
    assert!(
        m.contains(&format!("{job_id}-backup")) && m.contains("nothing in it was changed"),
        "{job}"
    );
    assert_eq!(job["error"]["name"], "DbsyncJobEnded");
    assert_eq!(
        dbsync_tests::fingerprint(&c.pair.target_url).await,
        target_before
    );
    c.assert_target_free(&job).await;
}

#[tokio::test]
async fn many_jobs_started_at_once_on_distinct_targets_all_succeed_with_no_lock_or_counter_lost() {
    let _one = ONE_AT_A_TIME.lock().await;
    // 8 by default (a 2-core machine runs them in about a minute); more with the variable.
    let n: usize = std::env::var("DBSYNC_TEST_CONCURRENT_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let c = Cloud::new("e2e_many", "CREATE TABLE t (id int PRIMARY KEY)", "").await;
    let schema = "CREATE TABLE parent (id int PRIMARY KEY, v text);
                  CREATE TABLE child (id int PRIMARY KEY, p int REFERENCES parent, v text)";
    let mut pairs = Vec::new();
    for i in 0..n {
        let p = Pair::new(&format!("e2e_many_{i}")).await;
        p.both(schema).await;
        p.source(&format!(
            "INSERT INTO parent SELECT g, 'p{i}-' || g FROM generate_series(1, 3000) g;
             INSERT INTO child SELECT g, g % 3000 + 1, repeat('c', g % 50) FROM generate_series(1, 6000) g"
        ))
        .await;
        let (s, t) = (
            format!("e2e/{}/source", p.name),
            format!("e2e/{}/target", p.name),
        );
        c.secret(&s, &p.source_url).await;
        c.secret(&t, &p.target_url).await;
        pairs.push((p, s, t));
    }
    let started = futures_util::future::join_all(pairs.iter().map(|(_, s, t)| {
        c.api(
            "POST",
            "/syncs",
            Some(json!({ "source_secret": s, "target_secret": t, "chunk_size": "64KiB", "concurrency": 2 })),
        )
    }))
    .await;
    let ids: Vec<String> = started
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, 202, "{body}");
            body["job_id"].as_str().expect("id").to_string()
        })
        .collect();
    for ((p, _, _), id) in pairs.iter().zip(&ids) {
        let (status, error) = c.finish(id).await;
        assert_eq!(status, ExecutionStatus::Succeeded, "{id}: {error:?}");
        p.assert_identical().await;
        let job = c.job(id).await;
        assert_complete(&job, &c.manifest(id).await);
        c.assert_target_free(&job).await;
    }
}

#[tokio::test]
async fn a_finalize_longer_than_its_budget_goes_round_again_while_its_index_build_runs_on_and_the_job_ends_exact(
) {
    let _one = ONE_AT_A_TIME.lock().await;
    // The expression index takes about 4 s to build (2 ms a row) and as long to ANALYZE,
    // against a Finalize budget of 1 s: Finalize must hand over several times, and succeed
    // only if the build it left running goes on (restarted each time, it would never end).
    let c = Cloud::new(
        "e2e_finalize_loop",
        "CREATE FUNCTION public.slow(i int) RETURNS int IMMUTABLE LANGUAGE plpgsql
           AS $$ BEGIN PERFORM pg_catalog.pg_sleep(0.002); RETURN i; END $$;
         CREATE TABLE parent (id int PRIMARY KEY, v text);
         CREATE INDEX parent_slow ON parent (public.slow(id));
         CREATE TABLE child (id int PRIMARY KEY, parent int REFERENCES parent, note text)",
        "INSERT INTO parent SELECT g, 'p' || g FROM generate_series(1, 2000) g;
         INSERT INTO child SELECT g, g % 2000 + 1, repeat(E'\\t', g % 4) FROM generate_series(1, 4000) g",
    )
    .await;
    let job_id = c.start(json!({ "finalize_budget_seconds": 1 })).await;
    let (status, error) = c.finish(&job_id).await;
    assert_eq!(status, ExecutionStatus::Succeeded, "{error:?}");
    c.pair.assert_identical().await;
    let arn = format!("arn:aws:states:us-east-1:{ACCOUNT}:execution:{STATE_MACHINE}:{job_id}");
    let history = c
        .sfn
        .get_execution_history()
        .execution_arn(&arn)
        .max_results(1000)
        .send()
        .await
        .expect("history");
    let rounds = history
        .events()
        .iter()
        .filter(|e| {
            e.state_entered_event_details()
                .is_some_and(|d| d.name() == "Wait for finalize")
        })
        .count();
    assert!(rounds >= 2, "Finalize handed over {rounds} times");
    let valid = dbsync_tests::scalar(
        &c.pair.target_url,
        "SELECT count(*)::text FROM pg_index WHERE indexrelid = 'public.parent_slow'::regclass AND indisvalid",
    )
    .await;
    assert_eq!(valid, "1");
    let job = c.job(&job_id).await;
    assert_complete(&job, &c.manifest(&job_id).await);
    c.assert_target_free(&job).await;
}
