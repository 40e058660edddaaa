//! finalize: rebuilds indexes, re-adds foreign keys, sets sequences, ANALYZEs, checks the
//! ledger against the manifest, marks the job succeeded and releases the target.

mod handler;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    dbsync_core::cloud::lambda::serve(handler::handle).await
}
