//! The S3 part store against the local emulator (moto), through the real SDK over HTTP:
//! multipart parts, streaming reads, import from S3, errors naming the object.

use super::*;
use dbsync_core::parts::{PartStore, S3Settings, S3Store};
use dbsync_tests::{s3_bucket, s3_settings};

#[tokio::test]
async fn an_export_to_s3_with_multipart_parts_imports_back_byte_for_byte() {
    let p = Pair::new("s3_roundtrip").await;
    p.both("CREATE TABLE blobs (id int PRIMARY KEY, h text, b bytea); CREATE TABLE small (id int PRIMARY KEY)")
        .await;
    // ~14 MB of poorly compressible text: its one part needs a multipart upload at 5 MiB.
    p.source(
        "INSERT INTO blobs SELECT g, encode(sha256(g::text::bytea), 'hex') || md5(g::text), decode(md5(g::text), 'hex')
           FROM generate_series(1, 120000) g;
         INSERT INTO small SELECT generate_series(1, 10);",
    )
    .await;
    let bucket = s3_bucket("roundtrip").await;
    let url = format!("s3://{bucket}/nightly/run-1");
    let settings = S3Settings {
        part_size: Some(dbsync_core::parts::s3::MIN_PART_SIZE),
        ..s3_settings()
    };
    let store = Arc::new(S3Store::connect(&url, &settings).await.expect("store"));
    let opts = Options {
        chunk_bytes: 1 << 30,
        ..tiny_chunks()
    };
    let export = opts.export();
    let m = pipeline::export(
        &p.source_spec(),
        store.clone(),
        &export,
        Arc::new(NoProgress),
    )
    .await
    .expect("export to S3");
    let big = m
        .tables
        .iter()
        .find(|t| t.table.name.name == "blobs")
        .expect("blobs");
    assert!(
        big.parts[0].compressed_bytes > 5 * 1024 * 1024,
        "the part should need a multipart upload: {} bytes",
        big.parts[0].compressed_bytes
    );
    assert!(store
        .location(&big.parts[0].key)
        .starts_with(&format!("s3://{bucket}/nightly/run-1/parts/")));
    let client = dbsync_core::parts::s3::client(&dbsync_tests::aws_settings()).await;
    let open = client
        .list_multipart_uploads()
        .bucket(&bucket)
        .send()
        .await
        .expect("list uploads");
    assert!(open.uploads().is_empty(), "no upload may be left open");

    import(&p, store, &opts).await.expect("import from S3");
    p.assert_identical().await;
}

#[tokio::test]
async fn a_missing_bucket_is_an_error_naming_the_s3_location() {
    let p = Pair::new("s3_missing").await;
    p.both("CREATE TABLE t (id int PRIMARY KEY)").await;
    p.source("INSERT INTO t VALUES (1)").await;
    let store = Arc::new(
        S3Store::connect("s3://no-such-bucket-dbsync/x", &s3_settings())
            .await
            .expect("store"),
    );
    let err = pipeline::export(
        &p.source_spec(),
        store,
        &tiny_chunks().export(),
        Arc::new(NoProgress),
    )
    .await
    .expect_err("no bucket");
    let msg = err.to_string();
    assert!(msg.contains("s3://no-such-bucket-dbsync/x/"), "{msg}");
    assert!(msg.contains("NoSuchBucket"), "{msg}");
    assert!(!err.is_retryable(), "{msg}");
}
