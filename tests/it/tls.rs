//! TLS: every test cluster has a private CA (scripts/pg.sh). `require` encrypts, `verify-full`
//! with `sslrootcert` checks chain and host name, and an untrusted certificate is refused.

use super::*;
use dbsync_core::pg::conn::ConnSpec;
use dbsync_core::Role;

fn ca_path() -> String {
    std::env::var("DBSYNC_TEST_TARGET_CA").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../.dbsync/pg/test-target/ca.crt"
        )
        .to_string()
    })
}

/// The target URL of `p` with another host and query string.
fn target_with(p: &Pair, host: &str, query: &str) -> String {
    let (head, _) = p.target_url.split_once('?').unwrap_or((&p.target_url, ""));
    format!("{}?{query}", head.replacen("127.0.0.1", host, 1))
}

async fn encrypted(url: &str) -> dbsync_core::Result<bool> {
    let c = ConnSpec::parse(url, "--target")?
        .connect(Role::Target, "dbsync-tls-test")
        .await?;
    Ok(c.query_one(
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        &[],
    )
    .await
    .expect("pg_stat_ssl")
    .get(0))
}

#[tokio::test]
async fn each_sslmode_does_what_libpq_does() {
    let p = Pair::new("tls_modes").await;
    let ca = ca_path();
    assert!(std::path::Path::new(&ca).exists(), "no test CA at {ca}");
    assert!(!encrypted(&target_with(&p, "127.0.0.1", "sslmode=disable"))
        .await
        .expect("disable"));
    assert!(encrypted(&target_with(&p, "127.0.0.1", "sslmode=prefer"))
        .await
        .expect("prefer"));
    assert!(encrypted(&target_with(&p, "127.0.0.1", "sslmode=require"))
        .await
        .expect("require"));
    for host in ["127.0.0.1", "localhost"] {
        let url = target_with(&p, host, &format!("sslmode=verify-full&sslrootcert={ca}"));
        assert!(
            encrypted(&url).await.expect("verify-full with the CA"),
            "{host}"
        );
    }
    assert!(encrypted(&target_with(
        &p,
        "127.0.0.1",
        &format!("sslmode=verify-ca&sslrootcert={ca}")
    ))
    .await
    .expect("verify-ca"));
}

#[tokio::test]
async fn verify_full_refuses_a_certificate_from_an_unknown_authority() {
    let p = Pair::new("tls_untrusted").await;
    // Without sslrootcert the public web roots are used: our private CA is not among them.
    let err = encrypted(&target_with(&p, "127.0.0.1", "sslmode=verify-full"))
        .await
        .expect_err("untrusted");
    assert_eq!(err.name(), "DbsyncConnect");
    let msg = err.to_string().to_lowercase();
    assert!(
        msg.contains("certificate") || msg.contains("issuer"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_sync_over_verified_tls_is_exact() {
    let p = Pair::new("tls_sync").await;
    p.both("CREATE TABLE t (id int PRIMARY KEY, v text)").await;
    p.source("INSERT INTO t SELECT g, repeat('x', g % 100) FROM generate_series(1, 2000) g")
        .await;
    let ca = ca_path();
    let target = ConnSpec::parse(
        &target_with(
            &p,
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={ca}"),
        ),
        "--target",
    )
    .expect("url");
    let source_url = p.source_url.replace("sslmode=disable", "sslmode=require");
    let source = ConnSpec::parse(&source_url, "--source").expect("url");
    pipeline::sync(&source, &target, &tiny_chunks(), Arc::new(NoProgress))
        .await
        .expect("sync over TLS");
    p.assert_identical().await;
}
