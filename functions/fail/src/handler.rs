//! Translates a Catch record into one core call.

use dbsync_core::cloud::jobstore::JobError;
use dbsync_core::cloud::lambda::{Clients, FunctionError};
use dbsync_core::cloud::steps::{self, FailEvent, FailOutput};
use dbsync_core::pg::conn::ConnSpec;
use std::sync::Arc;
use std::time::Instant;

/// Resolves the target's secret (when the job has a target) and, for a failed chunk, the
/// source's, then puts the target back, gives back the chunk's connection leases, records the
/// caught error (name and the function's own message) and releases the lock. A secret that
/// cannot be read only skips what needs it: the failure is recorded regardless.
pub async fn handle(
    clients: Arc<Clients>,
    event: FailEvent,
    _deadline: Instant,
) -> Result<FailOutput, FunctionError> {
    let error = JobError {
        name: event.error.error.clone(),
        message: event.error.message(),
    };
    let target = match &event.target_secret {
        None => None,
        Some(id) => {
            resolve(
                &clients,
                &event.job_id,
                id,
                "what the job took away stays in the target's ledger",
            )
            .await
        }
    };
    let source = match (&event.source_secret, &event.chunk_label) {
        (Some(id), Some(label)) => resolve(
            &clients,
            &event.job_id,
            id,
            "the chunk's connection leases expire by themselves",
        )
        .await
        .map(|s| (s.identity(), steps::lease_prefix(&event.job_id, label))),
        _ => None,
    };
    let out = steps::fail_job(
        &clients.jobs(),
        &event.job_id,
        error,
        event.lock_key.as_deref(),
        target.as_ref(),
        source.as_ref().map(|(e, p)| (e.as_str(), p.as_str())),
    )
    .await?;
    Ok(out)
}

/// The connection the secret `id` holds, or none when it cannot be read (logged with what
/// that leaves undone, `then`): a failure is recorded whatever its secrets.
async fn resolve(clients: &Clients, job: &str, id: &str, then: &str) -> Option<ConnSpec> {
    match dbsync_core::cloud::secrets::fetch(&clients.secrets, id).await {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(job, secret = id, error = %e, "cannot read a secret; {then}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbsync_core::cloud::jobstore::{JobStatus, JobStore};
    use dbsync_core::pipeline::undo::Abandoned;

    #[tokio::test]
    async fn the_sample_event_puts_the_target_back_records_the_error_by_name_and_frees_the_target()
    {
        let mut event: FailEvent =
            serde_json::from_str(include_str!("../../../events/fail.json")).expect("sample");
        let f = dbsync_tests::FunctionFixture::new(
            "fn_fail",
            &event.job_id,
            "CREATE TABLE t (id int PRIMARY KEY, v text); CREATE INDEX t_v ON t (v);
             CREATE FUNCTION t_touch() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
             CREATE TRIGGER t_touch BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION t_touch()",
            "INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 3000) g",
        )
        .await;
        let before = dbsync_tests::schema_fingerprint(&f.pair.target_url).await;
        let jobs = f.clients.jobs();
        let lock = event.lock_key.clone().expect("lock key");
        jobs.lock_target(&lock, &f.job_id, 600).await.expect("lock");
        f.export_all().await;
        // The import started (the target emptied, its index dropped, its trigger disabled),
        // then the job failed.
        f.prepare_target().await;
        let dropped = dbsync_tests::schema_fingerprint(&f.pair.target_url).await;
        assert_ne!(before, dropped, "prepare takes the index away");
        event.target_secret = Some(f.target_secret.clone());
        let out = handle(Arc::new(f.clients.clone()), event, Instant::now())
            .await
            .expect("fail");
        assert_eq!(
            out.target_state,
            Some(Abandoned::PutBack { failed: Vec::new() })
        );
        assert_eq!(
            dbsync_tests::schema_fingerprint(&f.pair.target_url).await,
            before,
            "index and trigger are back as they were"
        );
        let state = dbsync_tests::scalar(
            &f.pair.target_url,
            &format!(
                "SELECT state FROM dbsync.jobs WHERE job_id = '{}'",
                f.job_id
            ),
        )
        .await;
        assert_eq!(state, "interrupted");
        let job = jobs.get(&f.job_id).await.expect("get").expect("job");
        assert_eq!(job.status, JobStatus::Failed);
        let e = job.error.expect("error");
        assert_eq!(e.name, "DbsyncIncompatible");
        assert!(
            e.message
                .starts_with("the target is not ready for this load"),
            "{}",
            e.message
        );
        jobs.lock_target(&lock, "another-job", 600)
            .await
            .expect("the target is free again");
    }

    #[tokio::test]
    async fn a_failed_chunk_gives_back_the_connection_leases_its_invocations_held_and_no_others() {
        let mut event: FailEvent =
            serde_json::from_str(include_str!("../../../events/fail-chunk.json")).expect("sample");
        let f = dbsync_tests::FunctionFixture::new(
            "fn_fail_chunk",
            &event.job_id,
            "CREATE TABLE t (id int PRIMARY KEY)",
            "",
        )
        .await;
        let jobs = f.clients.jobs();
        let endpoint = f.pair.source_spec().identity();
        let label = event.chunk_label.clone().expect("label");
        // Segment 1 timed out holding its lease; another chunk of the job is still running.
        let died = steps::lease_prefix(&f.job_id, &label) + "1";
        let running = steps::lease_prefix(&f.job_id, &format!("{label}0")) + "0";
        for h in [&died, &running] {
            assert!(jobs
                .acquire_lease(&endpoint, h, 2, 600)
                .await
                .expect("lease"));
        }
        event.source_secret = Some(f.source_secret.clone());
        let out = handle(Arc::new(f.clients.clone()), event, Instant::now())
            .await
            .expect("fail");
        assert_eq!(out.leases_released, Some(1));
        assert!(
            !jobs
                .acquire_lease(&endpoint, "next", 1, 600)
                .await
                .expect("lease"),
            "the running chunk keeps its lease"
        );
        assert!(jobs
            .acquire_lease(&endpoint, "next", 2, 600)
            .await
            .expect("lease"));
        let job = jobs.get(&f.job_id).await.expect("get").expect("job");
        assert_eq!(job.status, JobStatus::Failed);
        assert_eq!(job.error.expect("error").name, "States.Timeout");
    }
}
