//! Credentials from Secrets Manager (the local emulator, real SDK over HTTP): both secret
//! shapes drive a real sync; a missing secret is named, its value never shown.

use super::*;
use dbsync_core::cloud::secrets;

#[tokio::test]
async fn a_sync_between_databases_named_by_secrets_is_exact() {
    let p = Pair::new("secrets").await;
    p.both("CREATE TABLE t (id int PRIMARY KEY, v text)").await;
    p.source("INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 500) g")
        .await;
    let client = secrets::client(&dbsync_tests::aws_settings()).await;
    let port = |url: &str| {
        url.split("127.0.0.1:")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .expect("port")
            .to_string()
    };
    let ca = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../.dbsync/pg/test-source/ca.crt"
    );
    let ca = std::env::var("DBSYNC_TEST_SOURCE_CA").unwrap_or_else(|_| ca.to_string());
    let src_id = format!("{}/source", p.name);
    let rds_shape = serde_json::json!({
        "engine": "postgres", "host": "localhost", "port": port(&p.source_url).parse::<u16>().expect("port"),
        "username": "postgres", "password": "unused-by-trust-auth", "dbname": p.name,
        "sslmode": "verify-full", "sslrootcert": ca,
    });
    let tgt_id = format!("{}/target", p.name);
    for (id, value) in [
        (&src_id, rds_shape.to_string()),
        (
            &tgt_id,
            serde_json::json!({ "url": p.target_url }).to_string(),
        ),
    ] {
        client
            .create_secret()
            .name(id.as_str())
            .secret_string(value)
            .send()
            .await
            .expect("create secret");
    }
    let source = secrets::fetch(&client, &src_id)
        .await
        .expect("source secret");
    let target = secrets::fetch(&client, &tgt_id)
        .await
        .expect("target secret");
    pipeline::sync(&source, &target, &tiny_chunks(), Arc::new(NoProgress))
        .await
        .expect("sync");
    p.assert_identical().await;

    let err = secrets::fetch(&client, "no/such/secret")
        .await
        .expect_err("missing");
    assert_eq!(err.to_string(), "secret no/such/secret: does not exist");
}
