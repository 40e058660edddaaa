//! `POST /connections/test`, `GET /databases`, the estimates of `POST /syncs` (its `dry_run`
//! and the estimate beside a started job), and the connection leases that cap the sessions
//! all jobs open on one source, end to end: the api function reads the secrets in the
//! emulator and connects to the real servers. Part of [`super`].

use super::*;

/// `POST /connections/test` of `secret`.
async fn test(c: &Cloud, secret: &str) -> (u16, Value) {
    c.api(
        "POST",
        "/connections/test",
        Some(json!({ "secret": secret })),
    )
    .await
}

#[tokio::test]
async fn a_connection_test_reports_the_server_and_what_the_role_lacks_and_never_a_password() {
    let _one = ONE_AT_A_TIME.lock().await;
    let c = Cloud::new(
        "e2e_conn",
        "CREATE TABLE open_t (id int PRIMARY KEY); CREATE TABLE closed_t (id int)",
        "",
    )
    .await;
    let (status, body) = test(&c, &c.source_secret).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reachable"], true, "{body}");
    assert!(body["server_version"]
        .as_str()
        .is_some_and(|v| v.starts_with(char::is_numeric)));
    assert_eq!(
        (&body["tls"], &body["user"]),
        (&json!(false), &json!("postgres"))
    );
    assert_eq!(body["source"]["usable"], true, "{body}");
    assert_eq!(body["target"]["usable"], true, "{body}");
    assert_eq!(body["replica_mode"], true);
    assert_eq!(body["uses"]["target_allowed"], true);

    // A role that may read one table and owns none.
    let role = format!("{}_reader", c.pair.name);
    c.pair
        .source(&format!(
            "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN PASSWORD 'pw-never-shown';
             GRANT SELECT ON open_t TO {role}"
        ))
        .await;
    let reader = format!("e2e/{}/reader", c.pair.name);
    let url = c
        .pair
        .source_url
        .replace("postgres@", &format!("{role}:pw-never-shown@"));
    c.secret(&reader, &url).await;
    let (status, body) = test(&c, &reader).await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.to_string().contains("pw-never-shown"), "{body}");
    assert_eq!(body["user"], role.as_str(), "{body}");
    assert_eq!(body["source"]["usable"], false, "{body}");
    let problems = body["source"]["problems"].to_string();
    assert!(
        problems.contains("closed_t: no SELECT") && !problems.contains("open_t"),
        "{problems}"
    );
    assert_eq!(body["target"]["usable"], false, "{body}");
    assert!(body["target"]["problems"].to_string().contains("open_t"));
    assert_eq!(body["replica_mode"], false);

    let down = format!("e2e/{}/down", c.pair.name);
    c.secret(
        &down,
        "postgresql://postgres@127.0.0.1:1/postgres?sslmode=disable",
    )
    .await;
    let (status, body) = test(&c, &down).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reachable"], false, "{body}");
    assert_eq!(body["error"]["name"], "DbsyncConnect");

    let (status, body) = test(&c, "e2e/no/such/secret").await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = c
        .api(
            "POST",
            "/connections/test",
            Some(json!({ "secret_id": "x" })),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("secret_id")));
    c.pair
        .source(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .await;
}

#[tokio::test]
async fn the_database_list_names_each_secret_under_the_prefix_with_the_uses_the_deployment_allows()
{
    let _one = ONE_AT_A_TIME.lock().await;
    let c = Cloud::new("e2e_dblist", "CREATE TABLE t (id int)", "").await;
    let protected = format!("e2e/protected-{}", c.pair.name);
    c.secret(&protected, &c.pair.target_url).await;
    let key = format!("e2e/{}/rules-key", c.pair.name);
    c.clients
        .secrets
        .create_secret()
        .name(&key)
        .secret_string("0123456789abcdef0123")
        .send()
        .await
        .expect("key secret");
    let (status, body) = c.api("GET", "/databases", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["prefix"], "e2e/");
    let entry = |id: &str| {
        body["databases"]
            .as_array()
            .and_then(|d| d.iter().find(|e| e["secret"] == id))
            .cloned()
            .unwrap_or_else(|| panic!("{id} is listed: {body}"))
    };
    let source = entry(&c.source_secret);
    assert_eq!(source["uses"]["source_allowed"], true);
    assert!(source["endpoint"]
        .as_str()
        .is_some_and(|e| e.starts_with("127.0.0.1:")));
    assert_eq!(entry(&c.target_secret)["uses"]["target_allowed"], true);
    let p = entry(&protected);
    assert_eq!(
        (&p["uses"]["protected"], &p["uses"]["target_allowed"]),
        (&json!(true), &json!(false))
    );
    assert!(body["other_secrets"]
        .as_array()
        .is_some_and(|o| o.iter().any(|e| e["secret"] == key.as_str())));
    assert!(!body.to_string().contains("0123456789abcdef0123"));
}

