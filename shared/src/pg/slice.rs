//! The SQL text of a chunk's slice: the range condition on the key (compared as a row, text
//! parts in the "C" collation) or on the CTID, the COPY statements out of the source and into
//! the target, and the page queries of a budgeted export.

use crate::model::catalog::{Key, KeyKind, Table};
use crate::model::chunk::ChunkRange;
use crate::model::ident::{column_list, quote_ident, quote_literal};
use crate::model::part::CopyFormat;

/// `ORDER BY` text of a key, text parts in "C" collation; columns qualified with `alias`
/// when given (so they cannot be confused with output columns of the same name).
pub fn key_order_by(key: &Key, alias: Option<&str>) -> String {
    let col = |name: &str| match alias {
        Some(a) => format!("{}.{}", quote_ident(a), quote_ident(name)),
        None => quote_ident(name),
    };
    key.columns
        .iter()
        .map(|c| key_expr(&col(&c.name), c.kind))
        .collect::<Vec<_>>()
        .join(", ")
}

fn key_expr(expr: &str, kind: KeyKind) -> String {
    if kind == KeyKind::Text {
        format!("{expr} COLLATE \"C\"")
    } else {
        expr.to_string()
    }
}

fn bound_row(key: &Key, values: &[String]) -> String {
    let parts: Vec<String> = key
        .columns
        .iter()
        .zip(values)
        .map(|(c, v)| key_expr(&format!("{}::{}", quote_literal(v), c.type_name), c.kind))
        .collect();
    format!("ROW({})", parts.join(", "))
}

