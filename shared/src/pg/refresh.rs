//! The changed-only refresh's comparison: a key range's fingerprint, computed the same way on
//! both sides. The replacement is [`crate::pg::copy_in::replace_rows`]; sequences and ANALYZE
//! after it are [`crate::pg::steps`]'.
//!
//! A row's hash chains its columns: each column is hashed with the previous columns' hash
//! as the seed (PostgreSQL's seeded 64-bit hash functions, stable across platforms and
//! majors: hash partitioning depends on them), so a value moved to another column or row
//! changes the sum. Most columns are hashed through their text form (what a COPY carries);
//! a few types are hashed by their own hash function instead, where that is as exact as the
//! text and several times cheaper (no output function): a 4-column `pgbench_accounts` range
//! hashes about 3x faster. Exact means two values hash alike only if their text forms are
//! equal: integers of up to 32 bits, booleans, text in the "C" collation (bytes), `char(n)`
//! (always padded to n, so ignoring trailing blanks loses nothing), uuid. Not bigint or
//! timestamps (their hash folds 64 bits into 32: 0 and 4294967297 hash alike), numeric
//! (1.0 and 1.00 hash alike), floats (-0 and 0), jsonb (numbers compared by value).

use crate::error::{Error, Result, Role};
use crate::model::catalog::{KeyKind, Table};
use crate::model::ident::{quote_ident, quote_literal};
use crate::model::verify::Fingerprint;
use crate::pg::slice;
use std::collections::BTreeMap;
use tokio_postgres::Client;

/// How one column enters a row's hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnHash {
    /// smallint: `hashint2extended`.
    Int2,
    /// integer: `hashint4extended`.
    Int4,
    /// boolean, as 0 or 1.
    Bool,
    /// text or varchar: `hashtextextended` of its bytes (the "C" collation).
    Text,
    /// `character(n)`: `hashbpcharextended` (values are padded to n).
    Bpchar,
    /// uuid: `uuid_hash_extended`.
    Uuid,
    /// `hashtextextended` of its text form: every other type, a column whose type differs
    /// between the sides, a column the data rules rewrite.
    AsText,
}

impl ColumnHash {
    /// How a column of `type_name` (as `format_type` prints it) is hashed; `exact`: the
    /// target's column has the very same type and the data rules leave it as stored.
    pub fn of(type_name: &str, exact: bool) -> ColumnHash {
        if !exact {
            return ColumnHash::AsText;
        }
        let base = type_name.split('(').next().unwrap_or_default().trim();
        match base {
            "smallint" => ColumnHash::Int2,
            "integer" => ColumnHash::Int4,
            "boolean" => ColumnHash::Bool,
            "text" | "character varying" => ColumnHash::Text,
            // `character(n)` only: a bare `bpchar` keeps whatever trailing blanks it was given.
            "character" if type_name.contains('(') => ColumnHash::Bpchar,
            "uuid" => ColumnHash::Uuid,
            _ => ColumnHash::AsText,
        }
    }

    /// The hash of `value` (an expression of the column's type), seeded with `seed`. NULL
    /// is distinct from every value: typed columns flip the seed's lowest bit, text forms
    /// are prefixed (`v...` for a value, `n` for NULL). A column NOT NULL on both sides
    /// skips that (a third of the work on `pgbench_accounts`).
    fn sql(self, value: &str, seed: &str, not_null: bool) -> String {
        let (f, arg) = match self {
            ColumnHash::Int2 => ("hashint2extended", value.to_string()),
            ColumnHash::Int4 => ("hashint4extended", value.to_string()),
            ColumnHash::Bool => ("hashint4extended", format!("{value}::int4")),
            ColumnHash::Text => ("hashtextextended", format!("{value}::text COLLATE \"C\"")),
            ColumnHash::Bpchar => ("hashbpcharextended", format!("{value} COLLATE \"C\"")),
            ColumnHash::Uuid => ("uuid_hash_extended", value.to_string()),
            ColumnHash::AsText if not_null => (
                "hashtextextended",
                format!("({value})::text COLLATE \"C\""),
            ),
            ColumnHash::AsText => {
                return format!(
                    "pg_catalog.hashtextextended(coalesce('v' || ({value})::text, 'n') COLLATE \"C\", {seed})"
                )
            }
        };
        if not_null {
            return format!("pg_catalog.{f}({arg}, {seed})");
        }
        let zero = match self {
            ColumnHash::Int2 => "0::int2",
            ColumnHash::Int4 | ColumnHash::Bool => "0",
            ColumnHash::Uuid => "'00000000-0000-0000-0000-000000000000'::uuid",
            _ => "''",
        };
        let arg = match self {
            ColumnHash::Bool => format!("coalesce({value}, false)::int4"),
            ColumnHash::Text => format!("coalesce({value}::text, '') COLLATE \"C\""),
            ColumnHash::Bpchar => format!("coalesce({value}, '') COLLATE \"C\""),
            _ => format!("coalesce({value}, {zero})"),
        };
        format!("pg_catalog.{f}({arg}, ({seed}) # ({value} IS NULL)::int4::int8)")
    }
}

