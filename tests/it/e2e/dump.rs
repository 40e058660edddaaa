//! `"mode": "dump"` end to end: the export's parts and the script around them composed into
//! one `dump.sql.gz` in S3 (a large part copied server-side, small pieces gathered), fetched
//! through `GET /syncs/{id}/download`'s presigned link and restored with psql. Part of
//! [`super`].

use super::*;

/// Runs the dump job `body` asks for; returns its id once it succeeded.
async fn dumped(c: &Cloud, body: Value) -> String {
    let (status, started) = c.api("POST", "/syncs", Some(body)).await;
    assert_eq!(status, 202, "{started}");
    let id = started["job_id"].as_str().expect("job id").to_string();
    let (status, error) = c.finish(&id).await;
    assert_eq!(status, ExecutionStatus::Succeeded, "{error:?}");
    id
}

/// The file behind a job's download link, fetched as a user's browser or curl would.
async fn download(c: &Cloud, job_id: &str) -> Vec<u8> {
    let (status, link) = c
        .api("GET", &format!("/syncs/{job_id}/download"), None)
        .await;
    assert_eq!(status, 200, "{link}");
    let url = link["url"].as_str().expect("url");
    assert!(url.contains("X-Amz-Signature"), "a presigned link: {url}");
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, urllib.request; sys.stdout.buffer.write(urllib.request.urlopen(sys.argv[1]).read())",
            url,
        ])
        .output()
        .expect("fetch the link");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(link["bytes"].as_u64(), Some(out.stdout.len() as u64));
    out.stdout
}

#[tokio::test]
async fn a_dump_job_writes_one_sql_file_whose_download_link_restores_an_identical_target() {
    let _one = ONE_AT_A_TIME.lock().await;
    // One part over S3's 5 MiB part minimum (copied server-side) beside the small ones.
    let schema = format!("{SCHEMA}; CREATE TABLE app.big_blob (id int PRIMARY KEY, v text);");
    let data = format!(
        "{DATA}; INSERT INTO app.big_blob SELECT g, md5(g::text) || md5((g + 1)::text) || md5((g + 2)::text)
           FROM generate_series(1, 150000) g;"
    );
    let c = Cloud::new("e2e_dump", &schema, &data).await;
    let job = dumped(
        &c,
        json!({ "source_secret": c.source_secret, "mode": "dump", "chunk_size": "64MiB" }),
    )
    .await;
    let m = c.manifest(&job).await;
    let big = m
        .tables
        .iter()
        .find(|t| t.table.name.to_string() == "app.big_blob")
        .expect("big table");
    assert!(big
        .parts
        .iter()
        .any(|p| p.compressed_bytes > 5 * 1024 * 1024));
    let view = c.job(&job).await;
    assert_eq!(
        (&view["kind"], &view["status"]),
        (&json!("dump"), &json!("succeeded"))
    );
    assert_eq!(view["tables_done"], view["tables_total"]);

    let file = download(&c, &job).await;
    c.pair
        .target("INSERT INTO app.big_blob VALUES (0, 'stale')")
        .await;
    dbsync_tests::psql_restore_gzip(&c.pair.target_url, &file, &c.pair.name);
    c.pair.assert_identical().await;

    // A dump of an earlier export: export once, dump (and load) from it later.
    let (status, body) = c
        .api(
            "POST",
            "/syncs",
            Some(json!({ "source_secret": c.source_secret, "mode": "export", "chunk_size": "64KiB" })),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let export = body["job_id"].as_str().expect("id").to_string();
    assert_eq!(c.finish(&export).await.0, ExecutionStatus::Succeeded);
    let (status, body) = c
        .api("GET", &format!("/syncs/{export}/download"), None)
        .await;
    assert_eq!(status, 409, "an export has no dump: {body}");
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("\"mode\": \"dump\"")));
    let from = dumped(&c, json!({ "from": export, "mode": "dump" })).await;
    c.pair
        .target("DELETE FROM app.big_blob WHERE id % 3 = 0")
        .await;
    let file = download(&c, &from).await;
    dbsync_tests::psql_restore_gzip(&c.pair.target_url, &file, &c.pair.name);
    c.pair.assert_identical().await;

    let (status, _) = c.api("GET", "/syncs/no-such-job/download", None).await;
    assert_eq!(status, 404);
    // Gone from the bucket (its lifecycle): 410, no link to nothing.
    c.clients
        .s3
        .delete_object()
        .bucket(BUCKET)
        .key(format!("jobs/{from}/dump.sql.gz"))
        .send()
        .await
        .expect("delete");
    let (status, body) = c.api("GET", &format!("/syncs/{from}/download"), None).await;
    assert_eq!(status, 410, "{body}");
}
