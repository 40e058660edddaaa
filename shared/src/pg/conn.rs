//! Connections: parsing postgres URLs and PG* environment variables, TLS through rustls
//! honouring `sslmode`, and the pinned session settings every dbsync session runs with.
//! Owns the only place a password is held; its `Debug` and `Display` redact it.

use crate::error::{Error, Result, Role};
use crate::model::ident::quote_literal;
use crate::pg::sqlstate::describe;
use crate::pg::tls::tls_config;
pub use crate::pg::tls::SslMode;
use crate::pg::{handshake, pgfiles};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;
use tokio_postgres::config::{Host, SslMode as PgSslMode};
use tokio_postgres::{Client, Config, NoTls};

/// Settings pinned on every source and target session, so the text form of every value is
/// the same on both sides whatever the servers' defaults are. Recorded in the manifest.
pub const SESSION_SETTINGS: &[(&str, &str)] = &[
    ("client_encoding", "UTF8"),
    ("DateStyle", "ISO, YMD"),
    ("IntervalStyle", "postgres"),
    ("extra_float_digits", "3"),
    ("TimeZone", "UTC"),
    ("bytea_output", "hex"),
    ("standard_conforming_strings", "on"),
    // money's text form follows lc_monetary: pin it or a target in another locale misreads it.
    ("lc_monetary", "C"),
    // pg_dump's choice: content accepts every value a column can hold.
    ("xmloption", "content"),
    // Refuse rather than silently filter rows hidden by row-level security.
    ("row_security", "off"),
    ("statement_timeout", "0"),
    ("lock_timeout", "0"),
    ("idle_in_transaction_session_timeout", "0"),
    // Only pg_catalog on the path: user functions cannot shadow what our SQL calls.
    ("search_path", "pg_catalog"),
];

/// A parsed connection specification. Holds the password; never printed with it.
#[derive(Clone)]
pub struct ConnSpec {
    config: Config,
    ssl: SslMode,
    root_cert: Option<String>,
    keyed: bool,
}

impl fmt::Debug for ConnSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnSpec")
            .field("endpoint", &self.redacted())
            .field("ssl", &self.ssl)
            .finish()
    }
}

impl fmt::Display for ConnSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// A connection given field by field (a Secrets Manager secret's shape).
#[derive(Clone, Copy)]
pub struct ConnParts<'a> {
    /// Host name or address.
    pub host: &'a str,
    /// Port.
    pub port: u16,
    /// Role.
    pub user: &'a str,
    /// Password, if any.
    pub password: Option<&'a str>,
    /// Database.
    pub dbname: &'a str,
    /// libpq `sslmode` (default `prefer`).
    pub sslmode: Option<&'a str>,
    /// CA bundle path for `verify-ca` / `verify-full`.
    pub sslrootcert: Option<&'a str>,
}

/// Where to read PG* variables from; a function so tests can pass a map.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

impl ConnSpec {
    /// Parses a `postgresql://` URL (or libpq key=value string), filling what it leaves out
    /// from the PG* environment variables as libpq does. `setting` names the flag in errors.
    pub fn parse(url: &str, setting: &str) -> Result<Self> {
        Self::parse_with_env(url, setting, &|k| std::env::var(k).ok())
    }

