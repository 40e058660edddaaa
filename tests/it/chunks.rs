//! Chunking: every key kind forced into many chunks still copies every row exactly once,
//! including rows outside the sampled key range; a sync splits by heap pages, an export by
//! key; `--analyze`.

use super::*;
use dbsync_core::model::chunk::{Chunk, ChunkRange, Plan};
use dbsync_tests::scalar;

/// The chunks of table `name` in `plan`.
fn chunks_of<'a>(plan: &'a Plan, name: &str) -> Vec<&'a Chunk> {
    let i = plan
        .catalog
        .tables
        .iter()
        .position(|t| t.name.to_string() == name)
        .unwrap_or_else(|| panic!("{name} not in plan"));
    plan.chunks.iter().filter(|c| c.table == i).collect()
}

#[tokio::test]
async fn every_key_kind_splits_into_many_chunks_of_the_right_kind() {
    let p = adversarial("plan_kinds").await;
    let o = tiny_chunks();
    let plan = plan_of(&p, o.export_sizing()).await;
    let chunks_of = |name: &str| chunks_of(&plan, name);
    for (name, ctid) in [
        ("app.all_types", false),
        ("app.uuid_keyed", false),
        ("app.text_keyed", false),
        ("app.no_key", true),
        ("app.unique_not_null", false),
    ] {
        let c = chunks_of(name);
        assert!(
            c.len() >= 3,
            "{name} should have many chunks, got {}",
            c.len()
        );
        assert_eq!(
            matches!(c[0].range, ChunkRange::Ctid { .. }),
            ctid,
            "{name}"
        );
    }
    // Levels: customers before orders; cyclic keys listed.
    let level = |n: &str| {
        let i = plan
            .catalog
            .tables
            .iter()
            .position(|t| t.name.to_string() == n)
            .expect("table");
        plan.order.levels[i]
    };
    assert!(level("app.customers") < level("app.orders"));
    assert_eq!(level("app.cyc_a"), level("app.cyc_b"));
    assert_eq!(plan.order.cyclic.len(), 3);
    // Views, the partitioned parent and dbsync's own schema are not in the plan.
    assert!(!plan
        .catalog
        .tables
        .iter()
        .any(|t| t.name.to_string() == "app.measurements"));
}

#[tokio::test]
async fn rows_beyond_the_sampled_bounds_are_still_copied() {
    let p = Pair::new("open_ends").await;
    p.both("CREATE TABLE k (id bigint PRIMARY KEY, v text)")
        .await;
    p.source(
        "INSERT INTO k SELECT g, repeat('x', 100) FROM generate_series(1000, 5000) g; ANALYZE k;",
    )
    .await;
    // Plan on a table whose statistics say 1000..5000, then add rows far outside: the open
    // first and last chunks must catch them (the sync plans inside its own snapshot, so this
    // checks the bounds are open, not that stale statistics are used).
    p.source("INSERT INTO k VALUES (-9223372036854775808, 'min'), (9223372036854775807, 'max'), (0, 'zero')")
        .await;
    both_ways(&p).await;
    assert_eq!(
        scalar(&p.target_url, "SELECT count(*)::text FROM k").await,
        "4004"
    );
}

/// Copies `p` both ways - a sync (heap-page ranges) and an export + import (key ranges) -
/// asserting each exact; returns the export's part count.
async fn both_ways(p: &Pair) -> usize {
    sync(p, &tiny_chunks()).await.expect("sync");
    p.assert_identical().await;
    let (dir, store, m) = export_to_temp(p).await;
    import(p, store, &tiny_chunks()).await.expect("import");
    p.assert_identical().await;
    let _ = std::fs::remove_dir_all(dir);
    m.tables.iter().map(|t| t.parts.len()).sum()
}

