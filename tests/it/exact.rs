//! Byte-identical results: every type, awkward text, odd identifiers, partitions, cycles,
//! RLS, triggers, sequences of every kind, TOAST, stale target rows, repeated syncs.

use super::*;
use dbsync_tests::scalar;

#[tokio::test]
async fn sync_copies_every_type_and_shape_byte_for_byte_and_replaces_stale_rows() {
    let p = adversarial("every_type").await;
    // Stale rows in the target must disappear, not merge.
    p.target(
        "INSERT INTO app.customers VALUES (99999, 'stale');
         INSERT INTO app.no_key VALUES (1, 'stale');
         INSERT INTO app.empty_tbl VALUES (1, 'stale');",
    )
    .await;
    let mut opts = tiny_chunks();
    opts.verify = true;
    let r = sync(&p, &opts).await.expect("sync");
    assert!(
        r.parts_loaded > 40,
        "tiny chunks should make many parts, got {}",
        r.parts_loaded
    );
    assert!(r.verify.is_some());
    p.assert_identical().await;
    assert_eq!(
        scalar(&p.target_url, "SELECT count(*)::text FROM app.empty_tbl").await,
        "0"
    );
}

#[tokio::test]
async fn a_second_sync_after_source_changes_leaves_the_target_identical_again() {
    let p = adversarial("resync").await;
    sync(&p, &tiny_chunks()).await.expect("first sync");
    p.source(
        "UPDATE app.all_types SET t_text = t_text || ' changed' WHERE id % 3 = 0;
         DELETE FROM app.orders WHERE id > 3500;
         INSERT INTO app.customers SELECT g, 'new ' || g FROM generate_series(1001, 1100) g;
         SELECT nextval('app.shared_seq') FROM generate_series(1, 10);
         SELECT nextval('app.never_called_seq');
         INSERT INTO app.measurements VALUES (99999, '2030-01-01', 1);",
    )
    .await;
    sync(&p, &tiny_chunks()).await.expect("second sync");
    p.assert_identical().await;
}

