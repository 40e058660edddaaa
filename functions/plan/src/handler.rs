//! Translates a plan event into one core call.

use dbsync_core::cloud::lambda::{Clients, FunctionError};
use dbsync_core::cloud::steps::JobPlace;
use dbsync_core::cloud::steps::{self, PlanEvent, PlanOutput};
use dbsync_core::model::options::Mode;
use std::sync::Arc;
use std::time::Instant;

/// Resolves the source's secret, plans the job in the held snapshot (waiting for the holder
/// to publish it when the event names none), and says where the chunk list is.
pub async fn handle(
    clients: Arc<Clients>,
    event: PlanEvent,
    deadline: Instant,
) -> Result<PlanOutput, FunctionError> {
    let source = dbsync_core::cloud::secrets::fetch_source(
        &clients.secrets,
        &event.source_secret,
        event.rules_key_secret.as_deref(),
    )
    .await?;
    let store = clients.store_for(&event.job_id)?;
    let snapshot = match &event.snapshot {
        Some(s) => s.clone(),
        None => steps::await_snapshot(&clients.jobs(), &event.job_id, deadline).await?,
    };
    let rules = event.rules_file()?;
    // A refresh checks the target and plans spans to compare with it.
    let refresh_target_secret = match event.mode {
        Mode::Refresh => event.target_secret.clone(),
        _ => None,
    };
    let target = match &refresh_target_secret {
        Some(t) => Some(dbsync_core::cloud::secrets::fetch(&clients.secrets, t).await?),
        None => None,
    };
    let summary = steps::plan_job(
        &source,
        &snapshot,
        JobPlace {
            store: &store,
            jobs: &clients.jobs(),
        },
        &event.job_id,
        steps::PlanScope {
            scope: &event.scope,
            chunk_bytes: event
                .chunk_bytes
                .unwrap_or(dbsync_core::model::chunk::DEFAULT_CHUNK_BYTES),
            rules: rules.as_ref(),
            create_schema: event.create_schema,
            refresh: target.as_ref(),
        },
    )
    .await?;
    let items_key = steps::bucket_key(&store, &clients.env.bucket, &summary.chunks_key);
    // The tightest of the source's own limit, the deployment's and the request's.
    let connection_limit = [event.source_connections, clients.env.source_connections]
        .into_iter()
        .flatten()
        .fold(summary.connection_limit, u32::min);
    Ok(PlanOutput {
        job_id: event.job_id,
        source_secret: event.source_secret,
        snapshot,
        tables: summary.tables,
        chunks: summary.chunks,
        items_bucket: clients.env.bucket.clone(),
        items_key,
        connection_limit: Some(connection_limit),
        refresh_target_secret,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbsync_core::cloud::steps::ChunkItem;

    #[tokio::test]
    async fn the_sample_event_plans_the_scope_and_points_the_map_at_its_chunk_list() {
        let mut event: PlanEvent =
            serde_json::from_str(include_str!("../../../events/plan.json")).expect("sample");
        let f = dbsync_tests::FunctionFixture::new(
            "fn_plan",
            &event.job_id,
            "CREATE SCHEMA app; CREATE TABLE app.orders (id int PRIMARY KEY, v text); CREATE TABLE app.audit_log (v text);
             CREATE TABLE public.elsewhere (id int PRIMARY KEY)",
            "INSERT INTO app.orders SELECT g, repeat('o', 200) FROM generate_series(1, 2000) g; ANALYZE",
        )
        .await;
        let (_holder, snapshot) =
            dbsync_core::pg::snapshot::open_snapshot(&f.pair.source_spec(), "holder")
                .await
                .expect("snapshot");
        event.source_secret = f.source_secret.clone();
        event.snapshot = Some(snapshot);
        event.chunk_bytes = Some(64 * 1024);
        let clients = Arc::new(f.clients.clone());
        let out = handle(clients.clone(), event, Instant::now())
            .await
            .expect("plan");
        assert_eq!(out.tables, 1, "schema app, audit_* excluded");
        assert!(out.chunks > 2);
        // What the ItemReader will read: the bucket and key the output names.
        let body = clients
            .s3
            .get_object()
            .bucket(&out.items_bucket)
            .key(&out.items_key)
            .send()
            .await
            .expect("items object")
            .body
            .collect()
            .await
            .expect("body")
            .into_bytes();
        let items: Vec<ChunkItem> = serde_json::from_slice(&body).expect("items");
        assert_eq!(items.len(), out.chunks);
        assert!(items.iter().all(|i| i.label.starts_with("app.orders #")));
        // The sample's rules are in the plan the exports read.
        let plan =
            dbsync_core::cloud::steps::read_plan(&clients.store_for(&out.job_id).expect("store"))
                .await
                .expect("plan");
        let rules = plan.catalog.tables[0].rules.as_ref().expect("rules");
        assert_eq!(rules.filter.as_deref(), Some("id % 2 = 0"));
        assert_eq!(rules.columns["v"].rule, "truncate 8");
    }
}
