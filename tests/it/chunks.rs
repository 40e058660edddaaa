//! Chunking: every key kind forced into many chunks still copies every row exactly once,
//! including rows outside the sampled key range.

use super::*;
use dbsync_core::model::chunk::ChunkRange;
use dbsync_tests::scalar;

#[tokio::test]
async fn every_key_kind_splits_into_many_chunks_of_the_right_kind() {
    let p = adversarial("plan_kinds").await;
    let plan = pipeline::plan_only(&p.source_spec(), &tiny_chunks())
        .await
        .expect("plan");
    let chunks_of = |name: &str| {
        let i = plan
            .catalog
            .tables
            .iter()
            .position(|t| t.name.to_string() == name)
            .unwrap_or_else(|| panic!("{name} not in plan"));
        plan.chunks
            .iter()
            .filter(|c| c.table == i)
            .collect::<Vec<_>>()
    };
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
    sync(&p, &tiny_chunks()).await.expect("sync");
    p.assert_identical().await;
    assert_eq!(
        scalar(&p.target_url, "SELECT count(*)::text FROM k").await,
        "4004"
    );
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
    let r = sync(&p, &tiny_chunks()).await.expect("sync");
    assert!(r.parts_loaded >= 5, "parts {}", r.parts_loaded);
    p.assert_identical().await;
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
        big.est_rows = dbsync_core::pg::sample::EXACT_SAMPLE_ROWS * 10;
        let key = big.key.clone().expect("key");
        let bounds = dbsync_core::pipeline::planning::key_bounds(&src, &big, &key, 20)
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
    let plan = pipeline::plan_only(&p.source_spec(), &tiny_chunks())
        .await
        .expect("plan");
    assert!(
        plan.catalog.tables[0].est_rows <= 0,
        "the statistics should be stale"
    );
    assert!(plan.chunks.len() >= 50, "chunks: {}", plan.chunks.len());
    sync(&p, &tiny_chunks()).await.expect("sync");
    p.assert_identical().await;
}
