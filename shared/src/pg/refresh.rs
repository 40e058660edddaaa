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
use crate::model::catalog::{KeyColumn, KeyKind, Table};
use crate::model::ident::{quote_ident, quote_literal};
use crate::model::verify::Fingerprint;
use crate::pg::slice;
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
        // The hash function, the value NULL stands in as (with the seed's bit flipped), and
        // how a value becomes its argument.
        let (f, zero, arg): (&str, &str, fn(&str) -> String) = match self {
            ColumnHash::Int2 => ("hashint2extended", "0::int2", |v| v.to_string()),
            ColumnHash::Int4 => ("hashint4extended", "0", |v| v.to_string()),
            ColumnHash::Bool => ("hashint4extended", "false", |v| format!("{v}::int4")),
            ColumnHash::Text => ("hashtextextended", "''", |v| {
                format!("{v}::text COLLATE \"C\"")
            }),
            ColumnHash::Bpchar => ("hashbpcharextended", "''", |v| format!("{v} COLLATE \"C\"")),
            ColumnHash::Uuid => (
                "uuid_hash_extended",
                "'00000000-0000-0000-0000-000000000000'::uuid",
                |v| v.to_string(),
            ),
            ColumnHash::AsText if not_null => ("hashtextextended", "", |v| {
                format!("({v})::text COLLATE \"C\"")
            }),
            ColumnHash::AsText => {
                return format!(
                    "pg_catalog.hashtextextended(coalesce('v' || ({value})::text, 'n') COLLATE \"C\", {seed})"
                )
            }
        };
        if not_null {
            return format!("pg_catalog.{f}({}, {seed})", arg(value));
        }
        format!(
            "pg_catalog.{f}({}, ({seed}) # ({value} IS NULL)::int4::int8)",
            arg(&format!("coalesce({value}, {zero})"))
        )
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

/// A table's row hash on each side ([`row_hashes`]).
#[derive(Debug, Clone)]
pub struct RowHashes {
    /// Over the values the source's export produces (data rules applied).
    pub source: RowHash,
    /// Over the target's stored values.
    pub target: RowHash,
}

/// The two sessions a comparison reads at once: the source's (in the job's snapshot) and
/// the target's.
#[derive(Clone, Copy)]
pub struct Sides<'a> {
    pub source: &'a Client,
    pub target: &'a Client,
}

/// A table compared on both sides: the sessions, the table, its row hash on each side, and
/// what errors call it.
#[derive(Clone, Copy)]
pub struct OnBoth<'a> {
    pub sides: Sides<'a>,
    pub table: &'a Table,
    pub hashes: &'a RowHashes,
    pub what: &'a str,
}

/// A table's row hash on the source (over what its export produces) and on the target
/// (`theirs`: the target's own description of it). A column is hashed by its own type's
/// function where the target's column has the very same type and no data rule rewrites
/// it, else through its text form.
pub fn row_hashes(t: &Table, theirs: Option<&Table>) -> RowHashes {
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
    RowHashes {
        source: RowHash::new(t, &cols, true),
        target: RowHash::new(t, &cols, false),
    }
}

/// The `WHERE` of a fingerprint: `condition` and the row filter.
fn where_clause(row: &RowHash, condition: Option<&str>) -> String {
    slice::and_all([condition.map(str::to_string), row.filter.clone()])
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

/// The SQL of the fingerprint of a key range's head: its first `rows` rows in key order (of
/// those `condition` selects). Two ranges alike have heads alike, so a head that differs
/// tells its range does, at the cost of `rows` index entries instead of the whole range;
/// a head alike tells nothing. The order is the key's (text in the "C" collation), the same
/// on both sides.
pub fn head_fingerprint_sql(
    table: &Table,
    row: &RowHash,
    condition: Option<&str>,
    rows: usize,
) -> Option<String> {
    let key = table.key.as_ref()?;
    Some(format!(
        "SELECT count(*)::int8, coalesce(sum(h), 0)::text
           FROM (SELECT {} AS h FROM ONLY {}{} ORDER BY {} LIMIT {rows}) AS dbsync_head",
        row.expr,
        table.name.sql(),
        where_clause(row, condition),
        slice::key_order_by(key, None)
    ))
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
    condition: Option<&str>,
) -> Option<String> {
    let col = one_scan_key(table, thresholds)?;
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
        where_clause(row, condition)
    ))
}

