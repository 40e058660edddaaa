//! Test support: two real PostgreSQL clusters (source and target) started by
//! `scripts/pg.sh` when the test command has not started them already, a fresh database pair
//! per test, and fingerprints that prove two databases hold the same data byte for byte.
//! The fingerprint uses its own pinned settings, independent of the core's, so a core that
//! lost precision in transit could not hide it.

pub mod cloud;
pub mod openapi;

use dbsync_core::cloud::steps::JobPlace;
use dbsync_core::pg::conn::ConnSpec;
use std::collections::BTreeMap;
use std::sync::OnceLock;
use tokio_postgres::{Client, NoTls};

/// A database pair: one on the source cluster, one (same name) on the target cluster.
pub struct Pair {
    /// Database name.
    pub name: String,
    /// Source URL (sslmode=disable).
    pub source_url: String,
    /// Target URL.
    pub target_url: String,
}

fn base_urls() -> &'static (String, String) {
    static URLS: OnceLock<(String, String)> = OnceLock::new();
    URLS.get_or_init(|| {
        if let (Ok(s), Ok(t)) = (
            std::env::var("DBSYNC_TEST_SOURCE_URL"),
            std::env::var("DBSYNC_TEST_TARGET_URL"),
        ) {
            return (s, t);
        }
        // `cargo test` without scripts/test.sh: start the clusters ourselves.
        (
            own_cluster("test-source", 55442),
            own_cluster("test-target", 55443),
        )
    })
}

/// Starts (idempotently) cluster `name` on `port` with scripts/pg.sh and returns its base URL.
pub fn own_cluster(name: &str, port: u16) -> String {
    pg_script(&["up", name, &port.to_string()]);
    format!("postgresql://postgres@127.0.0.1:{port}/postgres?sslmode=disable")
}

/// The base URL of a cluster of PostgreSQL `major` (13 to 18) for the version matrix, started
/// (idempotently) by `scripts/pg.sh up vNN PORT --major NN` on port 55450 + major; `slot` 1 is
/// a second cluster of the same major (55460 + major), for a sync from a major into itself.
/// 15 is Debian's, the binaries every other test runs on.
pub fn major_cluster(major: u16, slot: u16) -> String {
    static STARTED: std::sync::Mutex<Vec<(u16, u16)>> = std::sync::Mutex::new(Vec::new());
    let port = 55450 + major + 10 * slot;
    let name = format!("v{major}{}", if slot == 0 { "" } else { "-b" });
    let mut started = STARTED.lock().unwrap_or_else(|e| e.into_inner());
    if !started.contains(&(major, slot)) {
        let port = port.to_string();
        let major_arg = major.to_string();
        let mut args = vec!["up", name.as_str(), port.as_str()];
        if major != 15 {
            args.extend(["--major", major_arg.as_str()]);
        }
        pg_script(&args);
        started.push((major, slot));
    }
    format!("postgresql://postgres@127.0.0.1:{port}/postgres?sslmode=disable")
}

/// The bindir of PostgreSQL 18's client tools (`scripts/pg.sh tools`, fetched once): a
/// pg_dump that reads every major the matrix runs.
pub fn tools_18() -> &'static str {
    static DIR: OnceLock<String> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let out = std::process::Command::new("bash")
            .arg(format!("{root}/scripts/pg.sh"))
            .arg("tools")
            .output()
            .expect("run scripts/pg.sh tools");
        assert!(
            out.status.success(),
            "scripts/pg.sh tools: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    })
}

/// Runs scripts/pg.sh with `args` (`up NAME PORT`, `crash NAME`, ...) and asserts it succeeded.
pub fn pg_script(args: &[&str]) {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let st = std::process::Command::new("bash")
        .arg(format!("{root}/scripts/pg.sh"))
        .args(args)
        .status()
        .expect("run scripts/pg.sh");
    assert!(st.success(), "scripts/pg.sh {args:?} failed");
}

