//! JSON bodies read with a mistake named by the field it is in (the API's 400s and the
//! console's, which a form shows beside the field).

use crate::error::{Error, Result};

/// Reads `body` as a `T`; a mistake is a [`Error::Config`] naming the field it is in (its
/// path: `analyze`, `tables[1]`, an unknown `tablez`), else `whole`.
pub fn read_json<T: serde::de::DeserializeOwned>(
    body: &[u8],
    whole: &str,
    what: &str,
) -> Result<T> {
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        // The path ends at the unknown field's own name too; "." is the body itself, "?" a
        // syntax error before any field.
        let path = e.path().to_string();
        let field = match path.as_str() {
            "." | "?" | "" => whole.to_string(),
            _ => path,
        };
        Error::config(field, format!("{what}: {}", e.into_inner()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Ask {
        source_secret: String,
        #[serde(default)]
        analyze: Option<Choice>,
        #[serde(default)]
        concurrency: Option<u32>,
        #[serde(default)]
        tables: Vec<String>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Choice {
        Copy,
    }

    #[test]
    fn a_body_mistake_names_the_field_it_is_in() {
        let field = |body: &str| match read_json::<Ask>(body.as_bytes(), "request body", "bad") {
            Err(Error::Config { setting, .. }) => setting,
            other => panic!("{body}: {other:?}"),
        };
        let base = r#""source_secret":"a""#;
        assert_eq!(
            field(&format!(r#"{{{base},"analyze":"maybe"}}"#)),
            "analyze"
        );
        assert_eq!(field(&format!(r#"{{{base},"tablez":["x"]}}"#)), "tablez");
        assert_eq!(
            field(&format!(r#"{{{base},"concurrency":"four"}}"#)),
            "concurrency"
        );
        assert_eq!(
            field(&format!(r#"{{{base},"tables":["a",1]}}"#)),
            "tables[1]"
        );
        assert_eq!(field("{not json"), "request body");
    }
}
