//! Statistics instead of ANALYZE (`--analyze copy`): which of a loaded table's columns get
//! the source's planner statistics on a PostgreSQL 18+ target, and which are analyzed there
//! for real. Pure.
//!
//! A column's statistics are copied only when its values arrive as the source holds them:
//! the same column, of the same type, not changed by a data rule (a masked column's
//! statistics would carry the raw values it masks: its most common values and histogram are
//! samples of them). A table whose rows a rule filters is analyzed whole, since every
//! statistic of it describes rows the target does not get. A column the source has no
//! complete statistics for is analyzed.

use crate::model::catalog::Table;
use crate::model::restore::StatsCopy;

/// Leaves out of `table`'s statistics what its data rules make secret: a ruled column's (its
/// most common values and histogram are samples of the raw values the rule hides) and, for
/// a table whose rows are filtered, all of them (they describe rows that are not exported).
/// Run as soon as the rules are applied, so no plan, manifest or ledger ever holds them.
pub fn without_ruled(table: &mut Table) {
    let Some(rules) = &table.rules else {
        return;
    };
    if rules.filter.is_some() || rules.condition.is_some() {
        table.stats = None;
    } else if let Some(stats) = &mut table.stats {
        stats
            .columns
            .retain(|c| !rules.columns.contains_key(&c.column));
    }
}

/// What replaces ANALYZE of `target` (as the target's catalog has it) loaded from `source`
/// (as the source's, with its statistics): `None` when the whole table is to be analyzed.
pub fn copy_plan(source: &Table, target: &Table) -> Option<StatsCopy> {
    let stats = source.stats.as_ref()?;
    let rules = source.rules.as_ref();
    if rules.is_some_and(|r| r.filter.is_some() || r.condition.is_some()) {
        return None;
    }
    let unchanged = |name: &str| {
        let src = source.columns.iter().find(|c| c.name == name);
        let tgt = target.columns.iter().find(|c| c.name == name);
        let ruled = rules.is_some_and(|r| r.columns.contains_key(name));
        matches!((src, tgt), (Some(s), Some(t)) if s.type_name == t.type_name) && !ruled
    };
    let mut copied = stats.clone();
    copied
        .columns
        .retain(|c| c.complete && unchanged(&c.column));
    if copied.columns.is_empty() {
        return None;
    }
    let analyze = target
        .columns
        .iter()
        .filter(|t| !copied.columns.iter().any(|c| c.column == t.name))
        // A generated column the source has no statistics for is one ANALYZE skips too
        // (a virtual one); a stored one is computed from copied columns.
        .filter(|t| !t.generated || stats.columns.iter().any(|c| c.column == t.name))
        .map(|t| t.name.clone())
        .collect();
    Some(StatsCopy {
        table: target.name.clone(),
        stats: copied,
        analyze,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::catalog::{Column, ColumnStats, TableStats};
    use crate::model::rules::{AppliedColumn, AppliedRules};

    fn column(name: &str, ty: &str) -> Column {
        Column::for_tests(name, ty)
    }

    fn stats(columns: &[&str]) -> TableStats {
        TableStats {
            version: 150004,
            relpages: 10,
            reltuples: "500".into(),
            columns: columns
                .iter()
                .map(|c| ColumnStats {
                    column: c.to_string(),
                    inherited: false,
                    complete: true,
                    values: [("null_frac".to_string(), "0".to_string())]
                        .into_iter()
                        .collect(),
                })
                .collect(),
        }
    }

    fn tables() -> (Table, Table) {
        let mut s = Table::for_tests("app", "people");
        s.columns = vec![
            column("id", "bigint"),
            column("email", "text"),
            column("age", "integer"),
            column("note", "text"),
        ];
        s.stats = Some(stats(&["id", "email", "age"]));
        let mut t = s.clone();
        t.stats = None;
        (s, t)
    }

    fn email_masked() -> AppliedRules {
        AppliedRules {
            columns: [(
                "email".to_string(),
                AppliedColumn {
                    rule: "email".into(),
                    sql: "md5(email)".into(),
                },
            )]
            .into_iter()
            .collect(),
            ..Default::default()
        }
    }

    fn names(c: &StatsCopy) -> (Vec<&str>, Vec<&str>) {
        (
            c.stats.columns.iter().map(|c| c.column.as_str()).collect(),
            c.analyze.iter().map(String::as_str).collect(),
        )
    }

    #[test]
    fn unchanged_columns_are_copied_and_a_column_without_statistics_is_analyzed() {
        let (s, t) = tables();
        let c = copy_plan(&s, &t).expect("copied");
        assert_eq!(names(&c), (vec!["id", "email", "age"], vec!["note"]));
    }

    #[test]
    fn a_masked_column_is_analyzed_on_the_target_and_its_source_statistics_never_copied() {
        let (mut s, t) = tables();
        s.rules = Some(email_masked());
        let c = copy_plan(&s, &t).expect("copied");
        assert_eq!(names(&c), (vec!["id", "age"], vec!["email", "note"]));
    }

    #[test]
    fn a_filtered_table_a_table_without_statistics_and_a_retyped_column_fall_back_to_analyze() {
        let (mut s, t) = tables();
        s.rules = Some(AppliedRules {
            filter: Some("age > 3".into()),
            ..Default::default()
        });
        assert!(copy_plan(&s, &t).is_none());
        let (mut s, t) = tables();
        s.stats = None;
        assert!(copy_plan(&s, &t).is_none());
        let (s, mut t) = tables();
        t.columns[2] = column("age", "bigint");
        let c = copy_plan(&s, &t).expect("copied");
        assert_eq!(names(&c), (vec!["id", "email"], vec!["age", "note"]));
    }

    #[test]
    fn a_ruled_columns_statistics_are_dropped_from_the_plan_and_a_filtered_tables_all() {
        let (mut s, _) = tables();
        s.rules = Some(email_masked());
        without_ruled(&mut s);
        let kept: Vec<&str> = s
            .stats
            .as_ref()
            .expect("stats")
            .columns
            .iter()
            .map(|c| c.column.as_str())
            .collect();
        assert_eq!(kept, ["id", "age"]);
        s.rules = Some(AppliedRules {
            condition: Some("EXISTS (SELECT 1)".into()),
            ..Default::default()
        });
        without_ruled(&mut s);
        assert!(s.stats.is_none());
    }
}
