//! Translates an import-part event into one core call.

use dbsync_core::cloud::lambda::{Clients, FunctionError};
use dbsync_core::cloud::steps::JobPlace;
use dbsync_core::cloud::steps::{self, ImportPartEvent, ImportPartOutput};
use dbsync_core::model::part::LoadOutcome;
use std::sync::Arc;
use std::time::Instant;

/// Resolves the target's secret and loads the part (a repeated delivery is a no-op).
pub async fn handle(
    clients: Arc<Clients>,
    event: ImportPartEvent,
    _deadline: Instant,
) -> Result<ImportPartOutput, FunctionError> {
    let target = dbsync_core::cloud::secrets::fetch(&clients.secrets, &event.target_secret).await?;
    let store = clients.store_for(steps::data_job(&event.job_id, &event.data_job_id))?;
    let outcome = steps::import_step(
        &target,
        JobPlace {
            store: &store,
            jobs: &clients.jobs(),
        },
        &event.plan(),
        &event.part_id,
    )
    .await?;
    Ok(match outcome {
        LoadOutcome::Loaded(s) => ImportPartOutput {
            part_id: event.part_id,
            loaded: true,
            rows: s.rows,
        },
        LoadOutcome::AlreadyLoaded => ImportPartOutput {
            part_id: event.part_id,
            loaded: false,
            rows: 0,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_sample_event_loads_its_part_once_and_a_second_delivery_is_a_no_op() {
        let mut event: ImportPartEvent =
            serde_json::from_str(include_str!("../../../events/import-part.json")).expect("sample");
        let f = dbsync_tests::FunctionFixture::new(
            "fn_import",
            &event.job_id,
            "CREATE TABLE items (id int PRIMARY KEY, v text)",
            "INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 500) g",
        )
        .await;
        let clients = Arc::new(f.clients.clone());
        // An export of the source, as the export Map and Assemble leave it.
        f.export_all().await;
        let store = f.store();
        let m = dbsync_core::parts::read_manifest(&store)
            .await
            .expect("manifest");
        let plan = dbsync_core::pipeline::begin_import(
            &f.pair.target_spec(),
            &m,
            &store,
            &Default::default(),
        )
        .await
        .expect("prepare");
        event.target_secret = f.target_secret.clone();
        event.part_id = plan.waves[0][0].clone();
        event.replica = plan.replica;

        let out = handle(clients.clone(), event.clone(), Instant::now())
            .await
            .expect("import");
        assert_eq!((out.loaded, out.rows), (true, 500));
        let again = handle(clients.clone(), event, Instant::now())
            .await
            .expect("again");
        assert_eq!((again.loaded, again.rows), (false, 0));
        assert_eq!(
            dbsync_tests::scalar(&f.pair.target_url, "SELECT count(*)::text FROM items").await,
            "500"
        );
    }
}
