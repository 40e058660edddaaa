//! The whole cloud flow on this machine: the real function binaries (served by `cargo lambda
//! watch`) behind the invoke gateway, the state machine of `statemachine/sync.asl.json` run by
//! the emulator's Step Functions, S3, DynamoDB and Secrets Manager in the emulator, and two
//! real PostgreSQL servers. Requests enter as API Gateway events to the api function, or as the
//! nightly schedule's input, exactly as they would in AWS.
//!
//! The functions' settings are fixed when the gateway starts (scripts/lambda.sh): bucket
//! `dbsync-e2e`, table `dbsync-e2e-jobs`, state machine `dbsync-e2e-sync`, protected targets
//! `e2e/protected*`. These tests run one at a time (one snapshot holder per job would
//! otherwise queue behind another job's in the single local function process).

use super::*;
use aws_sdk_sfn::types::ExecutionStatus;
use dbsync_core::cloud::jobstore::JobStore;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

mod connections;
mod dump;
mod loads;
mod refresh;

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

use dbsync_tests::cloud::{ACCOUNT, BUCKET, STATE_MACHINE};

/// Everything one end-to-end test needs.
struct Cloud {
    pair: Pair,
    sfn: aws_sdk_sfn::Client,
    clients: dbsync_core::cloud::lambda::Clients,
    source_secret: String,
    target_secret: String,
}

impl Cloud {
    async fn new(hint: &str, schema: &str, data: &str) -> Cloud {
        Cloud::on(Pair::new(hint).await, schema, data).await
    }

    /// The same on a pair of the caller's making (the version matrix's clusters).
    async fn on(pair: Pair, schema: &str, data: &str) -> Cloud {
        dbsync_tests::lambda_gateway();
        pair.both(schema).await;
        pair.source(data).await;
        // VACUUM too: an autovacuum between two plans would add the free-space and visibility
        // maps to the tables' sizes, and a test that prices one job twice would see it move.
        pair.source("VACUUM ANALYZE").await;
        let d = dbsync_tests::cloud::deploy(&pair).await;
        Cloud {
            pair,
            sfn: d.sfn,
            clients: d.clients,
            source_secret: d.source_secret,
            target_secret: d.target_secret,
        }
    }

    async fn secret(&self, id: &str, url: &str) {
        dbsync_tests::cloud::secret(&self.clients, id, url).await;
    }