/// A table's row hash on one side, and its `WHERE` for a range.
#[derive(Debug, Clone)]
pub struct RowHash {
    /// The chained hash of the copied columns, in their order.
    pub expr: String,
    /// The data rules' row filter (the source side of a filtered table).
    pub filter: Option<String>,
}

impl RowHash {
    /// The row hash of `table`'s `columns` (each with how it is hashed and whether it is
    /// NOT NULL on both sides); `exported`: over the values the source's export produces
    /// (data rules), not the stored ones.
    pub fn new(table: &Table, columns: &[HashedColumn], exported: bool) -> RowHash {
        let mut expr = "0::int8".to_string();
        for c in columns {
            let value = match c.how {
                ColumnHash::AsText if exported => slice::export_expr(table, c.name),
                _ => quote_ident(c.name),
            };
            expr = c.how.sql(&value, &expr, c.not_null);
        }
        RowHash {
            expr,
            filter: slice::row_condition(table).filter(|_| exported),
        }
    }
}

/// A column of a row hash.
#[derive(Debug, Clone, Copy)]
pub struct HashedColumn<'a> {
    pub name: &'a str,
    pub how: ColumnHash,
    /// NOT NULL on both sides.
    pub not_null: bool,
}

/// A table's row hash on the source (over what its export produces) and on the target
/// (`theirs`: the target's own description of it). A column is hashed by its own type's
/// function where the target's column has the very same type and no data rule rewrites
/// it, else through its text form.
pub fn row_hashes(t: &Table, theirs: Option<&Table>) -> (RowHash, RowHash) {
    let cols: Vec<HashedColumn> = t
        .copy_columns()
        .map(|c| {
            let other = theirs.and_then(|tt| tt.columns.iter().find(|x| x.name == c.name));
            let same = other.is_some_and(|x| x.type_name == c.type_name);
            let ruled = t
                .rules
                .as_ref()
                .is_some_and(|r| r.columns.contains_key(&c.name));
            HashedColumn {
                name: &c.name,
                how: ColumnHash::of(&c.type_name, same && !ruled),
                // A masked value may be NULL where the stored one is not.
                not_null: c.not_null && !ruled && other.is_some_and(|x| x.not_null),
            }
        })
        .collect();
    (RowHash::new(t, &cols, true), RowHash::new(t, &cols, false))
}

/// The `WHERE` of a fingerprint: `condition` and the row filter.
fn where_clause(row: &RowHash, condition: Option<&str>) -> String {
    let conds: Vec<&str> = condition.into_iter().chain(row.filter.as_deref()).collect();
    if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    }
}

/// The SQL of a key range's fingerprint for the changed-only refresh: rows and an
/// order-independent sum of each row's [`RowHash`], of the rows `condition` selects. The
/// sessions of both sides share DateStyle, TimeZone and extra_float_digits, so text forms
/// are alike.
pub fn range_fingerprint_sql(table: &Table, row: &RowHash, condition: Option<&str>) -> String {
    format!(
        "SELECT count(*)::int8, coalesce(sum({}), 0)::text FROM ONLY {}{}",
        row.expr,
        table.name.sql(),
        where_clause(row, condition)
    )
}