/// Waits until a job has committed a few parts into the target's ledger: the load is under
/// way (whatever the machine's speed), so a stop now lands mid-load.
pub async fn load_under_way(target_url: &str) {
    for _ in 0..600 {
        if let Ok((c, conn)) = tokio_postgres::connect(target_url, NoTls).await {
            tokio::spawn(conn);
            let n = c
                .query_one("SELECT count(*) FROM dbsync.parts", &[])
                .await
                .map(|r| r.get::<_, i64>(0))
                .unwrap_or(0);
            if n >= 3 {
                return;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the job loaded nothing in 30 s");
}

/// Replaces the database name in a URL.
pub fn with_db(url: &str, db: &str) -> String {
    let (head, query) = url.split_once('?').unwrap_or((url, ""));
    let base = head.rsplit_once('/').map(|(b, _)| b).unwrap_or(head);
    if query.is_empty() {
        format!("{base}/{db}")
    } else {
        format!("{base}/{db}?{query}")
    }
}

/// Opens a plain client (no dbsync settings) on a URL.
pub async fn client(url: &str) -> Client {
    let (c, conn) = tokio_postgres::connect(url, NoTls).await.expect("connect");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    c.batch_execute(
        "SET client_min_messages = warning; SET extra_float_digits = 3; SET DateStyle = 'ISO, YMD';
         SET IntervalStyle = 'postgres'; SET TimeZone = 'UTC'; SET bytea_output = 'hex';
         SET lc_monetary = 'C'; SET row_security = off",
    )
    .await
    .expect("settings");
    c
}

impl Pair {
    /// Creates a fresh, empty database pair named after the test.
    pub async fn new(hint: &str) -> Pair {
        let (s, t) = base_urls();
        Pair::on(hint, s, t).await
    }

    /// Creates a fresh, empty database pair on the clusters behind two base URLs (tests that
    /// stop a server need clusters of their own).
    pub async fn on(hint: &str, source_base: &str, target_base: &str) -> Pair {
        let (s, t) = (source_base.to_string(), target_base.to_string());
        let name = format!(
            "t_{}_{}",
            hint.chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(30)
                .collect::<String>(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        )
        .to_lowercase();
        for url in [&s, &t] {
            client(url)
                .await
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .await
                .expect("create database");
        }
        Pair {
            source_url: with_db(&s, &name),
            target_url: with_db(&t, &name),
            name,
        }
    }

    /// Runs SQL on both sides (schema).
    pub async fn both(&self, sql: &str) {
        self.source(sql).await;
        self.target(sql).await;
    }

    /// Runs SQL on the source.
    pub async fn source(&self, sql: &str) {
        client(&self.source_url)
            .await
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("source SQL failed: {e:?}"));
    }

    /// Runs SQL on the target.
    pub async fn target(&self, sql: &str) {
        client(&self.target_url)
            .await
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("target SQL failed: {e:?}"));
    }

    /// `dbsync sync` of this pair, slowed to one worker and 64 kB chunks so that a test can
    /// stop it midway.
    pub fn slow_sync_args(&self) -> Vec<String> {
        let mut a: Vec<String> = [
            "sync",
            "--source",
            &self.source_url,
            "--target",
            &self.target_url,
        ]
        .map(String::from)
        .to_vec();
        a.extend(["--jobs", "1", "--chunk-size", "64kB"].map(String::from));
        a
    }

    /// Parsed source spec.
    pub fn source_spec(&self) -> ConnSpec {
        ConnSpec::parse(&self.source_url, "--source").expect("source url")
    }

    /// Parsed target spec.
    pub fn target_spec(&self) -> ConnSpec {
        ConnSpec::parse(&self.target_url, "--target").expect("target url")
    }

    /// Asserts every user table and sequence is identical on both sides.
    pub async fn assert_identical(&self) {
        let s = fingerprint(&self.source_url).await;
        let t = fingerprint(&self.target_url).await;
        assert!(
            !s.is_empty(),
            "the source has no tables: the test is not testing anything"
        );
        for (k, v) in &s {
            assert_eq!(Some(v), t.get(k), "{k} differs between source and target");
        }
        assert_eq!(s.len(), t.len(), "different sets of tables/sequences");
    }

    /// Asserts every user table and sequence holds the same data on both sides (for targets
    /// whose schema differs on purpose: other collations, constraints only they have).
    pub async fn assert_data_identical(&self) {
        let s = data_fingerprint(&self.source_url).await;
        let t = data_fingerprint(&self.target_url).await;
        assert!(!s.is_empty(), "the source has no tables");
        assert_eq!(s, t, "source and target data differ");
    }
}

/// A pair is dropped with its test: a whole run made 10 GB of databases when each test kept
/// its own, more than a CI machine's disk may have free. A failed test (the thread is
/// panicking) keeps its pair for inspection, as does every test under DBSYNC_TEST_KEEP_DBS=1.
/// Best effort: a cluster a test stopped is simply not reached.
impl Drop for Pair {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("DBSYNC_TEST_KEEP_DBS").is_some() {
            return;
        }
        let bases = [
            with_db(&self.source_url, "postgres"),
            with_db(&self.target_url, "postgres"),
        ];
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop runs inside the test's runtime, which cannot be blocked on: a thread of its own
        // with a runtime of its own does the dropping.
        let dropping = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                for base in &bases {
                    let connected = tokio::time::timeout(
                        std::time::Duration::from_secs(5),
                        tokio_postgres::connect(base, NoTls),
                    )
                    .await;
                    if let Ok(Ok((c, conn))) = connected {
                        tokio::spawn(conn);
                        let _ = c.batch_execute(&sql).await;
                    }
                }
            });
        });
        let _ = dropping.join();
    }
}

