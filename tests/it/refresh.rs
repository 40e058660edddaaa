//! `dbsync sync --changed-only`: after a first full sync and changes at the source, only the
//! key ranges that differ are replaced (a table without a key, or one whose ranges cannot be
//! replaced one by one, whole), tables that did not change are not written at all, and the
//! target ends identical to the source.

use super::*;

pub(crate) const EXTRA: &str = "
CREATE TABLE app.big (id int PRIMARY KEY, v text, at timestamptz);
CREATE TABLE app.swap (id int PRIMARY KEY, u int UNIQUE, pad text);
";

pub(crate) const EXTRA_DATA: &str = "
INSERT INTO app.big SELECT g, repeat(md5(g::text), 3), '2026-01-01'::timestamptz + g * interval '1 minute'
  FROM generate_series(1, 20000) g;
INSERT INTO app.swap SELECT g, g, repeat('s', 100) FROM generate_series(1, 3000) g;
ANALYZE;
";

/// A night's changes at the source: clustered updates, new keys past the end, two deletes; a
/// unique value swapped between two rows far apart (no order of their ranges' replacements
/// resolves it); a row more in a table without a key; a sequence moved.
pub(crate) const CHANGES: &str = "
UPDATE app.big SET v = 'changed ' || id WHERE id BETWEEN 100 AND 103;
INSERT INTO app.big SELECT g, 'new', now() FROM generate_series(20001, 20040) g;
DELETE FROM app.big WHERE id IN (9000, 9001);
UPDATE app.swap SET u = -1 WHERE id = 5;
UPDATE app.swap SET u = 5 WHERE id = 2900;
UPDATE app.swap SET u = 2900 WHERE id = 5;
INSERT INTO app.no_key VALUES (424242, 'one more');
SELECT setval('app.serial_tbl_id_seq', 9999);
";

/// The adversarial fixture plus two tables of many ranges, synced once in full.
async fn synced(hint: &str) -> Pair {
    let p = adversarial(hint).await;
    p.both(EXTRA).await;
    p.source(EXTRA_DATA).await;
    sync(&p, &tiny_chunks()).await.expect("first sync");
    p.assert_identical().await;
    p
}

fn changed_only() -> Options {
    Options {
        changed_only: Some(0.5),
        ..tiny_chunks()
    }
}

/// A pair with one table in schema `app` (`ddl` on both sides, `rows` at the source),
/// synced once in full at chunks of `chunk_bytes`; the options it was synced with.
async fn one_table_synced(hint: &str, ddl: &str, rows: &str, chunk_bytes: u64) -> (Pair, Options) {
    let p = Pair::new(hint).await;
    p.both(&format!("CREATE SCHEMA app; {ddl}")).await;
    p.source(&format!("{rows}; ANALYZE")).await;
    let opts = Options {
        chunk_bytes,
        ..tiny_chunks()
    };
    sync(&p, &opts).await.expect("first sync");
    (p, opts)
}

/// Runs the refresh at `opts`' chunks and checks the target ends identical.
async fn refreshed(p: &Pair, opts: Options) -> LoadReport {
    let refresh = Options {
        changed_only: Some(0.5),
        ..opts
    };
    let report = sync(p, &refresh).await.expect("refresh");
    p.assert_identical().await;
    report
}

/// The newest transaction that wrote a row of `table` in the target.
async fn last_writer(p: &Pair, table: &str) -> String {
    dbsync_tests::scalar(
        &p.target_url,
        &format!("SELECT coalesce(max(xmin::text::bigint), 0)::text FROM {table}"),
    )
    .await
}

fn outcome<'a>(
    r: &'a dbsync_core::plan::refresh::RefreshReport,
    table: &str,
) -> &'a dbsync_core::plan::refresh::TableRefresh {
    r.tables
        .iter()
        .find(|t| t.table == table)
        .unwrap_or_else(|| panic!("{table} in {r:?}"))
}