/// The SQL fingerprinting every key range of `table` in one scan, where its key allows: a
/// single column not ordered by a collation (`width_bucket` orders by the type's default
/// btree order, what the ranges' `ROW` comparisons use; a text key's ranges are in the "C"
/// collation, which `width_bucket` would not follow). `thresholds`: the lower bounds of the
/// ranges after the first, in key order. One row per range that holds rows: its position
/// (0 for the first), rows, hash sum. A sequential scan of the table is about five times
/// cheaper per row than the index scans of its ranges one by one.
pub fn table_fingerprints_sql(
    table: &Table,
    row: &RowHash,
    thresholds: &[Vec<String>],
) -> Option<String> {
    let key = table.key.as_ref()?;
    let [col] = key.columns.as_slice() else {
        return None;
    };
    if col.kind == KeyKind::Text || thresholds.is_empty() {
        return None;
    }
    let bounds: Vec<String> = thresholds
        .iter()
        .map(|b| {
            b.first()
                .map(|v| format!("{}::{}", quote_literal(v), col.type_name))
        })
        .collect::<Option<_>>()?;
    // The subquery stays one (OFFSET 0): flattened, the planner takes the key's distinct
    // values for the groups' number and sorts every row (to disk) instead of hashing 19.
    Some(format!(
        "SELECT b, count(*)::int8, coalesce(sum(h), 0)::text
           FROM (SELECT pg_catalog.width_bucket({}, ARRAY[{}]) AS b, {} AS h
                   FROM ONLY {}{} OFFSET 0) AS dbsync_ranges
          GROUP BY b",
        quote_ident(&col.name),
        bounds.join(", "),
        row.expr,
        table.name.sql(),
        where_clause(row, None)
    ))
}

/// Fingerprints every key range of `table` in one scan ([`table_fingerprints_sql`], which
/// gives the SQL): per range position, its fingerprint; a range without rows is absent.
pub async fn table_fingerprints(
    client: &Client,
    role: Role,
    sql: &str,
    what: &str,
) -> Result<BTreeMap<usize, Fingerprint>> {
    let rows = client
        .query(sql, &[])
        .await
        .map_err(|e| Error::pg(role, format!("checksumming {what}"), e))?;
    Ok(rows
        .iter()
        .map(|r| {
            let at: i32 = r.get(0);
            let fp = Fingerprint {
                rows: r.get(1),
                checksum: r.get(2),
            };
            (at.max(0) as usize, fp)
        })
        .collect())
}

/// Fingerprints the rows of `table` that `condition` selects ([`range_fingerprint_sql`]).
pub async fn range_fingerprint(
    client: &Client,
    role: Role,
    table: &Table,
    row: &RowHash,
    condition: Option<&str>,
    what: &str,
) -> Result<Fingerprint> {
    let sql = range_fingerprint_sql(table, row, condition);
    let got = client
        .query_one(sql.as_str(), &[])
        .await
        .map_err(|e| Error::pg(role, format!("checksumming {what}"), e))?;
    Ok(Fingerprint {
        rows: got.get(0),
        checksum: got.get(1),
    })
}

/// The SQL listing the rows of `table` that `condition` selects: each row's key (its text
/// form, columns joined with ", ") and [`RowHash`], in key order.
pub fn range_rows_sql(table: &Table, row: &RowHash, condition: Option<&str>) -> Option<String> {
    let key = table.key.as_ref()?;
    let parts: Vec<String> = key
        .columns
        .iter()
        .map(|c| format!("{}::text", quote_ident(&c.name)))
        .collect();
    Some(format!(
        "SELECT concat_ws(', ', {}), {} FROM ONLY {}{} ORDER BY {}",
        parts.join(", "),
        row.expr,
        table.name.sql(),
        where_clause(row, condition),
        slice::key_order_by(key, None)
    ))
}

/// Runs [`range_rows_sql`]: each row's key and hash, in key order.
pub async fn range_rows(
    client: &Client,
    role: Role,
    sql: &str,
    what: &str,
) -> Result<Vec<(String, i64)>> {
    let rows = client
        .query(sql, &[])
        .await
        .map_err(|e| Error::pg(role, format!("listing the rows of {what}"), e))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}
