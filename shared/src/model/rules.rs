//! Data rules: the shape of a rules file (per table a row filter, per column a rule) and what
//! a rule becomes on a table once checked against the catalog: the SQL the source computes
//! it with, recorded by name in the manifest. Pure; `plan::rules` does the checking.
//!
//! The keyed hash is HMAC-SHA256 computed by the source server itself (`sha256` is built in
//! since PostgreSQL 11), so raw values never leave it. Its key reaches the server only as
//! two custom settings in the session's startup options ([`IPAD_SETTING`], [`OPAD_SETTING`]):
//! never in statement text, so never in `pg_stat_activity`, the statement log or a manifest.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The setting errors about rules name.
pub const SETTING: &str = "--rules";

/// The shortest hash key accepted: a short key makes the hashes guessable.
pub const MIN_KEY_BYTES: usize = 16;

/// Refuses a key shorter than [`MIN_KEY_BYTES`], naming where it came from (never the key).
pub fn check_key(key: &[u8], setting: &str) -> crate::error::Result<()> {
    if key.len() < MIN_KEY_BYTES {
        return Err(crate::error::Error::config(
            setting,
            format!(
                "is {} bytes; use at least {MIN_KEY_BYTES} (e.g. openssl rand -hex 32)",
                key.len()
            ),
        ));
    }
    Ok(())
}

/// The setting holding the key XOR 0x36 (HMAC's inner pad), hex.
pub const IPAD_SETTING: &str = "dbsync.rules_ipad";
/// The setting holding the key XOR 0x5c (HMAC's outer pad), hex.
pub const OPAD_SETTING: &str = "dbsync.rules_opad";

/// A rules file: `{"tables": {"schema.table": {"where": "...", "columns": {...}}}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesFile {
    /// Rules per table, keyed `schema.table` as people write it.
    #[serde(default)]
    pub tables: BTreeMap<String, TableRules>,
}

/// The rules of one table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableRules {
    /// A SQL predicate on the table's columns: only matching rows are exported.
    #[serde(rename = "where", default)]
    pub filter: Option<String>,
    /// Per column, what its values become.
    #[serde(default)]
    pub columns: BTreeMap<String, ColumnRule>,
}

/// What a column's values become on export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnRule {
    /// Copied as they are (the default).
    Keep,
    /// NULL.
    Null,
    /// A keyed hash (hex for text, a number for integers, a uuid for uuids).
    Hash,
    /// `user_<16 hex of the hash>@example.com`.
    Email,
    /// A first and last name picked by the hash.
    Name,
    /// `+1 555 ` and seven digits from the hash.
    Phone,
    /// This constant, cast to the column's type.
    Value(String),
    /// The first N characters.
    Truncate(u32),
}

impl ColumnRule {
    /// The rule's name, as the manifest and `dbsync plan` show it.
    pub fn name(&self) -> String {
        match self {
            ColumnRule::Keep => "keep".into(),
            ColumnRule::Null => "null".into(),
            ColumnRule::Hash => "hash".into(),
            ColumnRule::Email => "email".into(),
            ColumnRule::Name => "name".into(),
            ColumnRule::Phone => "phone".into(),
            ColumnRule::Value(_) => "value".into(),
            ColumnRule::Truncate(n) => format!("truncate {n}"),
        }
    }

    /// Distinct inputs stay distinct (64 bits of a keyed hash or more), so unique keys stay
    /// unique and equal inputs in two tables still join.
    pub fn keeps_distinct(&self) -> bool {
        matches!(
            self,
            ColumnRule::Keep | ColumnRule::Hash | ColumnRule::Email
        )
    }

    /// Derived from the keyed hash: needs a key.
    pub fn needs_key(&self) -> bool {
        matches!(
            self,
            ColumnRule::Hash | ColumnRule::Email | ColumnRule::Name | ColumnRule::Phone
        )
    }
}

