//! The DynamoDB job store against the local emulator (real SDK over HTTP) keeps the same
//! contract as the memory store: conditional create, atomic counters under concurrency,
//! newest-first listing, and a target lock that blocks, extends, releases and expires.

use dbsync_core::cloud::jobstore::{self, DynamoJobStore};

#[tokio::test]
async fn the_dynamodb_job_store_keeps_the_job_store_contract() {
    let client = jobstore::dynamodb::client(&dbsync_tests::aws_settings()).await;
    let table = format!(
        "dbsync-jobs-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    DynamoJobStore::create_table(&client, &table)
        .await
        .expect("create table");
    let store = DynamoJobStore::new(client, &table, 30);
    jobstore::contract::check_contract(&store, "ddb").await;
}