    /// Sends an API Gateway request to the api function; returns status and JSON body.
    async fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut event: Value =
            serde_json::from_str(include_str!("../../../events/api-post-sync.json"))
                .expect("sample");
        event["httpMethod"] = json!(method);
        let (route, query) = path.split_once('?').unwrap_or((path, ""));
        event["path"] = json!(route);
        event["queryStringParameters"] = query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect::<serde_json::Map<String, Value>>()
            .into();
        event["body"] = body.as_ref().map_or(Value::Null, |b| json!(b.to_string()));
        let (failed, out) = dbsync_tests::invoke("api", &event).await;
        assert!(!failed, "the api function answers errors as HTTP: {out}");
        let status = out["statusCode"].as_u64().expect("statusCode") as u16;
        let answer = serde_json::from_str(out["body"].as_str().unwrap_or("null")).expect("json");
        // Every answer of every end-to-end test is held to the API's document, and so is
        // every request it accepted.
        let route = path.split('?').next().unwrap_or(path);
        dbsync_tests::openapi::assert_answer(method, route, status, &answer);
        if let (Some(b), 200..=299) = (&body, status) {
            dbsync_tests::openapi::assert_request(method, route, b);
        }
        (status, answer)
    }

    fn request(&self, extra: Value) -> Value {
        let mut r = json!({
            "source_secret": self.source_secret,
            "target_secret": self.target_secret,
            "chunk_size": "64KiB",
            "concurrency": 4,
            "snapshot_window_seconds": 300,
        });
        if let (Value::Object(r), Value::Object(e)) = (&mut r, extra) {
            r.extend(e);
        }
        r
    }

    async fn start(&self, extra: Value) -> String {
        let (status, body) = self.api("POST", "/syncs", Some(self.request(extra))).await;
        assert_eq!(status, 202, "{body}");
        body["job_id"].as_str().expect("job id").to_string()
    }

    /// Waits for the job's execution to end; returns its status and error.
    async fn finish(&self, job_id: &str) -> (ExecutionStatus, Option<String>) {
        self.finish_execution(job_id).await
    }

    /// Waits for the execution `name` (a job id, or a retry's name) to end.
    async fn finish_execution(&self, name: &str) -> (ExecutionStatus, Option<String>) {
        let (job_id, arn) = (
            name,
            format!("arn:aws:states:us-east-1:{ACCOUNT}:execution:{STATE_MACHINE}:{name}"),
        );
        let started = Instant::now();
        loop {
            let d = self
                .sfn
                .describe_execution()
                .execution_arn(&arn)
                .send()
                .await
                .expect("describe execution");
            if d.status() != &ExecutionStatus::Running {
                return (d.status().clone(), d.error().map(str::to_string));
            }
            assert!(
                started.elapsed() < Duration::from_secs(600),
                "execution {job_id} still running after 10 minutes"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn job(&self, job_id: &str) -> Value {
        let (status, body) = self.api("GET", &format!("/syncs/{job_id}"), None).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    async fn manifest(&self, job_id: &str) -> dbsync_core::model::manifest::Manifest {
        let store = self.clients.store_for(job_id).expect("store");
        dbsync_core::parts::read_manifest(&store)
            .await
            .expect("the manifest is in S3")
    }

    /// The job's target lock is released: another job may take it.
    async fn assert_target_free(&self, job: &Value) {
        let jobs = self.clients.jobs();
        let key = job["target"].as_str().expect("lock key");
        jobs.lock_target(key, "next", 60).await.expect("lock free");
        jobs.release_target(key, "next").await.expect("release");
    }

    async fn executions(&self) -> usize {
        self.sfn
            .list_executions()
            .state_machine_arn(format!(
                "arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:{STATE_MACHINE}"
            ))
            .send()
            .await
            .expect("list executions")
            .executions()
            .len()
    }
}

/// The job record's counters agree with the manifest and say the job is complete.
fn assert_complete(job: &Value, m: &dbsync_core::model::manifest::Manifest) {
    let p = &job["progress"];
    let parts: u64 = m.tables.iter().map(|t| t.parts.len() as u64).sum();
    let rows: u64 = m
        .tables
        .iter()
        .flat_map(|t| &t.parts)
        .map(|p| p.stats.rows)
        .sum();
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["phase"], "done", "{job}");
    assert_eq!(p["percent"], 100.0, "{job}");
    assert!(p["chunks_total"].as_u64() > Some(0), "{job}");
    assert_eq!(p["chunks_done"], p["chunks_total"], "{job}");
    assert_eq!(p["parts_total"].as_u64(), Some(parts), "{job}");
    assert_eq!(p["parts_done"].as_u64(), Some(parts), "{job}");
    // Rows are counted once on export and once on load.
    assert_eq!(p["rows"].as_u64(), Some(2 * rows), "{job}");
}

#[tokio::test]
async fn an_api_request_runs_the_state_machine_to_an_identical_target_and_a_second_job_is_refused()
{
    let _one = ONE_AT_A_TIME.lock().await;
    let c = Cloud::new("e2e_api", SCHEMA, DATA).await;
    let job_id = c.start(json!({})).await;

    // While it runs, the target is locked: a second job is refused and nothing starts.
    let before = c.executions().await;
    let (status, body) = c.api("POST", "/syncs", Some(c.request(json!({})))).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["name"], "DbsyncTargetLocked");
    assert_eq!(c.executions().await, before);

    let (status, error) = c.finish(&job_id).await;
    assert_eq!(status, ExecutionStatus::Succeeded, "{error:?}");
    c.pair.assert_identical().await;
    let m = c.manifest(&job_id).await;
    assert_eq!(m.job_id, job_id);
    assert_eq!(m.consistency, "snapshot");
    let job = c.job(&job_id).await;
    assert_complete(&job, &m);
    assert!(job["error"].is_null());
    let (status, list) = c.api("GET", "/syncs", None).await;
    assert_eq!(status, 200);
    assert!(list["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .any(|j| j["job_id"] == job_id.as_str()));
    // The lock was released: the next job may take the target.
    c.assert_target_free(&job).await;
}

#[tokio::test]
async fn a_tiny_time_budget_makes_chunks_continue_many_times_under_a_relayed_snapshot_and_the_result_is_still_exact(
) {
    let _one = ONE_AT_A_TIME.lock().await;
    let c = Cloud::new(
        "e2e_budget",
        "CREATE TABLE items (id bigint PRIMARY KEY, v text, n numeric);
         CREATE TABLE notes (item bigint REFERENCES items, body text)",
        "INSERT INTO items SELECT g, repeat(chr(65 + g % 26), 40) || E'\\t\\\\' || g, g / 7.0
           FROM generate_series(1, 6000) g;
         INSERT INTO notes SELECT g % 6000 + 1, CASE WHEN g % 3 = 0 THEN NULL ELSE 'n' || g END
           FROM generate_series(1, 3000) g",
    )
    .await;
    // Holders of 3 s: the snapshot is relayed while the chunks export.
    let job_id = c
        .start(
            json!({ "export_budget_seconds": 0, "page_rows": 300, "snapshot_window_seconds": 3 }),
        )
        .await;
    let (status, error) = c.finish(&job_id).await;
    assert_eq!(status, ExecutionStatus::Succeeded, "{error:?}");
    c.pair.assert_identical().await;
    let m = c.manifest(&job_id).await;
    assert_eq!(m.consistency, "snapshot");
    let record = c
        .clients
        .jobs()
        .get(&job_id)
        .await
        .expect("get")
        .expect("job");
    assert_ne!(
        record.snapshot.as_deref(),
        Some(m.snapshot.as_str()),
        "the holders relayed the first snapshot"
    );
    let job = c.job(&job_id).await;
    assert_complete(&job, &m);
    let parts: u64 = m.tables.iter().map(|t| t.parts.len() as u64).sum();
    let chunks = job["progress"]["chunks_total"].as_u64().expect("chunks");
    assert!(
        parts >= chunks + 10,
        "{parts} parts for {chunks} chunks: continuations expected"
    );
}

#[tokio::test]
async fn an_unreachable_target_fails_the_execution_through_catch_with_the_error_on_the_job() {
    let _one = ONE_AT_A_TIME.lock().await;
    let c = Cloud::new(
        "e2e_unreachable",
        "CREATE TABLE t (id int PRIMARY KEY)",
        "INSERT INTO t SELECT generate_series(1, 100)",
    )
    .await;
    let nowhere = format!("e2e/{}/nowhere", c.pair.name);
    c.secret(
        &nowhere,
        "postgresql://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=2",
    )
    .await;
    let (status, body) = c
        .api(
            "POST",
            "/syncs",
            Some(c.request(json!({ "target_secret": nowhere }))),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let job_id = body["job_id"].as_str().expect("job id").to_string();
    let (status, error) = c.finish(&job_id).await;
    assert_eq!(status, ExecutionStatus::Failed);
    assert_eq!(error.as_deref(), Some("DbsyncConnect"));
    let job = c.job(&job_id).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error"]["name"], "DbsyncConnect", "{job}");
    let message = job["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("127.0.0.1:1"), "{message}");
    // The export went through; the lock is free again.
    assert_eq!(job["phase"], "importing", "{job}");
    c.assert_target_free(&job).await;
}

#[tokio::test]
async fn the_nightly_schedule_input_starts_the_same_flow() {
    let _one = ONE_AT_A_TIME.lock().await;
    let c = Cloud::new(
        "e2e_schedule",
        "CREATE TABLE t (id int PRIMARY KEY, v text); CREATE SEQUENCE s",
        "INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 500) g; SELECT setval('s', 77)",
    )
    .await;
    let mut event: Value =
        serde_json::from_str(include_str!("../../../events/schedule.json")).expect("sample");
    event["request"]["source_secret"] = json!(c.source_secret);
    event["request"]["target_secret"] = json!(c.target_secret);
    let (failed, out) = dbsync_tests::invoke("api", &event).await;
    assert!(!failed, "{out}");
    let job_id = out["job_id"].as_str().expect("job id").to_string();
    let (status, error) = c.finish(&job_id).await;
    assert_eq!(status, ExecutionStatus::Succeeded, "{error:?}");
    c.pair.assert_identical().await;
    let job = c.job(&job_id).await;
    assert_eq!(job["status"], "succeeded");
    assert_eq!(
        job["request"]["origin"]["schedule"],
        "nightly-staging-refresh"
    );
    // A refused scheduled request is the invocation's error, named.
    event["request"]["target_secret"] = json!(c.source_secret);
    let (failed, out) = dbsync_tests::invoke("api", &event).await;
    assert!(failed);
    assert_eq!(out["errorType"], "DbsyncSameDatabase", "{out}");
}

#[tokio::test]
async fn bad_requests_are_refused_with_a_clear_400_or_403_and_nothing_starts() {
    let _one = ONE_AT_A_TIME.lock().await;
    let c = Cloud::new("e2e_refuse", "CREATE TABLE t (id int)", "").await;
    let protected = format!("e2e/protected-{}", c.pair.name);
    c.secret(&protected, &c.pair.target_url).await;
    let same = format!("e2e/{}/source-again", c.pair.name);
    c.secret(&same, &c.pair.source_url).await;
    let before = c.executions().await;
    let cases = [
        (json!({ "target_secret": protected }), 403, "protected"),
        (
            json!({ "target_secret": "e2e/no/such/secret" }),
            400,
            "does not exist",
        ),
        (json!({ "target_secret": same }), 400, "same database"),
        (json!({ "chunk_sise": "1MiB" }), 400, "unknown field"),
        (json!({ "concurrency": 1000 }), 400, "concurrency"),
    ];
    for (extra, want, says) in cases {
        let (status, body) = c
            .api("POST", "/syncs", Some(c.request(extra.clone())))
            .await;
        assert_eq!(status, want, "{extra}: {body}");
        let m = body["error"]["message"].as_str().unwrap_or_default();
        assert!(m.contains(says), "{extra}: {m}");
    }
    let (status, body) = c.api("POST", "/syncs", None).await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = c.api("GET", "/syncs/no-such-job", None).await;
    assert_eq!(status, 404);
    let (status, _) = c.api("PUT", "/syncs", None).await;
    assert_eq!(status, 405);
    assert_eq!(c.executions().await, before, "nothing was started");
    // The target was never touched.
    assert_eq!(
        dbsync_tests::scalar(
            &c.pair.target_url,
            "SELECT count(*)::text FROM pg_namespace WHERE nspname = 'dbsync'"
        )
        .await,
        "0"
    );
}

#[tokio::test]
async fn a_cancelled_job_stops_its_execution_and_frees_the_target() {
    let _one = ONE_AT_A_TIME.lock().await;
    let c = Cloud::new(
        "e2e_cancel",
        "CREATE TABLE t (id bigint PRIMARY KEY, v text)",
        "INSERT INTO t SELECT g, repeat('x', 100) FROM generate_series(1, 20000) g",
    )
    .await;
    let job_id = c
        .start(json!({ "export_budget_seconds": 0, "page_rows": 100, "concurrency": 1 }))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (status, body) = c.api("DELETE", &format!("/syncs/{job_id}"), None).await;
    assert_eq!(status, 202, "{body}");
    let (status, _) = c.finish(&job_id).await;
    assert_eq!(status, ExecutionStatus::Aborted);
    let job = c.job(&job_id).await;
    assert_eq!(job["status"], "cancelled", "{job}");
    let (status, body) = c.api("DELETE", &format!("/syncs/{job_id}"), None).await;
    assert_eq!(status, 409, "{body}");
    c.assert_target_free(&job).await;
}

/// Parent and child tables on both sides, and a rule only the target has, through a function
/// only the target has (rows with id 3999 and up break it): the pre-flight cannot test it on
/// the source, so only the load finds it. `extra` runs on both sides after the tables.
async fn cloud_with_a_rule_only_the_target_has(hint: &str, extra: &str) -> Cloud {
    let schema = format!(
        "CREATE TABLE parent (id int PRIMARY KEY, v text);
         CREATE TABLE child (id int PRIMARY KEY, parent int REFERENCES parent, v text);
         CREATE INDEX child_v ON child (v); {extra}"
    );
    let c = Cloud::new(
        hint,
        &schema,
        "INSERT INTO parent SELECT g, 'p' || g FROM generate_series(1, 500) g;
         INSERT INTO child SELECT g, g % 500 + 1, 'c' || g FROM generate_series(1, 4000) g",
    )
    .await;
    c.pair
        .target(
            "INSERT INTO parent VALUES (1, 'old'); INSERT INTO child VALUES (1, 1, 'old');
             CREATE FUNCTION small(n int) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT n < 3999';
             ALTER TABLE child ADD CONSTRAINT child_small CHECK (small(id))",
        )
        .await;
    c
}

#[tokio::test]
async fn a_load_that_fails_late_puts_the_target_back_through_catch_and_a_rerun_after_the_fix_is_exact(
) {
    let _one = ONE_AT_A_TIME.lock().await;
    // The load finds the broken rule after the target was emptied and its index dropped.
    let c = cloud_with_a_rule_only_the_target_has(
        "e2e_putback",
        "CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
         CREATE TRIGGER child_touch BEFORE INSERT ON child FOR EACH ROW EXECUTE FUNCTION touch()",
    )
    .await;
    let before = dbsync_tests::schema_fingerprint(&c.pair.target_url).await;
    let job_id = c.start(json!({})).await;
    let (status, error) = c.finish(&job_id).await;
    assert_eq!(status, ExecutionStatus::Failed, "{error:?}");
    let job = c.job(&job_id).await;
    assert_eq!(job["status"], "failed", "{job}");
    let message = job["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("child_small"), "{message}");

    // The Catch path put back what prepare took away: the index and the trigger are as
    // they were; the foreign key the load did not enforce is NOT VALID (its rows were not
    // checked), not dropped and not claiming to hold.
    let after = dbsync_tests::schema_fingerprint(&c.pair.target_url).await;
    for k in ["indexes", "triggers", "domain constraints"] {
        assert_eq!(after[k], before[k], "{k} are back as they were");
    }
    let fk = "REFERENCES parent(id)";
    assert_eq!(
        after["constraints"],
        before["constraints"].replace(&format!("{fk} t\n"), &format!("{fk} NOT VALID f\n"))
    );
    let url = &c.pair.target_url;
    let q = |sql: &'static str| dbsync_tests::scalar(url, sql);
    assert_eq!(
        q("SELECT count(*)::text FROM pg_indexes WHERE indexname = 'child_v'").await,
        "1"
    );
    assert_eq!(
        q("SELECT tgenabled::text FROM pg_trigger WHERE tgname = 'child_touch'").await,
        "O"
    );
    assert_eq!(
        q("SELECT convalidated::text FROM pg_constraint WHERE conname = 'child_parent_fkey'").await,
        "false"
    );
    assert_eq!(
        dbsync_tests::scalar(
            url,
            &format!("SELECT state FROM dbsync.jobs WHERE job_id = '{job_id}'")
        )
        .await,
        "interrupted"
    );
    c.assert_target_free(&job).await;

    // Fixed, a new job loads it exactly and the key holds again.
    c.pair
        .target("ALTER TABLE child DROP CONSTRAINT child_small")
        .await;
    let again = c.start(json!({})).await;
    let (status, error) = c.finish(&again).await;
    assert_eq!(status, ExecutionStatus::Succeeded, "{error:?}");
    c.pair.assert_identical().await;
}

#[tokio::test]
async fn an_atomic_job_that_fails_at_the_swap_leaves_the_target_byte_identical_and_one_that_passes_is_exact(
) {
    let _one = ONE_AT_A_TIME.lock().await;
    let c = cloud_with_a_rule_only_the_target_has("e2e_atomic", "").await;
    let before = dbsync_tests::fingerprint(&c.pair.target_url).await;
    // Every part loads (into the shadow tables); the swap breaks on row 3999 and rolls back.
    let job_id = c.start(json!({ "atomic": true })).await;
    let (status, error) = c.finish(&job_id).await;
    assert_eq!(status, ExecutionStatus::Failed, "{error:?}");
    let job = c.job(&job_id).await;
    let message = job["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("child_small"), "{message}");
    assert_eq!(
        dbsync_tests::fingerprint(&c.pair.target_url).await,
        before,
        "the target is byte-identical to before"
    );
    let shadows = "SELECT count(*)::text FROM pg_namespace WHERE nspname = 'dbsync_shadow'";
    assert_eq!(
        dbsync_tests::scalar(&c.pair.target_url, shadows).await,
        "0",
        "the Catch path dropped the shadow tables"
    );
    c.assert_target_free(&job).await;

    c.pair
        .target("ALTER TABLE child DROP CONSTRAINT child_small")
        .await;
    let again = c.start(json!({ "atomic": true })).await;
    let (status, error) = c.finish(&again).await;
    assert_eq!(status, ExecutionStatus::Succeeded, "{error:?}");
    c.pair.assert_identical().await;
    assert_eq!(dbsync_tests::scalar(&c.pair.target_url, shadows).await, "0");
    let m = c.manifest(&again).await;
    assert_complete(&c.job(&again).await, &m);
}

#[tokio::test]
async fn a_job_with_data_rules_filters_and_masks_in_the_source_and_bad_rules_never_start_or_touch_the_target(
) {
    let _one = ONE_AT_A_TIME.lock().await;
    let c = Cloud::new(
        "e2e_rules",
        "CREATE TABLE people (id bigint PRIMARY KEY, email text UNIQUE NOT NULL, region text);
         CREATE TABLE orders (id bigint PRIMARY KEY, person bigint REFERENCES people,
                              email text REFERENCES people (email))",
        "INSERT INTO people SELECT g, 'p' || g || '@corp.example',
                CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END FROM generate_series(1, 3000) g;
         INSERT INTO orders SELECT g, g % 3000 + 1, 'p' || (g % 3000 + 1) || '@corp.example'
           FROM generate_series(1, 6000) g",
    )
    .await;
    let key = "e2e-rules-key-0123456789";
    let key_secret = format!("e2e/{}/rules-key", c.pair.name);
    c.clients
        .secrets
        .create_secret()
        .name(&key_secret)
        .secret_string(key)
        .send()
        .await
        .expect("key secret");
    let rules = json!({"tables": {
        "people": {"where": "region = 'eu'", "columns": {"email": "email"}},
        "orders": {"columns": {"email": "email"}}}});
    let before = c.executions().await;
    for (extra, says) in [
        (json!({ "rules": rules }), "rules_key_secret"),
        (
            json!({"rules": {"tables": {"people": {"columns": {"email": "scramble"}}}},
                   "rules_key_secret": key_secret}),
            "unknown rule",
        ),
        (
            json!({"rules": rules, "rules_key_secret": "e2e/no/such/key"}),
            "does not exist",
        ),
    ] {
        let (status, body) = c
            .api("POST", "/syncs", Some(c.request(extra.clone())))
            .await;
        assert_eq!(status, 400, "{extra}: {body}");
        let m = body["error"]["message"].as_str().unwrap_or_default();
        assert!(m.contains(says), "{extra}: {m}");
    }
    assert_eq!(c.executions().await, before, "nothing was started");

    // Rules the catalog refuses fail the job at the plan, before the target is touched.
    let bad = c
        .start(json!({"rules": {"tables": {"people": {"columns": {"nope": "null"}}}}}))
        .await;
    let (status, _) = c.finish(&bad).await;
    assert_eq!(status, ExecutionStatus::Failed);
    let job = c.job(&bad).await;
    assert_eq!(job["error"]["name"], "DbsyncConfig", "{job}");
    let m = job["error"]["message"].as_str().unwrap_or_default();
    assert!(m.contains("no column \"nope\""), "{m}");
    assert_eq!(
        dbsync_tests::scalar(&c.pair.target_url, "SELECT count(*)::text FROM people").await,
        "0"
    );

    let job_id = c
        .start(json!({"rules": rules, "rules_key_secret": key_secret}))
        .await;
    let (status, error) = c.finish(&job_id).await;
    assert_eq!(status, ExecutionStatus::Succeeded, "{error:?}");
    let t = &c.pair.target_url;
    assert_eq!(
        dbsync_tests::scalar(t, "SELECT count(*)::text FROM people").await,
        "1500"
    );
    assert_eq!(
        dbsync_tests::scalar(t, "SELECT count(*)::text FROM orders o JOIN people p ON p.id = o.person AND p.email = o.email").await,
        "3000",
        "every order of an eu person came along, and its hashed email still joins"
    );
    let want = format!(
        "user_{}@example.com",
        &dbsync_core::model::rules::hmac_sha256_hex(key.as_bytes(), b"p2@corp.example")[..16]
    );
    assert_eq!(
        dbsync_tests::scalar(t, "SELECT email FROM people WHERE id = 2").await,
        want
    );
    let m = c.manifest(&job_id).await;
    let people = m
        .tables
        .iter()
        .find(|t| t.table.name.name == "people")
        .expect("people in the manifest");
    let applied = people.table.rules.as_ref().expect("rules recorded");
    assert_eq!(applied.columns["email"].rule, "email");
    let job = c.job(&job_id).await;
    let (ipad, opad) = dbsync_core::model::rules::hmac_pads(key.as_bytes());
    let manifest_text = serde_json::to_string(&m).expect("json");
    for text in [job.to_string(), manifest_text] {
        for secret in [key, ipad.as_str(), opad.as_str()] {
            assert!(!text.contains(secret), "the key leaked");
        }
        assert!(!text.contains("@corp.example"));
    }
}

#[tokio::test]
async fn create_schema_builds_the_tables_an_empty_target_lacks_and_the_job_ends_identical() {
    let _one = ONE_AT_A_TIME.lock().await;
    let c = Cloud::new("e2e_create", "SELECT 1", "SELECT 1").await;
    c.pair
        .source(
            "CREATE TYPE mood AS ENUM ('sad', 'ok');
             CREATE TABLE people (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                                  name text NOT NULL, feel mood DEFAULT 'ok');
             CREATE TABLE visits (id serial PRIMARY KEY, person bigint REFERENCES people,
                                  at timestamptz DEFAULT now());
             CREATE INDEX visits_at ON visits (at);
             INSERT INTO people (name) SELECT 'p' || g FROM generate_series(1, 2000) g;
             INSERT INTO visits (person) SELECT g % 2000 + 1 FROM generate_series(1, 5000) g;
             ANALYZE",
        )
        .await;
    let (status, body) = c
        .api(
            "POST",
            "/syncs",
            Some(c.request(json!({"create_schema": true, "atomic": true}))),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let job_id = c.start(json!({ "create_schema": true })).await;
    let (status, error) = c.finish(&job_id).await;
    assert_eq!(status, ExecutionStatus::Succeeded, "{error:?}");
    c.pair.assert_identical().await;
    assert_eq!(
        dbsync_tests::scalar(
            &c.pair.target_url,
            "SELECT count(*)::text FROM pg_indexes WHERE indexname = 'visits_at'"
        )
        .await,
        "1"
    );
}

#[tokio::test]
async fn a_job_from_a_postgresql_13_source_creates_and_fills_a_postgresql_18_target_identically() {
    let _one = ONE_AT_A_TIME.lock().await;
    let pair = Pair::on(
        "e2e_13_to_18",
        &dbsync_tests::major_cluster(13, 0),
        &dbsync_tests::major_cluster(18, 0),
    )
    .await;
    let c = Cloud::on(pair, "SELECT 1", "SELECT 1").await;
    c.pair
        .source(
            "CREATE TYPE mood AS ENUM ('sad', 'ok');
             CREATE TYPE floatrange AS RANGE (subtype = float8, subtype_diff = float8mi);
             CREATE TABLE people (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                                  name text NOT NULL, feel mood DEFAULT 'ok', span floatrange,
                                  shout text GENERATED ALWAYS AS (upper(name)) STORED);
             CREATE TABLE visits (id serial PRIMARY KEY, person bigint REFERENCES people,
                                  at timestamptz DEFAULT '2026-01-01') PARTITION BY RANGE (id);
             CREATE TABLE visits_low PARTITION OF visits FOR VALUES FROM (MINVALUE) TO (2500);
             CREATE TABLE visits_high PARTITION OF visits FOR VALUES FROM (2500) TO (MAXVALUE);
             INSERT INTO people (name, span) SELECT 'p' || g, numrange(g, g + 1)::text::floatrange
               FROM generate_series(1, 2000) g;
             INSERT INTO visits (person) SELECT g % 2000 + 1 FROM generate_series(1, 5000) g;
             ANALYZE",
        )
        .await;
    let job_id = c.start(json!({ "create_schema": true })).await;
    let (status, error) = c.finish(&job_id).await;
    assert_eq!(status, ExecutionStatus::Succeeded, "{error:?}");
    c.pair.assert_identical().await;
    assert_eq!(
        dbsync_tests::scalar(&c.pair.target_url, "SHOW server_version_num").await[..2],
        *"18"
    );
    // The serverless finish restored the source's statistics instead of analyzing (a
    // table without a range column: 13 shows no range statistics to copy).
    assert_eq!(
        dbsync_tests::scalar(
            &c.pair.target_url,
            "SELECT analyze_count::text || ' ' || (SELECT count(*) FROM pg_stats WHERE tablename = 'visits_low')::text
               FROM pg_stat_user_tables WHERE relname = 'visits_low'"
        )
        .await,
        "0 3"
    );
}