#[tokio::test]
async fn a_refresh_replaces_only_the_ranges_that_differ_and_ends_identical() {
    let p = synced("refresh_ranges").await;
    let untouched = last_writer(&p, "app.all_types").await;
    p.source(CHANGES).await;
    let report = sync(&p, &changed_only()).await.expect("refresh");
    p.assert_identical().await;
    let r = report.refresh.expect("a refresh report");
    let big = outcome(&r, "app.big");
    assert_eq!(big.action, "ranges", "{r:?}");
    assert!(
        big.differing >= 2 && big.differing * 4 < big.ranges,
        "a few of many ranges: {big:?}"
    );
    assert_eq!(
        outcome(&r, "app.swap").action,
        "whole",
        "a unique value moved: {r:?}"
    );
    assert_eq!(outcome(&r, "app.no_key").action, "whole", "{r:?}");
    assert_eq!(outcome(&r, "app.all_types").action, "unchanged", "{r:?}");
    assert_eq!(
        last_writer(&p, "app.all_types").await,
        untouched,
        "a table that did not change is not written"
    );
    assert!(
        report.rows < 20_000,
        "far fewer rows than a full copy: {}",
        report.rows
    );
    // The target's ledger holds the refresh, done, and each range it replaced once, with
    // the rows it copied.
    let ledger = dbsync_tests::scalar(
        &p.target_url,
        &format!(
            "SELECT j.kind || ' ' || j.state || ' ' || count(p.*) || ' ' || coalesce(sum(p.rows), 0)
               FROM dbsync.jobs j LEFT JOIN dbsync.parts p USING (job_id)
              WHERE j.job_id = '{}' GROUP BY j.kind, j.state",
            report.job_id
        ),
    )
    .await;
    assert_eq!(
        ledger,
        format!("refresh done {} {}", report.parts_loaded, report.rows)
    );
}

#[tokio::test]
async fn a_range_that_differs_in_one_row_is_narrowed_to_the_run_that_holds_it() {
    let (p, opts) = one_table_synced(
        "refresh_narrow",
        "CREATE TABLE app.narrow (id int PRIMARY KEY, v text NOT NULL, u text UNIQUE)",
        "INSERT INTO app.narrow SELECT g, md5(g::text), 'u' || g FROM generate_series(1, 60000) g",
        512 * 1024,
    )
    .await;
    // One row in each of two ranges far apart; a unique value moved within a range.
    p.source(
        "UPDATE app.narrow SET v = 'changed' WHERE id = 1000;
         DELETE FROM app.narrow WHERE id = 45000;
         UPDATE app.narrow SET u = NULL WHERE id = 45001;
         UPDATE app.narrow SET u = 'u45000' WHERE id = 45002;",
    )
    .await;
    let before = last_writer(&p, "app.narrow").await;
    let report = refreshed(&p, opts).await;
    let r = report.refresh.expect("a refresh report");
    let t = outcome(&r, "app.narrow");
    assert_eq!((t.action, t.differing), ("ranges", 2), "{r:?}");
    let per_range = 60_000 / t.ranges as u64;
    assert!(
        report.rows * 4 < per_range,
        "a few hundred rows of the two ranges' {per_range} each: {} rows replaced in {} runs",
        report.rows,
        report.parts_loaded
    );
    // The rows written are those of the replaced runs, no more.
    let written = dbsync_tests::scalar(
        &p.target_url,
        &format!("SELECT count(*)::text FROM app.narrow WHERE xmin::text::bigint > {before}"),
    )
    .await;
    assert_eq!(written, report.rows.to_string());
}

#[tokio::test]
async fn a_change_past_the_head_of_a_sampled_range_is_found_by_the_tables_scan() {
    use dbsync_core::model::chunk::ChunkRange;
    use dbsync_core::pipeline::refresh::refresh_sizing;
    use dbsync_core::plan::refresh::HEAD_ROWS;
    let (p, opts) = one_table_synced(
        "refresh_head",
        "CREATE TABLE app.heads (id int PRIMARY KEY, v text NOT NULL)",
        "INSERT INTO app.heads SELECT g, md5(g::text) FROM generate_series(1, 100000) g",
        256 * 1024,
    )
    .await;
    // The last row of the first range, which the sample compares first (by its head).
    let plan = plan_of(&p, refresh_sizing(opts.chunk_bytes)).await;
    let first = plan.chunks.iter().find(|c| c.table == 0).expect("a chunk");
    let ChunkRange::Key {
        upper: Some(upper), ..
    } = &first.range
    else {
        panic!("a key range: {first:?}");
    };
    let last: usize = upper[0].parse::<usize>().expect("an integer key") - 1;
    assert!(
        last > HEAD_ROWS,
        "the first range ends past its head: {last}"
    );
    p.source(&format!(
        "UPDATE app.heads SET v = 'changed' WHERE id = {last}"
    ))
    .await;
    let report = refreshed(&p, opts).await;
    let r = report.refresh.expect("a refresh report");
    let t = outcome(&r, "app.heads");
    assert!(t.ranges > 16, "sampled first: {t:?}");
    assert_eq!(
        (t.action, t.differing, t.compared),
        ("ranges", 1, t.ranges),
        "{r:?}"
    );
}

