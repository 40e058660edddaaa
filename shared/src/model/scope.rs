//! Which tables a job covers: `--schemas`, `--tables` and `--exclude` glob patterns. Pure.

use crate::error::{Error, Result};
use crate::model::ident::QualName;
use serde::{Deserialize, Serialize};

/// The schema of dbsync's ledger in the target (`pg::ledger`); never synced itself.
pub const LEDGER_SCHEMA: &str = "dbsync";

/// Schemas never synced: the system's, and dbsync's own ledger schema.
pub const SYSTEM_SCHEMAS: &[&str] = &["pg_catalog", "information_schema", LEDGER_SCHEMA];

/// The scope of a job. Patterns use `*` and `?`; a table pattern with a dot matches
/// `schema.table`, one without matches the table name in any schema. A partition matches
/// when its own name or its partitioned parent's name matches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    /// Schemas to include (all non-system schemas when empty).
    #[serde(default)]
    pub schemas: Vec<String>,
    /// Tables to include (all when empty).
    #[serde(default)]
    pub tables: Vec<String>,
    /// Tables to leave out.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// A table glob that matches no table is fine (an exact name that matches none is
    /// always an error: it is a typo).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_empty_patterns: bool,
}

impl Scope {
    /// Parses comma-separated lists as given on the command line.
    pub fn from_lists(schemas: &[String], tables: &[String], exclude: &[String]) -> Result<Self> {
        fn split(v: &[String], setting: &str) -> Result<Vec<String>> {
            let mut out = Vec::new();
            for item in v.iter().flat_map(|s| s.split(',')) {
                let item = item.trim();
                if item.is_empty() {
                    continue;
                }
                if item.matches('.').count() > 1 && !item.contains('"') {
                    return Err(Error::config(
                        setting,
                        format!("{item:?} has more than one dot; use schema.table"),
                    ));
                }
                out.push(item.trim_matches('"').replace("\".\"", "."));
            }
            Ok(out)
        }
        Ok(Scope {
            schemas: split(schemas, "--schemas")?,
            tables: split(tables, "--tables")?,
            exclude: split(exclude, "--exclude")?,
            allow_empty_patterns: false,
        })
    }

    /// Whether a schema may hold in-scope objects.
    pub fn schema_in_scope(&self, schema: &str) -> bool {
        !is_system_schema(schema)
            && (self.schemas.is_empty() || self.schemas.iter().any(|p| glob(p, schema)))
    }

    /// Whether a table (or a partition of `root`) is in scope.
    pub fn table_in_scope(&self, table: &QualName, root: Option<&QualName>) -> bool {
        if !self.schema_in_scope(&table.schema) {
            return false;
        }
        let hit = |pats: &[String]| {
            pats.iter()
                .any(|p| matches_table(p, table) || root.is_some_and(|r| matches_table(p, r)))
        };
        (self.tables.is_empty() || hit(&self.tables)) && !hit(&self.exclude)
    }

    /// The patterns that match nothing in `all` (every table the database has, with its
    /// partition root): `--tables` and `--exclude` patterns no table matches (whether or not
    /// another pattern then leaves it out), `--schemas` patterns no table's schema matches.
    /// In a tool that empties tables, `--exclude partz` matching nothing is a typo that
    /// would empty `parts`.
    pub fn unmatched(&self, all: &[(QualName, Option<QualName>)]) -> Vec<Unmatched> {
        let no_table = |p: &&String| {
            !all.iter().any(|(t, root)| {
                matches_table(p, t) || root.as_ref().is_some_and(|r| matches_table(p, r))
            })
        };
        let no_schema = |p: &&String| !all.iter().any(|(t, _)| glob(p, &t.schema));
        let tag = |setting: &str| {
            let setting = setting.to_string();
            move |p: &String| Unmatched {
                setting: setting.clone(),
                pattern: p.clone(),
            }
        };
        self.schemas
            .iter()
            .filter(no_schema)
            .map(tag("--schemas"))
            .chain(self.tables.iter().filter(no_table).map(tag("--tables")))
            .chain(self.exclude.iter().filter(no_table).map(tag("--exclude")))
            .collect()
    }

