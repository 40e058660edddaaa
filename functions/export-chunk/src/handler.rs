//! Translates an export-chunk event into one core call.

use dbsync_core::cloud::lambda::{Clients, FunctionError};
use dbsync_core::cloud::steps::JobPlace;
use dbsync_core::cloud::steps::{self, ExportChunkEvent, ExportChunkOutput};
use std::sync::Arc;
use std::time::Instant;

/// Resolves the source's secret, exports one segment until `deadline` (or, in a refresh,
/// compares and replaces one span), passes the secret ids and snapshot through for the
/// next invocation.
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
    let jobs = clients.jobs();
    let place = JobPlace {
        store: &store,
        jobs: &jobs,
    };
    let result = match &event.refresh_target_secret {
        // A refresh's span: compared with the target and replaced where it differs.
        Some(t) => {
            let target = dbsync_core::cloud::secrets::fetch(&clients.secrets, t).await?;
            let snapshot = &event.snapshot;
            steps::refresh_step(&source, &target, snapshot, place, &event.step, deadline).await?
        }
        None => {
            let level = clients.env.compress_level;
            steps::export_step(
                &source,
                &event.snapshot,
                place,
                &event.step,
                deadline,
                level,
            )
            .await?
        }
    };
    Ok(ExportChunkOutput {
        source_secret: event.source_secret,
        snapshot: event.snapshot,
        rules_key_secret: event.rules_key_secret,
        refresh_target_secret: event.refresh_target_secret,
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
        event.step.resume = None;

        // Every chunk through the handler; each output, as JSON, is the next input.
        let rows = run_items(&clients, &event, None).await;
        assert_eq!(rows, 3000);
        assert_eq!(chunks_done(&clients, &job_id).await, summary.chunks as u64);

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

    /// The job record's count of chunks done.
    async fn chunks_done(clients: &Clients, job_id: &str) -> u64 {
        let job = clients.jobs().get(job_id).await.expect("get").expect("job");
        job.counters.chunks_done
    }

    /// Runs every item of the job's chunk list through the handler as the Map would, each
    /// output, as JSON, fed back as the next input while not done: rows exported or copied.
    async fn run_items(
        clients: &Arc<Clients>,
        event: &ExportChunkEvent,
        budget: Option<u64>,
    ) -> u64 {
        let store = clients.store_for(&event.step.item.job_id).expect("store");
        let mut rows = 0;
        for item in dbsync_tests::chunk_items(&store).await {
            let mut ev = event.clone();
            ev.step.item = item;
            ev.step.segment = 0;
            ev.step.tuning.budget_seconds = budget;
            let mut input = serde_json::to_value(&ev).expect("json");
            loop {
                let ev: ExportChunkEvent = serde_json::from_value(input).expect("input");
                let deadline = Instant::now() + std::time::Duration::from_secs(60);
                let out = handle(clients.clone(), ev, deadline)
                    .await
                    .expect("handler");
                rows += out.result.rows;
                if out.result.done {
                    break;
                }
                input = serde_json::to_value(&out).expect("output as next input");
            }
        }
        rows
    }

    #[tokio::test]
    async fn the_refresh_sample_replaces_only_the_ranges_of_each_span_that_differ() {
        let mut event: ExportChunkEvent =
            serde_json::from_str(include_str!("../../../events/refresh-span.json"))
                .expect("the sample parses");
        let job_id = event.step.item.job_id.clone();
        let data = "INSERT INTO items SELECT g, repeat('v', 30) FROM generate_series(1, 3000) g;
                    INSERT INTO notes SELECT 'n' || g FROM generate_series(1, 5) g; ANALYZE";
        let f = dbsync_tests::FunctionFixture::new(
            "fn_refresh",
            &job_id,
            "CREATE TABLE items (id int PRIMARY KEY, v text); CREATE TABLE notes (v text)",
            data,
        )
        .await;
        f.pair.target(data).await;
        // Last night's copy, then today's changes: the newest rows, one deleted, one new,
        // and a row of the keyless table.
        f.pair
            .source(
                "UPDATE items SET v = 'changed' WHERE id > 2950; DELETE FROM items WHERE id = 7;
                 INSERT INTO items VALUES (3001, 'new'); INSERT INTO notes VALUES ('n6')",
            )
            .await;
        let clients = Arc::new(f.clients.clone());
        let (_holder, snapshot) =
            dbsync_core::pg::snapshot::open_snapshot(&f.pair.source_spec(), "holder")
                .await
                .expect("snapshot");
        let store = clients.store_for(&job_id).expect("store");
        let (target, scope) = (f.pair.target_spec(), Default::default());
        let what = steps::PlanScope {
            refresh: Some(&target),
            ..steps::PlanScope::new(&scope, 64 * 1024)
        };
        let place = JobPlace {
            store: &store,
            jobs: &clients.jobs(),
        };
        let summary = steps::plan_job(&f.pair.source_spec(), &snapshot, place, &job_id, what)
            .await
            .expect("plan");
        assert!(
            summary.chunks >= 3,
            "spans of items, one of notes: {summary:?}"
        );
        event.source_secret = f.source_secret.clone();
        event.refresh_target_secret = Some(f.target_secret.clone());
        event.snapshot = snapshot;
        // A budget of nothing: each invocation replaces one range and hands the rest on.
        let rows = run_items(&clients, &event, Some(0)).await;
        f.pair.assert_identical().await;
        assert!(
            rows < 400,
            "only the changed ranges and the keyless table were copied: {rows} rows"
        );
        assert_eq!(chunks_done(&clients, &job_id).await, summary.chunks as u64);
        let done = steps::assemble_refresh(&f.pair.source_spec(), place, &job_id)
            .await
            .expect("every span finished");
        let differing: usize = done.spans.iter().map(|s| s.differing).sum();
        assert!(differing >= 3, "{done:?}");
        // Run again in the same snapshot: everything matches now, nothing is copied.
        assert_eq!(run_items(&clients, &event, None).await, 0);
    }
}
