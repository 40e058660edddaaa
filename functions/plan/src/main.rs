//! plan: reads the source catalog inside the held snapshot, splits every table into chunks
//! and writes the chunk list to S3 as the export Map's item source.

mod handler;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    dbsync_core::cloud::lambda::serve(handler::handle).await
}