#[tokio::test]
async fn a_refresh_is_refused_on_a_target_whose_unfinished_load_took_things_away() {
    let p = synced("refresh_unfinished").await;
    p.source("UPDATE app.big SET v = 'changed' WHERE id = 7")
        .await;
    // A sync that died after disabling a table's triggers: only finishing it puts them back.
    p.target(
        r#"INSERT INTO dbsync.jobs (job_id, kind, state, restore)
           VALUES ('crashed-sync', 'sync', 'loading',
                   '{"triggers": [{"schema": "app", "name": "with_trigger"}]}')"#,
    )
    .await;
    let before = dbsync_tests::fingerprint(&p.target_url).await;
    let err = sync(&p, &changed_only())
        .await
        .expect_err("refused")
        .to_string();
    assert!(
        err.contains("changed_only") && err.contains("crashed-sync"),
        "{err}"
    );
    assert_eq!(dbsync_tests::fingerprint(&p.target_url).await, before);
}

#[tokio::test]
async fn a_dry_run_of_the_refresh_says_what_differs_and_changes_nothing() {
    let p = synced("refresh_dry").await;
    p.source("UPDATE app.big SET v = 'changed' WHERE id = 7")
        .await;
    let before = dbsync_tests::fingerprint(&p.target_url).await;
    let opts = Options {
        dry_run: true,
        ..changed_only()
    };
    let r = sync(&p, &opts)
        .await
        .expect("dry run")
        .refresh
        .expect("report");
    assert_eq!(dbsync_tests::fingerprint(&p.target_url).await, before);
    let big = outcome(&r, "app.big");
    assert_eq!((big.action, big.differing), ("ranges", 1), "{r:?}");
    assert_eq!(r.ranges_differing, 1, "{r:?}");
}

#[tokio::test]
async fn a_dry_run_counts_the_rows_of_the_narrowed_runs_the_refresh_then_replaces() {
    let (p, opts) = one_table_synced(
        "refresh_dry_narrow",
        "CREATE TABLE app.dry (id int PRIMARY KEY, v text NOT NULL)",
        "INSERT INTO app.dry SELECT g, md5(g::text) FROM generate_series(1, 60000) g",
        512 * 1024,
    )
    .await;
    p.source("UPDATE app.dry SET v = 'changed' WHERE id = 1000")
        .await;
    let before = dbsync_tests::fingerprint(&p.target_url).await;
    let dry = Options {
        dry_run: true,
        changed_only: Some(0.5),
        ..opts.clone()
    };
    let r = sync(&p, &dry)
        .await
        .expect("dry run")
        .refresh
        .expect("report");
    assert_eq!(dbsync_tests::fingerprint(&p.target_url).await, before);
    let would = outcome(&r, "app.dry").clone();
    assert_eq!((would.action, would.differing), ("ranges", 1), "{r:?}");
    let per_range = 60_000 / would.ranges as u64;
    assert!(
        would.rows * 4 < per_range,
        "a run of the range's {per_range} rows: {would:?}"
    );
    let report = refreshed(&p, opts).await;
    assert_eq!(report.rows, would.rows, "the dry run said {would:?}");
}

#[tokio::test]
async fn a_refresh_with_nothing_changed_replaces_nothing_and_writes_no_table() {
    let p = synced("refresh_none").await;
    let before = last_writer(&p, "app.big").await;
    let report = sync(&p, &changed_only()).await.expect("refresh");
    let r = report.refresh.expect("report");
    assert_eq!(r.ranges_differing, 0, "{r:?}");
    assert!(r.tables.iter().all(|t| t.action == "unchanged"), "{r:?}");
    assert_eq!((report.parts_loaded, report.rows), (0, 0));
    assert_eq!(last_writer(&p, "app.big").await, before);
    p.assert_identical().await;
}

#[tokio::test]
async fn a_refresh_where_most_of_the_data_changed_decides_early_to_run_a_full_sync() {
    let p = synced("refresh_most").await;
    p.source("UPDATE app.big SET v = 'changed ' || id WHERE id % 10 < 3")
        .await;
    let report = sync(&p, &changed_only()).await.expect("refresh");
    let r = report.refresh.expect("report");
    assert!(r.full_sync, "{r:?}");
    let big = outcome(&r, "app.big");
    assert_eq!(big.action, "whole", "{r:?}");
    assert!(
        big.compared * 4 < big.ranges,
        "decided on a sample of app.big's ranges: {big:?}"
    );
    p.assert_identical().await;
}