/// Per table: row count and md5 of all rows' text forms sorted in C collation; per
/// sequence: last_value and is_called; and the schema dbsync may touch during a load
/// ([`schema_fingerprint`]). dbsync's own schemas (the ledger, an atomic import's shadow
/// tables) are left out.
pub async fn fingerprint(url: &str) -> BTreeMap<String, String> {
    let mut out = schema_fingerprint(url).await;
    out.extend(data_fingerprint(url).await);
    out
}

/// The schema dbsync may touch during a load: indexes, table and domain constraints (with
/// whether PostgreSQL holds them valid) and trigger states must come back exactly.
pub async fn schema_fingerprint(url: &str) -> BTreeMap<String, String> {
    let c = client(url).await;
    let mut out = BTreeMap::new();
    for (key, sql) in [
        (
            "indexes",
            "SELECT coalesce(string_agg(indexdef, E'\\n' ORDER BY indexdef), '') FROM pg_indexes
              WHERE schemaname NOT IN ('pg_catalog', 'dbsync')",
        ),
        (
            "constraints",
            "SELECT coalesce(string_agg(format('%s %s %s %s', conrelid::regclass, conname, pg_get_constraintdef(oid), convalidated),
                    E'\\n' ORDER BY conrelid::regclass::text, conname), '')
               FROM pg_constraint WHERE connamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
                AND conrelid <> 0 AND connamespace::regnamespace::text <> 'dbsync' AND contype <> 'n'",
        ),
        // PostgreSQL 18 also keeps NOT NULL as constraints (contype 'n'), older majors only
        // as a column flag: the flag is what every major agrees on.
        (
            "not null",
            "SELECT coalesce(string_agg(format('%s.%I', a.attrelid::regclass, a.attname), ',' ORDER BY a.attrelid::regclass::text, a.attname), '')
               FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
              WHERE a.attnotnull AND a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p')
                AND c.relnamespace::regnamespace::text NOT IN ('pg_catalog', 'information_schema', 'dbsync', 'dbsync_shadow')
                AND c.relnamespace::regnamespace::text NOT LIKE 'pg_toast%'",
        ),
        (
            "domain constraints",
            "SELECT coalesce(string_agg(format('%s %s %s %s', contypid::regtype, conname, pg_get_constraintdef(oid), convalidated),
                    E'\\n' ORDER BY contypid::regtype::text, conname), '')
               FROM pg_constraint WHERE connamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
                AND contypid <> 0",
        ),
        (
            "triggers",
            "SELECT coalesce(string_agg(tgname || ' ' || tgenabled::text, ',' ORDER BY tgname), '') FROM pg_trigger WHERE NOT tgisinternal",
        ),
    ] {
        let v: String = c.query_one(sql, &[]).await.expect("schema fingerprint").get(0);
        out.insert(key.to_string(), v);
    }
    out
}

