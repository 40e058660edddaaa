//! Planner statistics carried from the source instead of ANALYZE on the target
//! (`--analyze copy`): reading a table's `pg_class` counts and `pg_stats` rows on the source,
//! in the job's snapshot, and the statement that restores them on a PostgreSQL 18+ target
//! with `pg_restore_relation_stats` / `pg_restore_attribute_stats`, as pg_dump 18 does.
//!
//! The restore statement is one `DO` block per table that falls back to a real ANALYZE of
//! the table when the target would not take the statistics whole (a function answers false,
//! with a WARNING) or cannot have them copied at all: extended statistics and expression
//! indexes are built only by ANALYZE.

use crate::error::{Error, Result, Role};
use crate::model::catalog::{ColumnStats, Table, TableStats};
use crate::model::ident::{quote_ident, quote_literal};
use crate::model::restore::StatsCopy;
use std::collections::BTreeMap;
use tokio_postgres::Client;

/// The first major whose targets can restore statistics.
pub const RESTORE_VERSION: i32 = 180000;

/// Each `pg_stats` statistic `pg_restore_attribute_stats` takes, with its argument type.
const STATISTICS: &[(&str, &str)] = &[
    ("null_frac", "real"),
    ("avg_width", "integer"),
    ("n_distinct", "real"),
    ("most_common_vals", "text"),
    ("most_common_freqs", "real[]"),
    ("histogram_bounds", "text"),
    ("correlation", "real"),
    ("most_common_elems", "text"),
    ("most_common_elem_freqs", "real[]"),
    ("elem_count_histogram", "real[]"),
    ("range_length_histogram", "text"),
    ("range_empty_frac", "real"),
    ("range_bounds_histogram", "text"),
];

/// The three range statistics `pg_stats` shows from PostgreSQL 17 on.
const RANGE_STATISTICS: usize = 3;