const RULE_WORDS: &str =
    "keep, null, hash, email, name, phone, {\"value\": ...} or {\"truncate\": N}";

impl<'de> Deserialize<'de> for ColumnRule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        let rule = match &v {
            serde_json::Value::String(s) => match s.as_str() {
                "keep" => ColumnRule::Keep,
                "null" => ColumnRule::Null,
                "hash" => ColumnRule::Hash,
                "email" => ColumnRule::Email,
                "name" => ColumnRule::Name,
                "phone" => ColumnRule::Phone,
                other => {
                    return Err(D::Error::custom(format!(
                        "unknown rule \"{other}\" (one of {RULE_WORDS})"
                    )))
                }
            },
            serde_json::Value::Object(m) if m.len() == 1 => match m.iter().next() {
                Some((k, val)) if k == "value" => {
                    ColumnRule::Value(constant(val).ok_or_else(|| {
                        D::Error::custom("a value rule takes a string, number or boolean")
                    })?)
                }
                Some((k, val)) if k == "truncate" => ColumnRule::Truncate(
                    val.as_u64()
                        .and_then(|n| u32::try_from(n).ok())
                        .filter(|n| *n > 0)
                        .ok_or_else(|| {
                            D::Error::custom("truncate takes a positive number of characters")
                        })?,
                ),
                _ => {
                    return Err(D::Error::custom(format!(
                        "unknown rule {v} (one of {RULE_WORDS})"
                    )))
                }
            },
            _ => {
                return Err(D::Error::custom(format!(
                    "unknown rule {v} (one of {RULE_WORDS})"
                )))
            }
        };
        Ok(rule)
    }
}

fn constant(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl RulesFile {
    /// Parses a rules file (JSON), naming what is wrong and where.
    pub fn parse(text: &str) -> std::result::Result<RulesFile, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    /// Some rule needs the hash key.
    pub fn needs_key(&self) -> bool {
        self.tables
            .values()
            .flat_map(|t| t.columns.values())
            .any(ColumnRule::needs_key)
    }
}

/// The rules a table is exported under, as checked: recorded in the manifest (names and
/// SQL, never the key).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedRules {
    /// The table's own row filter, as written.
    #[serde(rename = "where", default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// The condition the source's query applies, as SQL: the filter, and for each foreign
    /// key whose parent is filtered, that the parent row is exported too (so no row is
    /// orphaned). [`RowCondition`] before it is written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// Columns whose values change, with the rule and the SQL computing them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub columns: BTreeMap<String, AppliedColumn>,
}

/// One part of a table's row condition, before it is SQL (`pg::rules::condition_sql` writes
/// it; the parts of a table hold together, AND).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowCondition {
    /// The table's own filter, as written.
    Filter(String),
    /// The row a foreign key points at is exported too, or the key is NULL (it references
    /// nothing then).
    ParentExported(ParentRow),
}

/// The parent row a foreign key of a filtered child points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentRow {
    /// The parent (a partition root, or a plain table).
    pub parent: crate::model::ident::QualName,
    /// Read through the partition root, with its partitions; else the table alone, as it is
    /// exported.
    pub through_root: bool,
    /// The key's columns on the child and, in the same order, on the parent.
    pub columns: Vec<String>,
    pub referenced_columns: Vec<String>,
    /// The parent's own condition.
    pub condition: Vec<RowCondition>,
}

impl ParentRow {
    /// The condition that the row of plain table `app.parent` a one-column key points at
    /// is exported too, for tests of the pure layers.
    #[cfg(test)]
    pub fn for_tests(
        parent: &str,
        column: &str,
        referenced: &str,
        condition: Vec<RowCondition>,
    ) -> RowCondition {
        RowCondition::ParentExported(ParentRow {
            parent: crate::model::ident::QualName::new("app", parent),
            through_root: false,
            columns: vec![column.into()],
            referenced_columns: vec![referenced.into()],
            condition,
        })
    }
}

