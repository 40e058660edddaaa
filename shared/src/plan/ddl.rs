//! The schema bootstrap's statements, in dependency order: schemas, extensions, types,
//! functions, sequences, tables (parents before partitions and children), then each new
//! table's keys, checks, indexes, row security, policies, triggers and comments, the
//! sequences' `OWNED BY`, and last the foreign keys (cycles need every table first). Only
//! what the target lacks; what cannot be created is refused, every object named.

use crate::error::{Error, Result};
use crate::model::ddl::{Created, Existing, SchemaSource};

/// The setting errors name.
pub const SETTING: &str = "--create-schema";

/// The statements being gathered, what they create, and what cannot be created.
#[derive(Default)]
struct Gathered {
    out: Vec<String>,
    created: Created,
    refused: Vec<String>,
}

/// The statements creating what `source` has and the target (`existing`) lacks.
pub fn statements(source: &SchemaSource, existing: &Existing) -> Result<(Vec<String>, Created)> {
    let mut g = Gathered::default();
    let new_tables: Vec<_> = {
        let mut t: Vec<_> = source
            .tables
            .iter()
            .filter(|t| !existing.tables.contains(&t.name))
            .collect();
        t.sort_by_key(|t| t.depth);
        t
    };
    if new_tables.is_empty() {
        return Ok((g.out, g.created));
    }
    if existing.version_num < 180000 {
        g.refused.extend(
            new_tables
                .iter()
                .filter(|t| !t.needs_18.is_empty())
                .map(|t| {
                    format!(
                "table {} has what only PostgreSQL 18 and later hold ({}), and the target runs {}",
                t.name,
                t.needs_18.join(", "),
                major_of(existing.version_num)
            )
                }),
        );
    }
    g.out.extend(source.schemas.iter().cloned());
    types_and_extensions(source, existing, &mut g);
    let Gathered {
        mut out,
        mut created,
        refused,
    } = g;
    for (what, list, have) in [
        ("function", &source.functions, &existing.functions),
        ("sequence", &source.sequences, &existing.sequences),
    ] {
        for o in list.iter().filter(|o| !have.contains(&o.name)) {
            out.push(o.create.clone());
            created.other.push(format!("{what} {}", o.name));
        }
    }
    if !refused.is_empty() {
        return Err(Error::config(
            SETTING,
            format!("cannot create what the tables need: {}", refused.join("; ")),
        ));
    }
    for t in &new_tables {
        out.push(t.create.clone());
        created.tables.push(t.name.clone());
    }
    for t in &new_tables {
        out.extend(t.after.iter().cloned());
    }
    for s in source
        .sequences
        .iter()
        .filter(|s| !existing.sequences.contains(&s.name))
    {
        out.extend(s.after.iter().cloned());
    }
    for t in &new_tables {
        out.extend(t.foreign_keys.iter().cloned());
    }
    created.statements = out.len();
    Ok((out, created))
}

/// `server_version_num` as a person names the major: 150004 -> "PostgreSQL 15".
fn major_of(version_num: i32) -> String {
    format!("PostgreSQL {}", version_num / 10000)
}