/// Reads the statistics of `tables` on the source (`version_num` its major) into each
/// table's `stats`. A table never analyzed nor vacuumed (`reltuples` -1) gets none.
pub async fn read(client: &Client, version_num: i32, tables: &mut [Table]) -> Result<()> {
    if tables.is_empty() {
        return Ok(());
    }
    let ranges = version_num >= 170000;
    let columns = STATISTICS
        .iter()
        .enumerate()
        .map(|(i, (name, _))| {
            if !ranges && i >= STATISTICS.len() - RANGE_STATISTICS {
                "NULL::text".to_string()
            } else {
                format!("s.{name}::text")
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    // Before 17 a range column's range statistics exist but are not shown: incomplete.
    let complete = if ranges {
        "true"
    } else {
        "coalesce((SELECT t.typtype NOT IN ('r', 'm') FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
                     WHERE a.attrelid = c.oid AND a.attname = s.attname), true)"
    };
    let sql = format!(
        "SELECT n.nspname::text, c.relname::text, c.relpages, c.reltuples::text,
                s.attname::text, s.inherited, {complete}, {columns}
           FROM unnest($1::text[], $2::text[]) AS x(nsp, rel)
           JOIN pg_namespace n ON n.nspname = x.nsp
           JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = x.rel
           LEFT JOIN pg_stats s ON s.schemaname = n.nspname AND s.tablename = c.relname
          ORDER BY 1, 2, 5, 6"
    );
    let schemas: Vec<&str> = tables.iter().map(|t| t.name.schema.as_str()).collect();
    let names: Vec<&str> = tables.iter().map(|t| t.name.name.as_str()).collect();
    let rows = client
        .query(sql.as_str(), &[&schemas, &names])
        .await
        .map_err(|e| Error::pg(Role::Source, "reading the tables' statistics", e))?;
    let mut by_table: BTreeMap<(String, String), TableStats> = BTreeMap::new();
    for r in &rows {
        let key = (r.get::<_, String>(0), r.get::<_, String>(1));
        let stats = by_table.entry(key).or_insert_with(|| TableStats {
            version: version_num,
            relpages: r.get(2),
            reltuples: r.get(3),
            columns: Vec::new(),
        });
        let Some(column) = r.get::<_, Option<String>>(4) else {
            continue;
        };
        let values = STATISTICS
            .iter()
            .enumerate()
            .filter_map(|(i, (name, _))| {
                r.get::<_, Option<String>>(7 + i)
                    .map(|v| (name.to_string(), v))
            })
            .collect();
        stats.columns.push(ColumnStats {
            column,
            inherited: r.get(5),
            complete: r.get(6),
            values,
        });
    }
    for t in tables.iter_mut() {
        let key = (t.name.schema.clone(), t.name.name.clone());
        t.stats = by_table
            .remove(&key)
            .filter(|s| s.reltuples.parse::<f64>().is_ok_and(|n| n >= 0.0));
    }
    Ok(())
}

/// The statement that gives `copy.table` the copied statistics (and ANALYZEs the columns
/// `copy.analyze` names), or ANALYZEs the whole table where the target would not take them.
pub fn restore_sql(copy: &StatsCopy) -> String {
    let table = copy.table.sql();
    let (schema, name) = (
        quote_literal(&copy.table.schema),
        quote_literal(&copy.table.name),
    );
    let s = &copy.stats;
    let head = format!(
        "'version', {}::integer, 'schemaname', {schema}, 'relname', {name}",
        s.version
    );
    let mut calls = vec![format!(
        "pg_catalog.pg_restore_relation_stats({head}, 'relpages', {}::integer, 'reltuples', {}::real)",
        s.relpages,
        quote_literal(&s.reltuples)
    )];
    for c in &s.columns {
        let mut args = format!(
            "{head}, 'attname', {}, 'inherited', {}::boolean",
            quote_literal(&c.column),
            c.inherited
        );
        for (stat, ty) in STATISTICS {
            if let Some(v) = c.values.get(*stat) {
                args.push_str(&format!(", '{stat}', {}::{ty}", quote_literal(v)));
            }
        }
        calls.push(format!("pg_catalog.pg_restore_attribute_stats({args})"));
    }
    let rest = if copy.analyze.is_empty() {
        "NULL;".to_string()
    } else {
        let cols: Vec<String> = copy.analyze.iter().map(|c| quote_ident(c)).collect();
        format!("ANALYZE {table} ({});", cols.join(", "))
    };
    let body = format!(
        "BEGIN
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_statistic_ext WHERE stxrelid = {lit}::regclass)
     OR EXISTS (SELECT 1 FROM pg_catalog.pg_index WHERE indrelid = {lit}::regclass AND indexprs IS NOT NULL) THEN
    ANALYZE {table};
  ELSIF NOT ({calls}) THEN
    ANALYZE {table};
  ELSE
    {rest}
  END IF;
END",
        lit = quote_literal(&table),
        calls = calls.join("\n    AND "),
    );
    // A dollar quote that no value inside can close.
    let mut tag = String::from("$dbsync$");
    let mut n = 0;
    while body.contains(&tag) {
        n += 1;
        tag = format!("$dbsync{n}$");
    }
    format!("DO {tag}\n{body}\n{tag}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ident::QualName;

    fn copy(analyze: &[&str], value: &str) -> StatsCopy {
        StatsCopy {
            table: QualName::new("app", "Odd'name"),
            stats: TableStats {
                version: 130023,
                relpages: 12,
                reltuples: "1000".into(),
                columns: vec![ColumnStats {
                    column: "id".into(),
                    inherited: false,
                    complete: true,
                    values: [
                        ("null_frac".to_string(), "0".to_string()),
                        ("most_common_vals".to_string(), value.to_string()),
                    ]
                    .into_iter()
                    .collect(),
                }],
            },
            analyze: analyze.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn the_restore_names_the_source_version_quotes_every_value_and_analyzes_the_rest() {
        let sql = restore_sql(&copy(&["masked"], "{a,'b'}"));
        assert!(sql.starts_with("DO $dbsync$\n"), "{sql}");
        assert!(
            sql.contains("'version', 130023::integer, 'schemaname', 'app', 'relname', 'Odd''name'")
        );
        assert!(sql.contains("'relpages', 12::integer, 'reltuples', '1000'::real"));
        assert!(sql.contains("'most_common_vals', '{a,''b''}'::text"));
        assert!(sql.contains("'null_frac', '0'::real"));
        assert!(sql.contains("ANALYZE \"app\".\"Odd'name\" (\"masked\");"));
    }

    #[test]
    fn a_value_holding_the_dollar_quote_gets_another_quote() {
        let sql = restore_sql(&copy(&[], "{$dbsync$}"));
        assert!(
            sql.starts_with("DO $dbsync1$\n") && sql.ends_with("$dbsync1$"),
            "{sql}"
        );
    }
}