#[tokio::test]
async fn composite_text_keys_in_many_chunks_copy_each_row_once() {
    let p = Pair::new("text_keys").await;
    // A linguistic collation on the key: ranges must still be byte-ordered ("C").
    p.both(r#"CREATE TABLE tk (a text COLLATE "en-x-icu", b text, n int, PRIMARY KEY (a, b))"#)
        .await;
    p.source(
        "INSERT INTO tk SELECT (ARRAY['a', 'B', 'b', 'É', 'e', 'z', ' ', 'Z'])[(g % 8) + 1], 'k' || g, g
           FROM generate_series(1, 4000) g; ANALYZE tk;",
    )
    .await;
    let parts = both_ways(&p).await;
    assert!(parts >= 5, "parts {parts}");
}

/// Regression: the TABLESAMPLE path ordered the sampled keys by their text form, so bounds
/// of an integer key came back as "10" < "9" and chunks overlapped.
#[tokio::test]
async fn sampled_bounds_of_a_large_table_follow_key_order_not_text_order() {
    let p = Pair::new("sampled_bounds").await;
    p.both("CREATE TABLE big_int (id int PRIMARY KEY, v text); CREATE TABLE big_text (k text PRIMARY KEY)")
        .await;
    p.source(
        "INSERT INTO big_int SELECT g, 'v' FROM generate_series(1, 200000) g;
         INSERT INTO big_text SELECT 'k' || g FROM generate_series(1, 50000) g; ANALYZE;",
    )
    .await;
    let src = p
        .source_spec()
        .connect(dbsync_core::Role::Source, "t")
        .await
        .expect("connect");
    let cat = dbsync_core::pg::catalog::load(&src, dbsync_core::Role::Source, &Default::default())
        .await
        .expect("catalog");
    for t in &cat.tables {
        let mut big = t.clone();
        // Pretend the table is huge so the sampling path runs.
        big.est_rows = dbsync_core::plan::chunks::EXACT_KEYS_UP_TO * 10;
        let key = big.key.clone().expect("key");
        let bounds = dbsync_core::pipeline::planning::key_bounds(
            &src,
            &big,
            &key,
            20,
            dbsync_core::plan::chunks::EXACT_KEYS_UP_TO,
        )
        .await
        .expect("sample");
        assert!(bounds.len() >= 10, "{}: {} bounds", t.name, bounds.len());
        let ints: Option<Vec<i64>> = bounds.iter().map(|b| b[0].parse().ok()).collect();
        match ints {
            Some(v) => assert!(v.windows(2).all(|w| w[0] < w[1]), "{}: {v:?}", t.name),
            None => assert!(
                bounds
                    .windows(2)
                    .all(|w| w[0][0].as_bytes() < w[1][0].as_bytes()),
                "{}",
                t.name
            ),
        }
    }
}

/// Regression guard: statistics taken while a table was empty (reltuples 0) must not make
/// planning fetch every key; chunks still come out right.
#[tokio::test]
async fn stale_statistics_of_an_empty_table_still_give_evenly_sized_chunks() {
    let p = Pair::new("stale_stats").await;
    p.both("CREATE TABLE s (id int PRIMARY KEY, v text)").await;
    p.source(
        "ANALYZE s; INSERT INTO s SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g",
    )
    .await;
    let plan = plan_of(&p, tiny_chunks().export_sizing()).await;
    assert!(
        plan.catalog.tables[0].est_rows <= 0,
        "the statistics should be stale"
    );
    assert!(plan.chunks.len() >= 50, "chunks: {}", plan.chunks.len());
    sync(&p, &tiny_chunks()).await.expect("sync");
    p.assert_identical().await;
}

/// A sync reads every chunk in one snapshot, so it splits keyed tables by heap pages (TID
/// range scans, no key sample); an export keeps key ranges, which its parts are addressed by.
#[tokio::test]
async fn a_sync_splits_keyed_tables_by_heap_pages_and_an_export_by_key_both_exact() {
    let p = adversarial("heap_split").await;
    let o = tiny_chunks();
    for (sizing, by_heap) in [(o.sync_sizing(), true), (o.export_sizing(), false)] {
        let plan = plan_of(&p, sizing).await;
        let c = chunks_of(&plan, "app.all_types");
        assert!(c.len() >= 3, "{sizing:?}: {} chunks", c.len());
        assert_eq!(
            matches!(c[0].range, ChunkRange::Ctid { .. }),
            by_heap,
            "{sizing:?}"
        );
    }
    sync(&p, &o).await.expect("sync");
    p.assert_identical().await;
}

/// `--analyze off` leaves statistics to autovacuum, as pg_restore --data-only does; the
/// default ANALYZEs every loaded table.
#[tokio::test]
async fn analyze_on_analyzes_every_loaded_table_and_off_leaves_them_to_autovacuum() {
    use dbsync_core::pipeline::Analyze;
    for analyze in [Analyze::Off, Analyze::On] {
        let p = Pair::new(&format!("analyze_{analyze:?}").to_lowercase()).await;
        p.both(
            "CREATE TABLE a (id int PRIMARY KEY, v text) WITH (autovacuum_enabled = off);
             CREATE TABLE b (id int) WITH (autovacuum_enabled = off);",
        )
        .await;
        p.source(
            "INSERT INTO a SELECT g, 'v' FROM generate_series(1, 500) g; INSERT INTO b VALUES (1)",
        )
        .await;
        let o = Options {
            analyze,
            ..tiny_chunks()
        };
        sync(&p, &o).await.expect("sync");
        p.assert_identical().await;
        let analyzed = scalar(
            &p.target_url,
            "SELECT count(last_analyze)::text FROM pg_stat_user_tables WHERE relname IN ('a', 'b')",
        )
        .await;
        assert_eq!(
            analyzed,
            if analyze.runs() { "2" } else { "0" },
            "analyze {analyze:?}"
        );
    }
}
