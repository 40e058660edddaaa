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
    let (dir, store, m) = export_to_temp(&p).await;
    let target = p.target_spec();
    let plan = pipeline::begin_import(&target, &m, store.as_ref(), &tiny_chunks())
        .await
        .expect("prepare");
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
                match pipeline::import_part(&mut c, &m, part, store.as_ref(), false)
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
        pipeline::import_part(&mut c, &m, "t9999.c00000", store.as_ref(), false)
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
    let again = pipeline::begin_import(&target, &m, store.as_ref(), &tiny_chunks())
        .await
        .expect("prepare again");
    assert!(again.already_done);
    p.assert_identical().await;
    let _ = std::fs::remove_dir_all(dir);
}