    /// As [`ConnSpec::parse`], reading variables through `env`.
    pub fn parse_with_env(url: &str, setting: &str, env: EnvLookup<'_>) -> Result<Self> {
        let (rest, mut params) = split_tls_params(url);
        let mut config = if rest.trim().is_empty() {
            Config::new()
        } else {
            Config::from_str(&rest).map_err(|e| {
                // The parse error text may quote the input; never repeat it.
                Error::config(
                    setting,
                    format!(
                        "not a valid postgres URL ({})",
                        e.to_string().split(':').next().unwrap_or("invalid")
                    ),
                )
            })?
        };
        // libpq's order: what the URL says, then its service's settings, then PG* variables.
        // An empty variable counts as unset (as libpq treats an empty password).
        let env = &|k: &str| env(k).filter(|v| !v.is_empty());
        if let Some(name) = params.service.clone().or_else(|| env("PGSERVICE")) {
            apply_service(&mut config, &mut params, &pgfiles::service(&name, env)?)?;
        }
        if config.get_hosts().is_empty() {
            config.host(env("PGHOST").as_deref().unwrap_or("localhost"));
        }
        if config.get_ports().is_empty() {
            if let Some(p) = env("PGPORT") {
                let port = p
                    .parse::<u16>()
                    .map_err(|_| Error::config("PGPORT", format!("not a port number: {p:?}")))?;
                config.port(port);
            }
        }
        if config.get_user().is_none() {
            let user = env("PGUSER")
                .or_else(|| env("USER"))
                .unwrap_or_else(|| "postgres".into());
            config.user(&user);
        }
        if config.get_password().is_none() {
            if let Some(p) = env("PGPASSWORD") {
                config.password(p);
            }
        }
        if config.get_dbname().is_none() {
            let db = env("PGDATABASE")
                .or_else(|| config.get_user().map(str::to_string))
                .unwrap_or_else(|| "postgres".into());
            config.dbname(&db);
        }
        if config.get_password().is_none_or(<[u8]>::is_empty) {
            password_from_file(&mut config, env);
        }
        if config.get_application_name().is_none() {
            config.application_name("dbsync");
        }
        config.connect_timeout(Duration::from_secs(30));
        config.keepalives_idle(Duration::from_secs(60));
        let mode = params
            .sslmode
            .or_else(|| env("PGSSLMODE"))
            .unwrap_or_else(|| "prefer".into());
        let ssl = mode
            .parse::<SslMode>()
            .map_err(|m| Error::config(setting, m))?;
        let root_cert = params.sslrootcert.or_else(|| env("PGSSLROOTCERT"));
        Ok(ConnSpec {
            config,
            ssl,
            root_cert,
            keyed: false,
        })
    }

    /// A spec from separate fields (as a Secrets Manager secret holds them): no URL is
    /// assembled, so passwords with `@`, `/`, `%` or quotes need no escaping. `setting`
    /// names where the fields came from in errors.
    pub fn from_parts(parts: &ConnParts<'_>, setting: &str) -> Result<Self> {
        let ConnParts {
            host,
            port,
            user,
            password,
            dbname,
            sslmode,
            sslrootcert,
        } = *parts;
        let mut config = Config::new();
        config
            .host(host)
            .port(port)
            .user(user)
            .dbname(dbname)
            .application_name("dbsync")
            .connect_timeout(Duration::from_secs(30))
            .keepalives_idle(Duration::from_secs(60));
        if let Some(p) = password {
            config.password(p);
        }
        let ssl = sslmode
            .unwrap_or("prefer")
            .parse::<SslMode>()
            .map_err(|m| Error::config(setting, m))?;
        Ok(ConnSpec {
            config,
            ssl,
            root_cert: sslrootcert.map(str::to_string),
            keyed: false,
        })
    }

    /// `user@host:port/db`, no password: the only form that reaches logs and errors.
    pub fn redacted(&self) -> String {
        let host = self
            .config
            .get_hosts()
            .first()
            .map(|h| match h {
                Host::Tcp(s) => s.clone(),
                Host::Unix(p) => p.display().to_string(),
            })
            .unwrap_or_default();
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        format!(
            "{}@{}:{}/{}",
            self.config.get_user().unwrap_or(""),
            host,
            port,
            self.config.get_dbname().unwrap_or("")
        )
    }

    /// `host:port/db`: which database this is, whoever connects (the target lock's key).
    pub fn identity(&self) -> String {
        let r = self.redacted();
        r.rsplit_once('@')
            .map(|(_, rest)| rest.to_string())
            .unwrap_or(r)
    }

    /// The TLS mode in force.
    pub fn ssl_mode(&self) -> SslMode {
        self.ssl
    }

    /// The database name.
    pub fn dbname(&self) -> &str {
        self.config.get_dbname().unwrap_or("")
    }

    /// The same endpoint, its sessions holding the data rules' hash key (HMAC pads) as
    /// custom settings of the startup packet: the server never sees it in statement text,
    /// so it never reaches `pg_stat_activity` or the statement log.
    pub fn with_rules_key(mut self, key: &[u8]) -> ConnSpec {
        let (ipad, opad) = crate::model::rules::hmac_pads(key);
        let mut options = self.config.get_options().unwrap_or("").to_string();
        for (k, v) in [
            (crate::model::rules::IPAD_SETTING, ipad),
            (crate::model::rules::OPAD_SETTING, opad),
        ] {
            options.push_str(&format!(" -c {k}={v}"));
        }
        self.config.options(options.trim_start());
        self.keyed = true;
        self
    }

