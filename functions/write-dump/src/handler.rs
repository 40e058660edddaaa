//! Translates a write-dump event into one core call.

use dbsync_core::cloud::lambda::{Clients, FunctionError};
use dbsync_core::cloud::steps::{self, WriteDumpEvent};
use std::sync::Arc;
use std::time::Instant;

/// Composes (more of) the dump from the export's parts until the deadline.
pub async fn handle(
    clients: Arc<Clients>,
    event: WriteDumpEvent,
    deadline: Instant,
) -> Result<WriteDumpEvent, FunctionError> {
    let dest = clients.store_for(&event.job_id)?;
    let data = clients.store_for(steps::data_job(&event.job_id, &event.data_job_id))?;
    Ok(steps::write_dump(&dest, &data, &clients.jobs(), &event, deadline).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_sample_event_writes_a_dump_over_several_calls_that_psql_restores_identically() {
        let event: WriteDumpEvent =
            serde_json::from_str(include_str!("../../../events/write-dump.json")).expect("sample");
        let f = dbsync_tests::FunctionFixture::new(
            "fn_dump",
            &event.job_id,
            "CREATE TABLE big (id int PRIMARY KEY, v text);
             CREATE TABLE small (id int PRIMARY KEY, big int REFERENCES big, note text)",
            // Three unrelated hashes a row: gzip cannot shrink the data under two S3 parts.
            "INSERT INTO big SELECT g, md5(g::text) || md5((-g)::text) || md5((g * 7919)::text)
               FROM generate_series(1, 120000) g;
             INSERT INTO small SELECT g, g, CASE WHEN g % 3 = 0 THEN NULL ELSE E'tab\\there \\\\ ü' END
               FROM generate_series(1, 100) g",
        )
        .await;
        f.export_all().await;
        let clients = Arc::new(f.clients.clone());
        // A deadline already past: each call hands over after its first part.
        let (mut step, mut calls) = (event.clone(), 0);
        while !step.done {
            step = handle(clients.clone(), step, Instant::now())
                .await
                .expect("write dump");
            calls += 1;
            assert!(calls < 20, "the dump never completes");
        }
        assert!(calls > 1, "the dump was written over several calls");
        let dump = dbsync_core::parts::PartStore::get(&f.store(), steps::DUMP_KEY)
            .await
            .expect("the dump is in S3");
        f.pair.target("INSERT INTO big VALUES (0, 'stale')").await;
        dbsync_tests::psql_restore_gzip(&f.pair.target_url, &dump, &f.pair.name);
        f.pair.assert_identical().await;
    }
}
