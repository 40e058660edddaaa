//! Translates an assemble event into one core call.

use dbsync_core::cloud::lambda::{Clients, FunctionError};
use dbsync_core::cloud::steps::JobPlace;
use dbsync_core::cloud::steps::{self, AssembleEvent, AssembleOutput};
use dbsync_core::model::options::Mode;
use dbsync_core::parts::PartStore;
use std::sync::Arc;
use std::time::Instant;

/// Resolves the source's secret and writes the manifest (a refresh: checks every span
/// finished and records the sequences).
pub async fn handle(
    clients: Arc<Clients>,
    event: AssembleEvent,
    _deadline: Instant,
) -> Result<AssembleOutput, FunctionError> {
    let source = dbsync_core::cloud::secrets::fetch(&clients.secrets, &event.source_secret).await?;
    let store = clients.store_for(&event.job_id)?;
    if event.mode == Mode::Refresh {
        let place = JobPlace {
            store: &store,
            jobs: &clients.jobs(),
        };
        let done = steps::assemble_refresh(&source, place, &event.job_id).await?;
        return Ok(AssembleOutput {
            job_id: event.job_id,
            tables: done.tables,
            parts: 0,
            manifest: store.location(steps::refresh::REFRESHED_KEY),
        });
    }
    let m = steps::assemble_job(
        &source,
        JobPlace {
            store: &store,
            jobs: &clients.jobs(),
        },
        &event.job_id,
        &event.snapshot,
    )
    .await?;
    Ok(AssembleOutput {
        job_id: event.job_id,
        tables: m.tables.len(),
        parts: m.tables.iter().map(|t| t.parts.len()).sum(),
        manifest: store.location(dbsync_core::model::manifest::KEY),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_sample_event_writes_the_manifest_of_every_exported_part() {
        let mut event: AssembleEvent =
            serde_json::from_str(include_str!("../../../events/assemble.json")).expect("sample");
        let f = dbsync_tests::FunctionFixture::new(
            "fn_assemble",
            &event.job_id,
            "CREATE TABLE a (id int PRIMARY KEY, v text); CREATE TABLE b (id int PRIMARY KEY)",
            "INSERT INTO a SELECT g, repeat('a', 100) FROM generate_series(1, 2000) g; INSERT INTO b SELECT generate_series(1, 10)",
        )
        .await;
        event.snapshot = f.export_chunks().await;
        event.source_secret = f.source_secret.clone();
        let out = handle(Arc::new(f.clients.clone()), event, Instant::now())
            .await
            .expect("assemble");
        assert_eq!(out.tables, 2);
        assert!(out.parts >= 2);
        assert!(
            out.manifest
                .ends_with(&format!("jobs/{}/manifest.json", f.job_id)),
            "{}",
            out.manifest
        );
        let m = dbsync_core::parts::read_manifest(&f.store())
            .await
            .expect("manifest");
        assert_eq!(
            m.tables
                .iter()
                .map(|t| t.parts.iter().map(|p| p.stats.rows).sum::<u64>())
                .sum::<u64>(),
            2010
        );
    }
}