#[tokio::test]
async fn export_then_import_reproduces_the_source_exactly() {
    let p = adversarial("export_import").await;
    p.target("INSERT INTO app.customers VALUES (424242, 'stale')")
        .await;
    let (dir, store, m) = export_to_temp(&p).await;
    assert_eq!(m.version, 1);
    assert!(m.tables.iter().all(|t| !t.parts.is_empty()));
    let manifest = String::from_utf8(std::fs::read(dir.join("manifest.json")).expect("manifest"))
        .expect("utf8");
    assert!(
        !manifest.contains("postgres@"),
        "the manifest must not carry connection details"
    );
    let r = import(&p, store.clone(), &tiny_chunks())
        .await
        .expect("import");
    assert_eq!(r.parts_skipped, 0);
    p.assert_identical().await;
    // Importing the same export again changes nothing and says so.
    let again = import(&p, store, &tiny_chunks())
        .await
        .expect("import again");
    assert!(again.already_done);
    p.assert_identical().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn user_triggers_do_not_fire_and_foreign_keys_of_cycles_come_back_validated() {
    let p = adversarial("triggers_fks").await;
    sync(&p, &tiny_chunks())
        .await
        .expect("sync despite a trigger that refuses inserts");
    p.assert_identical().await;
    let fks = scalar(
        &p.target_url,
        "SELECT string_agg(conname || ':' || convalidated, ',' ORDER BY conname) FROM pg_constraint
          WHERE contype = 'f' AND connamespace = 'app'::regnamespace",
    )
    .await;
    assert_eq!(
        fks,
        "cyc_a_b_fk:true,cyc_b_a_id_fkey:true,orders_customer_id_fkey:true,orders_parent_id_fkey:true"
    );
    assert_eq!(
        scalar(
            &p.target_url,
            "SELECT tgenabled::text FROM pg_trigger WHERE tgname = 'no_writes'"
        )
        .await,
        "O"
    );
}

#[tokio::test]
async fn a_non_superuser_owner_loads_with_foreign_keys_enforced_and_triggers_disabled() {
    let p = adversarial("owner").await;
    // A role that owns the tables but may not set session_replication_role.
    let role = format!("owner_{}", &p.name[p.name.len() - 8..]);
    p.target(&format!(
        "CREATE ROLE {role} LOGIN;
         GRANT CREATE ON DATABASE {db} TO {role};
         DO $$ DECLARE r record; BEGIN
           FOR r IN SELECT format('%I.%I', n.nspname, c.relname) AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE n.nspname IN ('app', 'Weird Schema') AND (c.relkind IN ('r', 'p') OR (c.relkind = 'S'
                       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i')))) LOOP
             EXECUTE format('ALTER TABLE %s OWNER TO {role}', r.t);
           END LOOP; END $$;
         GRANT USAGE ON SCHEMA app, \"Weird Schema\" TO {role};",
        db = p.name
    ))
    .await;
    let target = target_as(&p, &role);
    // FORCE RLS filters even the owner: refused before anything changes, naming the table.
    let before = dbsync_tests::fingerprint(&p.target_url).await;
    let err = sync_to(&p, &target, &tiny_chunks())
        .await
        .expect_err("refused");
    assert!(
        err.to_string()
            .contains("row-level security on target table app.secure"),
        "{err}"
    );
    assert_eq!(before, dbsync_tests::fingerprint(&p.target_url).await);
    p.target("ALTER TABLE app.secure NO FORCE ROW LEVEL SECURITY")
        .await;
    sync_to(&p, &target, &tiny_chunks())
        .await
        .expect("sync as table owner");
    p.assert_identical().await;
    assert_eq!(
        scalar(
            &p.target_url,
            "SELECT tgenabled::text FROM pg_trigger WHERE tgname = 'no_writes'"
        )
        .await,
        "O",
        "triggers must be enabled again after the load"
    );
}

#[tokio::test]
async fn values_of_tens_of_megabytes_survive_streaming() {
    let p = Pair::new("toast").await;
    p.both("CREATE TABLE big (id int PRIMARY KEY, doc text, blob bytea)")
        .await;
    p.source(
        "INSERT INTO big SELECT g, repeat(md5(g::text) || E'\\t\\\\', 700000), decode(repeat(md5(g::text), 400000), 'hex')
           FROM generate_series(1, 2) g",
    )
    .await;
    let r = sync(&p, &tiny_chunks()).await.expect("sync");
    assert!(
        r.bytes > 60_000_000,
        "COPY text should be tens of MB, got {}",
        r.bytes
    );
    p.assert_identical().await;
}

#[tokio::test]
async fn only_tables_in_scope_are_touched() {
    let p = adversarial("scope").await;
    p.target("INSERT INTO app.serial_tbl (v) VALUES ('target only')")
        .await;
    sync(&p, &scoped(&["app.customers", "app.orders", "uuid_*"], &[]))
        .await
        .expect("scoped sync");
    for t in ["app.customers", "app.orders", "app.uuid_keyed"] {
        assert_eq!(
            scalar(&p.source_url, &format!("SELECT count(*)::text FROM {t}")).await,
            scalar(&p.target_url, &format!("SELECT count(*)::text FROM {t}")).await,
            "{t}"
        );
    }
    assert_eq!(
        scalar(
            &p.target_url,
            "SELECT string_agg(v, ',') FROM app.serial_tbl"
        )
        .await,
        "target only",
        "a table outside the scope must be left alone"
    );
}

#[tokio::test]
async fn a_partitioned_parent_in_the_scope_brings_all_its_partitions() {
    let p = adversarial("partitions").await;
    sync(&p, &scoped(&["app.measurements"], &[]))
        .await
        .expect("sync");
    assert_eq!(
        scalar(
            &p.target_url,
            "SELECT count(*)::text FROM app.measurements_default"
        )
        .await,
        scalar(
            &p.source_url,
            "SELECT count(*)::text FROM app.measurements_default"
        )
        .await
    );
    assert_eq!(
        scalar(&p.target_url, "SELECT count(*)::text FROM app.measurements").await,
        "3000"
    );
}

#[tokio::test]
async fn an_atomic_sync_is_exact_and_one_that_fails_late_leaves_the_target_exactly_as_it_was() {
    let p = adversarial("atomic").await;
    p.target("INSERT INTO app.customers VALUES (99999, 'stale')")
        .await;
    let atomic = Options {
        atomic: true,
        ..tiny_chunks()
    };
    sync(&p, &atomic).await.expect("atomic sync");
    p.assert_identical().await;

    // A rule the pre-flight cannot test (an expression index only the target has) breaks on
    // rows loaded late: nothing of the load may stay.
    p.source("UPDATE app.customers SET name = 'same' WHERE id > 900")
        .await;
    p.target(
        "CREATE UNIQUE INDEX customers_lower_name ON app.customers (lower(name));
         INSERT INTO app.other_shared VALUES (-1, 'stale row kept')",
    )
    .await;
    let before = dbsync_tests::fingerprint(&p.target_url).await;
    let e = sync(&p, &atomic).await.expect_err("duplicates");
    assert_eq!(e.name(), "DbsyncPostgres", "{e}");
    assert_eq!(
        before,
        dbsync_tests::fingerprint(&p.target_url).await,
        "the failed atomic sync left the target as it was"
    );
    // Too big for one transaction: refused by name before anything.
    let small = Options {
        atomic_max_bytes: 1024,
        ..atomic
    };
    let e = sync(&p, &small).await.expect_err("too big");
    assert!(e.to_string().contains("--atomic-max-size"), "{e}");
}

#[tokio::test]
async fn an_atomic_import_is_exact_one_that_fails_at_the_swap_leaves_the_target_as_it_was_and_the_rerun_finishes(
) {
    let p = adversarial("atomic_import").await;
    p.target("INSERT INTO app.customers VALUES (99999, 'stale')")
        .await;
    let (dir, store, _) = export_to_temp(&p).await;
    let atomic = Options {
        atomic: true,
        ..tiny_chunks()
    };
    import(&p, store.clone(), &atomic)
        .await
        .expect("atomic import");
    p.assert_identical().await;
    let shadows = "SELECT count(*)::text FROM pg_namespace WHERE nspname = 'dbsync_shadow'";
    assert_eq!(scalar(&p.target_url, shadows).await, "0", "shadows dropped");

    // A rule the pre-flight cannot test (an expression index only the target has): the parts
    // load into the shadows, the swap breaks on it and rolls back whole.
    p.source("UPDATE app.customers SET name = 'same' WHERE id > 900")
        .await;
    let (_dir2, store2, _) = export_to_temp(&p).await;
    p.target(
        "CREATE UNIQUE INDEX customers_lower_name ON app.customers (lower(name));
         INSERT INTO app.other_shared VALUES (-1, 'stale row kept')",
    )
    .await;
    let before = dbsync_tests::fingerprint(&p.target_url).await;
    let e = import(&p, store2.clone(), &atomic)
        .await
        .expect_err("duplicates");
    assert_eq!(e.name(), "DbsyncPostgres", "{e}");
    assert!(e.to_string().contains("customers"), "{e}");
    assert_eq!(
        before,
        dbsync_tests::fingerprint(&p.target_url).await,
        "the failed atomic import left the target as it was"
    );
    assert_eq!(scalar(&p.target_url, shadows).await, "1", "parts kept");

    // Fixed, the same command finishes from the shadows without loading a part again.
    p.target("DROP INDEX app.customers_lower_name").await;
    let r = import(&p, store2, &atomic).await.expect("resumed");
    assert_eq!(r.parts_loaded, 0, "{r:?}");
    p.assert_identical().await;
    assert_eq!(scalar(&p.target_url, shadows).await, "0");
    // Too big for one swap: refused by name before anything.
    let small = Options {
        atomic_max_bytes: 1024,
        restart: true,
        ..atomic
    };
    let e = import(&p, store, &small).await.expect_err("too big");
    assert!(e.to_string().contains("--atomic-max-size"), "{e}");
    // Both exports wrote the same directory (named after the pair).
    let _ = std::fs::remove_dir_all(dir);
}

/// The streaming sync sends tables of built-in types, their arrays and enums in binary COPY,
/// and falls back to text per table for anything whose binary form is not portable (a
/// domain, an array of an enum) or for a column the target widens. Both come out exact,
/// with the awkward values binary is strict about.
#[tokio::test]
async fn binary_copy_where_types_allow_it_and_text_elsewhere_both_copy_every_value_exactly() {
    let p = Pair::new("binary_copy").await;
    p.both(
        r#"CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
           CREATE DOMAIN posint AS int CHECK (VALUE > 0);
           CREATE TABLE bin (
             id bigint PRIMARY KEY, i2 smallint, i4 integer, f4 real, f8 double precision,
             n numeric, n2 numeric(12, 2), b boolean, t text, vc varchar(20), c char(3),
             by bytea, d date, tm time, tz timestamptz(3), ts timestamp, iv interval,
             u uuid, j json, jb jsonb, ip inet, cd cidr, mac macaddr, m money, bits bit(4),
             vb varbit, arr int[], tarr text[], r int4range, tr tstzrange, mo mood, tv tsvector);
           CREATE TABLE "odd ""name""" (id int PRIMARY KEY, p posint, moods mood[]);"#,
    )
    .await;
    p.target("ALTER TABLE bin ALTER COLUMN n2 TYPE numeric(14, 2)")
        .await;
    p.both("CREATE TABLE widened (id int PRIMARY KEY, v integer)")
        .await;
    p.target("ALTER TABLE widened ALTER COLUMN v TYPE bigint")
        .await;
    p.source(
        r#"INSERT INTO bin VALUES
           (1, -32768, 2147483647, 'NaN', '-0', 'NaN', 12.34, true, E'tab\there\nnew\\line', '',
            'ab', E'\\x00ff00', 'infinity', '24:00', '-infinity', '2000-01-01 00:00:00.000001',
            '-178000000 years', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"k": "\u00e9"}',
            '{"z": [1, null, "\u2603"]}', '::1', '10.0.0.0/8', '08:00:2b:01:02:03', -92233720368547758.08,
            B'1010', B'', '{1,NULL,3}', '{"",NULL,"a\"b"}', 'empty', '[2020-01-01,)', 'happy',
            'a:1 fat:2'),
           (2, NULL, NULL, 'Infinity', 1e308, 1e-300, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
            NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '{}',
            '{}', NULL, NULL, NULL, NULL);
           INSERT INTO bin (id, t, n) SELECT g, repeat('ü', g % 500), g * 1.5 FROM generate_series(3, 3000) g;
           INSERT INTO "odd ""name""" VALUES (1, 5, '{sad,happy}'), (2, NULL, NULL);
           INSERT INTO widened SELECT g, g FROM generate_series(1, 100) g;"#,
    )
    .await;
    let mut text = dry_run_sync(&p).await.text_copy;
    text.sort();
    assert_eq!(text, ["public.\"odd \"\"name\"\"\"", "public.widened"]);
    sync(&p, &tiny_chunks()).await.expect("sync");
    p.assert_data_identical().await;
}

/// Primary and unique keys nothing depends on are dropped for the load and added back from
/// the loaded rows; a key a foreign key uses, or a view relies on (GROUP BY by the key),
/// stays. The target's schema ends as it began.
#[tokio::test]
async fn keys_nothing_depends_on_are_rebuilt_after_the_load_and_the_others_stay() {
    let p = Pair::new("rebuilt_keys").await;
    p.both(
        "CREATE TABLE parent (id int PRIMARY KEY);
         CREATE TABLE child (id int PRIMARY KEY, p int REFERENCES parent, u text UNIQUE);
         CREATE TABLE viewed (id int PRIMARY KEY, v text);
         CREATE VIEW grouped AS SELECT id, v FROM viewed GROUP BY id;",
    )
    .await;
    p.source(
        "INSERT INTO parent SELECT generate_series(1, 50);
         INSERT INTO child SELECT g, 1 + g % 50, 'u' || g FROM generate_series(1, 5000) g;
         INSERT INTO viewed SELECT g, 'v' FROM generate_series(1, 100) g;",
    )
    .await;
    let before = dbsync_tests::schema_fingerprint(&p.target_url).await;
    let mut keys = dry_run_sync(&p).await.keys;
    keys.sort();
    assert_eq!(
        keys,
        ["child_pkey on public.child", "child_u_key on public.child"]
    );
    sync(&p, &tiny_chunks()).await.expect("sync");
    p.assert_identical().await;
    assert_eq!(
        dbsync_tests::schema_fingerprint(&p.target_url).await,
        before
    );
}

#[tokio::test]
async fn a_table_loaded_in_one_part_that_nothing_references_goes_in_frozen_and_the_others_as_before(
) {
    let p = Pair::new("frozen").await;
    p.both(
        "CREATE TABLE parent (id int PRIMARY KEY, v text);
         CREATE TABLE child (id int PRIMARY KEY, p int REFERENCES parent, v text);
         CREATE TABLE split (id int PRIMARY KEY, v text);",
    )
    .await;
    p.source(
        "INSERT INTO parent SELECT g, repeat('p', 50) FROM generate_series(1, 2000) g;
         INSERT INTO child SELECT g, 1 + g % 2000, E'c\\t' || g FROM generate_series(1, 2000) g;
         INSERT INTO split SELECT g, repeat('s', 200) FROM generate_series(1, 5000) g;",
    )
    .await;
    // Yesterday's copy, to be replaced.
    p.target("INSERT INTO parent VALUES (1, 'stale'); INSERT INTO child VALUES (9, 1, 'stale')")
        .await;
    p.target("CREATE EXTENSION IF NOT EXISTS pg_visibility")
        .await;
    let opts = Options {
        workers: 2,
        chunk_bytes: 256 * 1024,
        ..Options::default()
    };
    for _ in 0..2 {
        sync(&p, &opts).await.expect("sync");
        p.assert_identical().await;
        let frozen = |t: &str| {
            let sql = format!(
                "SELECT all_frozen || '/' || pg_relation_size('{t}') / 8192
                   FROM pg_visibility_map_summary('{t}')"
            );
            let url = p.target_url.clone();
            async move { scalar(&url, &sql).await }
        };
        let child = frozen("child").await;
        let (f, pages) = child.split_once('/').expect("pair");
        assert!(f == pages && f != "0", "child: {child} pages all frozen");
        assert!(
            frozen("parent").await.starts_with("0/"),
            "a referenced table is not emptied again"
        );
        assert!(
            frozen("split").await.starts_with("0/"),
            "a table of several parts is loaded as before"
        );
    }
}
