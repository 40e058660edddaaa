//! The fault matrix: real `dbsync` processes against real clusters, stopped the ways a run
//! gets stopped (kill -9, SIGTERM, SIGINT, a broken part), then run again as a user would.
//! Every case must end with no row lost and none duplicated, the target's indexes and keys as
//! the source's; the test prints one summary line. Server crashes run on clusters of their
//! own; a full disk on a small tmpfs. (Killed worker sessions, locked targets,
//! corrupt parts and duplicate part deliveries are covered beside the code they exercise in
//! tests/it.)

use dbsync_tests::Pair;
use std::process::{Child, Command, Stdio};

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

/// Starts dbsync, waits until its load is under way, then sends `signal` (`KILL`, `TERM`,
/// `INT`); returns its exit code (None when killed).
async fn stop_midway(args: &[&str], target_url: &str, signal: &str) -> Option<i32> {
    let mut child: Child = dbsync(args).spawn().expect("start dbsync");
    dbsync_tests::load_under_way(target_url).await;
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
    fill(Pair::new(hint).await).await
}

async fn fill(p: Pair) -> Pair {
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
        let code = stop_midway(&first, &p.target_url, signal).await;
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
    report("fault-matrix.txt", &summary);
    assert_eq!((lost, duplicated), (0, 0));
    assert!(
        stopped > 0,
        "no case was stopped mid-run: make the data larger"
    );
}

/// Prints a summary line and leaves it for scripts/test.sh, which prints it after the run
/// (cargo test captures a passing test's output).
fn report(file: &str, summary: &str) {
    println!("{summary}");
    let _ = std::fs::write(
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(file),
        format!("{summary}\n"),
    );
}

/// Asserts both sides hold the same rows, table by table, and are identical.
async fn assert_counts_match(p: &Pair, case: &str) {
    let (s, t) = (counts(&p.source_url).await, counts(&p.target_url).await);
    assert_eq!(s, t, "{case}: rows per table");
    p.assert_identical().await;
}

#[tokio::test]
async fn a_server_crash_mid_sync_loses_and_duplicates_no_row_once_restarted_and_run_again() {
    // Clusters of their own: the other tests share 55442/55443 and must not see them stop.
    let ports = [("fault-source", 55446), ("fault-target", 55447)];
    let base: Vec<String> = ports
        .iter()
        .map(|(n, p)| dbsync_tests::own_cluster(n, *p))
        .collect();
    for (crashed, port) in ports {
        let case = format!("{crashed} stopped -m immediate during a sync");
        let p = fill(Pair::on(crashed, &base[0], &base[1]).await).await;
        let owned = p.slow_sync_args();
        let args: Vec<&str> = owned.iter().map(String::as_str).collect();
        let child = dbsync(&args).spawn().expect("start dbsync");
        dbsync_tests::load_under_way(&p.target_url).await;
        dbsync_tests::pg_script(&["crash", crashed]);
        let out = child.wait_with_output().expect("wait");
        dbsync_tests::pg_script(&["up", crashed, &port.to_string()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_ne!(
            out.status.code(),
            Some(0),
            "{case}: the crash came too late"
        );
        assert!(
            err.contains("error[Dbsync"),
            "{case}: one named error: {err}"
        );
        run_ok(&args[..5]);
        assert_counts_match(&p, &case).await;
    }
    report(
        "fault-matrix-crash.txt",
        "fault matrix, server crashes: 2 cases (source, target), 0 lost, 0 duplicated",
    );
}

#[tokio::test]
async fn a_full_disk_ends_an_export_with_an_error_naming_the_part_and_leaves_no_temporary_file() {
    let dir = std::env::temp_dir().join(format!("dbsync-full-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let at = dir.display().to_string();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=512k", "tmpfs", &at])
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    }
    let _unmount = Unmount(dir.clone());
    let p = pair("full_disk").await;
    for how in ["export", "sync --via"] {
        let to = format!("{at}/{}", how.len());
        let args: Vec<&str> = if how == "export" {
            vec!["export", "--source", &p.source_url, "--to", &to]
        } else {
            vec![
                "sync",
                "--source",
                &p.source_url,
                "--target",
                &p.target_url,
                "--via",
                &to,
            ]
        };
        let out = dbsync(&args).output().expect("run dbsync");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{how}: {err}");
        assert!(
            err.contains("error[DbsyncIo]") && err.contains("No space left") && err.contains(&to),
            "{how}: the error names the file and the cause: {err}"
        );
        let left: Vec<String> = walk(std::path::Path::new(&to))
            .into_iter()
            .filter(|f| f.contains(".tmp-") || f.ends_with("manifest.json"))
            .collect();
        assert!(left.is_empty(), "{how}: left behind {left:?}");
    }
    // sync --via failed while exporting: the target was never touched.
    assert_eq!(
        dbsync_tests::scalar(&p.target_url, "SELECT string_agg(id::text, ',') FROM other").await,
        "-1"
    );
}

/// Unmounts the test's tmpfs however the test ends.
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Every file under a directory.
fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = e.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path.display().to_string());
        }
    }
    out
}

