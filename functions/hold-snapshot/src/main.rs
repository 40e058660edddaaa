//! hold-snapshot: exports a source snapshot, publishes it on the job record, and holds it until
//! every chunk is exported, the job stops, or its window (capped by this invocation's own time
//! limit) ends.

mod handler;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    dbsync_core::cloud::lambda::serve(handler::handle).await
}