#[tokio::test]
async fn a_dry_run_prices_the_job_and_starts_nothing_and_a_start_answers_the_same_estimate() {
    let _one = ONE_AT_A_TIME.lock().await;
    let c = Cloud::new("e2e_estimate", SCHEMA, DATA).await;
    let before = c.executions().await;
    let target_before = dbsync_tests::fingerprint(&c.pair.target_url).await;
    let (status, body) = c
        .api("POST", "/syncs?dry_run=true", Some(c.request(json!({}))))
        .await;
    assert_eq!(status, 200, "{body}");
    let e = &body["estimate"];
    assert_eq!(
        (e["kind"].as_str(), e["fanout"].as_u64()),
        (Some("sync"), Some(4))
    );
    assert!(e["chunks"].as_u64() > Some(1), "{e}");
    assert!(e["usage"]["map_child_executions"].as_u64() >= e["chunks"].as_u64());
    assert!(e["cost"]["total"].as_f64() > Some(0.0), "{e}");
    assert!(e["estimated_duration_seconds"].as_u64() > Some(0));
    // A dry run makes the checks of a start: a protected target is refused the same way.
    let (status, _) = c
        .api(
            "POST",
            "/syncs?dry_run=true",
            Some(c.request(json!({ "target_secret": "e2e/protected-prod" }))),
        )
        .await;
    assert!(matches!(status, 400 | 403), "{status}");
    let (status, body) = c
        .api("POST", "/syncs?dry_run=maybe", Some(c.request(json!({}))))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(c.executions().await, before, "nothing was started");
    assert_eq!(
        dbsync_tests::fingerprint(&c.pair.target_url).await,
        target_before
    );

    let (status, started) = c.api("POST", "/syncs", Some(c.request(json!({})))).await;
    assert_eq!(status, 202, "{started}");
    // The same job priced again: the same bytes, kind and fan-out. (The chunk count comes
    // from sampled key bounds, which may differ by a chunk between two plans.)
    let again = &started["estimate"];
    for field in ["bytes", "kind", "fanout"] {
        assert_eq!(again[field], e[field], "{field}: {started}");
    }
    assert!(again["chunks"].as_u64() > Some(1), "{started}");
    let id = started["job_id"].as_str().expect("id");
    assert_eq!(c.finish(id).await.0, ExecutionStatus::Succeeded);
}

#[tokio::test]
async fn two_jobs_on_one_source_never_open_more_chunk_readers_than_its_connection_cap() {
    let _one = ONE_AT_A_TIME.lock().await;
    let c = Cloud::new(
        "e2e_leases",
        "CREATE TABLE items (id bigint PRIMARY KEY, v text)",
        "INSERT INTO items SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 15000) g",
    )
    .await;
    let body = json!({
        "source_secret": c.source_secret,
        "mode": "export",
        "chunk_size": "64KiB",
        "concurrency": 8,
        "source_connections": 3,
        "page_rows": 400,
        "export_budget_seconds": 0,
    });
    let mut jobs = Vec::new();
    for _ in 0..2 {
        let (status, started) = c.api("POST", "/syncs", Some(body.clone())).await;
        assert_eq!(status, 202, "{started}");
        jobs.push(started["job_id"].as_str().expect("id").to_string());
    }
    // Count the chunk readers on the source while both run.
    let watcher = dbsync_tests::client(&c.pair.source_url).await;
    let db = dbsync_tests::scalar(&c.pair.source_url, "SELECT current_database()").await;
    let mut most = 0i64;
    let mut running = true;
    while running {
        let n: i64 = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name LIKE 'dbsync-%-read'",
                &[&db],
            )
            .await
            .expect("count")
            .get(0);
        most = most.max(n);
        running = false;
        for j in &jobs {
            running |= c.job(j).await["status"] == "running";
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for j in &jobs {
        let (status, error) = c.finish(j).await;
        assert_eq!(status, ExecutionStatus::Succeeded, "{error:?}");
        let m = c.manifest(j).await;
        assert!(m.tables[0].parts.len() > 10, "many segments");
    }
    assert!(
        most <= 3,
        "{most} chunk readers at once on a source capped at 3"
    );
    assert!(most >= 2, "the exports ran side by side ({most} at most)");
    // Every lease was given back.
    let endpoint = c.pair.source_spec().identity();
    let store = c.clients.jobs();
    for probe in ["p1", "p2", "p3"] {
        assert!(store
            .acquire_lease(&endpoint, probe, 3, 1)
            .await
            .expect("lease"));
    }
}

#[tokio::test]
async fn a_chunk_that_fails_is_recorded_through_its_own_catch_and_leaves_no_connection_lease_behind(
) {
    let _one = ONE_AT_A_TIME.lock().await;
    let c = Cloud::new(
        "e2e_chunk_fails",
        "CREATE TABLE items (id bigint PRIMARY KEY, v text)",
        "INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 3000) g",
    )
    .await;
    // A filter that divides by zero on one row: only the export of that row's chunk fails.
    let job = c
        .start(json!({
            "mode": "export",
            "target_secret": null,
            "chunk_size": "64KiB",
            "concurrency": 2,
            "source_connections": 2,
            "rules": {"tables": {"items": {"where": "1 / (id - 2999) IS NOT NULL"}}},
        }))
        .await;
    let (status, _) = c.finish(&job).await;
    assert_eq!(status, ExecutionStatus::Failed);
    let record = c.job(&job).await;
    assert_eq!(record["status"], "failed", "{record}");
    let message = record["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("division by zero"), "{record}");
    let endpoint = c.pair.source_spec().identity();
    let store = c.clients.jobs();
    for probe in ["p1", "p2"] {
        assert!(store
            .acquire_lease(&endpoint, probe, 2, 1)
            .await
            .expect("lease"));
    }
}