/// How a ruled column's value is computed, decided against the column's type and keys
/// (`plan::column_rules`); `pg::column_rules` writes its SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComputedColumn {
    /// The rule's name, as the manifest shows it.
    pub rule: String,
    /// The column.
    pub column: String,
    /// The column's type, which the value is cast to.
    pub type_name: String,
    /// What the value is.
    pub value: Computed,
}

/// A ruled column's value, as its type takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Computed {
    /// NULL.
    Null,
    /// This constant.
    Value(String),
    /// The first N characters.
    Truncate(u32),
    /// `user_<16 hex of the hash>@example.com`.
    Email,
    /// `+1 555 ` and seven digits from the hash.
    Phone,
    /// A first and last name picked by the hash.
    Name,
    /// The hash's 64 hex digits (text columns).
    HashText,
    /// The hash's first 32 hex digits (uuid columns).
    HashUuid,
    /// The hash's first `bits` bits with the sign bit clear (integer columns).
    HashInt {
        /// 16, 32 or 64.
        bits: u32,
    },
}

/// One column's rule, as applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedColumn {
    /// The rule's name.
    pub rule: String,
    /// The SQL expression the source computes the value with.
    pub sql: String,
}

/// HMAC's two padded keys, hex, as the source session's settings hold them.
pub fn hmac_pads(key: &[u8]) -> (String, String) {
    let (ipad, opad) = pad_blocks(key);
    (hex(&ipad), hex(&opad))
}

/// The key XOR HMAC's inner and outer pads, as blocks of SHA-256's 64 bytes (a longer key
/// is hashed first, as RFC 2104 says).
fn pad_blocks(key: &[u8]) -> ([u8; 64], [u8; 64]) {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    (block.map(|b| b ^ 0x36), block.map(|b| b ^ 0x5c))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// HMAC-SHA256 of `message` under `key`, hex: what the source computes for a hashed value's
/// text form (tests and checks compare with it).
pub fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    let (ipad, opad) = pad_blocks(key);
    let inner = Sha256::new()
        .chain_update(ipad)
        .chain_update(message)
        .finalize();
    hex(&Sha256::new()
        .chain_update(opad)
        .chain_update(inner)
        .finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rules_file_reads_words_values_and_truncations() {
        let f = RulesFile::parse(
            r#"{"tables": {"public.orders": {"where": "id % 2 = 0",
                "columns": {"email": "email", "code": {"truncate": 4}, "tier": {"value": "gold"},
                            "n": {"value": 7}, "note": "null", "id": "keep"}}}}"#,
        )
        .expect("parses");
        let t = &f.tables["public.orders"];
        assert_eq!(t.filter.as_deref(), Some("id % 2 = 0"));
        assert_eq!(t.columns["code"], ColumnRule::Truncate(4));
        assert_eq!(t.columns["tier"], ColumnRule::Value("gold".into()));
        assert_eq!(t.columns["n"], ColumnRule::Value("7".into()));
        assert!(f.needs_key());
    }

    #[test]
    fn unknown_rules_and_fields_are_refused_with_what_is_allowed() {
        let e = RulesFile::parse(r#"{"tables": {"t": {"columns": {"a": "scramble"}}}}"#)
            .expect_err("unknown rule");
        assert!(e.contains("unknown rule \"scramble\""), "{e}");
        assert!(e.contains("truncate"), "{e}");
        let e = RulesFile::parse(r#"{"tables": {"t": {"filter": "x"}}}"#).expect_err("field");
        assert!(e.contains("unknown field `filter`"), "{e}");
        let e = RulesFile::parse(r#"{"tables": {"t": {"columns": {"a": {"truncate": 0}}}}}"#)
            .expect_err("zero");
        assert!(e.contains("positive"), "{e}");
    }

    #[test]
    fn the_hmac_matches_the_published_test_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Keys longer than a block are hashed first (RFC 4231 test case 6).
        assert_eq!(
            hmac_sha256_hex(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            ),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }
}