/// Waits until a COPY into the target's database is under way (`pg_stat_progress_copy`: an
/// atomic sync's parts are recorded in its own uncommitted transaction, invisible outside).
async fn copy_under_way(target_url: &str) {
    let c = dbsync_tests::client(target_url).await;
    for _ in 0..1500 {
        let n: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_stat_progress_copy
                  WHERE datname = current_database() AND command = 'COPY FROM'",
                &[],
            )
            .await
            .expect("progress")
            .get(0);
        if n > 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("no COPY started in 30 s");
}

#[tokio::test]
async fn sigint_during_an_atomic_sync_rolls_it_back_and_exits_130_with_the_target_unchanged() {
    let p = pair("fault_atomic_int").await;
    let before = dbsync_tests::fingerprint(&p.target_url).await;
    let args = [
        "sync",
        "--source",
        &p.source_url,
        "--target",
        &p.target_url,
        "--atomic",
        "--jobs",
        "1",
        "--chunk-size",
        "64kB",
    ];
    let child = dbsync(&args).spawn().expect("start dbsync");
    copy_under_way(&p.target_url).await;
    let _ = Command::new("sh")
        .args(["-c", &format!("kill -INT {}", child.id())])
        .status();
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("rolled back"), "{err}");
    assert_eq!(
        dbsync_tests::fingerprint(&p.target_url).await,
        before,
        "the target changed"
    );
    // Nothing holds the target: the same command runs to the end.
    run_ok(&args);
    p.assert_identical().await;
}

#[tokio::test]
async fn a_damaged_export_is_refused_by_check_import_and_its_dry_run_before_the_target_changes() {
    let p = pair("fault_damaged").await;
    let dir = std::env::temp_dir().join(format!("dbsync-fault-{}", p.name));
    let to = dir.display().to_string();
    run_ok(&[
        "export",
        "--source",
        &p.source_url,
        "--to",
        &to,
        "--chunk-size",
        "256kB",
    ]);
    run_ok(&["check", "--from", &to]);
    // Flip bytes in the middle of one part of `big`: its gzip stream no longer holds.
    let parts: Vec<std::path::PathBuf> = std::fs::read_dir(dir.join("parts"))
        .expect("parts")
        .flatten()
        .map(|e| e.path())
        .filter(|f| f.to_string_lossy().contains("t0000."))
        .collect();
    let victim = parts.iter().max().expect("a part of big").clone();
    let mut bytes = std::fs::read(&victim).expect("read part");
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 64] {
        *b ^= 0x5a;
    }
    std::fs::write(&victim, bytes).expect("write part");
    let name = victim
        .file_name()
        .expect("name")
        .to_string_lossy()
        .to_string();
    let before = dbsync_tests::fingerprint(&p.target_url).await;
    for args in [
        vec!["check", "--from", &to],
        vec!["import", "--from", &to, "--target", &p.target_url],
        vec![
            "import",
            "--from",
            &to,
            "--target",
            &p.target_url,
            "--dry-run",
        ],
    ] {
        let out = dbsync(&args).output().expect("run dbsync");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("error[DbsyncExportBroken]") && err.contains(&name) && err.contains("big"),
            "{args:?}: the error names the part and its table: {err}"
        );
    }
    assert_eq!(
        dbsync_tests::fingerprint(&p.target_url).await,
        before,
        "the target changed"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn kill_9_mid_refresh_loses_no_row_of_a_range_and_running_it_again_ends_identical() {
    let p = pair("fault_refresh").await;
    let (src, tgt) = (p.source_url.clone(), p.target_url.clone());
    run_ok(&["sync", "--source", &src, "--target", &tgt]);
    p.source("UPDATE big SET v = v || '+' WHERE id <= 150000; DELETE FROM other WHERE id % 7 = 0")
        .await;
    let refresh = [
        "sync",
        "--source",
        &src,
        "--target",
        &tgt,
        "--changed-only",
        "--changed-max-share",
        "1",
        "--chunk-size",
        "64kB",
        "--jobs",
        "1",
    ];
    // Killed once some ranges are replaced and others not yet.
    let mut child: Child = dbsync(&refresh).spawn().expect("start dbsync");
    let replaced = "SELECT count(*)::text FROM big WHERE v LIKE '%+'";
    let started = std::time::Instant::now();
    while dbsync_tests::scalar(&tgt, replaced).await == "0" {
        assert!(
            started.elapsed().as_secs() < 60,
            "no range replaced in 60 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let _ = Command::new("sh")
        .args(["-c", &format!("kill -KILL {}", child.id())])
        .status();
    assert_eq!(
        child.wait().expect("wait").code(),
        None,
        "killed mid-refresh"
    );
    let done: u64 = dbsync_tests::scalar(&tgt, replaced)
        .await
        .parse()
        .expect("count");
    assert!(done < 150_000, "some ranges replaced, not all: {done}");
    // Each range is replaced in one transaction: a killed one leaves its old rows, never a
    // range deleted and not yet loaded.
    assert_eq!(
        dbsync_tests::scalar(&tgt, "SELECT count(*)::text FROM big").await,
        "300000",
        "no row of a range lost"
    );
    run_ok(&refresh);
    p.assert_identical().await;
    assert_eq!(counts(&src).await, counts(&tgt).await);
}