/// Per table: row count and md5 of all rows' text forms sorted in C collation; per
/// sequence: last_value and is_called.
pub async fn data_fingerprint(url: &str) -> BTreeMap<String, String> {
    let c = client(url).await;
    let mut out = BTreeMap::new();
    let rels = c
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname), c.relkind::text FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('r', 'S') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'dbsync', 'dbsync_shadow')
                AND n.nspname NOT LIKE 'pg_toast%'
              ORDER BY 1",
            &[],
        )
        .await
        .expect("list relations");
    for r in rels {
        let name: String = r.get(0);
        let kind: String = r.get(1);
        let sql = if kind == "S" {
            format!("SELECT last_value::text || ' ' || is_called::text FROM {name}")
        } else {
            format!(
                "SELECT count(*)::text || ' ' || md5(coalesce(string_agg(r, E'\\n' ORDER BY r COLLATE \"C\"), ''))
                   FROM (SELECT t::text AS r FROM ONLY {name} t) s"
            )
        };
        let v: String = c
            .query_one(sql.as_str(), &[])
            .await
            .expect("fingerprint")
            .get(0);
        out.insert(format!("{kind} {name}"), v);
    }
    out
}

/// One value from a query.
pub async fn scalar(url: &str, sql: &str) -> String {
    client(url)
        .await
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .get::<_, String>(0)
}

/// AWS settings for the local emulator (moto): started by scripts/test.sh, or here when the
/// tests run without it.
pub fn aws_settings() -> dbsync_core::aws::AwsSettings {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    let endpoint = ENDPOINT.get_or_init(|| {
        if let Ok(e) = std::env::var("DBSYNC_TEST_AWS_ENDPOINT") {
            return e;
        }
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let st = std::process::Command::new("bash")
            .arg(format!("{root}/scripts/moto.sh"))
            .args(["up", "55500", "55501", "http://127.0.0.1:55509"])
            .status()
            .expect("run scripts/moto.sh");
        assert!(st.success(), "scripts/moto.sh up 55500 failed");
        "http://127.0.0.1:55500".into()
    });
    dbsync_core::aws::AwsSettings {
        endpoint_url: Some(endpoint.clone()),
        region: Some("us-east-1".into()),
        static_credentials: Some(("test".into(), "test".into())),
    }
}

/// The Lambda invoke gateway in front of `cargo lambda watch` serving the real function
/// binaries (what Step Functions Tasks in the emulator call); started when missing.
pub fn lambda_gateway() -> String {
    static GATEWAY: OnceLock<String> = OnceLock::new();
    GATEWAY
        .get_or_init(|| {
            let aws = aws_settings().endpoint_url.unwrap_or_default();
            if let Ok(g) = std::env::var("DBSYNC_TEST_LAMBDA_GATEWAY") {
                return g;
            }
            let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
            let st = std::process::Command::new("bash")
                .arg(format!("{root}/scripts/lambda.sh"))
                .args(["up", "55509", &aws])
                .status()
                .expect("run scripts/lambda.sh");
            assert!(st.success(), "scripts/lambda.sh up 55509 failed");
            "http://127.0.0.1:55501".into()
        })
        .clone()
}

/// Invokes a function through the gateway as Step Functions would (Lambda's Invoke API);
/// returns whether it reported a function error, and its JSON answer.
pub async fn invoke(function: &str, payload: &serde_json::Value) -> (bool, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let gateway = lambda_gateway();
    let addr = gateway.trim_start_matches("http://");
    let body = payload.to_string();
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to the invoke gateway");
    let req = format!(
        "POST /2015-03-31/functions/{function}/invocations HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(
        head.starts_with("HTTP/1.1 200"),
        "invoke {function}: {head}\n{body}"
    );
    let failed = head.to_ascii_lowercase().contains("x-amz-function-error");
    (
        failed,
        serde_json::from_str(body).unwrap_or_else(|e| panic!("invoke {function}: {e}: {body}")),
    )
}

