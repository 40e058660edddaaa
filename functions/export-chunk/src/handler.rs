//! Translates an export-chunk event into one core call.

use dbsync_core::cloud::lambda::{Clients, FunctionError};
use dbsync_core::cloud::steps::JobPlace;
use dbsync_core::cloud::steps::{self, ExportChunkEvent, ExportChunkOutput};
use std::sync::Arc;
use std::time::Instant;

/// Resolves the source's secret, exports one segment until `deadline`, passes the secret id
/// and snapshot through for the next invocation.
pub async fn handle(
    clients: Arc<Clients>,
    event: ExportChunkEvent,
    deadline: Instant,
) -> Result<ExportChunkOutput, FunctionError> {
    let source = dbsync_core::cloud::secrets::fetch_source(
        &clients.secrets,
        &event.source_secret,
        event.rules_key_secret.as_deref(),
    )
    .await?;
    let store = clients.store_for(&event.step.item.job_id)?;
    let result = steps::export_step(
        &source,
        &event.snapshot,
        JobPlace {
            store: &store,
            jobs: &clients.jobs(),
        },
        &event.step,
        deadline,
        clients.env.compress_level,
    )
    .await?;
    Ok(ExportChunkOutput {
        source_secret: event.source_secret,
        snapshot: event.snapshot,
        rules_key_secret: event.rules_key_secret,
        result,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbsync_core::cloud::jobstore::JobStore;

    #[tokio::test]
    async fn the_sample_event_exports_its_chunk_and_its_output_is_the_next_input() {
        // The sample, pointed at this test's job, secret and snapshot.
        let mut event: ExportChunkEvent =
            serde_json::from_str(include_str!("../../../events/export-chunk.json"))
                .expect("the sample parses");
        let job_id = event.step.item.job_id.clone();
        let f = dbsync_tests::FunctionFixture::new(
            "fn_export",
            &job_id,
            "CREATE TABLE items (id int PRIMARY KEY, v text)",
            "INSERT INTO items SELECT g, repeat('v', 300) FROM generate_series(1, 3000) g; ANALYZE items",
        )
        .await;
        let (p, clients, secret) = (
            &f.pair,
            Arc::new(f.clients.clone()),
            f.source_secret.clone(),
        );
        let (_holder, snapshot) =
            dbsync_core::pg::snapshot::open_snapshot(&p.source_spec(), "holder")
                .await
                .expect("snapshot");
        let store = clients.store_for(&job_id).expect("store");
        let summary = steps::plan_job(
            &p.source_spec(),
            &snapshot,
            JobPlace {
                store: &store,
                jobs: &clients.jobs(),
            },
            &job_id,
            dbsync_core::cloud::steps::PlanScope::new(&Default::default(), 64 * 1024),
        )
        .await
        .expect("plan");
        assert!(summary.chunks > 3);
        event.source_secret = secret;
        event.snapshot = snapshot;
        event.step.item.table = 0;
        event.step.resume = None;

        // Every chunk through the handler; each output, as JSON, is the next input.
        let mut rows = 0;
        for chunk in 0..summary.chunks {
            event.step.item.chunk = chunk;
            event.step.segment = 0;
            let mut input = serde_json::to_value(&event).expect("json");
            loop {
                let ev: ExportChunkEvent = serde_json::from_value(input).expect("input");
                let out = handle(
                    clients.clone(),
                    ev,
                    Instant::now() + std::time::Duration::from_secs(60),
                )
                .await
                .expect("handler");
                rows += out.result.rows;
                if out.result.done {
                    break;
                }
                input = serde_json::to_value(&out).expect("output as next input");
            }
        }
        assert_eq!(rows, 3000);
        let job = clients
            .jobs()
            .get(&job_id)
            .await
            .expect("get")
            .expect("job");
        assert_eq!(job.counters.chunks_done, summary.chunks as u64);

        // A missing secret comes back under its stable name.
        let mut bad = event.clone();
        bad.source_secret = "no/such/secret".into();
        let err = handle(clients.clone(), bad, Instant::now())
            .await
            .expect_err("missing secret");
        let d: lambda_runtime::Diagnostic = err.into();
        assert_eq!(d.error_type, "DbsyncIo");
        assert!(d.error_message.contains("no/such/secret"));
    }
}
