//! What each column rule computes: the SQL of a rule on a column of a given type (the keyed
//! hash from the pads the source session holds, fakes derived from it), refusing a rule
//! the type cannot take or that would make a unique column repeat values.

use crate::error::{Error, Result};
use crate::model::catalog::{Column, Table};
use crate::model::ident::{quote_ident, quote_literal};
use crate::model::rules::{
    AppliedColumn, ColumnRule, TableRules, IPAD_SETTING, OPAD_SETTING, SETTING,
};
use std::collections::{BTreeMap, BTreeSet};

fn err(message: String) -> Error {
    Error::config(SETTING, message)
}

/// The SQL of every ruled column of `table`, checked against its type and keys.
pub(crate) fn compile_columns(
    table: &Table,
    key: &str,
    rules: &TableRules,
) -> Result<BTreeMap<String, AppliedColumn>> {
    let unique: BTreeSet<&str> = table
        .key
        .iter()
        .flat_map(|k| k.columns.iter().map(|c| c.name.as_str()))
        .chain(
            table
                .unique_keys
                .iter()
                .flat_map(|u| u.columns.iter().map(String::as_str)),
        )
        .collect();
    let mut out = BTreeMap::new();
    for (name, rule) in &rules.columns {
        let Some(col) = table.columns.iter().find(|c| &c.name == name) else {
            let have: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
            return Err(err(format!(
                "rules for {key}: no column {} (it has {})",
                quote_ident(name),
                have.join(", ")
            )));
        };
        let at = || format!("rules for {key}, column {}", quote_ident(name));
        if col.generated && *rule != ColumnRule::Keep {
            return Err(err(format!(
                "{}: a generated column is computed by the target, not copied",
                at()
            )));
        }
        let is_unique = unique.contains(name.as_str());
        if let Some(sql) =
            column_sql(col, rule, is_unique).map_err(|m| err(format!("{}: {m}", at())))?
        {
            out.insert(
                name.clone(),
                AppliedColumn {
                    rule: rule.name(),
                    sql,
                },
            );
        }
    }
    Ok(out)
}

/// What a column's type can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// text, varchar, char, citext; the declared length if any.
    Text(Option<u32>),
    Uuid,
    /// Integers of this many bits.
    Int(u32),
    Other,
}

fn shape(type_name: &str) -> Shape {
    let length = |s: &str| {
        s.split_once('(')
            .and_then(|(_, r)| r.trim_end_matches(')').parse().ok())
    };
    match type_name {
        "text" | "character varying" | "bpchar" | "citext" => Shape::Text(None),
        t if t.ends_with(".citext") => Shape::Text(None),
        t if t.starts_with("character varying(") || t.starts_with("character(") => {
            Shape::Text(length(t))
        }
        "uuid" => Shape::Uuid,
        "bigint" => Shape::Int(64),
        "integer" => Shape::Int(32),
        "smallint" => Shape::Int(16),
        _ => Shape::Other,
    }
}

const FIRST_NAMES: [&str; 32] = [
    "Ada", "Alan", "Alice", "Amir", "Ana", "Ben", "Chen", "Clara", "Dev", "Elena", "Emil",
    "Fatima", "Grace", "Hana", "Ivan", "Jonas", "Kai", "Lena", "Luis", "Maya", "Nia", "Omar",
    "Priya", "Quinn", "Rosa", "Sam", "Sofia", "Tariq", "Uma", "Victor", "Yuki", "Zoe",
];
const LAST_NAMES: [&str; 32] = [
    "Adams", "Berg", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Hansen", "Ito", "Jensen",
    "Kim", "Larsen", "Moreau", "Nakamura", "Okafor", "Patel", "Quist", "Rossi", "Silva", "Tanaka",
    "Ueda", "Varga", "Weber", "Xu", "Yilmaz", "Zhang", "Novak", "Lopez", "Meyer", "Khan", "Sato",
    "Olsen",
];

/// The HMAC of a column's text form as bytea, computed by the source from the pads its
/// session holds.
fn mac(column: &str) -> String {
    format!(
        "sha256(decode(current_setting('{OPAD_SETTING}'), 'hex') || \
         sha256(decode(current_setting('{IPAD_SETTING}'), 'hex') || \
         convert_to({column}::text, 'UTF8')))"
    )
}

fn mac_hex(column: &str) -> String {
    format!("encode({}, 'hex')", mac(column))
}

