//! The core's one error type. Every variant names what it is about (table, chunk, setting,
//! database role), knows whether a retry can help, and maps to a stable error name that the
//! state machine's Retry/Catch and the CLI's exit line use. Messages never carry credentials:
//! endpoints are always the redacted form from [`crate::pg::conn::ConnSpec`].
//!
//! A base module: every layer imports it, it imports nothing of the crate. What a SQLSTATE
//! means lives in `pg::sqlstate`, which builds [`Error::Postgres`] and decides whether it is
//! retryable.

use std::fmt;

/// The underlying error an [`Error`] was made from, kept for `source()` (the client's, the
/// file system's, the SDK's); its text is already in the message, so callers that print the
/// chain see where it came from without the message repeating it.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias for the core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which database an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The database read from.
    Source,
    /// The database written to.
    Target,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Source => "source",
            Role::Target => "target",
        })
    }
}

/// Everything that can go wrong in the core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting or flag has a bad value; nothing was touched.
    #[error("setting {setting}: {message}")]
    Config {
        /// The flag or environment variable, e.g. `--chunk-size` / `DBSYNC_CHUNK_SIZE`.
        setting: String,
        /// What is wrong with it.
        message: String,
    },
    /// A connection could not be opened.
    #[error("cannot connect to the {role} database {endpoint}: {message}")]
    Connect {
        /// Source or target.
        role: Role,
        /// Redacted endpoint (`user@host:port/db`).
        endpoint: String,
        /// Cause, without credentials.
        message: String,
        /// The error it was made from, when there is one.
        #[source]
        source: Option<Cause>,
    },
    /// A statement failed on the server, or the connection broke while running it.
    #[error("{role} database, {context}: {message}")]
    Postgres {
        /// Source or target.
        role: Role,
        /// What we were doing (names the table and chunk where there is one).
        context: String,
        /// SQLSTATE, when the server sent one.
        sqlstate: Option<String>,
        /// Server message with detail and hint.
        message: String,
        /// Whether the same work may succeed if tried again (a transient SQLSTATE, or a
        /// connection that broke); decided by `pg::sqlstate`.
        retryable: bool,
        /// The client's error.
        #[source]
        source: Option<Cause>,
    },
    /// The target cannot take the source's data; nothing was changed.
    #[error("the target is not ready for this load (nothing was changed):\n  - {}", .problems.join("\n  - "))]
    Incompatible {
        /// Every mismatch found, one line each.
        problems: Vec<String>,
    },
    /// Emptying the in-scope tables would need to cascade to a table outside the scope.
    #[error("refusing to empty the target: {referencing} (not in scope) has foreign key {constraint} to {referenced} (in scope); add {referencing} to the scope or leave {referenced} out. Nothing was changed")]
    OutsideScope {
        /// The out-of-scope table holding the foreign key.
        referencing: String,
        /// The constraint name.
        constraint: String,
        /// The in-scope table it references.
        referenced: String,
    },
    /// Source and target are the same database.
    #[error(
        "source and target are the same database ({0}); refusing to sync a database onto itself"
    )]
    SameDatabase(String),
    /// Another job holds the target.
    #[error("another dbsync job is loading the target {0} right now; wait for it or cancel it")]
    TargetLocked(String),
    /// No table matched the scope.
    #[error("no tables in scope ({0}); check --schemas, --tables and --exclude")]
    EmptyScope(String),
    /// A part's content does not match what the manifest says.
    #[error("part {part} of table {table} is corrupt: {detail}")]
    PartCorrupt {
        /// Table name.
        table: String,
        /// Part key.
        part: String,
        /// What did not match.
        detail: String,
    },
    /// Reading or writing a part, manifest or file failed.
    #[error("{path}: {message}")]
    Io {
        /// File path or object key.
        path: String,
        /// Cause.
        message: String,
        /// Whether retrying might help (network stores).
        retryable: bool,
        /// The error it was made from, when there is one.
        #[source]
        source: Option<Cause>,
    },
    /// The serverless job's own stored state (plan, chunk list, part results) is unreadable
    /// or does not hold what a step needs.
    #[error("job data {path}: {message}")]
    JobData {
        /// Where it was read from.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The target's ledger (schema `dbsync`) does not say what the step needs: an unreadable
    /// entry, or a job that was never started in this target.
    #[error("the target's ledger (schema dbsync): {0}")]
    Ledger(String),
    /// No job record with this id.
    #[error("no job {0}")]
    NoSuchJob(String),
    /// The job stopped (failed or cancelled) before a step that waits on it could go on.
    #[error("job {job} ended ({status}) before {waiting_for}")]
    JobEnded {
        /// The job.
        job: String,
        /// Its status.
        status: String,
        /// What the step was waiting for.
        waiting_for: String,
    },
    /// The snapshot holder published no snapshot in time.
    #[error("job {job}: the snapshot holder published no snapshot within {waited_seconds} s")]
    SnapshotTimeout {
        /// The job.
        job: String,
        /// How long the step waited.
        waited_seconds: u64,
    },
    /// Every connection lease on a database is taken (by this job's other exports or other
    /// jobs'): the export waits and tries again (the state machine retries this name).
    #[error(
        "all {limit} connection leases on {endpoint} are taken; waiting for one to be given back"
    )]
    ConnectionsBusy {
        /// `host:port/db`.
        endpoint: String,
        /// The cap.
        limit: u32,
    },
    /// The deployment's rules forbid this target (`DBSYNC_ALLOWED_TARGETS`,
    /// `DBSYNC_PROTECTED_TARGETS`).
    #[error("{0}")]
    Protected(String),
    /// The run was interrupted (SIGINT, SIGTERM) and stopped; what it had taken away from the
    /// target was put back.
    #[error("interrupted by {0}")]
    Interrupted(String),
    /// A bug or a broken invariant inside dbsync (a worker task panicked, a lock was
    /// poisoned); never the user's input.
    #[error("internal error: {0}; please report it")]
    Internal(String),
    /// A refresh could not replace a span of a table, nor the table whole: its rows' unique
    /// values clashed with another invocation's replacement of the same rows. Every range
    /// replaced is whole; run again, the span compares equal or replaces what is left.
    #[error("refreshing {span}: a unique value of {table} clashed ({message}); the ranges replaced so far are whole, the rest is left as it was")]
    RangeClash {
        /// The table.
        table: String,
        /// The span's label.
        span: String,
        /// The server's error.
        message: String,
    },
    /// An export is not whole: parts the manifest lists are missing or of another size, or
    /// the manifest contradicts itself. Found before anything in the target changes.
    #[error("the export at {location} is not whole; nothing was changed:\n  - {}", .problems.join("\n  - "))]
    ExportBroken {
        /// Where the export is.
        location: String,
        /// Every problem found, one line each.
        problems: Vec<String>,
    },
    /// A manifest is missing, unreadable or of an unknown version.
    #[error("manifest {path}: {message}")]
    Manifest {
        /// Where it was read from.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// An export tried to read a snapshot that is no longer held (its holder's window ended).
    #[error("snapshot {0} is no longer held (its holder ended and no other was alive to relay it, or the job stopped); retry the job, or allow per-chunk consistency")]
    SnapshotReleased(String),
    /// A job step ran before the steps it needs (finalize before every part was loaded).
    #[error("job {job} is not ready: parts {} are not loaded yet", .missing.join(", "))]
    Incomplete {
        /// The job.
        job: String,
        /// Part ids not loaded.
        missing: Vec<String>,
    },
    /// Source and target differ after the copy.
    #[error("verification failed: {} differ:\n  - {}", .differences.len(), .differences.join("\n  - "))]
    VerifyMismatch {
        /// One line per table or sequence that differs.
        differences: Vec<String>,
    },
}