#[tokio::test]
async fn changed_only_refuses_what_it_cannot_do_naming_the_flags() {
    let p = synced("refresh_refuse").await;
    for (opts, setting) in [
        (
            Options {
                atomic: true,
                ..changed_only()
            },
            "atomic",
        ),
        (
            Options {
                create_schema: true,
                ..changed_only()
            },
            "create_schema",
        ),
    ] {
        let err = sync(&p, &opts).await.expect_err("refused");
        let flag = format!("--{}", setting.replace('_', "-"));
        assert!(
            err.to_string().contains(&flag) && err.to_string().contains("--changed-only"),
            "{err}"
        );
    }
}

/// Fingerprints `table` (as the catalog reads it) as the refresh does, every column hashed
/// as its type allows.
async fn range_hash(c: &tokio_postgres::Client, table: &str) -> String {
    use dbsync_core::pg::refresh::{range_fingerprint_sql, ColumnHash, HashedColumn, RowHash};
    let catalog =
        dbsync_core::pg::catalog::load(c, dbsync_core::error::Role::Source, &Default::default())
            .await
            .expect("catalog");
    let t = catalog
        .tables
        .iter()
        .find(|t| t.name.to_string() == format!("public.{table}"))
        .expect("the case's table");
    let how: Vec<HashedColumn> = t
        .copy_columns()
        .map(|c| HashedColumn {
            name: &c.name,
            how: ColumnHash::of(&c.type_name, true),
            not_null: c.not_null,
        })
        .collect();
    let sql = range_fingerprint_sql(t, &RowHash::new(t, &how, false), None);
    let row = c.query_one(sql.as_str(), &[]).await.expect(&sql);
    format!("{} {}", row.get::<_, i64>(0), row.get::<_, String>(1))
}

/// Column names and types, the rows of one table, the rows of the other.
type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);

#[tokio::test]
async fn the_refresh_fingerprint_tells_apart_values_that_a_types_own_hash_or_equality_would_not() {
    let p = Pair::new("refresh_hash").await;
    let c = dbsync_tests::client(&p.source_url).await;
    // (column types, rows of one table, rows of the other): each pair differs in its text
    // form only where a value's hash or equality would call them the same.
    let cases: &[Case] = &[
        (&[("a", "integer")], "(NULL)", "(0)"),
        (&[("a", "smallint")], "(NULL)", "(0)"),
        (&[("a", "bigint")], "(0)", "(4294967297)"),
        (&[("a", "text")], "(NULL)", "('')"),
        (&[("a", "text")], "('a')", "('a ')"),
        (&[("a", "character varying(5)")], "(NULL)", "('')"),
        (&[("a", "boolean")], "(NULL)", "(false)"),
        (&[("a", "character(4)")], "('ab')", "('abc')"),
        (&[("a", "character(4)")], "(NULL)", "('')"),
        (
            &[("a", "uuid")],
            "(NULL)",
            "('00000000-0000-0000-0000-000000000000')",
        ),
        (&[("a", "numeric")], "(1.0)", "(1.00)"),
        (&[("a", "double precision")], "(0)", "('-0')"),
        (&[("a", "jsonb")], "('{\"x\": 1.0}')", "('{\"x\": 1.00}')"),
        (
            &[("a", "timestamp without time zone")],
            "('2026-01-01')",
            "('2026-01-01 00:00:00.000001')",
        ),
        (&[("a", "integer"), ("b", "integer")], "(1, 2)", "(2, 1)"),
        (
            &[("a", "integer"), ("b", "text")],
            "(1, NULL)",
            "(NULL, '1')",
        ),
        (
            &[("a", "integer"), ("b", "integer")],
            "(1, 10), (2, 20)",
            "(1, 20), (2, 10)",
        ),
        (
            &[("a", "text"), ("b", "text")],
            "('ab', 'c')",
            "('a', 'bc')",
        ),
        (&[("a", "integer")], "(1), (1)", "(1)"),
        // NOT NULL columns skip the NULL marker.
        (
            &[("a", "integer NOT NULL"), ("b", "integer NOT NULL")],
            "(1, 2)",
            "(2, 1)",
        ),
        (
            &[("a", "text NOT NULL"), ("b", "text NOT NULL")],
            "('ab', 'c')",
            "('a', 'bc')",
        ),
        (
            &[("a", "bigint NOT NULL"), ("b", "bigint NOT NULL")],
            "(1, 2)",
            "(2, 1)",
        ),
        (
            &[("a", "character(3) NOT NULL"), ("b", "uuid NOT NULL")],
            "('a', '00000000-0000-0000-0000-000000000001')",
            "('b', '00000000-0000-0000-0000-000000000001')",
        ),
    ];
    for (i, (cols, one, other)) in cases.iter().enumerate() {
        let defs: Vec<String> = cols.iter().map(|(n, t)| format!("{n} {t}")).collect();
        let mut hashes = Vec::new();
        for (side, rows) in [("a", one), ("b", other), ("c", one)] {
            let name = format!("h{i}_{side}");
            c.batch_execute(&format!(
                "CREATE TABLE {name} ({}); INSERT INTO {name} VALUES {rows};",
                defs.join(", ")
            ))
            .await
            .expect("case table");
            hashes.push(range_hash(&c, &name).await);
        }
        assert_ne!(hashes[0], hashes[1], "{cols:?}: {one} against {other}");
        assert_eq!(hashes[0], hashes[2], "{cols:?}: {one} against itself");
    }
    // A column whose collation calls 'a' and 'A' equal still hashes their bytes.
    c.batch_execute(
        "CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
         CREATE TABLE ci_a (a text COLLATE ci); INSERT INTO ci_a VALUES ('a');
         CREATE TABLE ci_b (a text COLLATE ci); INSERT INTO ci_b VALUES ('A');",
    )
    .await
    .expect("a case-insensitive column");
    assert_ne!(range_hash(&c, "ci_a").await, range_hash(&c, "ci_b").await);
}

