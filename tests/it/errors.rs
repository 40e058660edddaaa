//! Bad input: each gets one clear error naming what is wrong, and the target is left exactly
//! as it was.

use super::*;
use dbsync_core::Error;
use dbsync_tests::fingerprint;

async fn assert_refused_unchanged(
    p: &Pair,
    opts: &Options,
    expect_name: &str,
    expect_text: &[&str],
) {
    let before = fingerprint(&p.target_url).await;
    let err = sync(p, opts).await.expect_err("must be refused");
    assert_eq!(err.name(), expect_name, "{err}");
    let msg = err.to_string();
    for t in expect_text {
        assert!(msg.contains(t), "message {msg:?} should mention {t:?}");
    }
    assert_eq!(
        before,
        fingerprint(&p.target_url).await,
        "the target must be unchanged"
    );
}

#[tokio::test]
async fn a_missing_table_column_and_type_mismatch_are_all_listed_and_nothing_changes() {
    let p = adversarial("incompatible").await;
    p.target(
        "INSERT INTO app.customers VALUES (1, 'keep me');
         DROP TABLE app.empty_tbl;
         ALTER TABLE app.serial_tbl DROP COLUMN v;
         ALTER TABLE app.uuid_keyed ALTER COLUMN v TYPE varchar(5);
         DROP SEQUENCE app.standalone_seq;",
    )
    .await;
    assert_refused_unchanged(
        &p,
        &tiny_chunks(),
        "DbsyncIncompatible",
        &[
            "app.empty_tbl is missing",
            "app.serial_tbl.\"v\" (text) is missing",
            "app.uuid_keyed.\"v\" is text on the source but character varying(5)",
            "sequence app.standalone_seq is missing",
        ],
    )
    .await;
}

#[tokio::test]
async fn a_table_outside_the_scope_that_references_one_inside_is_refused_naming_it() {
    let p = adversarial("outside_ref").await;
    p.target("INSERT INTO app.customers VALUES (1, 'keep me')")
        .await;
    assert_refused_unchanged(
        &p,
        &scoped(&["app.customers"], &[]),
        "DbsyncOutsideScope",
        &["app.orders", "app.customers", "orders_customer_id_fkey"],
    )
    .await;
}

#[tokio::test]
async fn syncing_a_database_onto_itself_is_refused() {
    let p = adversarial("same_db").await;
    let before = fingerprint(&p.source_url).await;
    let err = pipeline::sync(
        &p.source_spec(),
        &p.source_spec(),
        &tiny_chunks(),
        Arc::new(NoProgress),
    )
    .await
    .expect_err("refused");
    assert_eq!(err.name(), "DbsyncSameDatabase", "{err}");
    assert_eq!(before, fingerprint(&p.source_url).await);
}

#[tokio::test]
async fn a_second_job_on_a_locked_target_is_refused() {
    let p = adversarial("locked").await;
    // Another session holds the target's job lock.
    let holder = dbsync_tests::client(&p.target_url).await;
    holder
        .batch_execute("SELECT pg_advisory_lock(1684173689, 1)")
        .await
        .expect("lock");
    assert_refused_unchanged(
        &p,
        &tiny_chunks(),
        "DbsyncTargetLocked",
        &["another dbsync job"],
    )
    .await;
    drop(holder);
}

#[tokio::test]
async fn a_scope_that_matches_nothing_is_refused_naming_the_filters() {
    let p = adversarial("empty_scope").await;
    // A glob that matches nothing is named as such first.
    assert_refused_unchanged(
        &p,
        &scoped(&["no_such_table*"], &[]),
        "DbsyncConfig",
        &[
            "--tables no_such_table* matches no table",
            "--allow-empty-patterns",
        ],
    )
    .await;
    // Allowed to match nothing, it leaves nothing in scope: that is refused too.
    let mut allowed = scoped(&["no_such_table*"], &[]);
    allowed.scope.allow_empty_patterns = true;
    assert_refused_unchanged(&p, &allowed, "DbsyncEmptyScope", &["no_such_table*"]).await;
}

#[tokio::test]
async fn an_unreachable_target_fails_with_a_connect_error_that_hides_the_password() {
    let p = adversarial("unreachable").await;
    let target = dbsync_core::pg::conn::ConnSpec::parse(
        "postgresql://app:hunter2@127.0.0.1:1/nowhere?sslmode=disable",
        "--target",
    )
    .expect("url");
    let err = sync_to(&p, &target, &tiny_chunks())
        .await
        .expect_err("fails");
    assert!(matches!(err, Error::Connect { .. }), "{err}");
    assert!(err.is_retryable());
    assert!(!err.to_string().contains("hunter2"));
    assert!(err.to_string().contains("app@127.0.0.1:1/nowhere"), "{err}");
}

