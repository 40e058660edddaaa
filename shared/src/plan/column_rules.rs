//! What each column rule computes on a column of a given type (the keyed hash as hex, a uuid
//! or an integer; fakes derived from it), refusing a rule the type cannot take or that would
//! make a unique column repeat values. `pg::column_rules` writes the SQL of what it decides.

use crate::error::{Error, Result};
use crate::model::catalog::{Column, Table};
use crate::model::ident::quote_ident;
use crate::model::rules::{ColumnRule, Computed, ComputedColumn, TableRules, SETTING};
use std::collections::{BTreeMap, BTreeSet};

fn err(message: String) -> Error {
    Error::config(SETTING, message)
}

/// What every ruled column of `table` computes, checked against its type and keys.
pub(crate) fn compile_columns(
    table: &Table,
    key: &str,
    rules: &TableRules,
) -> Result<BTreeMap<String, ComputedColumn>> {
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
        if let Some(value) =
            column_value(col, rule, is_unique).map_err(|m| err(format!("{}: {m}", at())))?
        {
            out.insert(
                name.clone(),
                ComputedColumn {
                    rule: rule.name(),
                    column: name.clone(),
                    type_name: col.type_name.clone(),
                    value,
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

/// What a rule computes on `col`; None for keep. Refuses what the type cannot take and what
/// would make a unique column repeat values.
fn column_value(
    col: &Column,
    rule: &ColumnRule,
    unique: bool,
) -> std::result::Result<Option<Computed>, String> {
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
    let value = match rule {
        ColumnRule::Keep => return Ok(None),
        ColumnRule::Null if col.not_null => {
            return Err("null does not fit a NOT NULL column".into());
        }
        ColumnRule::Null => Computed::Null,
        ColumnRule::Value(v) => Computed::Value(v.clone()),
        ColumnRule::Truncate(n) => {
            text_only(0)?;
            Computed::Truncate(*n)
        }
        ColumnRule::Email => {
            text_only(33)?;
            Computed::Email
        }
        ColumnRule::Phone => {
            text_only(14)?;
            Computed::Phone
        }
        ColumnRule::Name => {
            text_only(0)?;
            Computed::Name
        }
        ColumnRule::Hash => hash_value(shape, unique, ty)?,
    };
    Ok(Some(value))
}

fn hash_value(shape: Shape, unique: bool, ty: &str) -> std::result::Result<Computed, String> {
    match shape {
        Shape::Text(Some(n)) if unique && n < 16 => Err(format!(
            "hash of a unique {ty} column keeps only {n} hex digits and could repeat; \
             the column needs at least 16 characters"
        )),
        Shape::Text(_) => Ok(Computed::HashText),
        Shape::Uuid => Ok(Computed::HashUuid),
        Shape::Int(64) => Ok(Computed::HashInt { bits: 64 }),
        Shape::Int(n) if unique => Err(format!(
            "hash of a unique {ty} column has {} bits and could repeat; hash bigint, text or \
             uuid keys",
            n - 1
        )),
        Shape::Int(n) => Ok(Computed::HashInt { bits: n }),
        Shape::Other => Err(format!(
            "hash applies to text, varchar, char, uuid and integer columns, and the column is {ty}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_of_integers_keep_their_width_and_unique_small_integers_are_refused() {
        assert_eq!(
            hash_value(Shape::Int(64), true, "bigint"),
            Ok(Computed::HashInt { bits: 64 })
        );
        assert!(hash_value(Shape::Int(32), true, "integer").is_err());
        assert_eq!(
            hash_value(Shape::Int(16), false, "smallint"),
            Ok(Computed::HashInt { bits: 16 })
        );
        assert_eq!(shape("character varying(40)"), Shape::Text(Some(40)));
        assert_eq!(shape("public.citext"), Shape::Text(None));
    }
}
