//! api: the HTTP API behind API Gateway (`POST /syncs`, `GET /syncs`, `GET /syncs/{id}`,
//! `DELETE /syncs/{id}`) and the nightly schedule's entry point.

mod handler;

use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // The API's own settings, parsed once per cold start like the common ones.
    let settings = Arc::new(dbsync_core::cloud::api::ApiSettings::from_env()?);
    dbsync_core::cloud::lambda::serve(move |clients, event, deadline| {
        handler::handle(clients, settings.clone(), event, deadline)
    })
    .await
}