    /// Sessions hold a data rules key ([`ConnSpec::with_rules_key`]).
    pub fn has_rules_key(&self) -> bool {
        self.keyed
    }

    /// Opens a session, applies [`SESSION_SETTINGS`] and tags it with `application_name`.
    pub async fn connect(&self, role: Role, application_name: &str) -> Result<Client> {
        let mut config = self.config.clone();
        config.application_name(application_name);
        let err = |message: String| Error::Connect {
            role,
            endpoint: self.redacted(),
            message,
            source: None,
        };
        let client = match self.ssl {
            SslMode::Disable => {
                config.ssl_mode(PgSslMode::Disable);
                let (client, connection) = match config.connect(NoTls).await {
                    Ok(c) => c,
                    Err(e) => return Err(err(self.explain(&e).await)),
                };
                spawn_connection(connection, role);
                client
            }
            mode => {
                config.ssl_mode(if mode == SslMode::Prefer {
                    PgSslMode::Prefer
                } else {
                    PgSslMode::Require
                });
                let tls = tls_config(mode, self.root_cert.as_deref()).map_err(err)?;
                let connector = tokio_postgres_rustls::MakeRustlsConnect::new(tls);
                let (client, connection) = match config.connect(connector).await {
                    Ok(c) => c,
                    Err(e) => return Err(err(self.explain(&e).await)),
                };
                spawn_connection(connection, role);
                client
            }
        };
        client
            .batch_execute(&session_settings_sql())
            .await
            .map_err(|e| Error::pg(role, "applying the session settings", e))?;
        Ok(client)
    }
}

impl ConnSpec {
    /// A failed connect's description, in libpq's words where tokio-postgres's differ.
    async fn explain(&self, e: &tokio_postgres::Error) -> String {
        let host = match self.config.get_hosts().first() {
            Some(Host::Tcp(h)) => Some(h.as_str()),
            _ => None,
        };
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        handshake::explain(describe(e), host, port).await
    }
}

fn spawn_connection<S, T>(connection: tokio_postgres::Connection<S, T>, role: Role)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(%role, error = %describe(&e), "connection closed");
        }
    });
}

/// The `SET` statements for [`SESSION_SETTINGS`].
pub fn session_settings_sql() -> String {
    SESSION_SETTINGS
        .iter()
        .map(|(k, v)| format!("SET {k} = {};", quote_literal(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Default)]
struct TlsParams {
    sslmode: Option<String>,
    sslrootcert: Option<String>,
    /// libpq's `service`: a section of the connection service file.
    service: Option<String>,
}

/// tokio-postgres rejects `verify-full`/`verify-ca` and unknown keys like `sslrootcert`, so
/// take them out of the URL (or key=value string) and handle them ourselves.
fn split_tls_params(url: &str) -> (String, TlsParams) {
    let mut p = TlsParams::default();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return (url.to_string(), p);
        };
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|s| !s.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "sslmode" => p.sslmode = Some(percent_decode(v)),
                "sslrootcert" => p.sslrootcert = Some(percent_decode(v)),
                "service" => p.service = Some(percent_decode(v)),
                _ => kept.push(pair),
            }
        }
        let rest = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        (rest, p)
    } else {
        let mut kept = Vec::new();
        for tok in url.split_whitespace() {
            if let Some(v) = tok.strip_prefix("sslmode=") {
                p.sslmode = Some(v.trim_matches('\'').to_string());
            } else if let Some(v) = tok.strip_prefix("sslrootcert=") {
                p.sslrootcert = Some(v.trim_matches('\'').to_string());
            } else if let Some(v) = tok.strip_prefix("service=") {
                p.service = Some(v.trim_matches('\'').to_string());
            } else {
                kept.push(tok);
            }
        }
        (kept.join(" "), p)
    }
}

