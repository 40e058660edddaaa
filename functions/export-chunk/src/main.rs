//! export-chunk: one invocation exports one segment of one chunk, within the invocation's
//! time budget, and returns where the next invocation continues.

mod handler;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    dbsync_core::cloud::lambda::serve(handler::handle).await
}
