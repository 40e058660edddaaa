//! The `dbsync` binary as a user runs it: exit statuses, one-line errors naming the flag or
//! table, `DBSYNC_*` environment twins, and no password in any output.

use dbsync_tests::Pair;
use std::process::{Command, Output};

fn dbsync(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dbsync"));
    c.args(args).arg("--quiet");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run dbsync")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_changed_max_share_outside_0_to_1_names_the_flag_and_the_value_and_exits_1() {
    let o = dbsync(
        &[
            "sync",
            "--source",
            "postgresql://h/a",
            "--target",
            "postgresql://h/b",
            "--changed-only",
            "--changed-max-share",
            "1.5",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    let e = text(&o.stderr);
    assert!(
        e.contains("error[DbsyncConfig]") && e.contains("--changed-max-share") && e.contains("1.5"),
        "{e}"
    );
}

#[test]
fn a_bad_chunk_size_names_the_flag_and_the_value_and_exits_1() {
    let o = dbsync(
        &[
            "sync",
            "--source",
            "postgresql://h/a",
            "--target",
            "postgresql://h/b",
            "--chunk-size",
            "lots",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    let e = text(&o.stderr);
    assert!(
        e.contains("error[DbsyncConfig]") && e.contains("--chunk-size") && e.contains("lots"),
        "{e}"
    );
}

#[test]
fn a_missing_required_flag_is_a_usage_error() {
    let o = dbsync(
        &["sync", "--target", "postgresql://h/b"],
        &[("DBSYNC_SOURCE", "")],
    );
    assert_ne!(o.status.code(), Some(0));
}

#[tokio::test]
async fn sync_reads_its_urls_from_environment_twins_and_verify_agrees() {
    let p = Pair::new("cli_env").await;
    p.both("CREATE TABLE items (id int PRIMARY KEY, name text)")
        .await;
    p.source("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 1000) g")
        .await;
    let env = [
        ("DBSYNC_SOURCE", p.source_url.as_str()),
        ("DBSYNC_TARGET", p.target_url.as_str()),
        ("DBSYNC_CHUNK_SIZE", "8kB"),
        ("DBSYNC_JOBS", "2"),
    ];
    let o = dbsync(&["sync"], &env);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("synced 1 table ("),
        "{}",
        text(&o.stdout)
    );
    let v = dbsync(&["verify"], &env);
    assert_eq!(v.status.code(), Some(0), "{}", text(&v.stderr));
    // A change on the target makes verify fail with status 3, naming the table.
    p.target("UPDATE items SET name = 'changed' WHERE id = 7")
        .await;
    let v = dbsync(&["verify"], &env);
    assert_eq!(v.status.code(), Some(3));
    assert!(
        text(&v.stderr).contains("public.items"),
        "{}",
        text(&v.stderr)
    );
    // It names the row.
    assert!(
        text(&v.stderr).contains("first differing keys: (id)=(7): differs"),
        "{}",
        text(&v.stderr)
    );
}

#[test]
fn an_unreachable_database_is_one_line_without_the_password() {
    let o = dbsync(
        &[
            "plan",
            "--source",
            "postgresql://app:s3cr3t-pw@127.0.0.1:1/prod?sslmode=disable",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    let e = text(&o.stderr);
    assert!(
        e.contains("error[DbsyncConnect]") && e.contains("app@127.0.0.1:1/prod"),
        "{e}"
    );
    assert!(!e.contains("s3cr3t-pw"), "{e}");
}

#[tokio::test]
async fn export_then_import_through_the_command_line_ends_identical() {
    let p = Pair::new("cli_export").await;
    p.both("CREATE TABLE items (id int PRIMARY KEY, name text)")
        .await;
    p.source("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 500) g")
        .await;
    let dir = std::env::temp_dir().join(format!("dbsync-cli-{}", p.name));
    let d = dir.to_str().expect("path");
    let o = dbsync(&["export", "--source", &p.source_url, "--to", d], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let o = dbsync(&["import", "--from", d, "--target", &p.target_url], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    p.assert_identical().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn an_import_of_a_manifest_of_another_format_is_refused_by_its_error_name() {
    let p = Pair::new("cli_bad_manifest").await;
    p.both("CREATE TABLE items (id int PRIMARY KEY, name text)")
        .await;
    let dir = std::env::temp_dir().join(format!("dbsync-cli-{}", p.name));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("manifest.json"), "{\"format\":\"something else\"}").expect("write");
    let d = dir.to_str().expect("path");
    let o = dbsync(&["import", "--from", d, "--target", &p.target_url], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("error[DbsyncManifest]"),
        "{}",
        text(&o.stderr)
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// A pair whose `items` (with an index) the source holds 700 rows of and the target one
/// stale row.
async fn items_with_a_stale_target(name: &str) -> Pair {
    let p = Pair::new(name).await;
    p.both("CREATE TABLE items (id int PRIMARY KEY, name text); CREATE INDEX items_name ON items (name)")
        .await;
    p.source("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 700) g")
        .await;
    p.target("INSERT INTO items VALUES (1, 'stale')").await;
    p
}

#[tokio::test]
async fn a_dry_run_of_sync_says_what_it_would_empty_and_rebuild_and_changes_nothing() {
    let p = items_with_a_stale_target("cli_dry").await;
    let dry = dbsync(
        &[
            "sync",
            "--dry-run",
            "--source",
            &p.source_url,
            "--target",
            &p.target_url,
        ],
        &[],
    );
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry.stderr));
    let out = text(&dry.stdout);
    assert!(
        out.contains("nothing was changed")
            && out.contains("public.items")
            && out.contains("items_name"),
        "{out}"
    );
    assert_eq!(
        dbsync_tests::scalar(&p.target_url, "SELECT string_agg(name, ',') FROM items").await,
        "stale"
    );
}

#[tokio::test]
async fn sync_via_a_directory_exports_there_imports_and_ends_identical() {
    let p = items_with_a_stale_target("cli_via").await;
    let dir = std::env::temp_dir().join(format!("dbsync-cli-{}", p.name));
    let d = dir.to_str().expect("path");
    let o = dbsync(
        &[
            "sync",
            "--via",
            d,
            "--verify",
            "--source",
            &p.source_url,
            "--target",
            &p.target_url,
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(dir.join("manifest.json").exists());
    p.assert_identical().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn export_to_and_import_from_s3_with_the_standard_aws_environment() {
    let p = Pair::new("cli_s3").await;
    p.both("CREATE TABLE items (id int PRIMARY KEY, name text)")
        .await;
    p.source("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 300) g")
        .await;
    let endpoint = dbsync_tests::aws_settings().endpoint_url.expect("endpoint");
    let bucket = dbsync_tests::s3_bucket("cli").await;
    let url = format!("s3://{bucket}/exports/items");
    let env = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
    ];
    let o = dbsync(&["export", "--source", &p.source_url, "--to", &url], &env);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains(&format!("{url}/manifest.json")),
        "{}",
        text(&o.stdout)
    );
    let o = dbsync(&["import", "--from", &url, "--target", &p.target_url], &env);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    p.assert_identical().await;
}

#[tokio::test]
async fn sigint_stops_a_sync_puts_back_what_it_took_exits_130_and_a_rerun_finishes_it() {
    let p = Pair::new("cli_sigint").await;
    p.both(
        "CREATE TABLE parents (id int PRIMARY KEY);
         CREATE TABLE big (id int PRIMARY KEY, parent int REFERENCES parents, v text);
         CREATE INDEX big_v ON big (v);",
    )
    .await;
    p.source(
        "INSERT INTO parents SELECT generate_series(1, 100);
         INSERT INTO big SELECT g, 1 + g % 100, md5(g::text) FROM generate_series(1, 500000) g;
         ANALYZE;",
    )
    .await;
    let child = Command::new(env!("CARGO_BIN_EXE_dbsync"))
        .args(p.slow_sync_args())
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start dbsync");
    dbsync_tests::load_under_way(&p.target_url).await;
    // The shell's own kill: no procps needed on the machine.
    let killed = Command::new("sh")
        .args(["-c", &format!("kill -INT {}", child.id())])
        .status()
        .expect("kill");
    assert!(killed.success());
    let o = child.wait_with_output().expect("wait");
    let e = text(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{e}");
    assert!(
        e.contains("error[DbsyncInterrupted]: interrupted by SIGINT"),
        "{e}"
    );
    let q = |sql: &'static str| dbsync_tests::scalar(&p.target_url, sql);
    assert_eq!(
        q("SELECT count(*)::text FROM pg_indexes WHERE indexname = 'big_v'").await,
        "1",
        "the dropped index is back: {e}"
    );
    assert_eq!(
        q("SELECT string_agg(state, ',') FROM dbsync.jobs").await,
        "interrupted"
    );
    let again = dbsync(
        &[
            "sync",
            "--source",
            &p.source_url,
            "--target",
            &p.target_url,
            "--verify",
        ],
        &[],
    );
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    p.assert_identical().await;
}

/// Runs dbsync with `args` and returns its exit status and peak resident memory in MiB,
/// read from /proc while it runs (VmHWM only grows).
fn peak_rss_mib(args: &[&str]) -> (Option<i32>, u64) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dbsync"))
        .args(args)
        .arg("--quiet")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start dbsync");
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    loop {
        if let Ok(s) = std::fs::read_to_string(&status_path) {
            if let Some(kib) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak_kib = peak_kib.max(kib);
            }
        }
        if let Some(status) = child.try_wait().expect("wait") {
            return (status.code(), peak_kib / 1024);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[tokio::test]
async fn a_300_mb_value_syncs_and_exports_holding_one_copy_of_it() {
    let p = Pair::new("cli_big_value").await;
    p.both("CREATE TABLE big (id int PRIMARY KEY, v text)")
        .await;
    p.source(
        "INSERT INTO big SELECT 1, repeat('x', 300 * 1024 * 1024);
         INSERT INTO big SELECT g, 'small ' || g FROM generate_series(2, 1000) g;",
    )
    .await;
    let (code, mib) = peak_rss_mib(&["sync", "--source", &p.source_url, "--target", &p.target_url]);
    assert_eq!(code, Some(0));
    assert!(mib < 400, "sync peaked at {mib} MiB");
    let sum = "SELECT md5(string_agg(md5(v), ',' ORDER BY id)) FROM big";
    assert_eq!(
        dbsync_tests::scalar(&p.source_url, sum).await,
        dbsync_tests::scalar(&p.target_url, sum).await
    );
    let dir = std::env::temp_dir().join(format!("dbsync-big-{}", p.name));
    let to = dir.display().to_string();
    let (code, mib) = peak_rss_mib(&["export", "--source", &p.source_url, "--to", &to]);
    assert_eq!(code, Some(0));
    assert!(mib < 400, "export peaked at {mib} MiB");
    let (code, mib) = peak_rss_mib(&[
        "import",
        "--from",
        &to,
        "--target",
        &p.target_url,
        "--restart",
    ]);
    assert_eq!(code, Some(0));
    assert!(mib < 100, "import peaked at {mib} MiB");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn rules_come_from_environment_twins_plan_shows_them_and_a_short_key_is_refused() {
    let p = Pair::new("cli_rules").await;
    p.both("CREATE TABLE people (id int PRIMARY KEY, email text UNIQUE, note text)")
        .await;
    p.source("INSERT INTO people SELECT g, 'p' || g || '@corp.example', 'n' FROM generate_series(1, 50) g")
        .await;
    let dir = std::env::temp_dir().join(format!("dbsync-cli-{}", p.name));
    std::fs::create_dir_all(&dir).expect("dir");
    let rules = dir.join("rules.json");
    std::fs::write(
        &rules,
        r#"{"tables": {"people": {"where": "id <= 10", "columns": {"email": "email", "note": "null"}}}}"#,
    )
    .expect("rules file");
    let rules = rules.to_str().expect("utf8 path");
    let env = [
        ("DBSYNC_SOURCE", p.source_url.as_str()),
        ("DBSYNC_TARGET", p.target_url.as_str()),
        ("DBSYNC_RULES", rules),
        ("DBSYNC_RULES_KEY", "a-key-of-at-least-16-bytes"),
    ];
    let o = dbsync(&["plan"], &env);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        out.contains("data rules") && out.contains("rows where id <= 10"),
        "{out}"
    );
    assert!(
        out.contains("email: email") && out.contains("note: null"),
        "{out}"
    );
    let o = dbsync(&["sync", "--verify"], &env);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let o = dbsync(&["verify"], &env);
    assert_eq!(
        o.status.code(),
        Some(0),
        "verify applies the rules to the source too: {}",
        text(&o.stderr)
    );
    assert_eq!(
        dbsync_tests::scalar(
            &p.target_url,
            "SELECT count(*)::text FROM people WHERE email LIKE 'user_%@example.com'"
        )
        .await,
        "10"
    );
    let mut short = env;
    short[3] = ("DBSYNC_RULES_KEY", "short");
    let o = dbsync(&["sync"], &short);
    assert_eq!(o.status.code(), Some(1));
    let e = text(&o.stderr);
    assert!(
        e.contains("DBSYNC_RULES_KEY") && e.contains("at least 16") && !e.contains("short"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn create_schema_fills_an_empty_target_and_says_what_it_created() {
    let p = Pair::new("cli_create").await;
    p.source(
        "CREATE TABLE a (id int PRIMARY KEY, v text);
         CREATE TABLE b (id int PRIMARY KEY, a int REFERENCES a);
         INSERT INTO a SELECT g, 'v' FROM generate_series(1, 20) g;
         INSERT INTO b SELECT g, g FROM generate_series(1, 20) g",
    )
    .await;
    let env = [
        ("DBSYNC_SOURCE", p.source_url.as_str()),
        ("DBSYNC_TARGET", p.target_url.as_str()),
        ("DBSYNC_CREATE_SCHEMA", "true"),
    ];
    let o = Command::new(env!("CARGO_BIN_EXE_dbsync"))
        .args(["sync", "--verify"])
        .envs(env)
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("created 2 tables"), "{out}");
    assert!(out.contains("verified identical"), "{out}");
}

#[test]
fn create_schema_with_via_is_refused_naming_the_flag() {
    let env = [
        ("DBSYNC_SOURCE", "postgresql://nobody@127.0.0.1:1/none"),
        ("DBSYNC_TARGET", "postgresql://nobody@127.0.0.1:1/none"),
        ("DBSYNC_CREATE_SCHEMA", "true"),
    ];
    let o = dbsync(&["sync", "--via", "/tmp/nowhere"], &env);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("--create-schema"),
        "{}",
        text(&o.stderr)
    );
}

#[tokio::test]
async fn plan_prices_the_serverless_job_only_when_asked_for_a_mode() {
    let p = Pair::new("cli_cost").await;
    p.source("CREATE TABLE items (id int PRIMARY KEY, v text); INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 20000) g; ANALYZE items")
        .await;
    let env = [("DBSYNC_SOURCE", p.source_url.as_str())];
    let o = dbsync(&["plan", "--mode", "export", "--concurrency", "16"], &env);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        out.contains("serverless export job, 16 at once") && out.contains("estimated cost $"),
        "{out}"
    );
    let o = dbsync(&["plan", "--json", "--mode", "sync"], &env);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["serverless"]["chunks"], 1);
    assert!(v["serverless"]["estimated_duration_seconds"].as_u64() > Some(0));
    // Without --mode the plan is the command line's: no price.
    let o = dbsync(&["plan"], &env);
    assert!(
        !text(&o.stdout).contains("serverless"),
        "{}",
        text(&o.stdout)
    );
    let v: serde_json::Value =
        serde_json::from_slice(&dbsync(&["plan", "--json"], &env).stdout).expect("json");
    assert!(v.get("serverless").is_none());
}

#[tokio::test]
async fn plan_with_a_bad_rate_setting_is_refused_naming_the_setting() {
    let p = Pair::new("cli_cost_bad").await;
    p.source("CREATE TABLE items (id int PRIMARY KEY)").await;
    let bad = [
        ("DBSYNC_SOURCE", p.source_url.as_str()),
        ("DBSYNC_COST_S3_PUT", "free"),
    ];
    let o = dbsync(&["plan", "--mode", "sync"], &bad);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("DBSYNC_COST_S3_PUT"),
        "{}",
        text(&o.stderr)
    );
}

#[tokio::test]
async fn plan_into_a_reader_that_closes_early_ends_quietly_instead_of_panicking() {
    let p = Pair::new("cli_pipe").await;
    p.source(
        "CREATE TABLE items (id int PRIMARY KEY, v text);
         INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 1000) g;
         CREATE TABLE more (id int PRIMARY KEY); ANALYZE",
    )
    .await;
    // `dbsync plan | head -1`: the reader goes away after one line.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dbsync"))
        .args(["plan", "--source", &p.source_url])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run dbsync");
    drop(child.stdout.take());
    let o = child.wait_with_output().expect("wait");
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[tokio::test]
async fn a_protected_target_is_refused_by_name_by_sync_and_import_and_left_untouched() {
    let p = Pair::new("cli_protected").await;
    p.both("CREATE TABLE items (id int PRIMARY KEY, name text)")
        .await;
    p.source("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 100) g")
        .await;
    p.target("INSERT INTO items VALUES (1, 'production row')")
        .await;
    let pattern = format!("127.0.0.1:*/{}", p.name);
    let protected = format!("staging-*,{pattern}");
    let env = [
        ("DBSYNC_SOURCE", p.source_url.as_str()),
        ("DBSYNC_TARGET", p.target_url.as_str()),
        ("DBSYNC_PROTECTED_TARGETS", protected.as_str()),
    ];
    let o = dbsync(&["sync"], &env);
    let e = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(
        e.contains("error[DbsyncProtected]") && e.contains(&pattern) && e.contains(&p.name),
        "{e}"
    );
    let dir = std::env::temp_dir().join(format!("dbsync-cli-{}", p.name));
    let o = dbsync(
        &["export", "--to", dir.to_str().expect("utf8 path")],
        &env[..1],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let o = dbsync(
        &["import", "--from", dir.to_str().expect("utf8 path")],
        &env[1..],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("error[DbsyncProtected]"));
    assert_eq!(
        dbsync_tests::scalar(&p.target_url, "SELECT string_agg(name, ',') FROM items").await,
        "production row"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Every file under `dir`, relative, sorted.
fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir").flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(rel) = path.strip_prefix(dir) {
                out.push(rel.display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn an_export_over_another_is_refused_by_name_and_force_replaces_it_whole() {
    let p = Pair::new("cli_over").await;
    p.source(
        "CREATE TABLE items (id int PRIMARY KEY, name text);
         INSERT INTO items SELECT g, repeat('x', 200) FROM generate_series(1, 3000) g;
         CREATE TABLE other (id int PRIMARY KEY); INSERT INTO other VALUES (1)",
    )
    .await;
    let dir = std::env::temp_dir().join(format!("dbsync-cli-{}", p.name));
    let d = dir.to_str().expect("path");
    // `dbsync CMD --source URL FLAG PATH EXTRA...`
    let run = |cmd: &str, flag: &str, path: &str, extra: &[&str]| {
        let mut args = vec![cmd, "--source", &p.source_url, flag, path];
        args.extend(extra);
        dbsync(&args, &[])
    };
    let export = |extra: &[&str]| run("export", "--to", d, extra);
    let o = export(&["--chunk-size", "64kB"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let first = files_under(&dir);
    let manifest = std::fs::read(dir.join("manifest.json")).expect("manifest");
    // A second export into the same directory: refused, the first left as it was.
    let o = export(&["--tables", "items"]);
    let e = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(
        e.contains("error[DbsyncConfig]")
            && e.contains("--to")
            && e.contains(d)
            && e.contains("already holds an export (manifest.json)")
            && e.contains("--force"),
        "{e}"
    );
    assert_eq!(files_under(&dir), first);
    assert_eq!(
        std::fs::read(dir.join("manifest.json")).expect("manifest"),
        manifest
    );
    // A directory holding anything else is refused too, naming what it holds.
    let other = std::env::temp_dir().join(format!("dbsync-cli-{}-notes", p.name));
    std::fs::create_dir_all(&other).expect("dir");
    std::fs::write(other.join("notes.txt"), "mine").expect("write");
    let o = run("export", "--to", other.to_str().expect("path"), &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("a file (notes.txt)"),
        "{}",
        text(&o.stderr)
    );
    // --force empties it first: only the new export's files remain.
    let o = export(&["--tables", "items", "--force"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let after = files_under(&dir);
    // Parts are named by table: t0001 was `other`, which the new export leaves out.
    assert!(after.iter().all(|f| !f.contains("t0001.")), "{after:?}");
    assert!(after.len() < first.len(), "{after:?} vs {first:?}");
    // The same for a dump's output file.
    let out = dir.join("dump.sql");
    std::fs::write(&out, "precious").expect("write");
    let o = run("dump", "-o", out.to_str().expect("path"), &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("already exists"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(std::fs::read_to_string(&out).expect("read"), "precious");
    let o = run("dump", "-o", out.to_str().expect("path"), &["--force"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(std::fs::read_to_string(&out)
        .expect("read")
        .contains("COPY"));
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(other);
}

#[test]
fn an_s3_location_without_an_aws_region_is_named_in_plain_words() {
    let home = std::env::temp_dir().join(format!("dbsync-noregion-{}", std::process::id()));
    let o = Command::new(env!("CARGO_BIN_EXE_dbsync"))
        .args([
            "export",
            "--source",
            "postgresql://x@127.0.0.1:1/x",
            "--to",
            "s3://bucket/p",
        ])
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("AWS_PROFILE")
        .env("HOME", &home)
        .output()
        .expect("run dbsync");
    let e = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains("no AWS region is set: set AWS_REGION"), "{e}");
    assert!(
        !e.contains("DispatchFailure {"),
        "a Rust structure in the message: {e}"
    );
}

/// Makes role `dbsync_pw` (password `pw:with\colon`) log in by password only on the cluster
/// behind `url`: a pg_hba line for that role alone, placed first, then a reload. Other roles
/// keep the clusters' trust auth.
async fn password_only_role(url: &str) {
    let c = dbsync_tests::client(url).await;
    c.batch_execute(
        "DO $$ BEGIN
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'dbsync_pw') THEN
             CREATE ROLE dbsync_pw LOGIN SUPERUSER;
           END IF;
         END $$;
         SET password_encryption = 'scram-sha-256';
         ALTER ROLE dbsync_pw PASSWORD 'pw:with\\colon'",
    )
    .await
    .expect("role");
    let hba: String = c.query_one("SHOW hba_file", &[]).await.expect("hba").get(0);
    let line = "host all dbsync_pw 127.0.0.1/32 scram-sha-256\n";
    let old = std::fs::read_to_string(&hba).expect("read hba");
    if !old.contains(line) {
        std::fs::write(&hba, format!("{line}{old}")).expect("write hba");
    }
    c.batch_execute("SELECT pg_reload_conf()")
        .await
        .expect("reload");
}

fn port_of(url: &str) -> String {
    let after = url.rsplit_once('@').map(|(_, h)| h).unwrap_or(url);
    let hostport = after.split('/').next().unwrap_or_default();
    hostport
        .rsplit_once(':')
        .map(|(_, p)| p)
        .unwrap_or("5432")
        .to_string()
}

#[tokio::test]
async fn a_password_file_and_a_service_file_are_read_as_libpq_reads_them() {
    let p = Pair::new("cli_pgpass").await;
    p.both("CREATE TABLE items (id int PRIMARY KEY, name text)")
        .await;
    p.source("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 500) g")
        .await;
    password_only_role(&p.source_url).await;
    password_only_role(&p.target_url).await;
    let (sp, tp) = (port_of(&p.source_url), port_of(&p.target_url));
    let source = format!(
        "postgresql://dbsync_pw@127.0.0.1:{sp}/{}?sslmode=disable",
        p.name
    );
    let target = format!(
        "postgresql://dbsync_pw@127.0.0.1:{tp}/{}?sslmode=disable",
        p.name
    );
    let dir = std::env::temp_dir().join(format!("dbsync-cli-{}", p.name));
    std::fs::create_dir_all(&dir).expect("home");
    let home = dir.to_str().expect("utf-8 path");
    let no_files = [("HOME", home), ("PGPASSWORD", ""), ("PGSERVICE", "")];

    // Without a password anywhere, the server's refusal is named (and no password shown).
    let o = dbsync(
        &["verify", "--source", &source, "--target", &target],
        &no_files,
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let e = text(&o.stderr);
    assert!(e.contains("password"), "{e}");

    // ~/.pgpass, as psql reads it: escaped colon and backslash, `*` for the database.
    let pgpass = dir.join(".pgpass");
    std::fs::write(
        &pgpass,
        format!(
            "# comment\n127.0.0.1:{sp}:*:dbsync_pw:pw\\:with\\\\colon\n\
             127.0.0.1:{tp}:{}:dbsync_pw:pw\\:with\\\\colon\n",
            p.name
        ),
    )
    .expect("pgpass");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let o = dbsync(
        &["sync", "--source", &source, "--target", &target],
        &no_files,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    p.assert_identical().await;

    // A file others may read is not read (libpq's rule), and the run says why.
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let o = Command::new(env!("CARGO_BIN_EXE_dbsync"))
        .args(["verify", "--source", &source, "--target", &target])
        .envs(no_files)
        .output()
        .expect("run dbsync");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("group or world access"),
        "{}",
        text(&o.stderr)
    );

    // A service from PGSERVICEFILE, named in the URL or by PGSERVICE; the password from
    // the service itself.
    let services = dir.join("services.conf");
    std::fs::write(
        &services,
        format!(
            "[src]\nhost=127.0.0.1\nport={sp}\ndbname={db}\nuser=dbsync_pw\nsslmode=disable\n\
             password=pw:with\\colon\n\n[dst]\nhost=127.0.0.1\nport={tp}\ndbname={db}\n\
             user=dbsync_pw\nsslmode=disable\npassword=pw:with\\colon\n",
            db = p.name
        ),
    )
    .expect("service file");
    let svc_file = services.to_str().expect("utf-8 path");
    let with_services = [
        ("HOME", home),
        ("PGPASSWORD", ""),
        ("PGSERVICEFILE", svc_file),
        ("PGSERVICE", "dst"),
    ];
    let o = dbsync(
        &["verify", "--source", "service=src", "--target", ""],
        &with_services,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let o = dbsync(
        &["verify", "--source", "service=nosuch", "--target", ""],
        &with_services,
    );
    assert_eq!(o.status.code(), Some(1));
    let e = text(&o.stderr);
    assert!(
        e.contains("\"nosuch\"") && e.contains("services.conf"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_server_that_does_not_speak_postgres_is_named_as_such_in_every_sslmode() {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let mut buf = [0u8; 1024];
            let _ = c.read(&mut buf);
            let _ = c.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
        }
    });
    for mode in ["disable", "prefer", "require"] {
        let url = format!("postgresql://app@127.0.0.1:{port}/db?sslmode={mode}");
        let o = dbsync(&["plan", "--source", &url], &[]);
        assert_eq!(o.status.code(), Some(1));
        let e = text(&o.stderr);
        assert!(
            e.contains("invalid response to SSL negotiation")
                && e.contains("does not speak the PostgreSQL protocol")
                && !e.contains("bytes remaining"),
            "{mode}: {e}"
        );
    }
}

/// Role `dbsync_app` (no superuser) on the cluster behind `url`, created once.
async fn app_role(url: &str) {
    dbsync_tests::client(url)
        .await
        .batch_execute(
            "DO $$ BEGIN
               IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'dbsync_app') THEN
                 CREATE ROLE dbsync_app LOGIN;
               END IF;
             END $$",
        )
        .await
        .expect("role");
}

fn as_app(url: &str) -> String {
    url.replacen("postgres@", "dbsync_app@", 1)
}

#[tokio::test]
async fn a_ledger_made_by_a_superuser_serves_the_tables_owner_or_names_the_grant_that_lets_it() {
    for (hint, db_owned_by_app) in [("cli_ledger_dbo", true), ("cli_ledger_rds", false)] {
        let p = Pair::new(hint).await;
        app_role(&p.source_url).await;
        app_role(&p.target_url).await;
        let owner = if db_owned_by_app {
            "dbsync_app"
        } else {
            "postgres"
        };
        p.both(&format!(
            "ALTER DATABASE {db} OWNER TO {owner}; GRANT CREATE ON DATABASE {db} TO dbsync_app;
             GRANT CREATE ON SCHEMA public TO dbsync_app;
             SET ROLE dbsync_app;
             CREATE TABLE items (id int PRIMARY KEY, name text);
             CREATE TABLE kids (id int PRIMARY KEY, item int REFERENCES items)",
            db = p.name
        ))
        .await;
        p.source(
            "INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 300) g;
             INSERT INTO kids SELECT g, g FROM generate_series(1, 30) g",
        )
        .await;
        let (s, t) = (p.source_url.as_str(), p.target_url.as_str());
        let o = dbsync(&["sync", "--source", s, "--target", t], &[]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        p.source("UPDATE items SET name = 'changed' WHERE id < 10")
            .await;
        let (sa, ta) = (as_app(s), as_app(t));
        let app_sync = |extra: &[&str]| {
            let mut a = vec!["sync", "--source", &sa, "--target", &ta];
            a.extend_from_slice(extra);
            dbsync(&a, &[])
        };
        let o = app_sync(&[]);
        if db_owned_by_app {
            // The ledger was made for the database owner: both roles use it.
            assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
            let owner = dbsync_tests::scalar(
                t,
                "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'dbsync'",
            )
            .await;
            assert_eq!(owner, "dbsync_app");
        } else {
            // Refused before anything changed, with the fix; the fix, run as given, works.
            assert_eq!(o.status.code(), Some(1));
            let e = text(&o.stderr);
            assert!(e.contains("belongs to role postgres"), "{e}");
            let before = dbsync_tests::fingerprint(t).await;
            let fix = e.split("superuser run: ").nth(1).expect("a fix").trim();
            p.target(fix).await;
            assert_eq!(dbsync_tests::fingerprint(t).await, before);
            let o = app_sync(&[]);
            assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        }
        p.assert_identical().await;
        // An atomic run as the owner after one as postgres: the shadow schema is theirs too.
        let o = dbsync(&["sync", "--atomic", "--source", s, "--target", t], &[]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        let o = app_sync(&["--atomic"]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        p.assert_identical().await;
    }
}

#[tokio::test]
async fn progress_off_a_terminal_comes_as_lines_naming_the_table_and_a_load_ends_with_a_per_table_summary(
) {
    let p = Pair::new("cli_progress").await;
    p.both(
        "CREATE TABLE items (id int PRIMARY KEY, name text); CREATE INDEX items_name ON items (name);
         CREATE TABLE tiny (id int PRIMARY KEY)",
    )
    .await;
    p.source(
        "INSERT INTO items SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 400000) g;
         INSERT INTO tiny VALUES (1), (2); ANALYZE",
    )
    .await;
    let mut c = Command::new(env!("CARGO_BIN_EXE_dbsync"));
    c.args([
        "sync",
        "--source",
        &p.source_url,
        "--target",
        &p.target_url,
        "--jobs",
        "1",
    ])
    .env("DBSYNC_PROGRESS_SECONDS", "0.05");
    let o = c.output().expect("run dbsync");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let (err, out) = (text(&o.stderr), text(&o.stdout));
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("progress: "))
        .collect();
    assert!(lines.len() >= 2, "{err}");
    assert!(
        err.contains("now: public.items") || err.contains("on public.items"),
        "{err}"
    );
    assert!(
        out.contains("table (slowest first)") && out.contains("public.items"),
        "{out}"
    );
    assert!(out.contains("400000"), "{out}");
    p.assert_identical().await;
    let o = dbsync(
        &[
            "sync",
            "--source",
            &p.source_url,
            "--target",
            &p.target_url,
            "--json",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let tables = j["per_table"].as_array().expect("per_table");
    assert_eq!(tables.len(), 2, "{j}");
    assert!(tables
        .iter()
        .any(|t| t["table"] == "public.items" && t["rows"] == 400000));
}
