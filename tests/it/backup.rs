//! `sync --backup`: the target's tables exported before the sync empties them, recorded in
//! the ledger, and put back by importing the backup.

use super::*;
use dbsync_tests::{fingerprint, scalar};

#[tokio::test]
async fn importing_the_backup_a_sync_took_puts_the_target_back_byte_for_byte() {
    let p = adversarial("backup").await;
    sync(&p, &tiny_chunks()).await.expect("first sync");
    p.source(
        "UPDATE app.customers SET name = name || ' v2';
         DELETE FROM app.orders WHERE id > 3000;
         SELECT setval('app.standalone_seq', 777)",
    )
    .await;
    let before = fingerprint(&p.target_url).await;
    let dir = std::env::temp_dir().join(format!("dbsync-backup-{}", p.name));
    let opts = Options {
        backup: Some(dir.to_string_lossy().to_string()),
        ..tiny_chunks()
    };
    let r = sync(&p, &opts).await.expect("sync with a backup");
    let b = r.backup.expect("backup taken");
    assert!(b.tables > 20 && b.rows > 0, "{b:?}");
    assert_ne!(
        before,
        fingerprint(&p.target_url).await,
        "the sync changed the target"
    );
    assert_eq!(
        scalar(
            &p.target_url,
            &format!(
                "SELECT backup_job FROM dbsync.backups WHERE job_id = '{}'",
                r.job_id
            )
        )
        .await,
        b.job_id
    );
    // The same location again would overwrite that backup: refused before anything runs.
    let e = sync(&p, &opts).await.expect_err("location in use");
    assert!(e.to_string().contains("already holds an export"), "{e}");

    let store = Arc::new(dbsync_core::parts::LocalStore::new(&dir));
    import(&p, store, &Options::default())
        .await
        .expect("restore");
    assert_eq!(
        before,
        fingerprint(&p.target_url).await,
        "the target is back as it was"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_backup_location_that_cannot_be_written_refuses_the_sync_before_the_target_changes() {
    let p = adversarial("backup_bad").await;
    p.target("INSERT INTO app.customers VALUES (99999, 'stale')")
        .await;
    let before = fingerprint(&p.target_url).await;
    let bad = Options {
        backup: Some("/etc/hostname/backup".into()),
        ..tiny_chunks()
    };
    let e = sync(&p, &bad).await.expect_err("unwritable");
    assert_eq!(e.name(), "DbsyncConfig", "{e}");
    assert!(e.to_string().contains("cannot write the backup"), "{e}");
    assert_eq!(
        before,
        fingerprint(&p.target_url).await,
        "nothing was changed"
    );
}
