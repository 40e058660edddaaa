//! `dbsync dump`: one SQL script that psql restores into a database with the schema, from an
//! export or from the live source, byte-identical after the restore.

use super::*;
use dbsync_core::pipeline::dump::{dump_export, dump_source, DumpFile};
use dbsync_tests::psql_restore;
use std::io::Read;

fn scratch(p: &Pair, what: &str) -> std::path::PathBuf {
    scratch_dir(&format!("{what}-{}", p.name))
}

fn scratch_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("dbsync-dump-{name}"));
    std::fs::create_dir_all(&d).expect("dir");
    d
}

#[tokio::test]
async fn a_dump_of_an_export_restores_with_psql_into_a_byte_identical_target() {
    let p = adversarial("dump_export").await;
    p.target("INSERT INTO app.customers VALUES (99999, 'stale'); INSERT INTO app.no_key VALUES (1, 'stale')")
        .await;
    let (dir, store, m) = export_to_temp(&p).await;
    let out_dir = scratch(&p, "export");
    let path = out_dir.join("data.sql");
    let mut file = DumpFile::create(path.to_str().expect("utf8"), false).expect("create");
    let r = dump_export(store.as_ref(), None, &mut file.out())
        .await
        .expect("dump");
    file.commit().expect("commit");
    assert_eq!(r.tables, m.tables.len());
    let text = std::fs::read_to_string(&path).expect("script");
    assert!(text.starts_with("-- dbsync SQL dump"), "{}", &text[..200]);
    assert!(text.contains(&format!("snapshot {}", m.snapshot)));
    assert!(!text.contains("CASCADE"));
    assert!(text.ends_with("COMMIT;\n-- dbsync dump complete\n"));
    psql_restore(&p.target_url, &path);
    p.assert_identical().await;
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&out_dir);
}

#[tokio::test]
async fn a_gzip_dump_of_the_live_source_restores_the_same() {
    let p = adversarial("dump_source").await;
    let out_dir = scratch(&p, "source");
    let path = out_dir.join("data.sql.gz");
    let mut file = DumpFile::create(path.to_str().expect("utf8"), false).expect("create");
    let export_dir = file.scratch_dir();
    dump_source(
        &p.source_spec(),
        &tiny_chunks().export(),
        &export_dir,
        Arc::new(NoProgress),
        &mut file.out(),
    )
    .await
    .expect("dump");
    file.commit().expect("commit");
    assert!(!export_dir.exists(), "the scratch export is removed");
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&path).expect("gz"))
        .read_to_string(&mut text)
        .expect("gunzip");
    assert!(
        text.contains("(postgres@127.0.0.1:"),
        "the endpoint, without secrets"
    );
    let plain = out_dir.join("data.sql");
    std::fs::write(&plain, &text).expect("plain copy");
    psql_restore(&p.target_url, &plain);
    p.assert_identical().await;
    let _ = std::fs::remove_dir_all(&out_dir);
}

#[tokio::test]
async fn a_dump_that_fails_names_what_is_missing_and_leaves_no_file() {
    // An export that does not exist: one clear error, and nothing left behind.
    let run = uuid::Uuid::new_v4();
    let (out_dir, empty) = (
        scratch_dir(&format!("out-{run}")),
        scratch_dir(&format!("empty-{run}")),
    );
    let store = dbsync_core::parts::LocalStore::new(&empty);
    let failed = out_dir.join("failed.sql");
    let mut file = DumpFile::create(failed.to_str().expect("utf8"), false).expect("create");
    let e = dump_export(&store, None, &mut file.out())
        .await
        .expect_err("no manifest");
    file.abandon();
    assert!(e.to_string().contains("manifest"), "{e}");
    let left: Vec<_> = std::fs::read_dir(&out_dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let _ = std::fs::remove_dir_all(&out_dir);
    let _ = std::fs::remove_dir_all(&empty);
}
