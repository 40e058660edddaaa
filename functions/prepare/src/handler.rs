//! Translates a prepare event into one core call.

use dbsync_core::cloud::lambda::{Clients, FunctionError};
use dbsync_core::cloud::steps::{self, PrepareEvent, PrepareOutput};
use std::sync::Arc;
use std::time::Instant;

/// Resolves the target's secret, prepares it, and lists the waves.
pub async fn handle(
    clients: Arc<Clients>,
    event: PrepareEvent,
    _deadline: Instant,
) -> Result<PrepareOutput, FunctionError> {
    let target = dbsync_core::cloud::secrets::fetch(&clients.secrets, &event.target_secret).await?;
    let store = clients.store_for(steps::data_job(&event.job_id, &event.data_job_id))?;
    let place = steps::JobPlace {
        store: &store,
        jobs: &clients.jobs(),
    };
    Ok(steps::prepare(&target, place, &clients.env.bucket, &event).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbsync_core::cloud::steps::ImportPartEvent;

    #[tokio::test]
    async fn the_sample_event_empties_the_target_and_writes_small_wave_items() {
        let mut event: PrepareEvent =
            serde_json::from_str(include_str!("../../../events/prepare.json")).expect("sample");
        let f = dbsync_tests::FunctionFixture::new(
            "fn_prepare",
            &event.job_id,
            "CREATE TABLE parent (id int PRIMARY KEY); CREATE TABLE child (id int PRIMARY KEY, p int REFERENCES parent)",
            "INSERT INTO parent SELECT generate_series(1, 100); INSERT INTO child SELECT g, g FROM generate_series(1, 100) g",
        )
        .await;
        f.pair.target("INSERT INTO parent VALUES (7)").await;
        f.export_all().await;
        event.target_secret = f.target_secret.clone();
        let out = handle(Arc::new(f.clients.clone()), event, Instant::now())
            .await
            .expect("prepare");
        assert!(!out.already_done);
        assert_eq!(
            dbsync_tests::scalar(&f.pair.target_url, "SELECT count(*)::text FROM parent").await,
            "0"
        );
        let parts: usize = out.waves.iter().map(|w| w.parts).sum();
        assert_eq!(parts, 2);
        let body = f
            .clients
            .s3
            .get_object()
            .bucket(&out.waves[0].items_bucket)
            .key(&out.waves[0].items_key)
            .send()
            .await
            .expect("wave items")
            .body
            .collect()
            .await
            .expect("body")
            .into_bytes();
        let items: Vec<ImportPartEvent> = serde_json::from_slice(&body).expect("items");
        assert!(items
            .iter()
            .all(|i| i.job_id == f.job_id && i.target_secret == f.target_secret));
    }
}
