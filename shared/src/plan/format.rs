//! Which COPY format a table travels in: binary where every copied column's type has the same
//! binary form on both servers, text otherwise. Pure.
//!
//! Binary COPY skips the text output and input functions on both sides (the cheaper half of
//! the work), but its form is not always portable: arrays carry their element type's OID,
//! composites their fields' OIDs, and types of extensions or of the user have OIDs that
//! differ between clusters. So binary is chosen only for built-in types (their OIDs are
//! fixed), arrays of them, and enums (sent as their labels), when the target column has the
//! same type. Across majors too: the binary forms of these types have not changed in any
//! major dbsync supports (13 to 18; the version matrix in tests/it/versions.rs copies them
//! between each pair it runs and compares every row's text form).

use crate::model::catalog::{EnumType, ServerInfo, Table};
use crate::model::part::CopyFormat;

/// Built-in types whose binary form depends on nothing of the cluster, as `format_type`
/// names them without a type modifier.
const PORTABLE: &[&str] = &[
    "smallint",
    "integer",
    "bigint",
    "real",
    "double precision",
    "numeric",
    "boolean",
    "text",
    "character varying",
    "character",
    "\"char\"",
    "name",
    "bytea",
    "date",
    "time without time zone",
    "time with time zone",
    "timestamp without time zone",
    "timestamp with time zone",
    "interval",
    "uuid",
    "json",
    "jsonb",
    "inet",
    "cidr",
    "macaddr",
    "macaddr8",
    "money",
    "bit",
    "bit varying",
    "oid",
    "point",
    "line",
    "lseg",
    "box",
    "path",
    "polygon",
    "circle",
    "tsvector",
    "tsquery",
    "pg_lsn",
    "int4range",
    "int8range",
    "numrange",
    "daterange",
    "tsrange",
    "tstzrange",
];

/// A type's name without its modifier: `character varying(10)` -> `character varying`,
/// `timestamp(3) with time zone` -> `timestamp with time zone`.
fn without_modifier(type_name: &str) -> String {
    let mut out = String::with_capacity(type_name.len());
    let mut depth = 0;
    for ch in type_name.chars() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ if depth == 0 => out.push(ch),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn portable(base: &str, enums: &[EnumType]) -> bool {
    match base.strip_suffix("[]") {
        // An array's binary form names its element type's OID: built-in elements only.
        Some(element) => PORTABLE.contains(&element),
        None => PORTABLE.contains(&base) || enums.iter().any(|e| e.name.to_string() == base),
    }
}

/// The format `source` travels to `target` in.
pub fn copy_format(
    source: &Table,
    target: &Table,
    source_server: &ServerInfo,
    target_server: &ServerInfo,
    enums: &[EnumType],
) -> CopyFormat {
    // Before 13 (never a supported server, but a catalog can still say so) nothing is assumed.
    let supported = source_server.version_num >= 130000 && target_server.version_num >= 130000;
    let mut cols = source.copy_columns().peekable();
    if !supported || cols.peek().is_none() {
        return CopyFormat::Text;
    }
    let all = cols.all(|c| {
        let base = without_modifier(&c.type_name);
        target
            .columns
            .iter()
            .any(|t| t.name == c.name && !t.generated && without_modifier(&t.type_name) == base)
            && portable(&base, enums)
    });
    if all {
        CopyFormat::Binary
    } else {
        CopyFormat::Text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::catalog::Column;
    use crate::model::ident::QualName;

    fn server(version_num: i32) -> ServerInfo {
        ServerInfo {
            version: String::new(),
            version_num,
            database: "d".into(),
            encoding: "UTF8".into(),
        }
    }

    fn table(types: &[&str]) -> Table {
        let mut t = Table::for_tests("app", "t");
        t.columns = types
            .iter()
            .enumerate()
            .map(|(i, ty)| Column {
                name: format!("c{i}"),
                type_name: ty.to_string(),
                not_null: false,
                has_default: false,
                generated: false,
            })
            .collect();
        t
    }

    fn format(src: &[&str], dst: &[&str], versions: (i32, i32)) -> CopyFormat {
        let enums = [EnumType {
            name: QualName::new("app", "mood"),
            labels: vec!["ok".into()],
        }];
        let (a, b) = (server(versions.0), server(versions.1));
        copy_format(&table(src), &table(dst), &a, &b, &enums)
    }

    #[test]
    fn built_in_types_their_arrays_and_enums_go_binary_with_any_modifier() {
        let types = [
            "bigint",
            "numeric(12,2)",
            "character varying(10)",
            "timestamp(3) with time zone",
            "jsonb",
            "text[]",
            "app.mood",
        ];
        let wider = [
            "bigint",
            "numeric(14,2)",
            "character varying(20)",
            "timestamp with time zone",
            "jsonb",
            "text[]",
            "app.mood",
        ];
        assert_eq!(format(&types, &wider, (150004, 150010)), CopyFormat::Binary);
        // Across majors, either way: their binary forms are the same from 13 to 18.
        assert_eq!(format(&types, &wider, (130023, 180004)), CopyFormat::Binary);
        assert_eq!(format(&types, &wider, (180004, 140010)), CopyFormat::Binary);
    }

    #[test]
    fn anything_else_goes_as_text_for_the_whole_table() {
        let text = CopyFormat::Text;
        // A user or extension type, an array of an enum, a domain: OIDs differ by cluster.
        assert_eq!(
            format(
                &["integer", "public.citext"],
                &["integer", "public.citext"],
                (150000, 150000)
            ),
            text
        );
        assert_eq!(
            format(&["app.mood[]"], &["app.mood[]"], (150000, 150000)),
            text
        );
        // A widening the text form allows but binary does not.
        assert_eq!(format(&["integer"], &["bigint"], (150000, 150000)), text);
        // A server older than any supported major.
        assert_eq!(format(&["integer"], &["integer"], (120000, 160000)), text);
        // A table without copied columns.
        assert_eq!(format(&[], &[], (150000, 150000)), text);
    }
}
