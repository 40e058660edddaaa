//! The version matrix: syncs between PostgreSQL majors 13 to 18, in both directions, by the
//! three paths (one part per table, many small chunks, export then import) and with
//! `--create-schema`, on the adversarial fixture plus what some majors have and others lack
//! (multiranges from 14; virtual generated columns, NOT NULL and NOT ENFORCED constraints
//! from 18). Each major runs on its own cluster (`scripts/pg.sh up vNN PORT --major NN`).

use super::bootstrap::{assert_same_schema, schema_dump_by};
use super::*;
use dbsync_tests::{major_cluster, schema_fingerprint, tools_18};

/// What only PostgreSQL 18 can hold: a virtual generated column, a named NOT NULL constraint,
/// a check and a foreign key that are NOT ENFORCED (rows that break them must travel as they
/// are, and the constraints come back unenforced).
const PG18_EXTRAS: &str = "
CREATE TABLE app.v18 (
    id     int PRIMARY KEY,
    a      int CONSTRAINT a_present NOT NULL,
    twice  int GENERATED ALWAYS AS (a * 2) VIRTUAL,
    stored int GENERATED ALWAYS AS (a + 1) STORED,
    small  int,
    buyer  int,
    CONSTRAINT small_is_small CHECK (small < 100) NOT ENFORCED,
    CONSTRAINT buyer_exists FOREIGN KEY (buyer) REFERENCES app.customers (id) NOT ENFORCED
);";

/// The same table where a major before 18 is the target: what it can hold of it (the
/// virtual column's values read the same when stored; the unenforced constraints left out).
const PG18_EXTRAS_BEFORE_18: &str = "
CREATE TABLE app.v18 (
    id     int PRIMARY KEY,
    a      int NOT NULL,
    twice  int GENERATED ALWAYS AS (a * 2) STORED,
    stored int GENERATED ALWAYS AS (a + 1) STORED,
    small  int,
    buyer  int
);";

const PG18_DATA: &str = "
INSERT INTO app.v18 (id, a, small, buyer)
SELECT g, g * 7, g * 3, CASE WHEN g % 5 = 0 THEN -g ELSE g % 900 + 1 END FROM generate_series(1, 2000) g;";

/// The adversarial schema as a cluster of `major` can hold it: before 14 there are no
/// multiranges, so the column is made as text and dropped once the data is in (a dropped
/// column in the middle of the table is a shape worth copying too).
fn schema_for(major: u16) -> String {
    if major >= 14 {
        SCHEMA.to_string()
    } else {
        SCHEMA.replace("t_multirange  int4multirange,", "t_multirange  text,")
    }
}

const DROP_MULTIRANGE: &str = "ALTER TABLE app.all_types DROP COLUMN t_multirange";

/// A database pair: the source on a cluster of major `from`, the target on one of `to`.
async fn pair(hint: &str, from: u16, to: u16) -> Pair {
    let source = major_cluster(from, 0);
    let target = major_cluster(to, u16::from(from == to));
    Pair::on(&format!("{hint}_{from}_{to}"), &source, &target).await
}

/// The fixture in the source of `p`, and (unless `empty_target`) its schema in the target.
async fn fixture(p: &Pair, from: u16, to: u16, empty_target: bool) {
    let oldest = from.min(to);
    let schema = schema_for(oldest);
    p.source(&schema).await;
    if from >= 18 {
        p.source(PG18_EXTRAS).await;
    }
    p.source(DATA).await;
    if from >= 18 {
        p.source(PG18_DATA).await;
    }
    if oldest < 14 {
        p.source(DROP_MULTIRANGE).await;
    }
    p.source("ANALYZE").await;
    if !empty_target {
        p.target(&schema).await;
        if from >= 18 {
            p.target(if to >= 18 {
                PG18_EXTRAS
            } else {
                PG18_EXTRAS_BEFORE_18
            })
            .await;
        }
        if oldest < 14 {
            p.target(DROP_MULTIRANGE).await;
        }
    }
}

