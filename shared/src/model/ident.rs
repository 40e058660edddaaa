//! SQL text building blocks: identifier and literal quoting, qualified names. Every name that
//! reaches SQL text goes through here; nothing else in the core formats user names into SQL.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Quotes an identifier always, so reserved words, capitals, spaces and quotes survive.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a string literal (the sessions run with `standard_conforming_strings = on`).
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// A schema-qualified relation name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QualName {
    /// Schema.
    pub schema: String,
    /// Relation.
    pub name: String,
}

impl QualName {
    /// A new name.
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Self {
        QualName {
            schema: schema.into(),
            name: name.into(),
        }
    }

    /// The quoted, qualified form for SQL text.
    pub fn sql(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }
}

/// Shown to people as `schema.name`, quoting a part only where it needs it.
impl fmt::Display for QualName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}",
            display_part(&self.schema),
            display_part(&self.name)
        )
    }
}

fn display_part(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit());
    if plain {
        s.to_string()
    } else {
        quote_ident(s)
    }
}

/// A column list for SQL text: `"a", "b"`.
pub fn column_list<'a>(cols: impl IntoIterator<Item = &'a str>) -> String {
    cols.into_iter()
        .map(quote_ident)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_with_quotes_and_spaces_are_quoted_safely() {
        assert_eq!(quote_ident("a\"b c"), "\"a\"\"b c\"");
        assert_eq!(quote_ident("select"), "\"select\"");
    }

    #[test]
    fn literals_double_single_quotes_and_keep_backslashes() {
        assert_eq!(quote_literal("it's \\N"), "'it''s \\N'");
    }

    #[test]
    fn display_quotes_only_odd_names() {
        assert_eq!(QualName::new("app", "orders").to_string(), "app.orders");
        assert_eq!(
            QualName::new("My Schema", "Ünïcode").to_string(),
            "\"My Schema\".\"Ünïcode\""
        );
        assert_eq!(QualName::new("s", "t").sql(), "\"s\".\"t\"");
    }
}