/// The key column `table`'s ranges with `thresholds` are compared by in one scan
/// ([`table_fingerprints_sql`]), if they can be.
fn one_scan_key<'a>(table: &'a Table, thresholds: &[Vec<String>]) -> Option<&'a KeyColumn> {
    match table.key.as_ref()?.columns.as_slice() {
        [col] if col.kind != KeyKind::Text && !thresholds.is_empty() => Some(col),
        _ => None,
    }
}

/// Whether `table`'s ranges with `thresholds` can be compared in one scan per side.
pub fn one_scan(table: &Table, thresholds: &[Vec<String>]) -> bool {
    one_scan_key(table, thresholds).is_some()
}

/// One side's fingerprint of every range ([`table_fingerprints_sql`]), `ranges` of them in
/// key order (a range without rows has the empty fingerprint).
async fn scan_fingerprints(
    client: &Client,
    role: Role,
    sql: &str,
    ranges: usize,
    what: &str,
) -> Result<Vec<Fingerprint>> {
    let rows = client
        .query(sql, &[])
        .await
        .map_err(|e| Error::pg(role, format!("checksumming {what}"), e))?;
    let mut out = vec![
        Fingerprint {
            rows: 0,
            checksum: "0".into(),
        };
        ranges
    ];
    for r in &rows {
        let at: i32 = r.get(0);
        if let Some(slot) = out.get_mut(at.max(0) as usize) {
            *slot = Fingerprint {
                rows: r.get(1),
                checksum: r.get(2),
            };
        }
    }
    Ok(out)
}

/// The fingerprints of every key range of the table (of the rows `condition` selects: a
/// span of its ranges) on both sides at once, one scan per side, in key order; None where
/// its key does not allow that ([`one_scan`]). `thresholds`: the lower bounds of the ranges
/// after the first.
pub async fn table_fingerprints(
    c: OnBoth<'_>,
    thresholds: &[Vec<String>],
    condition: Option<&str>,
) -> Result<Option<(Vec<Fingerprint>, Vec<Fingerprint>)>> {
    let sql = |row| table_fingerprints_sql(c.table, row, thresholds, condition);
    let (Some(s), Some(t)) = (sql(&c.hashes.source), sql(&c.hashes.target)) else {
        return Ok(None);
    };
    let n = thresholds.len() + 1;
    let both = tokio::try_join!(
        scan_fingerprints(c.sides.source, Role::Source, &s, n, c.what),
        scan_fingerprints(c.sides.target, Role::Target, &t, n, c.what)
    )?;
    Ok(Some(both))
}

/// The fingerprints of the rows of the table that `condition` selects on both sides at
/// once ([`range_fingerprint_sql`]).
pub async fn range_fingerprints(
    c: OnBoth<'_>,
    condition: Option<&str>,
) -> Result<(Fingerprint, Fingerprint)> {
    let s = range_fingerprint_sql(c.table, &c.hashes.source, condition);
    let t = range_fingerprint_sql(c.table, &c.hashes.target, condition);
    fingerprints(c, &s, &t).await
}

/// The fingerprints of the head of a key range of the table (its first `head` rows of those
/// `condition` selects, [`head_fingerprint_sql`]) on both sides at once; None for a table
/// without a key.
pub async fn head_fingerprints(
    c: OnBoth<'_>,
    condition: Option<&str>,
    head: usize,
) -> Result<Option<(Fingerprint, Fingerprint)>> {
    let sql = |row| head_fingerprint_sql(c.table, row, condition, head);
    let (Some(s), Some(t)) = (sql(&c.hashes.source), sql(&c.hashes.target)) else {
        return Ok(None);
    };
    Ok(Some(fingerprints(c, &s, &t).await?))
}

/// Runs one fingerprint query on each side at once: the source's, the target's.
async fn fingerprints(
    c: OnBoth<'_>,
    source_sql: &str,
    target_sql: &str,
) -> Result<(Fingerprint, Fingerprint)> {
    tokio::try_join!(
        fingerprint(c.sides.source, Role::Source, source_sql, c.what),
        fingerprint(c.sides.target, Role::Target, target_sql, c.what)
    )
}

/// Runs the fingerprint query `sql` (one row: rows, hash sum).
async fn fingerprint(client: &Client, role: Role, sql: &str, what: &str) -> Result<Fingerprint> {
    let got = client
        .query_one(sql, &[])
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
