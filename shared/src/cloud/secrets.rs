//! Database credentials from AWS Secrets Manager. A secret holds either the RDS shape
//! `{"host", "port", "username", "password", "dbname"}` (with optional `sslmode` and
//! `sslrootcert`) or `{"url": "postgresql://..."}`. Errors name the secret id and the field,
//! never a value.

use crate::error::{Error, Result};
use crate::pg::conn::{ConnParts, ConnSpec};
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use serde_json::Value;

/// Builds a connection spec from a secret's JSON text.
pub fn conn_from_secret(secret_id: &str, json: &str) -> Result<ConnSpec> {
    let setting = format!("secret {secret_id}");
    let bad = |m: &str| Error::config(&setting, m.to_string());
    // Parse to a Value first: serde's own type errors would quote the offending value.
    let v: Value = serde_json::from_str(json).map_err(|_| bad("is not a JSON object"))?;
    let obj = v.as_object().ok_or_else(|| bad("is not a JSON object"))?;
    let text = |k: &str| -> Result<Option<&str>> {
        match obj.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(bad(&format!("field {k:?} must be a string"))),
        }
    };
    if let Some(url) = text("url")? {
        return ConnSpec::parse_with_env(url, &setting, &|_| None);
    }
    let host = text("host")?.ok_or_else(|| bad("has neither \"url\" nor \"host\""))?;
    let port = match obj.get("port") {
        None | Some(Value::Null) => 5432,
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| bad("field \"port\" is not a port number"))?,
        Some(Value::String(s)) => s
            .parse::<u16>()
            .map_err(|_| bad("field \"port\" is not a port number"))?,
        Some(_) => return Err(bad("field \"port\" is not a port number")),
    };
    let user = text("username")?.ok_or_else(|| bad("has no \"username\""))?;
    let dbname = match text("dbname")? {
        Some(d) => d,
        None => text("database")?.unwrap_or("postgres"),
    };
    let parts = ConnParts {
        host,
        port,
        user,
        password: text("password")?,
        dbname,
        sslmode: text("sslmode")?,
        sslrootcert: text("sslrootcert")?,
    };
    ConnSpec::from_parts(&parts, &setting)
}

/// The data rules' hash key a secret holds: its whole string, or the `"key"` field of a
/// JSON object. Errors name the secret, never the value.
pub fn rules_key_from_secret(secret_id: &str, text: &str) -> Result<Vec<u8>> {
    let setting = format!("secret {secret_id}");
    let key = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => match m.get("key") {
            Some(Value::String(k)) => k.clone(),
            _ => {
                return Err(Error::config(
                    &setting,
                    "is a JSON object without a string \"key\" field",
                ))
            }
        },
        _ => text.trim().to_string(),
    };
    crate::model::rules::check_key(key.as_bytes(), &setting)?;
    Ok(key.into_bytes())
}

/// Reads the secret holding the data rules' hash key.
pub async fn fetch_rules_key(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
) -> Result<Vec<u8>> {
    rules_key_from_secret(secret_id, &secret_string(client, secret_id).await?)
}

/// The source of a job: its credentials, its sessions holding the data rules' hash key
/// when the job has one.
pub async fn fetch_source(
    client: &aws_sdk_secretsmanager::Client,
    source_secret: &str,
    rules_key_secret: Option<&str>,
) -> Result<ConnSpec> {
    let source = fetch(client, source_secret).await?;
    Ok(match rules_key_secret {
        Some(k) => source.with_rules_key(&fetch_rules_key(client, k).await?),
        None => source,
    })
}

/// A Secrets Manager client from the shared SDK configuration.
pub async fn client(settings: &crate::aws::AwsSettings) -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(&crate::aws::sdk_config(settings).await)
}

/// Reads a secret and builds its connection spec.
pub async fn fetch(client: &aws_sdk_secretsmanager::Client, secret_id: &str) -> Result<ConnSpec> {
    conn_from_secret(secret_id, &secret_string(client, secret_id).await?)
}

