//! write-dump: composes a dump job's SQL file (`dump.sql.gz`) in S3 from the export's parts,
//! carrying on over invocations until it is complete.

mod handler;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    dbsync_core::cloud::lambda::serve(handler::handle).await
}
