//! `dbsync console` as a person's browser meets it, over real HTTP against the real binary
//! and two real databases: the token and origin checks, a bad request named by its field, a
//! dry run, a sync started from it whose progress moves while it runs and whose target ends
//! identical, a cancelled one, and one whose console was killed under it. Every answer of
//! its API is held to docs/openapi.yaml: the page speaks one JSON to both backends.

mod support;

use dbsync_tests::Pair;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::Console;

#[tokio::test]
async fn the_console_answers_only_requests_with_its_token_and_from_its_own_page() {
    let p = Pair::new("console_guard").await;
    let c = Console::start(&p, "guard");
    let (status, _) = c.call("GET", "/api/databases", &[], None);
    assert_eq!(status, 401, "no token");
    let (status, _) = c.call(
        "GET",
        "/api/databases",
        &[("x-dbsync-token", "guess")],
        None,
    );
    assert_eq!(status, 401, "a wrong token");
    let (status, _) = c.call(
        "GET",
        "/api/databases",
        &[
            ("x-dbsync-token", &c.token),
            ("origin", "http://evil.example"),
        ],
        None,
    );
    assert_eq!(status, 403, "another site's page");
    let (status, page) = c.call("GET", &format!("/?token={}", c.token), &[], None);
    assert_eq!(status, 200);
    assert!(page.contains("<title>dbsync console</title>"));
    let (status, dbs) = c.api("GET", "/api/databases", None);
    assert_eq!(status, 200);
    let names: Vec<&str> = dbs["databases"]
        .as_array()
        .expect("databases")
        .iter()
        .filter_map(|d| d["secret"].as_str())
        .collect();
    assert_eq!(names, ["dst", "src"]);
    assert!(!dbs.to_string().contains("password"), "{dbs}");
}

