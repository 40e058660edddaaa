//! `POST /connections/test` (can dbsync reach the database a secret names, over TLS or not,
//! and may its role be a source or a target) and `GET /databases` (the secrets under the
//! deployment's prefix, each with the uses the deployment allows). Answers name secrets and
//! endpoints (`host:port/db`), never a secret's value.

use super::{target_is, Api, ApiResult};
use crate::error::{Error, Role};
use crate::model::scope::glob;
use crate::pg::conn::ConnSpec;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

/// How long a connection test waits for the database, well inside the API's 30 seconds.
const TEST_TIMEOUT: Duration = Duration::from_secs(15);

/// The body of `POST /connections/test`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionTest {
    /// Secrets Manager id of the database's credentials.
    pub secret: String,
}

/// Parses a connection test's body, naming what is wrong.
pub fn parse_connection_test(body: &[u8]) -> crate::error::Result<ConnectionTest> {
    let t: ConnectionTest = serde_json::from_slice(body).map_err(|e| {
        Error::config(
            "request body",
            format!("is not a connection test ({{\"secret\": \"<secret id>\"}}): {e}"),
        )
    })?;
    if t.secret.trim().is_empty() {
        return Err(Error::config("secret", "is empty"));
    }
    Ok(t)
}

impl Api<'_> {
    /// What the deployment allows a database to be used as.
    fn uses(&self, secret: &str, spec: &ConnSpec) -> Value {
        let s = self.settings;
        let protected = target_is(&s.protected_targets, secret, &spec.identity());
        let listed =
            s.allowed_targets.is_empty() || s.allowed_targets.iter().any(|p| glob(p, secret));
        json!({
            "source_allowed": true,
            "target_allowed": listed && !protected,
            "protected": protected,
        })
    }

    /// `POST /connections/test`: connects with the secret's credentials and reports the
    /// server, TLS and what the role lacks for each use ([`test_connection`]).
    pub async fn test_connection(&self, secret: &str) -> ApiResult<Value> {
        let spec = self.resolve(secret).await?;
        Ok(test_connection(secret, &spec, self.uses(secret, &spec)).await)
    }

    /// `GET /databases`: the secrets under the deployment's prefix that describe a database,
    /// with their endpoints and allowed uses; others (a rules key, a malformed secret) are
    /// listed apart with the reason.
    pub async fn databases(&self) -> ApiResult<Value> {
        let prefix = &self.settings.secrets_prefix;
        let mut databases = Vec::new();
        let mut others = Vec::new();
        for secret in self.credentials.list(prefix).await? {
            match self.credentials.resolve(&secret).await {
                Ok(spec) => databases.push(json!({
                    "secret": secret,
                    "endpoint": spec.identity(),
                    "uses": self.uses(&secret, &spec),
                })),
                Err(e) => others.push(json!({ "secret": secret, "reason": e.to_string() })),
            }
        }
        Ok(json!({ "prefix": prefix, "databases": databases, "other_secrets": others }))
    }
}

/// Connects to `spec` (named `secret`, allowed `uses`) and reports the server, TLS and what
/// the role lacks for each use. An unreachable database is an answer (`reachable: false`
/// with the error), not a failure. The local console tests its databases with it too.
pub async fn test_connection(secret: &str, spec: &ConnSpec, uses: Value) -> Value {
    let mut answer = json!({
        "secret": secret,
        "endpoint": spec.identity(),
        "uses": uses,
    });
    let connected = tokio::time::timeout(
        TEST_TIMEOUT,
        spec.connect(Role::Target, "dbsync-connection-test"),
    )
    .await
    .unwrap_or_else(|_| {
        Err(Error::Connect {
            role: Role::Target,
            endpoint: spec.identity(),
            message: format!("no answer within {} s", TEST_TIMEOUT.as_secs()),
            source: None,
        })
    });
    // Once connected, an error is about the server, not whether it answers.
    let probed = match connected {
        Ok(client) => {
            answer["reachable"] = json!(true);
            crate::pg::probe::probe(&client).await
        }
        Err(e) => {
            answer["reachable"] = json!(false);
            Err(e)
        }
    };
    match probed {
        Ok(p) => {
            if let (Value::Object(a), Ok(Value::Object(p))) =
                (&mut answer, serde_json::to_value(&p))
            {
                a.extend(p);
            }
        }
        Err(e) => answer["error"] = json!({ "name": e.name(), "message": e.to_string() }),
    }
    answer
}
