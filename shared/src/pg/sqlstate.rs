//! What the server's SQLSTATEs mean to dbsync (by tokio-postgres's names, `SqlState`): which
//! ones make the same work worth another try; and the one constructor of
//! [`Error::Postgres`], which records that decision. Errors are classified by code, never by
//! message text.

use crate::error::{Error, Role};
use tokio_postgres::error::SqlState;

/// The codes after which the same work may succeed on a fresh session: a serialization
/// failure, a deadlock, a lock not available, the session terminated or the server stopping,
/// crashed or still starting (tokio-postgres names them; classes below it does not).
const TRANSIENT: &[SqlState] = &[
    SqlState::T_R_SERIALIZATION_FAILURE,
    SqlState::T_R_DEADLOCK_DETECTED,
    SqlState::LOCK_NOT_AVAILABLE,
    SqlState::ADMIN_SHUTDOWN,
    SqlState::CRASH_SHUTDOWN,
    SqlState::CANNOT_CONNECT_NOW,
];
/// Class `08`: connection exceptions.
const CLASS_CONNECTION_EXCEPTION: &str = "08";
/// Class `53`: insufficient resources (too many connections, out of memory or disk).
const CLASS_INSUFFICIENT_RESOURCES: &str = "53";

/// Whether work that failed with `code` may succeed if tried again on a fresh session.
pub fn is_transient(code: &str) -> bool {
    TRANSIENT.contains(&SqlState::from_code(code))
        || code.starts_with(CLASS_CONNECTION_EXCEPTION)
        || code.starts_with(CLASS_INSUFFICIENT_RESOURCES)
}

/// Whether a tokio-postgres error is the server's `state`.
pub fn is(err: &tokio_postgres::Error, state: &SqlState) -> bool {
    err.code() == Some(state)
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
        assert!(is_transient("40001"));
        assert!(is_transient("40P01") && is_transient("57P01"));
        assert!(is_transient("08006"));
        assert!(is_transient("53300"));
        assert!(!is_transient("42601"));
        assert!(!is_transient("23505"));
        assert!(!is_transient("42501"));
    }
}