/// S3 settings for the local emulator.
pub fn s3_settings() -> dbsync_core::parts::S3Settings {
    dbsync_core::parts::S3Settings {
        aws: aws_settings(),
        part_size: None,
    }
}

/// A fresh bucket in the emulator; returns its name.
pub async fn s3_bucket(hint: &str) -> String {
    let client = dbsync_core::parts::s3::client(&aws_settings()).await;
    let name = format!(
        "dbsync-{}-{}",
        hint.replace('_', "-"),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    client
        .create_bucket()
        .bucket(&name)
        .send()
        .await
        .expect("create bucket");
    name
}

/// A serverless test setup: a database pair, a bucket, a job table, a job record, source and
/// target secrets, and the clients a function builds at its cold start, all against the
/// local emulator.
pub struct FunctionFixture {
    /// The databases.
    pub pair: Pair,
    /// The function clients.
    pub clients: dbsync_core::cloud::lambda::Clients,
    /// The job id (taken from the caller, usually from a sample event).
    pub job_id: String,
    /// Secret ids holding the source and target URLs.
    pub source_secret: String,
    /// Target secret id.
    pub target_secret: String,
}

impl FunctionFixture {
    /// Sets everything up; `schema` runs on both sides, `data` on the source.
    pub async fn new(hint: &str, job_id: &str, schema: &str, data: &str) -> FunctionFixture {
        use dbsync_core::cloud::jobstore::JobStore;
        let pair = Pair::new(hint).await;
        pair.both(schema).await;
        pair.source(data).await;
        let bucket = s3_bucket(&hint.replace('_', "-")).await;
        let table = format!("dbsync-jobs-{}", &pair.name[pair.name.len() - 8..]);
        let env = dbsync_core::cloud::lambda::FunctionEnv::from_lookup(&|k| match k {
            "DBSYNC_BUCKET" => Some(bucket.clone()),
            "DBSYNC_JOB_TABLE" => Some(table.clone()),
            _ => None,
        })
        .expect("env");
        let clients = dbsync_core::cloud::lambda::Clients::new(env, &aws_settings()).await;
        dbsync_core::cloud::jobstore::DynamoJobStore::create_table(&clients.dynamodb, &table)
            .await
            .expect("job table");
        clients
            .jobs()
            .create(&dbsync_core::cloud::jobstore::JobRecord::new(
                job_id,
                "sync",
                serde_json::json!({}),
                None,
            ))
            .await
            .expect("job");
        let (source_secret, target_secret) = (
            format!("{}/source", pair.name),
            format!("{}/target", pair.name),
        );
        for (id, url) in [
            (&source_secret, &pair.source_url),
            (&target_secret, &pair.target_url),
        ] {
            clients
                .secrets
                .create_secret()
                .name(id.as_str())
                .secret_string(serde_json::json!({ "url": url }).to_string())
                .send()
                .await
                .expect("secret");
        }
        FunctionFixture {
            pair,
            clients,
            job_id: job_id.to_string(),
            source_secret,
            target_secret,
        }
    }

    /// The job's folder in the bucket.
    pub fn store(&self) -> dbsync_core::parts::S3Store {
        self.clients.store_for(&self.job_id).expect("store")
    }

    /// What the steps before Prepare leave behind: a plan, every chunk exported in one held
    /// snapshot, the manifest.
    pub async fn export_all(&self) {
        let snapshot = self.export_chunks().await;
        dbsync_core::cloud::steps::assemble_job(
            &self.pair.source_spec(),
            JobPlace {
                store: &self.store(),
                jobs: &self.clients.jobs(),
            },
            &self.job_id,
            &snapshot,
        )
        .await
        .expect("assemble");
    }

    /// What Prepare does after [`Self::export_all`]: the target emptied for the load, the
    /// waves' items written.
    pub async fn prepare_target(&self) -> dbsync_core::cloud::steps::PrepareOutput {
        let event = dbsync_core::cloud::steps::PrepareEvent {
            job_id: self.job_id.clone(),
            target_secret: self.target_secret.clone(),
            keep_indexes: false,
            analyze: Default::default(),
            atomic: false,
            create_schema: false,
            data_job_id: None,
            backup_job_id: None,
        };
        let place = JobPlace {
            store: &self.store(),
            jobs: &self.clients.jobs(),
        };
        dbsync_core::cloud::steps::prepare(
            &self.pair.target_spec(),
            place,
            &self.clients.env.bucket,
            &event,
        )
        .await
        .expect("prepare")
    }

    /// What the steps before Assemble leave behind: a plan and every chunk exported in one
    /// snapshot (whose id is returned; no longer held).
    pub async fn export_chunks(&self) -> String {
        use dbsync_core::cloud::steps;
        let (src, store, jobs) = (self.pair.source_spec(), self.store(), self.clients.jobs());
        let (_holder, snapshot) = dbsync_core::pg::snapshot::open_snapshot(&src, "holder")
            .await
            .expect("snapshot");
        steps::plan_job(
            &src,
            &snapshot,
            JobPlace {
                store: &store,
                jobs: &jobs,
            },
            &self.job_id,
            dbsync_core::cloud::steps::PlanScope::new(&Default::default(), 64 * 1024),
        )
        .await
        .expect("plan");
        export_items(&src, &snapshot, &store, &jobs, chunk_items(&store).await).await;
        snapshot
    }
}

/// The chunk list a plan wrote: the export Map's items.
pub async fn chunk_items(
    store: &dyn dbsync_core::parts::PartStore,
) -> Vec<dbsync_core::cloud::steps::ChunkItem> {
    let data = store
        .get(dbsync_core::cloud::steps::CHUNKS_KEY)
        .await
        .expect("the chunk list");
    serde_json::from_slice(&data).expect("chunk list json")
}

/// The export Map: one export step per item, each output (through JSON, as Step Functions
/// passes it) the next input while the chunk continues. Returns the part ids written.
pub async fn export_items(
    source: &ConnSpec,
    snapshot: &str,
    store: &dyn dbsync_core::parts::PartStore,
    jobs: &dyn dbsync_core::cloud::jobstore::JobStore,
    items: Vec<dbsync_core::cloud::steps::ChunkItem>,
) -> Vec<String> {
    use dbsync_core::cloud::steps::{self, ExportStep, ExportStepResult};
    let mut part_ids = Vec::new();
    for item in items {
        let mut step = ExportStep {
            item,
            segment: 0,
            resume: None,
            pending: None,
            tuning: Default::default(),
        };
        loop {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            let out = steps::export_step(
                source,
                snapshot,
                JobPlace { store, jobs },
                &step,
                deadline,
                1,
            )
            .await
            .expect("export step");
            let out: ExportStepResult =
                serde_json::from_str(&serde_json::to_string(&out).expect("json")).expect("back");
            part_ids.push(out.part_id.clone());
            if out.done {
                break;
            }
            step = out.next;
        }
    }
    part_ids
}

/// Restores a script with `psql -v ON_ERROR_STOP=1 -f`, as a user would.
pub fn psql_restore(url: &str, file: &std::path::Path) {
    let out = std::process::Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f"])
        .arg(file)
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Restores a gzip script (any number of gzip members, as `zcat FILE | psql` reads it).
pub fn psql_restore_gzip(url: &str, gz: &[u8], name: &str) {
    use std::io::Read;
    let mut text = Vec::new();
    flate2::read::MultiGzDecoder::new(gz)
        .read_to_end(&mut text)
        .expect("the dump is gzip");
    let path = std::env::temp_dir().join(format!("{name}.sql"));
    std::fs::write(&path, &text).expect("write the script");
    psql_restore(url, &path);
    let _ = std::fs::remove_file(&path);
}
