//! Data rules (`--rules`): row filters that follow foreign keys, keyed hashes that keep keys
//! unique and joinable, fakes, and no raw value of a ruled column in parts or target.

use super::*;
use dbsync_core::model::rules::{hmac_sha256_hex, RulesFile};
use dbsync_tests::scalar;

const KEY: &[u8] = b"test-rules-key-0123456789";

const SCHEMA: &str = "
CREATE SCHEMA crm;
CREATE TABLE crm.people (
    id bigint PRIMARY KEY,
    email text NOT NULL UNIQUE,
    full_name text,
    phone text,
    note text,
    region text NOT NULL,
    ref uuid UNIQUE
);
CREATE TABLE crm.orders (
    id bigint PRIMARY KEY,
    person_id bigint REFERENCES crm.people (id),
    person_email text REFERENCES crm.people (email),
    code text,
    tier text
);
CREATE TABLE crm.order_lines (
    id bigint PRIMARY KEY,
    order_id bigint NOT NULL REFERENCES crm.orders (id),
    memo text
);";

const DATA: &str = r#"
INSERT INTO crm.people
SELECT g, 'person' || g || '@corp.example', 'Real Name ' || g,
       CASE WHEN g % 5 = 0 THEN NULL ELSE '+44 20 7946 ' || lpad(g::text, 4, '0') END,
       CASE g % 4 WHEN 0 THEN E'tab\there' WHEN 1 THEN E'back\\slash\nnew line' WHEN 2 THEN '' ELSE NULL END,
       CASE WHEN g % 3 = 0 THEN 'eu' ELSE 'us' END,
       md5(g::text)::uuid
  FROM generate_series(1, 600) g;
INSERT INTO crm.people VALUES (601, 'zoë.ünïcode@例え.jp', 'Zoë 例え', NULL, NULL, 'eu', NULL);
INSERT INTO crm.orders
SELECT g, CASE WHEN g % 10 = 0 THEN NULL ELSE g % 601 + 1 END,
       'person' || (g % 600 + 1) || '@corp.example', 'CODE-' || g, 'silver'
  FROM generate_series(1, 2000) g;
INSERT INTO crm.order_lines SELECT g, g % 2000 + 1, 'memo ' || g FROM generate_series(1, 5000) g;
ANALYZE;"#;

const MASKING: &str = r#"{"tables": {
    "crm.people": {"columns": {"email": "email", "full_name": "name", "phone": "phone",
                               "note": "null", "ref": "hash"}},
    "crm.orders": {"columns": {"person_email": "email", "code": {"truncate": 4},
                               "tier": {"value": "gold"}}}}}"#;

async fn crm(hint: &str) -> Pair {
    let p = Pair::new(hint).await;
    p.both(SCHEMA).await;
    p.source(DATA).await;
    p
}

fn with_rules(rules: &str) -> Options {
    Options {
        rules: Some(RulesFile::parse(rules).expect("rules parse")),
        verify: true,
        ..tiny_chunks()
    }
}

fn keyed_source(p: &Pair) -> dbsync_core::pg::conn::ConnSpec {
    p.source_spec().with_rules_key(KEY)
}

