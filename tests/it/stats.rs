//! Statistics instead of ANALYZE on PostgreSQL 18 targets (`--analyze copy`, the default):
//! the source's planner statistics reach the target unchanged for every column copied as it
//! is, by a sync and by an import of an export; a masked column's are gathered on the target
//! and hold none of the source's values; the target plans a join as the source does.

use super::*;
use dbsync_core::model::rules::RulesFile;
use dbsync_tests::{client, major_cluster, scalar};

const SCHEMA: &str = "
CREATE TABLE people (id bigint PRIMARY KEY, email text NOT NULL, region text, age int,
                     tags text[], span int4range) WITH (autovacuum_enabled = off);
CREATE TABLE orders (id bigint PRIMARY KEY, person_id bigint REFERENCES people, amount numeric,
                     at timestamptz) WITH (autovacuum_enabled = off);
CREATE INDEX orders_person ON orders (person_id);";

/// Skewed data, analyzed; then changed without analyzing again, so the source's statistics
/// describe rows the target never gets: an ANALYZE on the target could not reproduce them.
const DATA: &str = "
INSERT INTO people SELECT g, 'person' || g || '@corp.example',
       CASE WHEN g % 10 < 7 THEN 'us' WHEN g % 10 < 9 THEN 'eu' ELSE 'apac' END,
       20 + g % 50, ARRAY['t' || g % 4, 'x'], int4range(g, g + g % 9)
  FROM generate_series(1, 3000) g;
INSERT INTO orders SELECT g, g % 3000 + 1, (g % 997) * 1.5, '2026-01-01'::timestamptz + g * interval '1 hour'
  FROM generate_series(1, 20000) g;
ANALYZE people, orders;
UPDATE people SET region = 'latam' WHERE id % 2 = 0;
DELETE FROM orders WHERE id > 15000;";

/// A pair with the source on `from` and the target on a PostgreSQL 18 cluster.
async fn into_18(hint: &str, from: u16) -> Pair {
    let p = Pair::on(
        &format!("{hint}_{from}"),
        &major_cluster(from, 0),
        &major_cluster(18, u16::from(from == 18)),
    )
    .await;
    p.both(SCHEMA).await;
    p.source(DATA).await;
    p
}

/// Every statistic of `table`'s `columns` in pg_stats, as text, by column.
async fn pg_stats(url: &str, table: &str, columns: &[&str]) -> Vec<(String, String)> {
    let c = client(url).await;
    let mut out = Vec::new();
    for col in columns {
        let row = c
            .query_opt(
                "SELECT concat_ws(' | ', null_frac, avg_width, n_distinct, most_common_vals::text,
                        most_common_freqs, histogram_bounds::text, correlation, most_common_elems::text,
                        most_common_elem_freqs, elem_count_histogram)
                   FROM pg_stats WHERE schemaname = 'public' AND tablename = $1 AND attname = $2
                    AND NOT inherited",
                &[&table, col],
            )
            .await
            .expect("pg_stats");
        out.push((
            col.to_string(),
            row.map(|r| r.get::<_, String>(0)).unwrap_or_default(),
        ));
    }
    out
}

/// How many times `table` was analyzed on the target (statistics restored are not counted).
async fn analyze_count(url: &str, table: &str) -> String {
    scalar(
        url,
        &format!("SELECT (analyze_count + autoanalyze_count)::text FROM pg_stat_user_tables WHERE relname = '{table}'"),
    )
    .await
}

/// Asserts the target holds the source's statistics for every column named.
async fn assert_same_stats(p: &Pair, table: &str, columns: &[&str]) {
    let s = pg_stats(&p.source_url, table, columns).await;
    let t = pg_stats(&p.target_url, table, columns).await;
    for ((col, sv), (_, tv)) in s.iter().zip(&t) {
        assert!(
            !sv.is_empty(),
            "the source has no statistics of {table}.{col}"
        );
        assert_eq!(sv, tv, "{table}.{col}: the target's statistics differ");
    }
}

const PEOPLE: &[&str] = &["id", "email", "region", "age", "tags"];
const ORDERS: &[&str] = &["id", "person_id", "amount", "at"];

