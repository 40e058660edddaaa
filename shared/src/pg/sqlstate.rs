//! What the server's SQLSTATEs mean to dbsync: the codes the core reacts to, by name; which
//! ones make the same work worth another try; and the one constructor of
//! [`Error::Postgres`], which records that decision. Errors are classified by code, never by
//! message text.

use crate::error::{Error, Role};

/// `22023` invalid_parameter_value: what `SET TRANSACTION SNAPSHOT` answers for a snapshot
/// whose holder let go.
pub const INVALID_PARAMETER_VALUE: &str = "22023";
/// `55000` object_not_in_prerequisite_state: what `SET TRANSACTION SNAPSHOT` answers for a
/// snapshot whose holder's process has just ended (its file not yet removed).
pub const OBJECT_NOT_IN_PREREQUISITE_STATE: &str = "55000";
/// `42501` insufficient_privilege.
pub const INSUFFICIENT_PRIVILEGE: &str = "42501";
/// `40001` serialization_failure.
pub const SERIALIZATION_FAILURE: &str = "40001";
/// `40P01` deadlock_detected.
pub const DEADLOCK_DETECTED: &str = "40P01";
/// `55P03` lock_not_available.
pub const LOCK_NOT_AVAILABLE: &str = "55P03";
/// `57P01` admin_shutdown (the session was terminated, or the server is stopping).
pub const ADMIN_SHUTDOWN: &str = "57P01";
/// `57P02` crash_shutdown.
pub const CRASH_SHUTDOWN: &str = "57P02";
/// `57P03` cannot_connect_now (the server is starting up).
pub const CANNOT_CONNECT_NOW: &str = "57P03";
/// Class `08`: connection exceptions.
pub const CLASS_CONNECTION_EXCEPTION: &str = "08";
/// Class `53`: insufficient resources (too many connections, out of memory or disk).
pub const CLASS_INSUFFICIENT_RESOURCES: &str = "53";

/// Whether work that failed with `code` may succeed if tried again on a fresh session.
pub fn is_transient(code: &str) -> bool {
    matches!(
        code,
        SERIALIZATION_FAILURE
            | DEADLOCK_DETECTED
            | LOCK_NOT_AVAILABLE
            | ADMIN_SHUTDOWN
            | CRASH_SHUTDOWN
            | CANNOT_CONNECT_NOW
    ) || code.starts_with(CLASS_CONNECTION_EXCEPTION)
        || code.starts_with(CLASS_INSUFFICIENT_RESOURCES)
}

/// The SQLSTATE of a tokio-postgres error, if the server sent one.
pub fn code(err: &tokio_postgres::Error) -> Option<&str> {
    err.code().map(|c| c.code())
}

impl Error {
    /// Wraps a tokio-postgres error with what we were doing. An error without a SQLSTATE is
    /// a connection that broke (I/O, server gone): worth another try.
    pub fn pg(role: Role, context: impl Into<String>, err: tokio_postgres::Error) -> Self {
        let sqlstate = code(&err).map(str::to_string);
        Error::Postgres {
            role,
            context: context.into(),
            retryable: sqlstate.as_deref().is_none_or(is_transient),
            sqlstate,
            message: describe(&err),
            source: Some(Box::new(err)),
        }
    }
}

/// Human-readable text of a tokio-postgres error: the server's message, detail and hint, or
/// the client-side cause chain. tokio-postgres errors never contain the connection string.
pub fn describe(err: &tokio_postgres::Error) -> String {
    if let Some(db) = err.as_db_error() {
        let mut s = format!("{} (SQLSTATE {})", db.message(), db.code().code());
        for (label, part) in [
            ("detail", db.detail()),
            ("hint", db.hint()),
            ("where", db.where_()),
        ] {
            if let Some(p) = part {
                s.push_str(&format!("; {label}: {p}"));
            }
        }
        return s;
    }
    let mut s = err.to_string();
    let mut cur = std::error::Error::source(err);
    while let Some(e) = cur {
        s.push_str(": ");
        s.push_str(&e.to_string());
        cur = e.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialization_failures_are_retryable_and_syntax_errors_are_not() {
        assert!(is_transient(SERIALIZATION_FAILURE));
        assert!(is_transient("08006"));
        assert!(is_transient("53300"));
        assert!(!is_transient("42601"));
        assert!(!is_transient("23505"));
        assert!(!is_transient(INSUFFICIENT_PRIVILEGE));
    }
}