/// Fills what the URL left out from a service's settings (`host`, `port`, `user`,
/// `password`, `dbname`, `sslmode`, `sslrootcert`; others are libpq's alone and ignored).
fn apply_service(
    config: &mut Config,
    params: &mut TlsParams,
    svc: &std::collections::BTreeMap<String, String>,
) -> Result<()> {
    if let (true, Some(h)) = (config.get_hosts().is_empty(), svc.get("host")) {
        config.host(h);
    }
    if let (true, Some(p)) = (config.get_ports().is_empty(), svc.get("port")) {
        let port = p
            .parse::<u16>()
            .map_err(|_| Error::config("service", format!("port is not a port number: {p:?}")))?;
        config.port(port);
    }
    if let (None, Some(u)) = (config.get_user(), svc.get("user")) {
        config.user(u);
    }
    if let (None, Some(pw)) = (config.get_password(), svc.get("password")) {
        config.password(pw.as_str());
    }
    if let (None, Some(d)) = (config.get_dbname(), svc.get("dbname")) {
        config.dbname(d);
    }
    params.sslmode = params
        .sslmode
        .take()
        .or_else(|| svc.get("sslmode").cloned());
    params.sslrootcert = params
        .sslrootcert
        .take()
        .or_else(|| svc.get("sslrootcert").cloned());
    Ok(())
}

/// The password file's password for the first host, as libpq looks it up (a socket
/// directory counts as `localhost`).
fn password_from_file(config: &mut Config, env: EnvLookup<'_>) {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        _ => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let (db, user) = (
        config.get_dbname().unwrap_or_default().to_string(),
        config.get_user().unwrap_or_default().to_string(),
    );
    if let Some(pw) = pgfiles::password(&host, port, &db, &user, env) {
        config.password(pw);
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn verify_full_in_a_url_is_accepted_and_removed_before_tokio_postgres_sees_it() {
        let spec = ConnSpec::parse_with_env(
            "postgresql://app:s3cret@db.example:6432/prod?sslmode=verify-full&sslrootcert=/etc/rds.pem&application_name=x",
            "--source",
            &no_env,
        )
        .expect("parses");
        assert_eq!(spec.ssl_mode(), SslMode::VerifyFull);
        assert_eq!(spec.root_cert.as_deref(), Some("/etc/rds.pem"));
        assert_eq!(spec.redacted(), "app@db.example:6432/prod");
    }

    #[test]
    fn debug_and_display_never_show_the_password() {
        let spec = ConnSpec::parse_with_env("postgresql://app:hunter2@h/db", "--source", &no_env)
            .expect("parses");
        assert!(!format!("{spec:?}").contains("hunter2"));
        assert!(!spec.to_string().contains("hunter2"));
    }

    #[test]
    fn missing_parts_come_from_pg_environment_variables() {
        let env = |k: &str| match k {
            "PGHOST" => Some("pg.internal".to_string()),
            "PGPORT" => Some("5433".to_string()),
            "PGUSER" => Some("sync".to_string()),
            "PGDATABASE" => Some("catalogue".to_string()),
            "PGSSLMODE" => Some("require".to_string()),
            _ => None,
        };
        let spec = ConnSpec::parse_with_env("", "--source", &env).expect("parses");
        assert_eq!(spec.redacted(), "sync@pg.internal:5433/catalogue");
        assert_eq!(spec.ssl_mode(), SslMode::Require);
    }

    #[test]
    fn an_unknown_sslmode_names_the_setting() {
        let err =
            ConnSpec::parse_with_env("postgresql://h/db?sslmode=sometimes", "--target", &no_env)
                .expect_err("refused");
        let msg = err.to_string();
        assert!(
            msg.contains("--target") && msg.contains("sometimes"),
            "{msg}"
        );
    }

    #[test]
    fn a_bad_url_error_does_not_echo_the_password() {
        let err = ConnSpec::parse_with_env(
            "postgresql://u:topsecret@h:notaport/db",
            "--source",
            &no_env,
        )
        .expect_err("refused");
        assert!(!err.to_string().contains("topsecret"), "{err}");
    }

    #[test]
    fn key_value_strings_are_accepted_too() {
        let spec = ConnSpec::parse_with_env(
            "host=h user=u dbname=d sslmode=disable",
            "--source",
            &no_env,
        )
        .expect("parses");
        assert_eq!(spec.redacted(), "u@h:5432/d");
        assert_eq!(spec.ssl_mode(), SslMode::Disable);
    }

    #[test]
    fn percent_encoded_values_are_decoded() {
        assert_eq!(percent_decode("%2Fetc%2Fca.pem"), "/etc/ca.pem");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