async fn copied_by_sync(from: u16) {
    let p = into_18("stats_sync", from).await;
    sync(&p, &Options::default()).await.expect("sync");
    p.assert_data_identical().await;
    assert_same_stats(&p, "people", PEOPLE).await;
    assert_same_stats(&p, "orders", ORDERS).await;
    // No ANALYZE ran where every column's statistics came across; before 17 a range
    // column's range statistics cannot be read, so that one column is analyzed.
    assert_eq!(analyze_count(&p.target_url, "orders").await, "0");
    let people = if from >= 17 { "0" } else { "1" };
    assert_eq!(analyze_count(&p.target_url, "people").await, people);
    if from >= 17 {
        assert_same_stats(&p, "people", &["span"]).await;
    }
    // The row count the planner starts from is the source's too.
    assert_eq!(
        scalar(
            &p.target_url,
            "SELECT reltuples::text FROM pg_class WHERE relname = 'orders'"
        )
        .await,
        "20000"
    );
}

#[tokio::test]
async fn a_sync_from_18_into_18_copies_every_columns_statistics_and_runs_no_analyze() {
    copied_by_sync(18).await;
}

#[tokio::test]
async fn a_sync_from_13_into_18_copies_the_statistics_13_shows_and_analyzes_only_the_range_column()
{
    copied_by_sync(13).await;
}

#[tokio::test]
async fn an_export_imported_into_18_carries_the_statistics_in_its_manifest() {
    let p = into_18("stats_import", 16).await;
    let (dir, store, m) = export_to_temp(&p).await;
    assert!(m.tables.iter().all(|t| t.table.stats.is_some()));
    import(&p, store, &tiny_chunks()).await.expect("import");
    assert_same_stats(&p, "people", PEOPLE).await;
    assert_same_stats(&p, "orders", ORDERS).await;
    assert_eq!(analyze_count(&p.target_url, "orders").await, "0");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn analyze_on_runs_analyze_on_18_instead_of_copying() {
    let p = into_18("stats_on", 18).await;
    let opts = Options {
        analyze: dbsync_core::pipeline::Analyze::On,
        ..Options::default()
    };
    sync(&p, &opts).await.expect("sync");
    assert_eq!(analyze_count(&p.target_url, "orders").await, "1");
    // Analyzed on the rows the target got: the source's stale picture is not there.
    let region = pg_stats(&p.target_url, "people", &["region"]).await;
    assert!(region[0].1.contains("latam"), "{region:?}");
}

#[tokio::test]
async fn a_masked_columns_statistics_are_gathered_on_the_target_and_hold_no_source_value() {
    let p = into_18("stats_masked", 18).await;
    let opts = Options {
        rules: Some(
            RulesFile::parse(
                r#"{"tables": {"people": {"columns": {"email": "email", "region": "hash"}}}}"#,
            )
            .expect("rules"),
        ),
        ..Options::default()
    };
    let source = p.source_spec().with_rules_key(b"stats-test-key-0123456789");
    pipeline::sync(&source, &p.target_spec(), &opts, Arc::new(NoProgress))
        .await
        .expect("sync with rules");
    // The unmasked columns' statistics are the source's; the masked ones were analyzed.
    assert_same_stats(&p, "people", &["id", "age", "tags"]).await;
    assert_eq!(analyze_count(&p.target_url, "people").await, "1");
    let masked = pg_stats(&p.target_url, "people", &["email", "region"]).await;
    for (col, stats) in &masked {
        assert!(!stats.is_empty(), "{col} has no statistics on the target");
        for raw in ["@corp.example", "us", "eu", "apac", "latam"] {
            let leaked = stats
                .split(['{', '}', ',', '"', ' '])
                .any(|v| v == raw || v.ends_with("@corp.example"));
            assert!(
                !leaked,
                "{col}'s statistics on the target hold a source value ({raw}): {stats}"
            );
        }
    }
}

#[tokio::test]
async fn the_target_plans_a_join_as_the_source_does() {
    let p = into_18("stats_plan", 18).await;
    sync(&p, &Options::default()).await.expect("sync");
    let explain = "EXPLAIN (COSTS OFF) SELECT p.region, sum(o.amount) FROM people p
                    JOIN orders o ON o.person_id = p.id WHERE p.region = 'apac' AND o.amount > 100
                   GROUP BY p.region";
    let plan = |url: String| async move {
        client(&url)
            .await
            .query(explain, &[])
            .await
            .expect("explain")
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let (s, t) = (
        plan(p.source_url.clone()).await,
        plan(p.target_url.clone()).await,
    );
    assert_eq!(s, t, "the target plans the join otherwise");
}
