//! The import as separate, stateless steps (what the import Map's Lambdas do): prepare once,
//! load parts from fresh sessions in any order within a wave, with duplicates, then finalize
//! (twice). The result is exact and every part is loaded once.

use super::*;
use dbsync_core::model::part::LoadOutcome;
use dbsync_tests::scalar;

#[tokio::test]
async fn parts_loaded_by_separate_invocations_with_retries_give_an_exact_target() {
    let p = adversarial("stateless").await;
    p.target("INSERT INTO app.customers VALUES (777777, 'stale')")
        .await;
    let (dir, store, m, plan) = exported_and_prepared(&p).await;
    let target = p.target_spec();
    assert!(!plan.already_done);
    let total: usize = plan.waves.iter().map(Vec::len).sum();
    assert_eq!(total, m.tables.iter().map(|t| t.parts.len()).sum::<usize>());
    // Plans travel through Step Functions as JSON.
    let plan: pipeline::ImportPlan =
        serde_json::from_str(&serde_json::to_string(&plan).expect("json")).expect("back");

    // Finalize too early is refused, naming what is missing.
    let early = pipeline::finalize_import(&target, &m)
        .await
        .expect_err("too early");
    assert_eq!(early.name(), "DbsyncIncomplete", "{early}");

    let mut loaded = 0;
    let mut skipped = 0;
    for wave in &plan.waves {
        // Reverse order, and every third part delivered twice.
        for (i, part) in wave.iter().rev().enumerate() {
            for _ in 0..if i % 3 == 0 { 2 } else { 1 } {
                let mut c = pipeline::import::connect_part_loader(&target, &plan)
                    .await
                    .expect("connect");
                match pipeline::import_part(&mut c, part_load(&m, part, store.as_ref()))
                    .await
                    .expect("part")
                {
                    LoadOutcome::Loaded(_) => loaded += 1,
                    LoadOutcome::AlreadyLoaded => skipped += 1,
                }
            }
        }
    }
    assert_eq!(loaded, total, "each part loaded once");
    assert!(skipped > 0, "duplicates must be skipped");
    let err = {
        let mut c = pipeline::import::connect_part_loader(&target, &plan)
            .await
            .expect("connect");
        pipeline::import_part(&mut c, part_load(&m, "t9999.c00000", store.as_ref()))
            .await
            .expect_err("unknown part")
    };
    assert!(err.to_string().contains("t9999.c00000"), "{err}");

    pipeline::finalize_import(&target, &m)
        .await
        .expect("finalize");
    pipeline::finalize_import(&target, &m)
        .await
        .expect("finalize again is a no-op");
    p.assert_identical().await;
    assert_eq!(
        scalar(
            &p.target_url,
            &format!(
                "SELECT state FROM dbsync.jobs WHERE job_id = '{}'",
                m.job_id
            )
        )
        .await,
        "done"
    );
    // Preparing the same manifest again says it is done instead of emptying the target.
    let again = pipeline::begin_import(&target, &m, store.as_ref(), &tiny_chunks().import())
        .await
        .expect("prepare again");
    assert!(again.already_done);
    p.assert_identical().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Exports `p`'s source to a temporary directory and prepares its target for that export:
/// the directory, its store, the manifest and the import plan.
async fn exported_and_prepared(
    p: &Pair,
) -> (
    std::path::PathBuf,
    std::sync::Arc<dbsync_core::parts::LocalStore>,
    dbsync_core::model::manifest::Manifest,
    pipeline::ImportPlan,
) {
    let (dir, store, m) = export_to_temp(p).await;
    let plan = pipeline::begin_import(
        &p.target_spec(),
        &m,
        store.as_ref(),
        &tiny_chunks().import(),
    )
    .await
    .expect("prepare");
    (dir, store, m, plan)
}

/// Loads every part of `m` from fresh sessions, as the import Map's invocations do.
async fn load_parts(
    target: &dbsync_core::pg::conn::ConnSpec,
    m: &dbsync_core::model::manifest::Manifest,
    store: &dbsync_core::parts::LocalStore,
    plan: &pipeline::ImportPlan,
) {
    for part in plan.waves.iter().flatten() {
        let mut c = pipeline::import::connect_part_loader(target, plan)
            .await
            .expect("connect");
        pipeline::import_part(&mut c, part_load(m, part, store))
            .await
            .expect("part");
    }
}

#[tokio::test]
async fn a_finalize_cut_short_then_put_back_and_prepared_again_rebuilds_every_index_it_had_marked_done(
) {
    let p = Pair::new("stateless_remarked").await;
    // The expression index takes about 4 s to build (2 ms a row).
    p.both(
        "CREATE FUNCTION public.slow(i int) RETURNS int IMMUTABLE LANGUAGE plpgsql
           AS $$ BEGIN PERFORM pg_catalog.pg_sleep(0.002); RETURN i; END $$;
         CREATE TABLE t (id int PRIMARY KEY, v text);
         CREATE INDEX t_v ON t (v);
         CREATE INDEX t_slow ON t (public.slow(id))",
    )
    .await;
    p.source("INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 2000) g")
        .await;
    let (dir, store, m, plan) = exported_and_prepared(&p).await;
    let target = p.target_spec();
    load_parts(&target, &m, &store, &plan).await;
    let until = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
    let cut = pipeline::finalize_import_until(&target, &m, Some(until))
        .await
        .expect("finalize within 1 s");
    assert!(
        matches!(&cut, pipeline::Finished::Pending { what, .. } if what.contains("t_slow")),
        "{cut:?}"
    );
    // The build left running commits its mark; then the job is put back (as the Fail path
    // does) and prepared again, which drops the indexes again.
    let marked = "SELECT count(*)::text FROM dbsync.finish_steps WHERE what LIKE '%t_slow%'";
    let started = std::time::Instant::now();
    while scalar(&p.target_url, marked).await != "1" {
        assert!(
            started.elapsed().as_secs() < 60,
            "the build never committed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let undone = dbsync_core::pipeline::undo::abandon(&target, &m.job_id)
        .await
        .expect("put back");
    assert!(
        matches!(&undone, dbsync_core::pipeline::undo::Abandoned::PutBack { failed } if failed.is_empty()),
        "{undone:?}"
    );
    let plan = pipeline::begin_import(&target, &m, store.as_ref(), &tiny_chunks().import())
        .await
        .expect("prepare again");
    load_parts(&target, &m, &store, &plan).await;
    pipeline::finalize_import(&target, &m)
        .await
        .expect("finalize");
    // The schema is part of the fingerprint: every index and key is back.
    p.assert_identical().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// A plain (not atomic) load of `part`, progress unseen.
fn part_load<'a>(
    m: &'a dbsync_core::model::manifest::Manifest,
    part: &'a str,
    store: &'a dyn dbsync_core::parts::PartStore,
) -> pipeline::PartLoad<'a> {
    pipeline::PartLoad {
        manifest: m,
        part_id: part,
        store,
        shadow: false,
        progress: &NoProgress,
    }
}