/// The names of the secrets starting with `prefix` (every page), sorted; names only, never
/// a value.
pub async fn list(client: &aws_sdk_secretsmanager::Client, prefix: &str) -> Result<Vec<String>> {
    use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};
    let filter = Filter::builder()
        .key(FilterNameStringType::Name)
        .values(prefix)
        .build();
    let mut names = Vec::new();
    let mut token = None;
    loop {
        let out = client
            .list_secrets()
            .filters(filter.clone())
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| secret_error(&format!("{prefix}*"), e))?;
        names.extend(
            out.secret_list()
                .iter()
                .filter_map(|s| s.name())
                // The name filter matches words anywhere in the name; keep true prefixes.
                .filter(|n| n.starts_with(prefix))
                .map(str::to_string),
        );
        token = out.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    names.sort();
    Ok(names)
}

/// A secret's string value.
async fn secret_string(client: &aws_sdk_secretsmanager::Client, secret_id: &str) -> Result<String> {
    let out = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| secret_error(secret_id, e))?;
    out.secret_string()
        .map(str::to_string)
        .ok_or_else(|| Error::config(format!("secret {secret_id}"), "has no string value"))
}

fn secret_error<E, R>(secret_id: &str, err: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let transient = matches!(
        err,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
    );
    let message = match err.code() {
        Some("ResourceNotFoundException") => "does not exist".to_string(),
        Some("AccessDeniedException") => "may not be read by this role".to_string(),
        _ => format!("cannot be read: {}", DisplayErrorContext(&err)),
    };
    Error::Io {
        path: format!("secret {secret_id}"),
        message,
        retryable: transient,
        source: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rules_key_secret_is_its_string_trimmed_or_its_key_field() {
        let k = rules_key_from_secret("dbsync/k", "  0123456789abcdef0123\n").expect("plain");
        assert_eq!(k, b"0123456789abcdef0123");
        let k =
            rules_key_from_secret("dbsync/k", r#"{"key": "fedcba9876543210fedc"}"#).expect("json");
        assert_eq!(k, b"fedcba9876543210fedc");
    }

    #[test]
    fn a_short_rules_key_is_refused_naming_the_secret_never_the_value() {
        let e = rules_key_from_secret("dbsync/k", "tiny").expect_err("short");
        let m = e.to_string();
        assert!(
            m.contains("secret dbsync/k") && m.contains("at least 16"),
            "{m}"
        );
        assert!(!m.contains("tiny"), "{m}");
    }

    #[test]
    fn a_json_rules_key_secret_without_its_key_field_says_which_field() {
        let e = rules_key_from_secret("dbsync/k", r#"{"value": "x"}"#).expect_err("no key");
        assert!(e.to_string().contains("\"key\""), "{e}");
    }

    #[test]
    fn the_rds_secret_shape_becomes_a_connection_without_a_url() {
        let spec = conn_from_secret(
            "prod/db",
            r#"{"engine":"postgres","host":"db.internal","port":5433,"username":"app","password":"p@ss/w%rd'\"","dbname":"catalogue","sslmode":"verify-full"}"#,
        )
        .expect("parses");
        assert_eq!(spec.redacted(), "app@db.internal:5433/catalogue");
        assert_eq!(spec.ssl_mode(), crate::pg::conn::SslMode::VerifyFull);
        assert!(!format!("{spec:?}").contains("p@ss"));
    }

    #[test]
    fn a_url_secret_and_a_string_port_are_accepted() {
        let spec = conn_from_secret(
            "s",
            r#"{"url":"postgresql://u:pw@h:6000/d?sslmode=require"}"#,
        )
        .expect("url");
        assert_eq!(spec.redacted(), "u@h:6000/d");
        let spec =
            conn_from_secret("s", r#"{"host":"h","port":"6001","username":"u"}"#).expect("parts");
        assert_eq!(spec.redacted(), "u@h:6001/postgres");
    }

    #[test]
    fn a_malformed_secret_names_the_secret_and_field_but_no_value() {
        let e = conn_from_secret(
            "staging/db",
            r#"{"host":"h","username":"u","password":12345,"port":1}"#,
        )
        .expect_err("bad");
        let m = e.to_string();
        assert!(m.contains("staging/db") && m.contains("password"), "{m}");
        assert!(!m.contains("12345"), "{m}");
        let e = conn_from_secret("x", "not json hunter2").expect_err("bad");
        assert!(!e.to_string().contains("hunter2"));
        let e = conn_from_secret("x", r#"{"host":"h"}"#).expect_err("bad");
        assert!(e.to_string().contains("username"));
    }
}
