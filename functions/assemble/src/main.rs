//! assemble: gathers every part's result into the manifest, refusing incomplete chunks by name.

mod handler;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    dbsync_core::cloud::lambda::serve(handler::handle).await
}
