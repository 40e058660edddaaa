//! Exactly-once and resumption: a corrupt part stops the import with a clear error, the target
//! stays resumable, and a re-run loads only what is missing.

use super::*;
use dbsync_core::plan::chunks::Sizing;

#[tokio::test]
async fn a_corrupt_part_is_refused_before_the_target_changes_and_unchecked_it_stops_the_load_which_resumes_once_repaired(
) {
    let p = adversarial("resume").await;
    let (dir, store, m) = export_to_temp(&p).await;
    // Corrupt the last part of the deepest level: earlier levels load, then it fails.
    let victim = m
        .tables
        .iter()
        .filter(|t| t.table.name.to_string() == "app.orders")
        .flat_map(|t| t.parts.last())
        .next()
        .expect("orders part")
        .clone();
    let path = dir.join(&victim.key);
    let good = std::fs::read(&path).expect("read part");
    let mut text = Vec::new();
    flate_decode(&good, &mut text);
    // Same length, one byte changed: only the sha256 can tell.
    let pos = text.iter().position(|b| *b == b'1').expect("a digit");
    text[pos] = b'2';
    let corrupt = flate_encode(&text);
    // The manifest agrees with the part's new size: only its content is wrong.
    let mut m2 = m.clone();
    for t in &mut m2.tables {
        for part in &mut t.parts {
            if part.id == victim.id {
                part.compressed_bytes = corrupt.len() as u64;
            }
        }
    }
    std::fs::write(dir.join("manifest.json"), m2.to_json()).expect("manifest");
    std::fs::write(&path, corrupt).expect("write");
    // By default the import reads every part before it changes anything: refused whole,
    // naming the part, with the target untouched.
    let before = dbsync_tests::fingerprint(&p.target_url).await;
    let err = import(&p, store.clone(), &tiny_chunks())
        .await
        .expect_err("damaged export refused");
    assert_eq!(err.name(), "DbsyncExportBroken", "{err}");
    assert!(
        err.to_string().contains(&victim.id)
            && err.to_string().contains("app.orders")
            && err.to_string().contains("sha256"),
        "{err}"
    );
    assert_eq!(dbsync_tests::fingerprint(&p.target_url).await, before);
    // Without the check (--check-parts off) the load finds it, part by part: earlier parts
    // are in, the damaged one is refused and the target stays resumable.
    let opts = Options {
        workers: 1,
        ..unchecked()
    };
    let err = import(&p, store.clone(), &opts)
        .await
        .expect_err("corrupt part refused");
    assert_eq!(err.name(), "DbsyncPartCorrupt", "{err}");
    assert!(
        err.to_string().contains(&victim.id) && err.to_string().contains("app.orders"),
        "{err}"
    );

    std::fs::write(&path, good).expect("repair");
    std::fs::write(dir.join("manifest.json"), m.to_json()).expect("manifest back");
    let r = import(&p, store, &opts).await.expect("resumed import");
    assert!(
        r.parts_skipped > 0,
        "the resumed import must skip loaded parts"
    );
    p.assert_identical().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Tiny chunks, parts not read before the load (`--check-parts off`): a damaged part is met
/// mid-load, after the target was emptied, the state these tests need.
fn unchecked() -> Options {
    Options {
        check_parts: dbsync_core::pipeline::PartCheck::Off,
        ..tiny_chunks()
    }
}

/// The first part of a table in a manifest.
fn first_part<'a>(
    m: &'a dbsync_core::model::manifest::Manifest,
    table: &str,
) -> &'a dbsync_core::model::manifest::PartEntry {
    &m.tables
        .iter()
        .find(|t| t.table.name.to_string() == table)
        .unwrap_or_else(|| panic!("{table} is not in the manifest"))
        .parts[0]
}

fn flate_decode(data: &[u8], out: &mut Vec<u8>) {
    use std::io::Read;
    flate2::read::GzDecoder::new(data)
        .read_to_end(out)
        .expect("gunzip");
}

