//! import-part: loads one part into the target, exactly once however often it is delivered.

mod handler;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    dbsync_core::cloud::lambda::serve(handler::handle).await
}
