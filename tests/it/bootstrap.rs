//! `--create-schema`: an empty (or partly empty) target gets the tables in scope, and what
//! they need, from the source's catalog; the result is identical in data and schema.

use super::*;
use dbsync_tests::scalar;

/// `pg_dump --schema-only` of a database, its lines sorted (creation order may differ), with
/// the dbsync ledger and the dump's own header left out.
fn schema_dump(url: &str) -> Vec<String> {
    schema_dump_except(url, &[])
}

/// The same, also leaving out `exclude` (pg_dump's `--exclude-table` patterns).
fn schema_dump_except(url: &str, exclude: &[&str]) -> Vec<String> {
    schema_dump_by("pg_dump", url, exclude)
}

/// The same, by the pg_dump at `pg_dump` (the version matrix's is 18's, which reads every
/// major; Debian's 15 refuses newer servers).
pub fn schema_dump_by(pg_dump: &str, url: &str, exclude: &[&str]) -> Vec<String> {
    let mut args = vec![
        "--schema-only",
        "--no-owner",
        "--exclude-schema=dbsync",
        "-d",
        url,
    ];
    for e in exclude {
        args.extend(["--exclude-table", e]);
    }
    let out = std::process::Command::new(pg_dump)
        .args(&args)
        .output()
        .expect("run pg_dump");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        // `\restrict` lines carry a random token per dump.
        .filter(|l| !l.starts_with("--") && !l.trim().is_empty() && !l.contains("restrict "))
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

fn creating() -> Options {
    Options {
        create_schema: true,
        verify: true,
        ..tiny_chunks()
    }
}

#[tokio::test]
async fn an_empty_target_gets_every_shape_of_the_fixture_and_ends_identical_in_data_and_schema() {
    let p = Pair::new("create_schema").await;
    p.source(SCHEMA).await;
    p.source(DATA).await;
    p.source(
        "COMMENT ON TABLE app.customers IS 'who buys';
         COMMENT ON COLUMN app.customers.name IS 'display name';
         ALTER TABLE app.with_trigger DISABLE TRIGGER no_writes;
         CREATE TYPE app.floatrange AS RANGE (subtype = float8, subtype_diff = float8mi);
         CREATE TABLE app.ranged (id int PRIMARY KEY, r app.floatrange,
                                  CONSTRAINT r_not_empty CHECK (NOT isempty(r)));
         INSERT INTO app.ranged VALUES (1, '[1.5,2.5)'), (2, NULL);
         ANALYZE",
    )
    .await;
    let r = sync(&p, &creating())
        .await
        .expect("sync creating the schema");
    let created = r.created.expect("created");
    assert!(created.tables.len() > 20, "{created:?}");
    assert!(
        created.other.iter().any(|o| o == "extension hstore"),
        "{created:?}"
    );
    assert!(r.verify.is_some());
    p.assert_identical().await;
    assert_same_schema(&schema_dump(&p.source_url), &schema_dump(&p.target_url));
    // A second sync finds everything and creates nothing.
    let again = sync(&p, &creating()).await.expect("second sync");
    assert!(again.created.expect("created").tables.is_empty());
    p.assert_identical().await;
}

/// Asserts two sorted dumps hold the same lines, listing those that differ.
pub fn assert_same_schema(s: &[String], t: &[String]) {
    let only_source: Vec<&String> = s.iter().filter(|l| !t.contains(l)).collect();
    let only_target: Vec<&String> = t.iter().filter(|l| !s.contains(l)).collect();
    assert!(
        only_source.is_empty() && only_target.is_empty(),
        "schemas differ:\nonly in the source: {only_source:#?}\nonly in the target: {only_target:#?}"
    );
}

#[tokio::test]
async fn pagila_style_partitions_and_the_long_tail_of_real_schemas_are_created_as_the_source_has_them(
) {
    let p = Pair::new("create_partitions").await;
    p.source(super::shapes::PARTITION_FKS).await;
    p.source(super::shapes::PARTITION_DATA).await;
    sync(&p, &creating()).await.expect("partitions");
    p.assert_identical().await;
    assert_same_schema(&schema_dump(&p.source_url), &schema_dump(&p.target_url));

    let p = Pair::new("create_long_tail").await;
    p.source(super::shapes::LONG_TAIL_SCHEMA).await;
    p.source(super::shapes::LONG_TAIL_DATA).await;
    let r = sync(&p, &creating()).await.expect("long tail");
    assert_eq!(r.created.expect("created").tables.len(), 5);
    p.assert_data_identical().await;
    // Views, materialized views and foreign tables are not copied, so not created either.
    let skip = ["app.kinds_view", "app.kinds_counts", "app.outside"];
    let keep = |d: Vec<String>| -> Vec<String> {
        d.into_iter()
            .filter(|l| !l.contains("file_fdw") && !l.contains("SERVER files"))
            .collect()
    };
    assert_same_schema(
        &keep(schema_dump_except(&p.source_url, &skip)),
        &keep(schema_dump_except(&p.target_url, &skip)),
    );
}

#[tokio::test]
async fn a_target_that_has_some_tables_gets_only_the_missing_ones_and_keeps_its_own() {
    let p = Pair::new("create_some").await;
    let schema = "CREATE TABLE parents (id int PRIMARY KEY, v text);
                  CREATE TABLE kids (id int PRIMARY KEY, parent int REFERENCES parents, v text DEFAULT 'x')";
    p.source(schema).await;
    p.source(
        "INSERT INTO parents SELECT g, 'p' FROM generate_series(1, 100) g;
              INSERT INTO kids SELECT g, g % 100 + 1 FROM generate_series(1, 300) g",
    )
    .await;
    p.target(
        "CREATE TABLE parents (id int PRIMARY KEY, v text); COMMENT ON TABLE parents IS 'mine'",
    )
    .await;
    let r = sync(&p, &creating()).await.expect("sync");
    assert_eq!(r.created.expect("created").tables, ["public.kids"]);
    p.assert_identical().await;
    assert_eq!(
        scalar(
            &p.target_url,
            "SELECT obj_description('public.parents'::regclass)"
        )
        .await,
        "mine"
    );
}

#[tokio::test]
async fn what_cannot_be_created_is_refused_by_name_and_the_target_is_left_empty() {
    let p = Pair::new("create_refused").await;
    p.source(
        "CREATE TABLE shapes (id int PRIMARY KEY);
              CREATE TABLE uses_a_row_type (id int PRIMARY KEY, s shapes)",
    )
    .await;
    let e = sync(&p, &creating()).await.expect_err("refused");
    assert_eq!(e.name(), "DbsyncConfig");
    let m = e.to_string();
    assert!(
        m.contains("--create-schema")
            && m.contains("type public.shapes is the row type of a table"),
        "{m}"
    );
    assert_eq!(
        scalar(
            &p.target_url,
            "SELECT count(*)::text FROM pg_class WHERE relnamespace = 'public'::regnamespace"
        )
        .await,
        "0"
    );
    let bad = Options {
        dry_run: true,
        ..creating()
    };
    let e = sync(&p, &bad).await.expect_err("dry run");
    assert!(e.to_string().contains("--dry-run"), "{e}");
}