#[tokio::test]
async fn verify_names_the_first_keys_whose_rows_differ_whatever_the_key() {
    let p = Pair::new("verify_keys").await;
    p.both(
        "CREATE TABLE ints (id int PRIMARY KEY, v text);
         CREATE TABLE texts (code text PRIMARY KEY, v int);
         CREATE TABLE pairs (a int, b text, v int, PRIMARY KEY (a, b));",
    )
    .await;
    p.source(
        "INSERT INTO ints SELECT g, 'v' || g FROM generate_series(1, 50000) g;
         INSERT INTO texts SELECT 'k' || g, g FROM generate_series(1, 3000) g;
         INSERT INTO pairs SELECT g % 7, 'b' || g, g FROM generate_series(1, 3000) g;
         ANALYZE;",
    )
    .await;
    sync(&p, &tiny_chunks()).await.expect("first sync");
    p.target(
        "UPDATE ints SET v = 'changed' WHERE id = 40001;
         DELETE FROM ints WHERE id = 40007;
         INSERT INTO ints VALUES (0, 'extra');
         UPDATE texts SET v = NULL WHERE code = 'k2500';
         UPDATE pairs SET v = -1 WHERE a = 3 AND b = 'b10';",
    )
    .await;
    let opts = Options::default();
    let r =
        dbsync_core::pipeline::verify::verify(&p.source_spec(), &p.target_spec(), &opts.verify())
            .await
            .expect("verify runs");
    let keys = |t: &str| {
        r.tables
            .iter()
            .find(|c| c.table == t)
            .map(|c| c.differing_keys.clone())
            .unwrap_or_default()
    };
    assert_eq!(
        keys("public.ints"),
        vec![
            "(id)=(0): only on the target",
            "(id)=(40001): differs",
            "(id)=(40007): missing on the target",
        ],
        "{r:?}"
    );
    assert_eq!(
        keys("public.texts"),
        vec!["(code)=(k2500): differs"],
        "{r:?}"
    );
    assert_eq!(
        keys("public.pairs"),
        vec!["(a, b)=(3, b10): differs"],
        "{r:?}"
    );
}

#[tokio::test]
async fn a_refresh_as_a_role_that_may_not_set_replica_mode_is_refused_and_changes_nothing() {
    let p = Pair::new("refresh_replica").await;
    p.both("CREATE TABLE items (id int PRIMARY KEY, v text)")
        .await;
    p.source("INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 2000) g")
        .await;
    // A role that owns the table but may not set session_replication_role: a full sync
    // loads with its triggers disabled instead; a refresh needs replica mode.
    let role = format!("owner_{}", &p.name[p.name.len() - 8..]);
    p.target(&format!(
        "CREATE ROLE {role} LOGIN; GRANT CREATE ON DATABASE {db} TO {role};
         ALTER TABLE items OWNER TO {role};",
        db = p.name
    ))
    .await;
    let target = target_as(&p, &role);
    sync_to(&p, &target, &tiny_chunks())
        .await
        .expect("a full sync as the table's owner");
    p.source("UPDATE items SET v = 'changed' WHERE id = 7")
        .await;
    let before = dbsync_tests::fingerprint(&p.target_url).await;
    let err = sync_to(&p, &target, &changed_only())
        .await
        .expect_err("refused");
    let text = err.to_string();
    assert!(
        text.contains("changed_only") && text.contains("session_replication_role"),
        "{text}"
    );
    assert_eq!(before, dbsync_tests::fingerprint(&p.target_url).await);
}