    /// The patterns of [`Scope::unmatched`] that make a job wrong: exact names always (a
    /// typo), globs unless `allow_empty_patterns`.
    pub fn refused_patterns(&self, unmatched: &[Unmatched]) -> Vec<Unmatched> {
        unmatched
            .iter()
            .filter(|u| !is_glob(&u.pattern) || !self.allow_empty_patterns)
            .cloned()
            .collect()
    }

    /// Whether the scope names tables explicitly (then standalone sequences are left out).
    pub fn has_table_filter(&self) -> bool {
        !self.tables.is_empty()
    }
}

/// A scope pattern that matched nothing, with the setting it was given in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unmatched {
    /// `--schemas`, `--tables` or `--exclude`.
    pub setting: String,
    /// The pattern, as given.
    pub pattern: String,
}

/// System schemas, temp and toast schemas, and dbsync's ledger schema.
pub fn is_system_schema(schema: &str) -> bool {
    SYSTEM_SCHEMAS.contains(&schema)
        || schema.starts_with("pg_toast")
        || schema.starts_with("pg_temp")
}

fn matches_table(pattern: &str, t: &QualName) -> bool {
    match pattern.split_once('.') {
        Some((s, n)) => glob(s, &t.schema) && glob(n, &t.name),
        None => glob(pattern, &t.name),
    }
}

/// Whether a pattern has glob characters.
pub fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?'])
}

/// Shell-style glob: `*` any run, `?` one character; everything else literal.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_stars_and_question_marks() {
        assert!(glob("ord*", "orders"));
        assert!(glob("*", ""));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "abbc"));
        assert!(glob("*_log", "audit_log"));
        assert!(!glob("orders", "orders2"));
    }

    #[test]
    fn a_partition_is_in_scope_when_its_parent_is_named() {
        let s = Scope::from_lists(&[], &["app.measurements".into()], &[]).expect("scope");
        let leaf = QualName::new("app", "measurements_2024");
        let root = QualName::new("app", "measurements");
        assert!(s.table_in_scope(&leaf, Some(&root)));
        assert!(!s.table_in_scope(&QualName::new("app", "other"), None));
    }

    #[test]
    fn exclude_wins_over_include_and_system_schemas_never_match() {
        let s =
            Scope::from_lists(&["app,public".into()], &[], &["app.audit*".into()]).expect("scope");
        assert!(s.table_in_scope(&QualName::new("app", "orders"), None));
        assert!(!s.table_in_scope(&QualName::new("app", "audit_log"), None));
        assert!(!s.table_in_scope(&QualName::new("other", "x"), None));
        assert!(!Scope::default().table_in_scope(&QualName::new("dbsync", "parts"), None));
        assert!(!Scope::default().table_in_scope(&QualName::new("pg_catalog", "pg_class"), None));
    }

    #[test]
    fn patterns_of_every_setting_that_match_nothing_are_named_with_their_setting() {
        let all = [
            (QualName::new("shop", "parts"), None),
            (
                QualName::new("shop", "m_2024"),
                Some(QualName::new("shop", "m")),
            ),
        ];
        let s = Scope::from_lists(
            &["shop".into(), "shpo".into()],
            &["parts".into(), "partz".into(), "shop.m".into()],
            &["partz".into(), "m_*".into(), "x*".into()],
        )
        .expect("scope");
        let found: Vec<String> = s
            .unmatched(&all)
            .iter()
            .map(|u| format!("{} {}", u.setting, u.pattern))
            .collect();
        assert_eq!(
            found,
            [
                "--schemas shpo",
                "--tables partz",
                "--exclude partz",
                "--exclude x*"
            ]
        );
        let lenient = Scope {
            allow_empty_patterns: true,
            ..s
        };
        let refused = lenient.refused_patterns(&lenient.unmatched(&all));
        assert_eq!(refused.len(), 3, "the glob x* is allowed: {refused:?}");
    }

    #[test]
    fn a_name_with_two_dots_is_refused_with_the_flag_named() {
        let e = Scope::from_lists(&[], &["a.b.c".into()], &[]).expect_err("refused");
        assert!(e.to_string().contains("--tables"));
    }
}