#[tokio::test]
async fn a_dry_run_reports_what_would_happen_and_changes_nothing_not_even_the_ledger() {
    let p = adversarial("dry_run").await;
    p.target("INSERT INTO app.customers VALUES (1, 'keep me')")
        .await;
    let before = fingerprint(&p.target_url).await;
    let opts = Options {
        dry_run: true,
        ..tiny_chunks()
    };
    let r = sync(&p, &opts).await.expect("dry run");
    let d = r.dry_run.expect("dry run report");
    assert!(d.tables.iter().any(|t| t == "app.orders"));
    let pos = |n: &str| d.tables.iter().position(|t| t == n).expect("listed");
    assert!(
        pos("app.customers") < pos("app.orders"),
        "load order: {:?}",
        d.tables
    );
    assert!(
        d.indexes
            .iter()
            .any(|i| i.starts_with("orders_customer_idx")),
        "{:?}",
        d.indexes
    );
    assert!(
        d.foreign_keys
            .iter()
            .any(|f| f.starts_with("orders_parent_id_fkey")),
        "{:?}",
        d.foreign_keys
    );
    assert_eq!(before, fingerprint(&p.target_url).await);
    assert_eq!(
        dbsync_tests::scalar(
            &p.target_url,
            "SELECT count(*)::text FROM pg_namespace WHERE nspname = 'dbsync'"
        )
        .await,
        "0"
    );
    // A dry run runs the same checks: an incompatible target is refused the same way.
    p.target("ALTER TABLE app.customers DROP COLUMN name").await;
    let err = sync(&p, &opts).await.expect_err("refused");
    assert_eq!(err.name(), "DbsyncIncompatible", "{err}");
}

#[tokio::test]
async fn a_target_role_without_privileges_is_refused_before_anything_changes() {
    let p = adversarial("privileges").await;
    let role = format!("reader_{}", &p.name[p.name.len() - 8..]);
    p.target(&format!(
        "CREATE ROLE {role} LOGIN;
         GRANT USAGE ON SCHEMA app, \"Weird Schema\" TO {role};
         GRANT SELECT ON ALL TABLES IN SCHEMA app, \"Weird Schema\" TO {role};
         GRANT SELECT, INSERT, TRUNCATE ON app.customers TO {role};
         INSERT INTO app.customers VALUES (1, 'keep me');"
    ))
    .await;
    let target = target_as(&p, &role);
    let before = fingerprint(&p.target_url).await;
    let err = sync_to(
        &p,
        &target,
        &scoped(&["app.orders", "app.customers", "app.serial_tbl"], &[]),
    )
    .await
    .expect_err("refused");
    let msg = err.to_string();
    assert_eq!(err.name(), "DbsyncIncompatible", "{msg}");
    assert!(
        msg.contains("may not empty and load table app.orders (needs TRUNCATE and INSERT)"),
        "{msg}"
    );
    assert!(
        msg.contains("may not set sequence app.serial_tbl_id_seq (needs UPDATE)"),
        "{msg}"
    );
    assert!(
        msg.contains("may not create dbsync's ledger (schema dbsync) in the target: as the database owner or a superuser run: GRANT CREATE ON DATABASE"),
        "{msg}"
    );
    assert!(!msg.contains("table app.customers (needs"), "{msg}");
    assert_eq!(before, fingerprint(&p.target_url).await);
}

#[tokio::test]
async fn verify_works_with_a_read_only_target_role_and_names_what_differs() {
    let p = adversarial("verify_ro").await;
    sync(&p, &tiny_chunks()).await.expect("sync");
    let role = format!("ro_{}", &p.name[p.name.len() - 8..]);
    p.target(&format!(
        "CREATE ROLE {role} LOGIN BYPASSRLS;
         GRANT USAGE ON SCHEMA app, \"Weird Schema\" TO {role};
         GRANT SELECT ON ALL TABLES IN SCHEMA app, \"Weird Schema\" TO {role};
         GRANT SELECT ON ALL SEQUENCES IN SCHEMA app TO {role};"
    ))
    .await;
    let target = target_as(&p, &role);
    let report = pipeline::verify(&p.source_spec(), &target, &tiny_chunks().verify())
        .await
        .expect("verify");
    assert!(
        report.differences().is_empty(),
        "{:?}",
        report.differences()
    );
    p.target("DELETE FROM app.orders WHERE id = 4000").await;
    let d = pipeline::verify(&p.source_spec(), &target, &tiny_chunks().verify())
        .await
        .expect("verify")
        .differences();
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(
        d[0].starts_with("table app.orders: source 4000 rows"),
        "{d:?}"
    );
}