impl Error {
    /// Every stable name with whether the work that raised it may succeed when run again: the
    /// one table [`Error::is_retryable`] answers from, and that the state machine's test
    /// holds the Retry blocks to (exactly the retryable names are retried). Used by the
    /// state machine's Retry/Catch and in job records: never rename one.
    pub const KINDS: &'static [(&'static str, bool)] = &[
        ("DbsyncConfig", false),
        ("DbsyncConnect", true),
        ("DbsyncPostgresTransient", true),
        ("DbsyncPostgres", false),
        ("DbsyncIncompatible", false),
        ("DbsyncOutsideScope", false),
        ("DbsyncSameDatabase", false),
        ("DbsyncTargetLocked", true),
        ("DbsyncEmptyScope", false),
        ("DbsyncPartCorrupt", false),
        ("DbsyncIoTransient", true),
        ("DbsyncIo", false),
        ("DbsyncManifest", false),
        ("DbsyncIncomplete", false),
        ("DbsyncSnapshotReleased", false),
        ("DbsyncVerifyMismatch", false),
        ("DbsyncJobData", false),
        ("DbsyncLedger", false),
        ("DbsyncNoSuchJob", false),
        ("DbsyncJobEnded", false),
        ("DbsyncSnapshotTimeout", false),
        ("DbsyncConnectionsBusy", true),
        ("DbsyncExportBroken", false),
        ("DbsyncProtected", false),
        ("DbsyncInterrupted", false),
        ("DbsyncInternal", false),
        ("DbsyncRangeClash", true),
    ];

    /// The stable names, in [`Error::KINDS`]'s order.
    pub fn names() -> impl Iterator<Item = &'static str> {
        Self::KINDS.iter().map(|(name, _)| *name)
    }

    /// The stable name of this error (one of [`Error::KINDS`]).
    pub fn name(&self) -> &'static str {
        match self {
            Error::Config { .. } => "DbsyncConfig",
            Error::Connect { .. } => "DbsyncConnect",
            Error::Postgres {
                retryable: true, ..
            } => "DbsyncPostgresTransient",
            Error::Postgres { .. } => "DbsyncPostgres",
            Error::Incompatible { .. } => "DbsyncIncompatible",
            Error::OutsideScope { .. } => "DbsyncOutsideScope",
            Error::SameDatabase(_) => "DbsyncSameDatabase",
            Error::TargetLocked(_) => "DbsyncTargetLocked",
            Error::EmptyScope(_) => "DbsyncEmptyScope",
            Error::PartCorrupt { .. } => "DbsyncPartCorrupt",
            Error::Io {
                retryable: true, ..
            } => "DbsyncIoTransient",
            Error::Io { .. } => "DbsyncIo",
            Error::Manifest { .. } => "DbsyncManifest",
            Error::Incomplete { .. } => "DbsyncIncomplete",
            Error::SnapshotReleased(_) => "DbsyncSnapshotReleased",
            Error::VerifyMismatch { .. } => "DbsyncVerifyMismatch",
            Error::JobData { .. } => "DbsyncJobData",
            Error::Ledger(_) => "DbsyncLedger",
            Error::NoSuchJob(_) => "DbsyncNoSuchJob",
            Error::JobEnded { .. } => "DbsyncJobEnded",
            Error::SnapshotTimeout { .. } => "DbsyncSnapshotTimeout",
            Error::ConnectionsBusy { .. } => "DbsyncConnectionsBusy",
            Error::ExportBroken { .. } => "DbsyncExportBroken",
            Error::Protected(_) => "DbsyncProtected",
            Error::Interrupted(_) => "DbsyncInterrupted",
            Error::Internal(_) => "DbsyncInternal",
            Error::RangeClash { .. } => "DbsyncRangeClash",
        }
    }

    /// Whether running the same unit of work again may succeed ([`Error::KINDS`]).
    pub fn is_retryable(&self) -> bool {
        let name = self.name();
        Self::KINDS.iter().any(|(n, retry)| *n == name && *retry)
    }

    /// An I/O error on a local path.
    pub fn io(path: impl Into<String>, err: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            message: err.to_string(),
            retryable: false,
            source: Some(Box::new(err)),
        }
    }

    /// A bad setting.
    pub fn config(setting: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config {
            setting: setting.into(),
            message: message.into(),
        }
    }

    /// The SQLSTATE of a server error, if this is one.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            Error::Postgres { sqlstate, .. } => sqlstate.as_deref(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_name_is_listed_in_names() {
        let samples = vec![
            Error::config("x", "y"),
            Error::Connect {
                role: Role::Source,
                endpoint: "e".into(),
                message: "m".into(),
                source: None,
            },
            Error::Postgres {
                role: Role::Target,
                context: "c".into(),
                sqlstate: Some("40001".into()),
                message: "m".into(),
                retryable: true,
                source: None,
            },
            Error::Postgres {
                role: Role::Target,
                context: "c".into(),
                sqlstate: Some("42P01".into()),
                message: "m".into(),
                retryable: false,
                source: None,
            },
            Error::Incompatible { problems: vec![] },
            Error::OutsideScope {
                referencing: "a".into(),
                constraint: "c".into(),
                referenced: "b".into(),
            },
            Error::SameDatabase("x".into()),
            Error::TargetLocked("x".into()),
            Error::EmptyScope("x".into()),
            Error::PartCorrupt {
                table: "t".into(),
                part: "p".into(),
                detail: "d".into(),
            },
            Error::Io {
                path: "p".into(),
                message: "m".into(),
                retryable: true,
                source: None,
            },
            Error::io("p", std::io::Error::other("x")),
            Error::Manifest {
                path: "p".into(),
                message: "m".into(),
            },
            Error::Incomplete {
                job: "j".into(),
                missing: vec![],
            },
            Error::SnapshotReleased("s".into()),
            Error::VerifyMismatch {
                differences: vec![],
            },
            Error::JobData {
                path: "p".into(),
                message: "m".into(),
            },
            Error::Ledger("l".into()),
            Error::NoSuchJob("j".into()),
            Error::JobEnded {
                job: "j".into(),
                status: "failed".into(),
                waiting_for: "w".into(),
            },
            Error::SnapshotTimeout {
                job: "j".into(),
                waited_seconds: 1,
            },
            Error::ConnectionsBusy {
                endpoint: "h:5432/d".into(),
                limit: 3,
            },
            Error::ExportBroken {
                location: "l".into(),
                problems: vec![],
            },
            Error::Protected("p".into()),
            Error::Interrupted("SIGINT".into()),
            Error::Internal("i".into()),
            Error::RangeClash {
                table: "t".into(),
                span: "t ranges 1-2 of 9".into(),
                message: "m".into(),
            },
        ];
        let names: std::collections::BTreeSet<_> = samples.iter().map(|e| e.name()).collect();
        let listed: std::collections::BTreeSet<_> = Error::names().collect();
        assert_eq!(names, listed);
        assert_eq!(Error::KINDS.len(), listed.len(), "a name listed twice");
    }

    #[test]
    fn a_client_error_stays_reachable_as_the_source() {
        use std::error::Error as _;
        let e = Error::io("/tmp/x", std::io::Error::other("disk on fire"));
        let cause = e.source().map(|c| c.to_string());
        assert_eq!(cause.as_deref(), Some("disk on fire"));
        assert!(!e.is_retryable() && e.name() == "DbsyncIo");
    }
}