fn flate_encode(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

#[tokio::test]
async fn loading_the_same_part_twice_in_one_job_loads_it_once() {
    let p = Pair::new("exactly_once").await;
    p.both("CREATE TABLE t (id int PRIMARY KEY, v text)").await;
    p.source("INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100) g")
        .await;
    let src = p
        .source_spec()
        .connect(dbsync_core::Role::Source, "t")
        .await
        .expect("src");
    let mut tgt = p
        .target_spec()
        .connect(dbsync_core::Role::Target, "t")
        .await
        .expect("tgt");
    dbsync_core::pg::ledger::ensure(&mut tgt)
        .await
        .expect("ledger");
    let plan = pipeline::build_plan(&src, &Default::default(), Sizing::fixed(1 << 30))
        .await
        .expect("plan");
    let table = &plan.catalog.tables[0];
    for expect_loaded in [true, false] {
        let mut s = dbsync_core::pg::copy_out::CopyOutSource::start(
            &src,
            table,
            &plan.chunks[0].range,
            "x".into(),
        )
        .await
        .expect("copy out");
        let o = dbsync_core::pg::copy_in::load_part(
            &mut tgt,
            "job-1",
            "t0000.c00000",
            table,
            &mut s,
            Default::default(),
        )
        .await
        .expect("load");
        assert_eq!(
            matches!(o, dbsync_core::model::part::LoadOutcome::Loaded(_)),
            expect_loaded
        );
    }
    assert_eq!(
        dbsync_tests::scalar(&p.target_url, "SELECT count(*)::text FROM t").await,
        "100"
    );
}

#[tokio::test]
async fn a_sync_after_a_failed_import_validates_again_the_keys_that_job_left_not_valid() {
    let p = adversarial("superseded").await;
    let (dir, store, m) = export_to_temp(&p).await;
    let part = first_part(&m, "app.orders");
    // Same size, not gzip: only reading it can tell.
    let len = std::fs::metadata(dir.join(&part.key)).expect("part").len() as usize;
    std::fs::write(dir.join(&part.key), vec![b'x'; len]).expect("break a part");
    // Unchecked, so the load meets the broken part after the target was emptied.
    let err = import(&p, store, &unchecked())
        .await
        .expect_err("broken part");
    assert_eq!(err.name(), "DbsyncIo", "{err}");
    // The failed job put its dropped index back and left the keys it could not vouch for
    // NOT VALID, recorded in the ledger ...
    assert_eq!(
        dbsync_tests::scalar(
            &p.target_url,
            "SELECT count(*)::text FROM pg_indexes WHERE indexname = 'orders_customer_idx'"
        )
        .await,
        "1"
    );
    assert_eq!(
        dbsync_tests::scalar(
            &p.target_url,
            "SELECT convalidated::text FROM pg_constraint WHERE conname = 'orders_customer_id_fkey'"
        )
        .await,
        "false"
    );
    // ... and a new sync adopts that and validates them again.
    sync(&p, &tiny_chunks()).await.expect("sync");
    p.assert_identical().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_sync_survives_killed_worker_sessions_on_both_sides_and_stays_exact() {
    let p = Pair::new("chaos").await;
    p.both("CREATE TABLE big (id int PRIMARY KEY, v text); CREATE INDEX big_v ON big (v); CREATE TABLE other (id int PRIMARY KEY, v text)")
        .await;
    p.source(
        "INSERT INTO big SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 200000) g;
         INSERT INTO other SELECT g, 'x' || g FROM generate_series(1, 50000) g; ANALYZE;",
    )
    .await;
    let opts = Options {
        workers: 3,
        chunk_bytes: 512 * 1024,
        ..Options::default()
    };
    // Terminate dbsync's worker sessions (loaders on the target, readers on the source) while
    // the load runs - never the coordinator, which holds the snapshot. At most 3 kills, so no
    // chunk can use up its attempts.
    let (s_url, t_url) = (p.source_url.clone(), p.target_url.clone());
    let chaos = tokio::spawn(async move {
        let (s, t) = (
            dbsync_tests::client(&s_url).await,
            dbsync_tests::client(&t_url).await,
        );
        let kill = |app: &'static str| {
            format!(
                "SELECT count(pg_terminate_backend(pid))::int8 FROM (SELECT pid FROM pg_stat_activity
                   WHERE datname = current_database() AND application_name LIKE 'dbsync-%-{app}' LIMIT 1) x"
            )
        };
        let mut kills = 0i64;
        for round in 0..300 {
            tokio::time::sleep(std::time::Duration::from_millis(40)).await;
            let (c, app) = if round % 2 == 0 {
                (&t, "load")
            } else {
                (&s, "read")
            };
            kills += c
                .query_one(kill(app).as_str(), &[])
                .await
                .map(|r| r.get::<_, i64>(0))
                .unwrap_or(0);
            if kills >= 3 {
                break;
            }
        }
        kills
    });
    let r = sync(&p, &opts)
        .await
        .expect("the sync rides out killed sessions");
    let kills = chaos.await.expect("chaos task");
    assert!(kills >= 1, "the chaos task never found a worker to kill");
    assert!(
        r.retries >= 1,
        "killed sessions must show as retries (kills {kills})"
    );
    p.assert_identical().await;
}