fn pick(list: &[&str], index: String) -> String {
    let items: Vec<String> = list.iter().map(|s| quote_literal(s)).collect();
    format!("(ARRAY[{}])[1 + {index}]", items.join(", "))
}

/// A rule's SQL on `col`, cast to its type; None for keep. Refuses what the type cannot
/// take and what would make a unique column repeat values.
fn column_sql(
    col: &Column,
    rule: &ColumnRule,
    unique: bool,
) -> std::result::Result<Option<String>, String> {
    let c = quote_ident(&col.name);
    let shape = shape(&col.type_name);
    let ty = &col.type_name;
    if unique && !rule.keeps_distinct() {
        return Err(format!(
            "{} would repeat values in a unique column; use hash or email",
            rule.name()
        ));
    }
    let text_only = |min: u32| match shape {
        Shape::Text(Some(n)) if n < min => Err(format!(
            "{} needs at least {min} characters and the column is {ty}",
            rule.name()
        )),
        Shape::Text(_) => Ok(()),
        _ => Err(format!(
            "{} applies to text, varchar and char columns, and the column is {ty}",
            rule.name()
        )),
    };
    let h = mac_hex(&c);
    let expr = match rule {
        ColumnRule::Keep => return Ok(None),
        ColumnRule::Null if col.not_null => {
            return Err("null does not fit a NOT NULL column".into());
        }
        ColumnRule::Null => "NULL".to_string(),
        ColumnRule::Value(v) => quote_literal(v),
        ColumnRule::Truncate(n) => {
            text_only(0)?;
            format!("left({c}, {n})")
        }
        ColumnRule::Email => {
            text_only(33)?;
            format!("'user_' || left({h}, 16) || '@example.com'")
        }
        ColumnRule::Phone => {
            text_only(14)?;
            format!(
                "'+1 555 ' || lpad(((('x' || left({h}, 8))::bit(32)::int8) % 10000000)::text, 7, '0')"
            )
        }
        ColumnRule::Name => {
            text_only(0)?;
            let m = mac(&c);
            format!(
                "{} || ' ' || {}",
                pick(&FIRST_NAMES, format!("get_byte({m}, 0) % 32")),
                pick(&LAST_NAMES, format!("get_byte({m}, 1) % 32"))
            )
        }
        ColumnRule::Hash => hash_sql(&h, shape, unique, ty)?,
    };
    Ok(Some(format!("({expr})::{ty}")))
}

fn hash_sql(h: &str, shape: Shape, unique: bool, ty: &str) -> std::result::Result<String, String> {
    let bits = |n: u32| {
        let hex = n / 4;
        let mask = (1u64 << (n - 1)) - 1;
        let int = if n == 64 { "int8" } else { "int4" };
        format!("(('x' || left({h}, {hex}))::bit({n})::{int} & {mask})")
    };
    match shape {
        Shape::Text(Some(n)) if unique && n < 16 => Err(format!(
            "hash of a unique {ty} column keeps only {n} hex digits and could repeat; \
             the column needs at least 16 characters"
        )),
        Shape::Text(_) => Ok(h.to_string()),
        Shape::Uuid => Ok(format!("left({h}, 32)")),
        Shape::Int(64) => Ok(bits(64)),
        Shape::Int(n) if unique => Err(format!(
            "hash of a unique {ty} column has {} bits and could repeat; hash bigint, text or \
             uuid keys",
            n - 1
        )),
        Shape::Int(n) => Ok(bits(n)),
        Shape::Other => Err(format!(
            "hash applies to text, varchar, char, uuid and integer columns, and the column is {ty}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_of_integers_keep_the_sign_bit_clear_and_unique_small_integers_are_refused() {
        assert_eq!(
            hash_sql("H", Shape::Int(64), true, "bigint").expect("bigint"),
            "(('x' || left(H, 16))::bit(64)::int8 & 9223372036854775807)"
        );
        assert!(hash_sql("H", Shape::Int(32), true, "integer").is_err());
        assert_eq!(
            hash_sql("H", Shape::Int(16), false, "smallint").expect("smallint"),
            "(('x' || left(H, 4))::bit(16)::int4 & 32767)"
        );
        assert_eq!(shape("character varying(40)"), Shape::Text(Some(40)));
        assert_eq!(shape("public.citext"), Shape::Text(None));
    }
}
