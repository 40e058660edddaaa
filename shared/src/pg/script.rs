//! The SQL text of a `dbsync dump` script, restorable with `psql -v ON_ERROR_STOP=1 -f`: the
//! pinned settings, one transaction, one `TRUNCATE` of every table (never `CASCADE`), the
//! keys of FK cycles set aside and added back, user triggers kept quiet, a `COPY ... FROM
//! stdin` per table, the sequences' exact state, `ANALYZE`.

use crate::model::catalog::{ForeignKey, Sequence, Table};
use crate::model::ident::{column_list, quote_ident, quote_literal};

/// `SET` lines of the pinned session settings, as the parts were produced under them.
pub fn settings<'a>(pinned: impl IntoIterator<Item = (&'a String, &'a String)>) -> String {
    pinned
        .into_iter()
        .map(|(k, v)| format!("SET {k} = {};\n", quote_literal(v)))
        .collect()
}

/// Opens the script's one transaction.
pub const BEGIN: &str = "BEGIN;\n";

/// Commits it, and says the script is complete (a truncated file lacks the line).
pub const COMMIT: &str = "COMMIT;\n-- dbsync dump complete\n";

/// Empties every table in one statement (a table referenced by another in the list may be
/// truncated with it; `CASCADE` would reach beyond the scope, so it is never used).
pub fn truncate_all(tables: &[&Table]) -> String {
    let names: Vec<String> = tables
        .iter()
        .map(|t| format!("ONLY {}", t.name.sql()))
        .collect();
    format!("TRUNCATE TABLE {};\n", names.join(", "))
}

/// Sets a foreign key of a cycle aside for the load.
pub fn drop_foreign_key(fk: &ForeignKey) -> String {
    format!(
        "ALTER TABLE {} DROP CONSTRAINT {};\n",
        fk.table.sql(),
        quote_ident(&fk.name)
    )
}

/// Adds a set-aside foreign key back (validated: the rows are all in).
pub fn add_foreign_key(fk: &ForeignKey) -> String {
    format!(
        "ALTER TABLE {} ADD CONSTRAINT {} {};\n",
        fk.table.sql(),
        quote_ident(&fk.name),
        fk.definition
    )
}

/// Turns a table's enabled user triggers off (`on` false) or back on.
pub fn triggers(table: &Table, on: bool) -> String {
    table
        .user_triggers
        .iter()
        .map(|t| {
            format!(
                "ALTER TABLE {} {} TRIGGER {};\n",
                table.name.sql(),
                if on { "ENABLE" } else { "DISABLE" },
                quote_ident(t)
            )
        })
        .collect()
}

/// The line that starts a table's data; the data follows, then [`END_OF_DATA`].
pub fn copy_from_stdin(table: &Table) -> String {
    format!(
        "COPY {} ({}) FROM stdin;\n",
        table.name.sql(),
        column_list(table.copy_columns().map(|c| c.name.as_str()))
    )
}

/// The end of a table's COPY data.
pub const END_OF_DATA: &str = "\\.\n";

/// Rows of a table without copied columns (every value a default or generated).
pub fn insert_empty_rows(table: &Table, rows: u64) -> String {
    format!(
        "INSERT INTO {} SELECT FROM generate_series(1, {rows});\n",
        table.name.sql()
    )
}

/// A sequence set to the source's exact state.
pub fn set_sequence(seq: &Sequence) -> String {
    format!(
        "SELECT pg_catalog.setval({}, {}, {});\n",
        quote_literal(&seq.name.sql()),
        seq.last_value,
        seq.is_called
    )
}

/// Statistics for every table, so the target is ready to query.
pub fn analyze(tables: &[&Table]) -> String {
    let names: Vec<String> = tables.iter().map(|t| t.name.sql()).collect();
    format!("ANALYZE {};\n", names.join(", "))
}