#[tokio::test]
async fn restart_imports_the_same_export_again_after_a_finished_or_a_half_finished_run() {
    let p = adversarial("restart").await;
    let (dir, store, m) = export_to_temp(&p).await;
    let restart = Options {
        restart: true,
        ..tiny_chunks()
    };
    // Half-finished: a broken part stops the first run after other parts loaded.
    let part = first_part(&m, "app.orders");
    let good = std::fs::read(dir.join(&part.key)).expect("read");
    std::fs::write(dir.join(&part.key), vec![b'x'; good.len()]).expect("break");
    import(&p, store.clone(), &unchecked())
        .await
        .expect_err("broken part");
    std::fs::write(dir.join(&part.key), good).expect("repair");
    let r = import(&p, store.clone(), &restart)
        .await
        .expect("restarted import");
    assert_eq!(r.parts_skipped, 0, "a restart loads every part again");
    p.assert_identical().await;

    // Finished, then the target is changed: a plain import does nothing, --restart repairs it.
    p.target("DELETE FROM app.orders WHERE id > 3000; UPDATE app.customers SET name = 'changed'")
        .await;
    let plain = import(&p, store.clone(), &tiny_chunks())
        .await
        .expect("plain import");
    assert!(plain.already_done);
    import(&p, store, &restart).await.expect("restart");
    p.assert_identical().await;
    let set_aside = dbsync_tests::scalar(
        &p.target_url,
        &format!(
            "SELECT count(*)::text FROM dbsync.jobs WHERE job_id LIKE '{}#set-aside-%'",
            m.job_id
        ),
    )
    .await;
    assert_eq!(set_aside, "2", "both earlier runs are kept as history");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn an_export_with_a_missing_or_resized_part_is_refused_before_the_target_is_emptied() {
    let p = adversarial("broken_export").await;
    p.target("INSERT INTO app.customers VALUES (1, 'keep me')")
        .await;
    let before = dbsync_tests::fingerprint(&p.target_url).await;
    let (dir, store, m) = export_to_temp(&p).await;
    let gone = first_part(&m, "app.orders").clone();
    let short = first_part(&m, "app.customers").clone();
    std::fs::remove_file(dir.join(&gone.key)).expect("remove a part");
    let data = std::fs::read(dir.join(&short.key)).expect("part");
    std::fs::write(dir.join(&short.key), &data[..data.len() / 2]).expect("truncate a part");
    for dry_run in [true, false] {
        let opts = Options {
            dry_run,
            ..tiny_chunks()
        };
        let e = import(&p, store.clone(), &opts).await.expect_err("refused");
        let msg = e.to_string();
        assert_eq!(e.name(), "DbsyncExportBroken", "{msg}");
        assert!(
            msg.contains(&format!("part {} of app.orders is missing", gone.id))
                && msg.contains(&format!(
                    "part {} of app.customers is {} bytes",
                    short.id,
                    data.len() / 2
                ))
                && msg.contains("nothing was changed"),
            "{msg}"
        );
        assert_eq!(
            before,
            dbsync_tests::fingerprint(&p.target_url).await,
            "the target must be unchanged"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_load_that_fails_after_the_truncate_puts_back_what_it_took_and_keys_stop_claiming_to_hold(
) {
    let p = adversarial("put_back").await;
    // A rule only the target has, which an import cannot test against a source: the load
    // fails part-way, after other tables and the customers were loaded.
    p.target("ALTER TABLE app.orders ADD CONSTRAINT small_ids CHECK (id < 100)")
        .await;
    let (dir, store, _) = export_to_temp(&p).await;
    let e = import(&p, store.clone(), &tiny_chunks())
        .await
        .expect_err("the check refuses rows");
    assert_eq!(e.name(), "DbsyncPostgres", "{e}");
    let q = |sql: &'static str| dbsync_tests::scalar(&p.target_url, sql);
    assert_eq!(
        q("SELECT count(*)::text FROM pg_indexes WHERE indexname = 'orders_customer_idx'").await,
        "1",
        "the dropped index is rebuilt"
    );
    assert_eq!(
        q("SELECT string_agg(convalidated::text, ',') FROM pg_constraint WHERE conname = 'orders_customer_id_fkey'").await,
        "false",
        "a key the load did not enforce no longer claims to hold"
    );
    assert_eq!(
        q("SELECT string_agg(state, ',') FROM dbsync.jobs").await,
        "interrupted"
    );
    // Fixed, then the same import resumes and the target ends exact, keys validated again.
    p.target("ALTER TABLE app.orders DROP CONSTRAINT small_ids")
        .await;
    let r = import(&p, store, &tiny_chunks()).await.expect("resumed");
    assert!(r.parts_skipped > 0, "loaded parts are kept");
    p.assert_identical().await;
    let _ = std::fs::remove_dir_all(dir);
}
