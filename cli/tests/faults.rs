//! The fault matrix: real `dbsync` processes against real clusters, stopped the ways a run
//! gets stopped (kill -9, SIGTERM, SIGINT, a broken part), then run again as a user would.
//! Every case must end with no row lost and none duplicated, the target's indexes and keys as
//! the source's; the test prints one summary line. (Killed worker sessions, locked targets,
//! corrupt parts and duplicate part deliveries are covered beside the code they exercise in
//! tests/it.)

use dbsync_tests::Pair;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn dbsync(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dbsync"));
    c.args(args)
        .arg("--quiet")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

fn run_ok(args: &[&str]) {
    let o = dbsync(args).output().expect("run dbsync");
    assert!(
        o.status.success(),
        "dbsync {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Starts dbsync, lets it work for `after`, then sends `signal` (`KILL`, `TERM`, `INT`);
/// returns its exit code (None when killed).
fn stop_midway(args: &[&str], after: Duration, signal: &str) -> Option<i32> {
    let mut child: Child = dbsync(args).spawn().expect("start dbsync");
    std::thread::sleep(after);
    // The shell's own kill: no procps needed on the machine.
    let _ = Command::new("sh")
        .args(["-c", &format!("kill -{signal} {}", child.id())])
        .status();
    child.wait().expect("wait").code()
}

/// Rows per table on one side.
async fn counts(url: &str) -> Vec<(String, i64)> {
    let c = dbsync_tests::client(url).await;
    let mut out = Vec::new();
    for t in ["parents", "big", "other"] {
        let n: i64 = c
            .query_one(&format!("SELECT count(*) FROM {t}"), &[])
            .await
            .expect("count")
            .get(0);
        out.push((t.to_string(), n));
    }
    out
}

async fn pair(hint: &str) -> Pair {
    let p = Pair::new(hint).await;
    p.both(
        "CREATE TABLE parents (id int PRIMARY KEY);
         CREATE TABLE big (id int PRIMARY KEY, parent int REFERENCES parents, v text);
         CREATE INDEX big_v ON big (v);
         CREATE TABLE other (id int PRIMARY KEY, v text);",
    )
    .await;
    p.source(
        "INSERT INTO parents SELECT generate_series(1, 100);
         INSERT INTO big SELECT g, 1 + g % 100, md5(g::text) FROM generate_series(1, 300000) g;
         INSERT INTO other SELECT g, 'o' || g FROM generate_series(1, 50000) g;
         ANALYZE;",
    )
    .await;
    p.target("INSERT INTO parents VALUES (-1); INSERT INTO other VALUES (-1, 'stale')")
        .await;
    p
}

#[tokio::test]
async fn the_fault_matrix_loses_and_duplicates_no_row() {
    let (mut cases, mut stopped) = (0, 0);
    let (mut lost, mut duplicated) = (0i64, 0i64);
    let slow = ["--jobs", "1", "--chunk-size", "64kB"];
    for (name, signal, via_export) in [
        ("kill -9 during a sync", "KILL", false),
        ("SIGTERM during a sync", "TERM", false),
        ("SIGINT during a sync", "INT", false),
        ("kill -9 during an import", "KILL", true),
        ("SIGTERM during an import", "TERM", true),
    ] {
        let p = pair(&format!("fault_{cases}")).await;
        let dir = std::env::temp_dir().join(format!("dbsync-fault-{}", p.name));
        let to = dir.display().to_string();
        let (first, again): (Vec<&str>, Vec<&str>) = if via_export {
            run_ok(&[
                "export",
                "--source",
                &p.source_url,
                "--to",
                &to,
                "--chunk-size",
                "64kB",
            ]);
            let mut a = vec!["import", "--from", &to, "--target", &p.target_url];
            a.extend(["--jobs", "1"]);
            (a.clone(), a)
        } else {
            let mut a = vec!["sync", "--source", &p.source_url, "--target", &p.target_url];
            a.extend(slow);
            (
                a,
                vec!["sync", "--source", &p.source_url, "--target", &p.target_url],
            )
        };
        // Imports go faster than syncs: stop them sooner.
        let after = Duration::from_millis(if via_export { 1000 } else { 2500 });
        let code = stop_midway(&first, after, signal);
        if code != Some(0) {
            stopped += 1;
        }
        match signal {
            "KILL" => assert!(matches!(code, None | Some(0)), "{name}: {code:?}"),
            "TERM" => assert!(matches!(code, Some(143) | Some(0)), "{name}: {code:?}"),
            _ => assert!(matches!(code, Some(130) | Some(0)), "{name}: {code:?}"),
        }
        if signal != "KILL" && code != Some(0) {
            // Stopped cleanly: what the load took away is back before the re-run.
            assert_eq!(
                dbsync_tests::scalar(
                    &p.target_url,
                    "SELECT count(*)::text FROM pg_indexes WHERE indexname = 'big_v'"
                )
                .await,
                "1",
                "{name}: the index is back"
            );
        }
        run_ok(&again);
        let (s, t) = (counts(&p.source_url).await, counts(&p.target_url).await);
        for ((table, sn), (_, tn)) in s.iter().zip(&t) {
            lost += (sn - tn).max(0);
            duplicated += (tn - sn).max(0);
            assert_eq!(sn, tn, "{name}: {table}");
        }
        p.assert_identical().await;
        cases += 1;
        let _ = std::fs::remove_dir_all(dir);
    }
    let summary = format!(
        "fault matrix: {cases} cases, {lost} lost, {duplicated} duplicated ({stopped} stopped mid-run)"
    );
    println!("{summary}");
    // scripts/test.sh prints it after the run (cargo test captures a passing test's output).
    let _ = std::fs::write(
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("fault-matrix.txt"),
        format!("{summary}\n"),
    );
    assert_eq!((lost, duplicated), (0, 0));
    assert!(
        stopped > 0,
        "no case was stopped mid-run: make the data larger"
    );
}
