//! Translates a finalize event into one core call.

use dbsync_core::cloud::lambda::{Clients, FunctionError};
use dbsync_core::cloud::steps::JobPlace;
use dbsync_core::cloud::steps::{self, FinalizeEvent, FinalizeOutput};
use dbsync_core::model::options::Mode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Resolves the target's secret and finishes the job, or as much of it as fits before the
/// deadline or the event's budget (an export-only job, without a target, is just marked
/// succeeded).
pub async fn handle(
    clients: Arc<Clients>,
    event: FinalizeEvent,
    deadline: Instant,
) -> Result<FinalizeOutput, FunctionError> {
    let Some(target_secret) = &event.target_secret else {
        steps::finish_export(&clients.jobs(), &event.job_id).await?;
        return Ok(FinalizeOutput::done());
    };
    let until = match event.budget_seconds {
        Some(b) => deadline.min(Instant::now() + Duration::from_secs(b)),
        None => deadline,
    };
    let target = dbsync_core::cloud::secrets::fetch(&clients.secrets, target_secret).await?;
    let store = clients.store_for(steps::data_job(&event.job_id, &event.data_job_id))?;
    if event.mode == Mode::Refresh {
        let place = JobPlace {
            store: &store,
            jobs: &clients.jobs(),
        };
        let lock = event.lock_key.as_deref();
        steps::finish_refresh(&target, place, &event.job_id, lock, event.analyze).await?;
        return Ok(FinalizeOutput::done());
    }
    Ok(steps::finalize_job(
        &target,
        JobPlace {
            store: &store,
            jobs: &clients.jobs(),
        },
        &event.job_id,
        event.lock_key.as_deref(),
        Some(until.into()),
    )
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbsync_core::cloud::jobstore::{JobStatus, JobStore};
    use dbsync_core::cloud::steps::ImportPartEvent;
    use dbsync_tests::FunctionFixture;

    /// Exports the fixture's source, prepares the target and loads every part, as the
    /// import Map would: what is left is the finalize.
    async fn load_all(f: &FunctionFixture) {
        f.export_all().await;
        let target = f.pair.target_spec();
        let store = f.store();
        let jobs = f.clients.jobs();
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
                let place = JobPlace {
                    store: &store,
                    jobs: &jobs,
                };
                steps::import_step(&target, place, &i.plan(), &i.part_id)
                    .await
                    .expect("part");
            }
        }
    }

    fn sample() -> FinalizeEvent {
        serde_json::from_str(include_str!("../../../events/finalize.json")).expect("sample")
    }

    #[tokio::test]
    async fn the_sample_event_finishes_an_exact_job_and_frees_the_target() {
        let mut event = sample();
        let f = FunctionFixture::new(
            "fn_finalize",
            &event.job_id,
            "CREATE TABLE t (id serial PRIMARY KEY, v text); CREATE INDEX t_v ON t (v)",
            "INSERT INTO t (v) SELECT 'v' || g FROM generate_series(1, 3000) g",
        )
        .await;
        let jobs = f.clients.jobs();
        let lock = event.lock_key.clone().expect("lock key");
        jobs.lock_target(&lock, &f.job_id, 600).await.expect("lock");
        load_all(&f).await;
        event.target_secret = Some(f.target_secret.clone());
        let deadline = Instant::now() + Duration::from_secs(600);
        let out = handle(Arc::new(f.clients.clone()), event, deadline)
            .await
            .expect("finalize");
        assert_eq!(out, FinalizeOutput::done());
        f.pair.assert_identical().await;
        let job = jobs.get(&f.job_id).await.expect("get").expect("job");
        assert_eq!(job.status, JobStatus::Succeeded);
        jobs.lock_target(&lock, "another-job", 600)
            .await
            .expect("the target is free again");
    }

    #[tokio::test]
    async fn index_builds_longer_than_the_budget_run_on_between_calls_two_tables_at_once_until_the_job_finishes(
    ) {
        let mut event = sample();
        event.job_id = "2f6b1c1e-0000-4f7e-9f51-finalize-slow".into();
        // Per table about 4 s to build (2 ms a row) and as long to ANALYZE (its
        // expression's statistics call the function too), against a budget of 1 s per call.
        let f = FunctionFixture::new(
            "fn_finalize_slow",
            &event.job_id,
            "CREATE FUNCTION public.slow(i int) RETURNS int IMMUTABLE LANGUAGE plpgsql
               AS $$ BEGIN PERFORM pg_catalog.pg_sleep(0.002); RETURN i; END $$;
             CREATE TABLE t (id int PRIMARY KEY, v text); CREATE INDEX t_slow ON t (public.slow(id));
             CREATE TABLE u (id int PRIMARY KEY, v text); CREATE INDEX u_slow ON u (public.slow(id))",
            "INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 2000) g;
             INSERT INTO u SELECT g, 'u' || g FROM generate_series(1, 2000) g",
        )
        .await;
        let lock = event.lock_key.clone().expect("lock key");
        f.clients
            .jobs()
            .lock_target(&lock, &f.job_id, 600)
            .await
            .expect("lock");
        load_all(&f).await;
        event.target_secret = Some(f.target_secret.clone());
        event.budget_seconds = Some(1);
        let deadline = Instant::now() + Duration::from_secs(600);
        let clients = Arc::new(f.clients.clone());
        // The most finishing statements seen running at once, sampled every 50 ms.
        let url = f.pair.target_url.clone();
        let most = Arc::new(std::sync::atomic::AtomicI64::new(0));
        let seen = most.clone();
        let sampler = tokio::spawn(async move {
            loop {
                let now: i64 = dbsync_tests::scalar(
                    &url,
                    "SELECT count(*)::text FROM pg_stat_activity WHERE state = 'active'
                       AND query LIKE 'BEGIN;%dbsync.finish_steps%'",
                )
                .await
                .parse()
                .expect("count");
                seen.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        let mut calls = Vec::new();
        loop {
            let out = handle(clients.clone(), event.clone(), deadline)
                .await
                .expect("finalize");
            if out.done {
                break;
            }
            calls.push(out.running.expect("what runs"));
            assert!(calls.len() < 60, "no end in sight: {calls:?}");
        }
        assert!(
            calls.iter().any(|w| w.contains("_slow")),
            "an index build outlasted a call: {calls:?}"
        );
        sampler.abort();
        let most = most.load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            most >= 2,
            "at most {most} finishing statement(s) ran at once"
        );
        f.pair.assert_identical().await;
        let job = f
            .clients
            .jobs()
            .get(&f.job_id)
            .await
            .expect("get")
            .expect("job");
        assert_eq!(job.status, JobStatus::Succeeded);
        let built = dbsync_tests::scalar(
            &f.pair.target_url,
            "SELECT count(*)::text FROM pg_index WHERE indisvalid
               AND indexrelid IN ('public.t_slow'::regclass, 'public.u_slow'::regclass)",
        )
        .await;
        assert_eq!(built, "2");
    }
}