#[tokio::test]
async fn a_misspelt_table_name_is_an_error_even_when_another_name_matches() {
    let p = adversarial("typo").await;
    p.target("INSERT INTO app.customers VALUES (1, 'keep me')")
        .await;
    assert_refused_unchanged(
        &p,
        &scoped(&["app.customers", "app.custmers"], &[]),
        "DbsyncConfig",
        &["--tables", "app.custmers matches no table"],
    )
    .await;
    // A glob that matches nothing is refused too, unless allowed; an excluded name is no typo.
    assert_refused_unchanged(
        &p,
        &scoped(&["app.cust*", "app.audit_*"], &[]),
        "DbsyncConfig",
        &["app.audit_*", "--allow-empty-patterns"],
    )
    .await;
    let mut allowed = scoped(&["app.customers", "app.audit_*"], &[]);
    allowed.scope.allow_empty_patterns = true;
    let e = sync(&p, &allowed)
        .await
        .expect_err("customers alone is refused");
    assert_eq!(e.name(), "DbsyncOutsideScope", "{e}");
    let r = sync(
        &p,
        &scoped(&["app.customers", "app.orders"], &["app.orders"]),
    )
    .await;
    assert_eq!(
        r.expect_err("orders references customers").name(),
        "DbsyncOutsideScope"
    );
}

#[tokio::test]
async fn an_exclude_or_schema_pattern_that_matches_nothing_is_refused_and_a_lone_typo_reads_the_same(
) {
    let p = adversarial("typo_exclude").await;
    p.target("INSERT INTO app.customers VALUES (1, 'keep me')")
        .await;
    // `--exclude custmers` meant to spare customers: emptying it instead is what a typo costs.
    assert_refused_unchanged(
        &p,
        &scoped(&[], &["app.custmers"]),
        "DbsyncConfig",
        &["--exclude app.custmers matches no table"],
    )
    .await;
    let mut schemas = scoped(&[], &[]);
    schemas.scope.schemas = vec!["app".into(), "ap".into()];
    assert_refused_unchanged(
        &p,
        &schemas,
        "DbsyncConfig",
        &["--schemas ap matches no schema with tables"],
    )
    .await;
    // The typo alone says what it says beside a good name, not that nothing is in scope.
    assert_refused_unchanged(
        &p,
        &scoped(&["app.custmers"], &[]),
        "DbsyncConfig",
        &["--tables app.custmers matches no table"],
    )
    .await;
}

#[tokio::test]
async fn rules_only_the_target_has_that_the_source_breaks_are_refused_before_anything_changes() {
    let p = Pair::new("target_rules").await;
    p.both(
        "CREATE TYPE mood AS ENUM ('sad', 'happy');
         CREATE TABLE people (id int PRIMARY KEY, email text, age int, m mood, ms mood[]);",
    )
    .await;
    p.source(
        "ALTER TYPE mood ADD VALUE 'meh';
         INSERT INTO people SELECT g, 'p' || (g % 50) || '@x', g - 10, 'sad', ARRAY['happy']::mood[]
           FROM generate_series(1, 100) g;",
    )
    .await;
    p.target(
        "ALTER TABLE people ADD CONSTRAINT people_email_key UNIQUE (email);
         ALTER TABLE people ADD CONSTRAINT adults CHECK (age >= 0);
         INSERT INTO people VALUES (1, 'keep@me', 40, 'sad', '{}');",
    )
    .await;
    assert_refused_unchanged(
        &p,
        &tiny_chunks(),
        "DbsyncIncompatible",
        &[
            "enum public.mood on the target lacks the label 'meh'",
            "unique index people_email_key on public.people (email) is not on the source, and the source has duplicates, e.g. (\"email\")=(p",
            "check constraint adults on public.people ((age >= 0)) is not on the source, and source rows break it, e.g. (\"id\")=(1)",
        ],
    )
    .await;
    // Rules the source's rows keep are no reason to refuse.
    p.target(
        "ALTER TYPE mood ADD VALUE 'meh';
         ALTER TABLE people DROP CONSTRAINT people_email_key, DROP CONSTRAINT adults;
         ALTER TABLE people ADD CONSTRAINT people_id_email UNIQUE (id, email),
                            ADD CONSTRAINT not_ancient CHECK (age < 200);",
    )
    .await;
    sync(&p, &tiny_chunks()).await.expect("sync");
    assert_eq!(
        dbsync_tests::scalar(&p.target_url, "SELECT count(*)::text FROM people").await,
        "100"
    );
}
