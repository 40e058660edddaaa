//! Translates a finalize event into one core call.

use dbsync_core::cloud::lambda::{Clients, FunctionError};
use dbsync_core::cloud::steps::JobPlace;
use dbsync_core::cloud::steps::{self, FinalizeEvent};
use std::sync::Arc;
use std::time::Instant;

/// Resolves the target's secret and finishes the job (an export-only job, without a target,
/// is just marked succeeded).
pub async fn handle(
    clients: Arc<Clients>,
    event: FinalizeEvent,
    _deadline: Instant,
) -> Result<FinalizeEvent, FunctionError> {
    let Some(target_secret) = &event.target_secret else {
        steps::finish_export(&clients.jobs(), &event.job_id).await?;
        return Ok(event);
    };
    let target = dbsync_core::cloud::secrets::fetch(&clients.secrets, target_secret).await?;
    let store = clients.store_for(steps::data_job(&event.job_id, &event.data_job_id))?;
    steps::finalize_job(
        &target,
        JobPlace {
            store: &store,
            jobs: &clients.jobs(),
        },
        &event.job_id,
        event.lock_key.as_deref(),
    )
    .await?;
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbsync_core::cloud::jobstore::{JobStatus, JobStore};
    use dbsync_core::cloud::steps::ImportPartEvent;

    #[tokio::test]
    async fn the_sample_event_finishes_an_exact_job_and_frees_the_target() {
        let mut event: FinalizeEvent =
            serde_json::from_str(include_str!("../../../events/finalize.json")).expect("sample");
        let f = dbsync_tests::FunctionFixture::new(
            "fn_finalize",
            &event.job_id,
            "CREATE TABLE t (id serial PRIMARY KEY, v text); CREATE INDEX t_v ON t (v)",
            "INSERT INTO t (v) SELECT 'v' || g FROM generate_series(1, 3000) g",
        )
        .await;
        let jobs = f.clients.jobs();
        let lock = event.lock_key.clone().expect("lock key");
        jobs.lock_target(&lock, &f.job_id, 600).await.expect("lock");
        f.export_all().await;
        let target = f.pair.target_spec();
        let store = f.store();
        let prep = f.prepare_target().await;
        for w in &prep.waves {
            let items: Vec<ImportPartEvent> = serde_json::from_slice(
                &dbsync_core::parts::PartStore::get(
                    &store,
                    &format!("waves/{}/{:04}.json", f.job_id, w.index),
                )
                .await
                .expect("wave"),
            )
            .expect("items");
            for i in items {
                steps::import_step(
                    &target,
                    JobPlace {
                        store: &store,
                        jobs: &jobs,
                    },
                    &i.plan(),
                    &i.part_id,
                )
                .await
                .expect("part");
            }
        }
        event.target_secret = Some(f.target_secret.clone());
        handle(Arc::new(f.clients.clone()), event, Instant::now())
            .await
            .expect("finalize");
        f.pair.assert_identical().await;
        let job = jobs.get(&f.job_id).await.expect("get").expect("job");
        assert_eq!(job.status, JobStatus::Succeeded);
        jobs.lock_target(&lock, "another-job", 600)
            .await
            .expect("the target is free again");
    }
}