#[tokio::test]
async fn a_bad_request_is_refused_naming_the_field_it_concerns() {
    let p = Pair::new("console_bad").await;
    let c = Console::start(&p, "bad");
    for (body, field) in [
        (
            json!({"source_secret": "src", "target_secret": "nowhere"}),
            "target_secret",
        ),
        (
            json!({"source_secret": "src", "target_secret": "src"}),
            "target_secret",
        ),
        (
            json!({"source_secret": "src", "target_secret": "dst", "tablez": ["a"]}),
            "tablez",
        ),
        (
            json!({"source_secret": "src", "target_secret": "dst", "atomic": true, "create_schema": true}),
            "create_schema",
        ),
        (
            json!({"source_secret": "src", "target_secret": "dst", "analyze": "maybe"}),
            "analyze",
        ),
        (
            json!({"source_secret": "src", "target_secret": "dst", "concurrency": "four"}),
            "concurrency",
        ),
        (
            json!({"source_secret": "src", "target_secret": "dst", "page_rows": 10}),
            "page_rows",
        ),
        (
            json!({"source_secret": "src", "target_secret": "dst", "rules": {"tablez": {}}}),
            "rules",
        ),
        (
            json!({"source_secret": "src", "target_secret": "dst", "chunk_size": 100}),
            "chunk_size",
        ),
    ] {
        for dry in ["", "?dry_run=true"] {
            let (status, answer) = c.api("POST", &format!("/api/syncs{dry}"), Some(&body));
            assert_eq!(status, 400, "{body}: {answer}");
            assert_eq!(answer["error"]["field"], field, "{body}: {answer}");
            assert!(answer["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()));
        }
    }
    let (_, jobs) = c.api("GET", "/api/syncs", None);
    assert_eq!(jobs, json!({"jobs": []}), "nothing started");
}

#[tokio::test]
async fn a_dry_run_lists_what_the_target_would_have_emptied_and_changes_nothing() {
    let p = Pair::new("console_dry").await;
    p.both("CREATE TABLE parent (id int PRIMARY KEY); CREATE TABLE child (id int PRIMARY KEY, p int REFERENCES parent)")
        .await;
    p.source("INSERT INTO parent VALUES (1); INSERT INTO child VALUES (1, 1)")
        .await;
    p.target("INSERT INTO parent VALUES (7)").await;
    let c = Console::start(&p, "dry");
    let (status, answer) = c.api(
        "POST",
        "/api/syncs?dry_run=true",
        Some(&json!({"source_secret": "src", "target_secret": "dst"})),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["findings"]["tables"],
        json!(["public.parent", "public.child"]),
        "load order: {answer}"
    );
    assert_eq!(
        dbsync_tests::scalar(
            &p.target_url,
            "SELECT string_agg(id::text, ',') FROM parent"
        )
        .await,
        "7",
        "the dry run changed nothing"
    );
    let (_, jobs) = c.api("GET", "/api/syncs", None);
    assert_eq!(jobs, json!({"jobs": []}), "a dry run is not a job");
}

#[tokio::test]
async fn a_sync_started_from_the_console_moves_its_progress_and_ends_identical() {
    let p = Pair::new("console_sync").await;
    p.both("CREATE TABLE items (id int PRIMARY KEY, name text, pad text)")
        .await;
    p.source("INSERT INTO items SELECT g, 'item ' || g, repeat('x', 200) FROM generate_series(1, 400000) g")
        .await;
    p.target("INSERT INTO items VALUES (-1, 'stale', '')").await;
    let c = Console::start(&p, "sync");
    let (status, job) = c.api(
        "POST",
        "/api/syncs",
        Some(&json!({"source_secret": "src", "target_secret": "dst"})),
    );
    assert_eq!(status, 202, "{job}");
    let id = job["job_id"].as_str().expect("job id").to_string();
    let (job, seen) = c.wait(&id);
    assert_eq!(job["status"], "succeeded", "{job}");
    let bytes: std::collections::BTreeSet<u64> =
        seen.iter().filter_map(|p| p["bytes"].as_u64()).collect();
    assert!(
        bytes.len() >= 3,
        "the progress moved while it ran: {bytes:?}"
    );
    assert_eq!(
        job["tables"],
        json!([{"table": "public.items", "state": "loaded", "rows": 400_000,
                "bytes": job["tables"][0]["bytes"], "chunks_done": job["progress"]["chunks_total"],
                "chunks_total": job["progress"]["chunks_total"]}]),
        "{job}"
    );
    assert_eq!(job["progress"]["percent"], 100.0);
    p.assert_identical().await;
    let (_, jobs) = c.api("GET", "/api/syncs", None);
    assert_eq!(jobs["jobs"][0]["job_id"], id.as_str());
}

#[tokio::test]
async fn a_refresh_started_from_the_console_replaces_only_the_ranges_that_changed() {
    let p = Pair::new("console_refresh").await;
    p.both("CREATE TABLE items (id int PRIMARY KEY, name text)")
        .await;
    let data = "INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 50000) g";
    p.source(data).await;
    p.target(data).await;
    p.source("UPDATE items SET name = 'changed' WHERE id > 49990")
        .await;
    let c = Console::start(&p, "refresh");
    // Small ranges: the table is many of them.
    let refresh = json!({"source_secret": "src", "target_secret": "dst", "mode": "refresh",
                         "chunk_size": "64KiB"});
    let mut atomic = refresh.clone();
    atomic["atomic"] = json!(true);
    let (status, answer) = c.api("POST", "/api/syncs", Some(&atomic));
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["field"], "atomic", "{answer}");
    let (status, job) = c.api("POST", "/api/syncs", Some(&refresh));
    assert_eq!(status, 202, "{job}");
    let id = job["job_id"].as_str().expect("job id").to_string();
    let (job, _) = c.wait(&id);
    assert_eq!(job["status"], "succeeded", "{job}");
    p.assert_identical().await;
    assert_eq!(job["kind"], "refresh", "{job}");
    let rows = job["progress"]["rows"].as_u64().unwrap_or(u64::MAX);
    assert!(rows < 5_000, "only the changed ranges were copied: {job}");
}

#[tokio::test]
async fn a_cancelled_sync_stops_and_reads_cancelled() {
    let p = Pair::new("console_cancel").await;
    p.both("CREATE TABLE items (id int PRIMARY KEY, pad text)")
        .await;
    p.source("INSERT INTO items SELECT g, repeat('x', 500) FROM generate_series(1, 600000) g")
        .await;
    let c = Console::start(&p, "cancel");
    let (_, job) = c.api(
        "POST",
        "/api/syncs",
        Some(&json!({"source_secret": "src", "target_secret": "dst", "atomic": true})),
    );
    let id = job["job_id"].as_str().expect("job id").to_string();
    std::thread::sleep(Duration::from_millis(300));
    let (status, _) = c.api("DELETE", &format!("/api/syncs/{id}"), None);
    assert_eq!(status, 202);
    let (job, _) = c.wait(&id);
    assert_eq!(job["status"], "cancelled", "{job}");
    assert_eq!(
        dbsync_tests::scalar(&p.target_url, "SELECT count(*)::text FROM items").await,
        "0",
        "an atomic sync rolled back"
    );
    let (status, _) = c.api("POST", &format!("/api/syncs/{id}/retry"), None);
    assert_eq!(status, 202, "a cancelled job can be started again");
    let (job, _) = c.wait(&id);
    assert_eq!(job["status"], "succeeded", "{job}");
    p.assert_identical().await;
}

#[tokio::test]
async fn a_job_whose_console_was_killed_reads_interrupted_and_a_retry_resumes_it() {
    let p = Pair::new("console_restart").await;
    p.both("CREATE TABLE items (id int PRIMARY KEY, pad text)")
        .await;
    p.source("INSERT INTO items SELECT g, repeat('x', 500) FROM generate_series(1, 600000) g")
        .await;
    let mut c = Console::start(&p, "restart");
    let (_, job) = c.api(
        "POST",
        "/api/syncs",
        Some(&json!({"source_secret": "src", "target_secret": "dst", "chunk_size": "4MiB"})),
    );
    let id = job["job_id"].as_str().expect("job id").to_string();
    // Killed (SIGKILL) once some chunks are in: nothing is put back.
    let started = Instant::now();
    loop {
        let (_, j) = c.api("GET", &format!("/api/syncs/{id}"), None);
        if j["progress"]["chunks_done"].as_u64() > Some(2) || j["status"] != "running" {
            assert_eq!(j["status"], "running", "killed mid-job: {j}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "{j}");
        std::thread::sleep(Duration::from_millis(50));
    }
    c.child.kill().expect("kill the console");
    c.child.wait().expect("reap");
    let state = c.state.clone();
    drop(c);
    let c = Console::on(&p, state);
    let (_, j) = c.api("GET", &format!("/api/syncs/{id}"), None);
    assert_eq!(j["status"], "failed", "{j}");
    assert_eq!(j["error"]["name"], "DbsyncInterrupted", "{j}");
    let (status, r) = c.api("POST", &format!("/api/syncs/{id}/retry"), None);
    assert_eq!((status, &r["retries"]), (202, &json!(1)), "{r}");
    let (job, _) = c.wait(&id);
    assert_eq!(job["status"], "succeeded", "{job}");
    p.assert_identical().await;
}

#[tokio::test]
async fn the_cloud_console_drives_the_deployed_api_with_signed_calls_to_an_identical_target() {
    let p = Pair::new("console_cloud").await;
    p.both("CREATE TABLE items (id int PRIMARY KEY, name text)")
        .await;
    p.source("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 20000) g")
        .await;
    let d = dbsync_tests::cloud::deploy(&p).await;
    let c = Console::cloud("test");
    let (status, dbs) = c.api("GET", "/api/databases", None);
    assert_eq!(status, 200, "{dbs}");
    assert!(dbs.to_string().contains(&d.target_secret), "{dbs}");
    let ask = json!({
        "source_secret": d.source_secret, "target_secret": d.target_secret,
        "chunk_size": "64KiB", "concurrency": 2, "snapshot_window_seconds": 300,
    });
    let (status, dry) = c.api("POST", "/api/syncs?dry_run=true", Some(&ask));
    assert_eq!(status, 200, "{dry}");
    assert!(dry["estimate"]["chunks"].as_u64() > Some(0), "{dry}");
    // The API's own refusal, through the proxy, names the field.
    let mut bad = ask.clone();
    bad["chunk_size"] = json!(100);
    let (status, refused) = c.api("POST", "/api/syncs", Some(&bad));
    assert_eq!(
        (status, &refused["error"]["field"]),
        (400, &json!("chunk_size")),
        "{refused}"
    );
    let (status, started) = c.api("POST", "/api/syncs", Some(&ask));
    assert_eq!(status, 202, "{started}");
    let id = started["job_id"].as_str().expect("job id");
    let pushed = c.events(id);
    let last = pushed.last().expect("a job pushed");
    assert_eq!(last["status"], "succeeded", "{last}");
    assert!(
        last["links"]["console"]
            .as_str()
            .is_some_and(|l| l.contains(id)),
        "{last}"
    );
    p.assert_identical().await;
    // Signed with the wrong secret key, every call is refused by the API's front door (API
    // Gateway's IAM check, before the API: its answer is not one the document lists).
    let wrong = Console::cloud("not-the-key");
    let (status, text) = wrong.call(
        "GET",
        "/api/databases",
        &[("x-dbsync-token", &wrong.token)],
        None,
    );
    let refused: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(status, 403, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("signature")),
        "{refused}"
    );
    assert_eq!(refused["error"]["name"], "DbsyncForbidden", "{refused}");
}

#[tokio::test]
async fn a_sync_with_data_rules_from_the_console_copies_only_what_they_keep() {
    let p = Pair::new("console_rules").await;
    p.both("CREATE TABLE people (id int PRIMARY KEY, region text, note text)")
        .await;
    p.source("INSERT INTO people SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, 'secret ' || g FROM generate_series(1, 100) g")
        .await;
    let c = Console::start(&p, "rules");
    let rules = json!({"tables": {"public.people": {"where": "region = 'eu'", "columns": {"note": "null"}}}});
    let (status, job) = c.api(
        "POST",
        "/api/syncs",
        Some(&json!({"source_secret": "src", "target_secret": "dst", "rules": rules})),
    );
    assert_eq!(status, 202, "{job}");
    let (job, _) = c.wait(job["job_id"].as_str().expect("job id"));
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(
        dbsync_tests::scalar(
            &p.target_url,
            "SELECT count(*) || ' ' || count(note) || ' ' || bool_and(region = 'eu') FROM people"
        )
        .await,
        "50 0 true"
    );
}