/// The key as a row expression for comparisons.
fn key_row(key: &Key) -> String {
    format!(
        "ROW({})",
        key.columns
            .iter()
            .map(|c| key_expr(&quote_ident(&c.name), c.kind))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The `WHERE` condition of a range, or None for the whole table.
pub fn range_condition(key: Option<&Key>, range: &ChunkRange) -> Option<String> {
    match range {
        ChunkRange::Whole => None,
        ChunkRange::Key { lower, upper } => {
            let key = key?;
            let lhs = key_row(key);
            let mut conds = Vec::new();
            if let Some(l) = lower {
                conds.push(format!("{lhs} >= {}", bound_row(key, l)));
            }
            if let Some(u) = upper {
                conds.push(format!("{lhs} < {}", bound_row(key, u)));
            }
            (!conds.is_empty()).then(|| conds.join(" AND "))
        }
        ChunkRange::Ctid { lower, upper } => {
            let mut conds = Vec::new();
            if let Some(l) = lower {
                conds.push(format!("ctid >= '({l},0)'::tid"));
            }
            if let Some(u) = upper {
                conds.push(format!("ctid < '({u},0)'::tid"));
            }
            (!conds.is_empty()).then(|| conds.join(" AND "))
        }
    }
}

/// The `COPY ... TO STDOUT` statement exporting a chunk of a table.
pub fn copy_out_sql(table: &Table, range: &ChunkRange) -> String {
    copy_out_sql_as(table, range, CopyFormat::Text)
}

/// The COPY option of a format.
fn format_option(format: CopyFormat) -> &'static str {
    match format {
        CopyFormat::Text => "",
        CopyFormat::Binary => " (FORMAT binary)",
    }
}

/// The select list of a table's export: its copied columns, each computed by its data
/// rule where it has one.
pub fn select_list(table: &Table) -> String {
    table
        .copy_columns()
        .map(|c| export_expr(table, &c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A copied column as the export reads it: its rule's SQL, or the column.
pub fn export_expr(table: &Table, column: &str) -> String {
    match table.rules.as_ref().and_then(|r| r.columns.get(column)) {
        Some(rule) => rule.sql.clone(),
        None => quote_ident(column),
    }
}

/// The rows the data rules keep (`--rules`), if they filter any.
pub fn row_condition(table: &Table) -> Option<String> {
    table.rules.as_ref().and_then(|r| r.condition.clone())
}

/// `COPY (SELECT ...) TO STDOUT` of a chunk in `format`.
pub fn copy_out_sql_as(table: &Table, range: &ChunkRange, format: CopyFormat) -> String {
    let filter = and_all([
        range_condition(table.key.as_ref(), range),
        row_condition(table),
    ]);
    format!(
        "COPY (SELECT {} FROM ONLY {}{filter}) TO STDOUT{}",
        select_list(table),
        table.name.sql(),
        format_option(format)
    )
}

/// A query the source plans but returns nothing from: its data rules' SQL, checked.
pub fn rules_check_sql(table: &Table) -> String {
    format!(
        "SELECT {} FROM ONLY {}{} LIMIT 0",
        select_list(table),
        table.name.sql(),
        and_all([row_condition(table)])
    )
}

pub(crate) fn and_all(conds: impl IntoIterator<Item = Option<String>>) -> String {
    let c: Vec<String> = conds.into_iter().flatten().collect();
    if c.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", c.join(" AND "))
    }
}

/// The key's columns as text, named `dbsync_k0, dbsync_k1, ...`: output names of their own,
/// so `ORDER BY "id"` sorts the key and not its text form ("10" < "9").
pub fn key_text_columns(key: &Key) -> String {
    key.columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{}::text AS dbsync_k{i}", quote_ident(&c.name)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The query finding the last key of the next page of `page_rows` rows of a keyed table's
/// chunk, after `after`; no row means the rest of the chunk fits in one page.
pub fn page_end_sql(
    table: &Table,
    key: &Key,
    range: &ChunkRange,
    after: Option<&[String]>,
    page_rows: u64,
) -> String {
    let sel = key_text_columns(key);
    let filter = and_all([
        range_condition(Some(key), range),
        after.map(|a| format!("{} > {}", key_row(key), bound_row(key, a))),
    ]);
    format!(
        "SELECT {sel} FROM ONLY {} AS dbsync_t{filter} ORDER BY {} OFFSET {} LIMIT 1",
        table.name.sql(),
        key_order_by(key, Some("dbsync_t")),
        page_rows.max(1) - 1
    )
}

/// `COPY` of one page of a keyed table's chunk: keys in `(after, upto]`, either end open.
pub fn key_page_copy_sql(
    table: &Table,
    key: &Key,
    range: &ChunkRange,
    after: Option<&[String]>,
    upto: Option<&[String]>,
) -> String {
    let filter = and_all([
        range_condition(Some(key), range),
        after.map(|a| format!("{} > {}", key_row(key), bound_row(key, a))),
        upto.map(|u| format!("{} <= {}", key_row(key), bound_row(key, u))),
        row_condition(table),
    ]);
    format!(
        "COPY (SELECT {} FROM ONLY {}{filter}) TO STDOUT",
        select_list(table),
        table.name.sql()
    )
}

/// `COPY` of heap pages `[from, to)` of a table (`to` None: to the end).
pub fn ctid_page_copy_sql(table: &Table, from: u64, to: Option<u64>) -> String {
    let range = ChunkRange::Ctid {
        lower: (from > 0).then_some(from),
        upper: to,
    };
    copy_out_sql(table, &range)
}

/// The `COPY ... FROM STDIN` statement loading a chunk: explicit columns, because the
/// target's column order may differ from the source's.
pub fn copy_in_sql(table: &Table, format: CopyFormat) -> String {
    format!(
        "COPY {} ({}) FROM STDIN{}",
        table.name.sql(),
        column_list(table.copy_columns().map(|c| c.name.as_str())),
        format_option(format)
    )
}

/// [`copy_in_sql`] with `FREEZE`: for a table emptied in the same transaction, the rows go
/// in frozen and their pages all-visible.
pub fn copy_in_frozen_sql(table: &Table, format: CopyFormat) -> String {
    let options = match format {
        CopyFormat::Text => " (FREEZE)",
        CopyFormat::Binary => " (FORMAT binary, FREEZE)",
    };
    format!(
        "COPY {} ({}) FROM STDIN{options}",
        table.name.sql(),
        column_list(table.copy_columns().map(|c| c.name.as_str())),
    )
}

/// Whether the plain table `$1` can be emptied again inside a part's load transaction (so
/// the part can go in with `COPY FREEZE`): no foreign key of another table references it,
/// since PostgreSQL refuses to truncate such a table alone.
pub const FREEZABLE_SQL: &str = "SELECT c.relkind = 'r' AND NOT EXISTS (
       SELECT 1 FROM pg_catalog.pg_constraint k
        WHERE k.contype = 'f' AND k.confrelid = c.oid AND k.conrelid <> c.oid)
     FROM pg_catalog.pg_class c WHERE c.oid = $1::text::regclass";

/// Inserts `$1` rows of defaults into a table without copied columns (`SELECT FROM` has no
/// columns, so every column takes its default or generated value).
pub fn insert_empty_rows_sql(table: &Table) -> String {
    format!(
        "INSERT INTO {} SELECT FROM generate_series(1, $1::int8)",
        table.name.sql()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::catalog::{Column, KeyColumn};
    fn table(schema: &str, name: &str) -> Table {
        Table::for_tests(schema, name)
    }

    #[test]
    fn text_keys_compare_in_c_collation_with_quoted_literals() {
        let key = Key {
            index: "pk".into(),
            columns: vec![
                KeyColumn {
                    name: "Region".into(),
                    type_name: "text".into(),
                    kind: KeyKind::Text,
                },
                KeyColumn {
                    name: "n".into(),
                    type_name: "integer".into(),
                    kind: KeyKind::Integer,
                },
            ],
        };
        let c = range_condition(
            Some(&key),
            &ChunkRange::Key {
                lower: Some(vec!["O'Brien".into(), "3".into()]),
                upper: None,
            },
        )
        .expect("condition");
        assert_eq!(
            c,
            "ROW(\"Region\" COLLATE \"C\", \"n\") >= ROW('O''Brien'::text COLLATE \"C\", '3'::integer)"
        );
    }

    #[test]
    fn pages_of_a_chunk_continue_strictly_after_the_last_key_done() {
        let mut t = table("app", "t");
        let key = Key {
            index: "pk".into(),
            columns: vec![KeyColumn {
                name: "id".into(),
                type_name: "bigint".into(),
                kind: KeyKind::Integer,
            }],
        };
        t.key = Some(key.clone());
        let range = ChunkRange::Key {
            lower: Some(vec!["10".into()]),
            upper: Some(vec!["90".into()]),
        };
        let after = vec!["41".to_string()];
        assert_eq!(
            page_end_sql(&t, &key, &range, Some(&after), 100),
            "SELECT \"id\"::text AS dbsync_k0 FROM ONLY \"app\".\"t\" AS dbsync_t WHERE ROW(\"id\") >= ROW('10'::bigint) AND ROW(\"id\") < ROW('90'::bigint) AND ROW(\"id\") > ROW('41'::bigint) ORDER BY \"dbsync_t\".\"id\" OFFSET 99 LIMIT 1"
        );
        let upto = vec!["57".to_string()];
        assert_eq!(
            key_page_copy_sql(&t, &key, &ChunkRange::Whole, Some(&after), Some(&upto)),
            "COPY (SELECT \"id\" FROM ONLY \"app\".\"t\" WHERE ROW(\"id\") > ROW('41'::bigint) AND ROW(\"id\") <= ROW('57'::bigint)) TO STDOUT"
        );
        assert_eq!(
            ctid_page_copy_sql(&t, 8, None),
            "COPY (SELECT \"id\" FROM ONLY \"app\".\"t\" WHERE ctid >= '(8,0)'::tid) TO STDOUT"
        );
    }

    #[test]
    fn copy_statements_list_columns_and_skip_generated_ones() {
        let mut t = table("app", "Order Items");
        t.columns.push(Column {
            name: "total_cents".into(),
            type_name: "bigint".into(),
            not_null: false,
            has_default: false,
            generated: true,
        });
        assert_eq!(
            copy_out_sql(&t, &ChunkRange::Ctid { lower: Some(4), upper: None }),
            "COPY (SELECT \"id\" FROM ONLY \"app\".\"Order Items\" WHERE ctid >= '(4,0)'::tid) TO STDOUT"
        );
        assert_eq!(
            copy_in_sql(&t, CopyFormat::Text),
            "COPY \"app\".\"Order Items\" (\"id\") FROM STDIN"
        );
    }
}