/// Asserts the data is identical, and the schema a load touches (indexes, constraints and
/// their validity, NOT NULL, triggers) too, leaving out the one table whose definition the
/// older target holds differently on purpose.
async fn assert_same(p: &Pair, from: u16, to: u16) {
    p.assert_data_identical().await;
    let adapted = from >= 18 && to < 18;
    let keep = |m: std::collections::BTreeMap<String, String>| {
        m.into_iter()
            .map(|(k, v)| {
                let v = v
                    .split(['\n', ','])
                    .filter(|l| !(adapted && l.contains("v18")))
                    .collect::<Vec<_>>()
                    .join("\n");
                (k, v)
            })
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let (s, t) = (
        keep(schema_fingerprint(&p.source_url).await),
        keep(schema_fingerprint(&p.target_url).await),
    );
    for (k, v) in &s {
        assert_eq!(
            Some(v),
            t.get(k),
            "{k} differs between the source ({from}) and the target ({to})"
        );
    }
}

/// `dbsync sync` with one part per table (the default chunk size).
async fn by_stream(from: u16, to: u16) {
    let p = pair("stream", from, to).await;
    fixture(&p, from, to, false).await;
    let opts = Options {
        verify: true,
        ..Options::default()
    };
    let r = sync(&p, &opts).await.expect("sync");
    assert!(r.verify.is_some());
    assert_same(&p, from, to).await;
}

/// `dbsync sync` in many small chunks, over stale target rows.
async fn by_chunks(from: u16, to: u16) {
    let p = pair("chunks", from, to).await;
    fixture(&p, from, to, false).await;
    p.target("INSERT INTO app.customers VALUES (99999, 'stale')")
        .await;
    let r = sync(&p, &tiny_chunks()).await.expect("sync");
    assert!(r.parts_loaded > 40, "{} parts", r.parts_loaded);
    assert_same(&p, from, to).await;
}

/// `dbsync export` from the source, then `dbsync import` into the target.
async fn by_export_import(from: u16, to: u16) {
    let p = pair("export", from, to).await;
    fixture(&p, from, to, false).await;
    let (dir, store, _) = export_to_temp(&p).await;
    import(&p, store, &tiny_chunks()).await.expect("import");
    assert_same(&p, from, to).await;
    let _ = std::fs::remove_dir_all(dir);
}

/// `dbsync sync --create-schema` into an empty target. A target before 18 cannot hold what
/// only 18 has: that table is left out of scope there (and its refusal tested on its own).
async fn creating_the_schema(from: u16, to: u16) {
    let p = pair("create", from, to).await;
    fixture(&p, from, to, true).await;
    let mut opts = Options {
        create_schema: true,
        verify: true,
        ..tiny_chunks()
    };
    if from >= 18 && to < 18 {
        opts.scope = scoped(&[], &["app.v18"]).scope;
    }
    let r = sync(&p, &opts).await.expect("sync creating the schema");
    assert!(r.created.expect("created").tables.len() > 20);
    if from >= 18 && to < 18 {
        p.source("DROP TABLE app.v18").await;
    }
    p.assert_identical().await;
    let pg_dump = format!("{}/pg_dump", tools_18());
    let dump = |url: &str| {
        let lines = schema_dump_by(&pg_dump, url, &[]);
        if from == to {
            lines
        } else {
            across_majors(lines)
        }
    };
    assert_same_schema(&dump(&p.source_url), &dump(&p.target_url));
}

/// A schema dump with what differs between majors by the server's own doing, not dbsync's,
/// left out: the public schema's default grants (changed in 15), and the names PostgreSQL 18
/// gives the NOT NULL constraints a partition inherits (older majors have no such names).
fn across_majors(lines: Vec<String>) -> Vec<String> {
    lines
        .into_iter()
        .filter(|l| {
            !l.ends_with("ON SCHEMA public TO PUBLIC;")
                && !l.ends_with("ON SCHEMA public FROM PUBLIC;")
        })
        .map(|l| match (l.find(" CONSTRAINT "), l.find(" NOT NULL")) {
            (Some(c), Some(n)) if c < n && !l[c + 12..n].contains(' ') => {
                format!("{}{}", &l[..c], &l[n..])
            }
            _ => l,
        })
        .collect()
}

macro_rules! direction {
    ($name:ident, $from:expr, $to:expr) => {
        mod $name {
            #[tokio::test]
            async fn a_sync_in_one_part_per_table_is_identical() {
                super::by_stream($from, $to).await;
            }

            #[tokio::test]
            async fn a_sync_in_small_chunks_is_identical() {
                super::by_chunks($from, $to).await;
            }

            #[tokio::test]
            async fn an_export_imported_is_identical() {
                super::by_export_import($from, $to).await;
            }

            #[tokio::test]
            async fn create_schema_builds_an_identical_database() {
                super::creating_the_schema($from, $to).await;
            }
        }
    };
}

direction!(from_13_to_18, 13, 18);
direction!(from_18_to_13, 18, 13);
direction!(from_18_to_15, 18, 15);
direction!(from_14_to_16, 14, 16);
direction!(from_16_to_17, 16, 17);
direction!(from_17_to_16, 17, 16);
direction!(from_18_to_18, 18, 18);

#[tokio::test]
async fn create_schema_refuses_by_name_what_only_18_holds_on_an_older_target_and_creates_nothing() {
    let (from, to) = (18, 15);
    let p = pair("refuse18", from, to).await;
    fixture(&p, from, to, true).await;
    let opts = Options {
        create_schema: true,
        ..tiny_chunks()
    };
    let e = sync(&p, &opts).await.expect_err("refused");
    assert_eq!(e.name(), "DbsyncConfig");
    let m = e.to_string();
    assert!(
        m.contains("table app.v18 has what only PostgreSQL 18 and later hold")
            && m.contains("virtual generated column twice")
            && m.contains("NOT ENFORCED constraint buyer_exists")
            && m.contains("the target runs PostgreSQL 15"),
        "{m}"
    );
    assert_eq!(
        dbsync_tests::scalar(
            &p.target_url,
            "SELECT count(*)::text FROM pg_namespace WHERE nspname = 'app'"
        )
        .await,
        "0"
    );
}