/// The extensions and types the tables need and the target lacks, into `out`; what cannot
/// be created into `refused`.
fn types_and_extensions(source: &SchemaSource, existing: &Existing, g: &mut Gathered) {
    let Gathered {
        out,
        created,
        refused,
    } = g;
    for e in &source.extensions {
        if existing.extensions.contains(&e.name) {
            continue;
        }
        if !existing.available_extensions.contains(&e.name) {
            refused.push(format!(
                "extension {} (its types are used by the tables) is not available on the target",
                e.name
            ));
            continue;
        }
        out.push(e.create.clone());
        created.other.push(format!("extension {}", e.name));
    }
    for t in &source.types {
        if t.extension.is_some() || existing.types.contains(&t.name) {
            continue;
        }
        match &t.refused {
            Some(why) => refused.push(format!("type {} is {why}", t.name)),
            None => {
                out.extend(t.ddl.iter().cloned());
                created.other.push(format!("type {}", t.name));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ddl::{ExtensionDdl, ObjectDdl, TableDdl, TypeDdl};

    fn source() -> SchemaSource {
        SchemaSource {
            schemas: ["CREATE SCHEMA IF NOT EXISTS app".to_string()]
                .into_iter()
                .collect(),
            extensions: vec![ExtensionDdl {
                name: "citext".into(),
                schema: "public".into(),
                create: "CREATE EXTENSION IF NOT EXISTS citext WITH SCHEMA public".into(),
            }],
            types: vec![TypeDdl {
                name: "app.mood".into(),
                schema: "app".into(),
                extension: None,
                ddl: vec!["CREATE TYPE app.mood AS ENUM ('ok')".into()],
                refused: None,
            }],
            functions: vec![],
            sequences: vec![ObjectDdl {
                name: "app.s".into(),
                create: "CREATE SEQUENCE app.s".into(),
                after: vec!["ALTER SEQUENCE app.s OWNED BY app.child.id".into()],
            }],
            tables: vec![
                TableDdl {
                    name: "app.child".into(),
                    schema: "app".into(),
                    depth: 1,
                    create: "CREATE TABLE app.child PARTITION OF app.parent DEFAULT".into(),
                    after: vec![],
                    foreign_keys: vec!["ALTER TABLE app.child ADD CONSTRAINT fk ...".into()],
                    needs_18: vec![],
                },
                TableDdl {
                    name: "app.parent".into(),
                    schema: "app".into(),
                    depth: 0,
                    create: "CREATE TABLE app.parent (id int) PARTITION BY LIST (id)".into(),
                    after: vec!["ALTER TABLE app.parent ADD CONSTRAINT pk PRIMARY KEY (id)".into()],
                    foreign_keys: vec![],
                    needs_18: vec!["virtual generated column twice".into()],
                },
            ],
        }
    }

    fn available() -> Existing {
        Existing {
            available_extensions: ["citext".to_string()].into_iter().collect(),
            version_num: 180004,
            ..Default::default()
        }
    }

    #[test]
    fn parents_come_before_partitions_keys_after_every_table_and_foreign_keys_last() {
        let (s, created) = statements(&source(), &available()).expect("statements");
        let at = |p: &str| s.iter().position(|x| x.starts_with(p)).expect(p);
        assert!(at("CREATE SCHEMA") < at("CREATE EXTENSION"));
        assert!(at("CREATE EXTENSION") < at("CREATE TYPE"));
        assert!(at("CREATE TYPE") < at("CREATE SEQUENCE"));
        assert!(at("CREATE SEQUENCE") < at("CREATE TABLE app.parent"));
        assert!(at("CREATE TABLE app.parent") < at("CREATE TABLE app.child"));
        assert!(at("CREATE TABLE app.child") < at("ALTER TABLE app.parent ADD CONSTRAINT pk"));
        assert!(at("ALTER SEQUENCE") < at("ALTER TABLE app.child ADD CONSTRAINT fk"));
        assert_eq!(created.tables, ["app.parent", "app.child"]);
        assert_eq!(created.statements, s.len());
    }

    #[test]
    fn only_what_the_target_lacks_is_created_and_nothing_when_it_has_every_table() {
        let mut have = available();
        have.tables.insert("app.parent".into());
        have.types.insert("app.mood".into());
        have.extensions.insert("citext".into());
        let (s, created) = statements(&source(), &have).expect("statements");
        assert_eq!(created.tables, ["app.child"]);
        assert!(!s
            .iter()
            .any(|x| x.contains("app.parent (id int)") || x.contains("ENUM")));
        have.tables.insert("app.child".into());
        assert!(statements(&source(), &have).expect("none").0.is_empty());
    }

    #[test]
    fn a_missing_extension_and_a_base_type_are_refused_together_by_name() {
        let mut src = source();
        src.types.push(TypeDdl {
            name: "app.blob".into(),
            schema: "app".into(),
            extension: None,
            ddl: vec![],
            refused: Some("a base type (written in C)".into()),
        });
        let e = statements(&src, &Existing::default()).expect_err("refused");
        let m = e.to_string();
        assert!(
            m.contains("extension citext") && m.contains("type app.blob is a base type"),
            "{m}"
        );
    }

    #[test]
    fn a_table_with_what_only_18_holds_is_refused_on_an_older_target_by_name() {
        let older = Existing {
            version_num: 170010,
            ..available()
        };
        let e = statements(&source(), &older).expect_err("refused");
        assert!(
            e.to_string().contains(
                "table app.parent has what only PostgreSQL 18 and later hold (virtual generated column twice), and the target runs PostgreSQL 17"
            ),
            "{e}"
        );
    }
}
