//! prepare: pre-flight checks against the target, then the start of the load (truncate,
//! drops, all recorded in the target's ledger); writes each wave's items for the import Map.

mod handler;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    dbsync_core::cloud::lambda::serve(handler::handle).await
}
