//! Translates a Catch record into one core call.

use dbsync_core::cloud::jobstore::JobError;
use dbsync_core::cloud::lambda::{Clients, FunctionError};
use dbsync_core::cloud::steps::{self, FailEvent};
use std::sync::Arc;
use std::time::Instant;

/// Records the caught error (name and the function's own message) and releases the lock.
pub async fn handle(
    clients: Arc<Clients>,
    event: FailEvent,
    _deadline: Instant,
) -> Result<FailEvent, FunctionError> {
    let error = JobError {
        name: event.error.error.clone(),
        message: event.error.message(),
    };
    steps::fail_job(
        &clients.jobs(),
        &event.job_id,
        error,
        event.lock_key.as_deref(),
    )
    .await?;
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbsync_core::cloud::jobstore::{JobStatus, JobStore};

    #[tokio::test]
    async fn the_sample_event_records_the_error_by_name_and_frees_the_target() {
        let event: FailEvent =
            serde_json::from_str(include_str!("../../../events/fail.json")).expect("sample");
        let f = dbsync_tests::FunctionFixture::new(
            "fn_fail",
            &event.job_id,
            "CREATE TABLE t (id int)",
            "",
        )
        .await;
        let jobs = f.clients.jobs();
        let lock = event.lock_key.clone().expect("lock key");
        jobs.lock_target(&lock, &f.job_id, 600).await.expect("lock");
        handle(Arc::new(f.clients.clone()), event, Instant::now())
            .await
            .expect("fail");
        let job = jobs.get(&f.job_id).await.expect("get").expect("job");
        assert_eq!(job.status, JobStatus::Failed);
        let e = job.error.expect("error");
        assert_eq!(e.name, "DbsyncIncompatible");
        assert!(
            e.message
                .starts_with("the target does not match the source"),
            "{}",
            e.message
        );
        jobs.lock_target(&lock, "another-job", 600)
            .await
            .expect("the target is free again");
    }
}