/// Every value of `column` in the source, as text.
async fn source_values(p: &Pair, sql: &str) -> Vec<String> {
    dbsync_tests::client(&p.source_url)
        .await
        .query(sql, &[])
        .await
        .expect("source values")
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

#[tokio::test]
async fn hashed_keys_stay_unique_and_joinable_and_no_ruled_value_reaches_the_parts_or_the_target() {
    let p = crm("rules_mask").await;
    let opts = with_rules(MASKING);
    let dir = std::env::temp_dir().join(format!("dbsync-it-{}", p.name));
    let store = Arc::new(dbsync_core::parts::LocalStore::new(&dir));
    let m = pipeline::export(
        &keyed_source(&p),
        store.clone(),
        &opts.export(),
        Arc::new(NoProgress),
    )
    .await
    .expect("export with rules");
    import(&p, store, &Options::default())
        .await
        .expect("import");

    // Same input, same output, in every table: the email join still finds every parent.
    let t = &p.target_url;
    let q = |sql: &'static str| scalar(t, sql);
    assert_eq!(
        q("SELECT count(DISTINCT email)::text FROM crm.people").await,
        "601"
    );
    assert_eq!(
        q("SELECT count(*)::text FROM crm.orders o JOIN crm.people p ON p.email = o.person_email")
            .await,
        "2000"
    );
    let want = format!(
        "user_{}@example.com",
        &hmac_sha256_hex(KEY, "zoë.ünïcode@例え.jp".as_bytes())[..16]
    );
    assert_eq!(q("SELECT email FROM crm.people WHERE id = 601").await, want);
    let source_ref = scalar(
        &p.source_url,
        "SELECT ref::text FROM crm.people WHERE id = 7",
    )
    .await;
    assert_eq!(
        q("SELECT replace(ref::text, '-', '') FROM crm.people WHERE id = 7").await,
        hmac_sha256_hex(KEY, source_ref.as_bytes())[..32]
    );
    // NULL stays NULL; null empties the column; fakes have their shape.
    assert_eq!(
        q("SELECT count(*)::text FROM crm.people WHERE phone IS NULL").await,
        "121"
    );
    assert_eq!(
        q("SELECT count(*)::text FROM crm.people WHERE ref IS NULL").await,
        "1"
    );
    assert_eq!(q("SELECT count(note)::text FROM crm.people").await, "0");
    assert_eq!(
        q("SELECT count(*)::text FROM crm.people WHERE phone !~ '^\\+1 555 [0-9]{7}$'").await,
        "0"
    );
    assert_eq!(
        q("SELECT count(*)::text FROM crm.people WHERE full_name !~ '^[A-Z][a-z]+ [A-Z][a-z]+$'")
            .await,
        "0"
    );
    assert_eq!(
        q("SELECT string_agg(DISTINCT tier, ',') FROM crm.orders").await,
        "gold"
    );
    assert_eq!(
        q("SELECT max(length(code))::text FROM crm.orders").await,
        "4"
    );

    // No original value of a ruled column anywhere: parts, manifest, target.
    let mut originals = source_values(&p, "SELECT email FROM crm.people").await;
    originals.extend(source_values(&p, "SELECT full_name FROM crm.people").await);
    originals
        .extend(source_values(&p, "SELECT phone FROM crm.people WHERE phone IS NOT NULL").await);
    originals
        .extend(source_values(&p, "SELECT ref::text FROM crm.people WHERE ref IS NOT NULL").await);
    originals.extend(source_values(&p, "SELECT code FROM crm.orders").await);
    let parts = all_part_text(&dir);
    let target_rows = scalar(
        t,
        "SELECT string_agg(x::text, E'\\n') FROM (SELECT p::text AS x FROM crm.people p
            UNION ALL SELECT o::text FROM crm.orders o) s",
    )
    .await;
    // Nor in the manifest, which carries the source's statistics of unruled columns only
    // (a ruled column's most common values are raw values).
    let manifest = std::fs::read_to_string(dir.join("manifest.json")).expect("manifest");
    for v in &originals {
        assert!(!parts.contains(v.as_str()), "{v} is in a part");
        assert!(!target_rows.contains(v.as_str()), "{v} is in the target");
        assert!(!manifest.contains(v.as_str()), "{v} is in the manifest");
    }
    assert!(!parts.contains("tab\there") && !parts.contains("silver"));
    assert!(!manifest.contains("silver"));
    // The manifest names the rules, and never holds the key.
    assert!(manifest.contains("\"rule\": \"email\"") || manifest.contains("\"rule\":\"email\""));
    let (ipad, opad) = dbsync_core::model::rules::hmac_pads(KEY);
    for secret in [std::str::from_utf8(KEY).expect("utf8"), &ipad, &opad] {
        assert!(!manifest.contains(secret), "the manifest holds the key");
        assert!(!parts.contains(secret), "a part holds the key");
    }
    assert_eq!(m.tables.len(), 3);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every part of an export directory, decompressed, as one text.
fn all_part_text(dir: &std::path::Path) -> String {
    use std::io::Read;
    let mut out = String::new();
    for e in std::fs::read_dir(dir.join("parts")).expect("parts dir") {
        let path = e.expect("entry").path();
        let f = std::fs::File::open(&path).expect("part");
        let mut s = String::new();
        flate2::read::MultiGzDecoder::new(f)
            .read_to_string(&mut s)
            .expect("gunzip");
        out.push_str(&s);
    }
    out
}

#[tokio::test]
async fn a_filter_on_a_parent_takes_its_children_and_grandchildren_along_and_every_key_holds() {
    let p = crm("rules_subset").await;
    let opts = with_rules(r#"{"tables": {"crm.people": {"where": "region = 'eu'"}}}"#);
    let r = pipeline::sync(
        &keyed_source(&p),
        &p.target_spec(),
        &opts,
        Arc::new(NoProgress),
    )
    .await
    .expect("filtered sync");
    assert!(r.verify.is_some(), "verified against the filtered source");
    let s = &p.source_url;
    let t = &p.target_url;
    let expect_orders = scalar(
        s,
        "SELECT count(*)::text FROM crm.orders o
          WHERE (o.person_id IS NULL OR o.person_id IN (SELECT id FROM crm.people WHERE region = 'eu'))
            AND (o.person_email IS NULL OR o.person_email IN (SELECT email FROM crm.people WHERE region = 'eu'))",
    )
    .await;
    assert_eq!(
        scalar(t, "SELECT count(*)::text FROM crm.people").await,
        "201"
    );
    assert_eq!(
        scalar(t, "SELECT count(*)::text FROM crm.orders").await,
        expect_orders
    );
    assert_ne!(expect_orders, "0");
    // No orphan anywhere (the keys were re-added NOT VALID, so check the rows themselves).
    for orphans in [
        "SELECT count(*)::text FROM crm.orders o WHERE o.person_id IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM crm.people p WHERE p.id = o.person_id)",
        "SELECT count(*)::text FROM crm.orders o WHERE o.person_email IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM crm.people p WHERE p.email = o.person_email)",
        "SELECT count(*)::text FROM crm.order_lines l
            WHERE NOT EXISTS (SELECT 1 FROM crm.orders o WHERE o.id = l.order_id)",
    ] {
        assert_eq!(scalar(t, orphans).await, "0", "{orphans}");
    }
    let lines = scalar(t, "SELECT count(*)::text FROM crm.order_lines").await;
    assert!(
        lines.parse::<u32>().expect("count") > 0,
        "grandchildren follow"
    );
    // Rows of the filtered tables are otherwise untouched.
    assert_eq!(
        scalar(t, "SELECT md5(string_agg(p::text, ',' ORDER BY id)) FROM crm.people p").await,
        scalar(s, "SELECT md5(string_agg(p::text, ',' ORDER BY id)) FROM crm.people p WHERE region = 'eu'").await
    );
}

#[tokio::test]
async fn bad_rules_get_one_line_naming_the_problem_and_change_nothing() {
    let p = crm("rules_bad").await;
    p.target("INSERT INTO crm.people VALUES (1, 'keep@me', 'Kept', NULL, NULL, 'eu', NULL)")
        .await;
    let before = dbsync_tests::fingerprint(&p.target_url).await;
    let cases: [(&str, bool, &str); 7] = [
        (
            r#"{"tables": {"crm.people": {"columns": {"nope": "null"}}}}"#,
            true,
            "rules for crm.people: no column \"nope\"",
        ),
        (
            r#"{"tables": {"crm.ghost": {"columns": {"a": "null"}}}}"#,
            true,
            "rules name table crm.ghost, which is not in scope",
        ),
        (
            r#"{"tables": {"crm.people": {"where": "regon = 'eu'"}}}"#,
            true,
            "rules for crm.people: the source refuses them: column \"regon\" does not exist",
        ),
        (
            r#"{"tables": {"crm.people": {"where": "region = "}}}"#,
            true,
            "rules for crm.people: the source refuses them: syntax error",
        ),
        (
            r#"{"tables": {"crm.people": {"columns": {"id": {"value": "1"}}}}}"#,
            true,
            "column \"id\": value would repeat values in a unique column",
        ),
        (
            r#"{"tables": {"crm.people": {"columns": {"region": "hash"}}}}"#,
            false,
            "need a key: set DBSYNC_RULES_KEY",
        ),
        (
            r#"{"tables": {"crm.orders": {"columns": {"person_id": {"value": "x"}}}}}"#,
            true,
            "foreign key orders_person_id_fkey joins crm.orders.\"person_id\" (value)",
        ),
    ];
    for (rules, keyed, want) in cases {
        let source = if keyed {
            keyed_source(&p)
        } else {
            p.source_spec()
        };
        let e = pipeline::sync(
            &source,
            &p.target_spec(),
            &with_rules(rules),
            Arc::new(NoProgress),
        )
        .await
        .expect_err(rules);
        assert_eq!(e.name(), "DbsyncConfig", "{rules}: {e}");
        let m = e.to_string();
        assert!(m.contains(want), "{rules}: {m}");
        assert!(!m.contains('\n'), "one line: {m}");
    }
    assert_eq!(before, dbsync_tests::fingerprint(&p.target_url).await);
}
