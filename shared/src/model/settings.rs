//! Where each setting of a sync appears under one name: its flag on `dbsync sync`, its field
//! in the API's request and in the state machine's input ([`SYNC_SETTINGS`]). Tests read the
//! command line, the request and the execution input against this table.

/// Where each setting of a sync appears: its flag on `dbsync sync` (or another command), its
/// field in the API's request, its field in the state machine's input, one name throughout
/// where it is the same thing. A row with a blank says why the setting is not there; tests
/// read the command line, the request and the execution input against this table, so a
/// setting added to one and not the others (or renamed on the way) fails them.
pub const SYNC_SETTINGS: &[Setting] = &[
    s(
        "source",
        Some("source"),
        Some("source_secret"),
        Some("source_secret"),
        "a URL on the command line; a Secrets Manager id in the service",
    )
    .export_decides(),
    s(
        "target",
        Some("target"),
        Some("target_secret"),
        Some("target_secret"),
        "a URL on the command line; a Secrets Manager id in the service",
    ),
    same("schemas", "scope").export_decides(),
    same("tables", "scope").export_decides(),
    same("exclude", "scope").export_decides(),
    same("allow_empty_patterns", "scope").export_decides(),
    s(
        "chunk_size",
        Some("chunk_size"),
        Some("chunk_size"),
        Some("chunk_bytes"),
        "the execution input holds the size resolved to bytes",
    )
    .export_decides(),
    s(
        "workers",
        Some("jobs"),
        Some("concurrency"),
        Some("concurrency"),
        "local connections per side (pg_dump's -j); in the service, Lambdas at once",
    ),
    same("keep_indexes", "keep_indexes"),
    same("analyze", "analyze"),
    same("atomic", "atomic"),
    same("create_schema", "create_schema"),
    s(
        "backup",
        Some("backup"),
        Some("backup"),
        Some("backup_job_id"),
        "a location on the command line; the service picks the S3 place (a job of its own)",
    )
    .service_only(),
    s(
        "rules",
        Some("rules"),
        Some("rules"),
        Some("rules"),
        "a file on the command line; the file's JSON in a request",
    )
    .export_decides(),
    s(
        "rules_key",
        None,
        Some("rules_key_secret"),
        Some("rules_key_secret"),
        "DBSYNC_RULES_KEY in the environment, never a flag (so never in ps)",
    )
    .export_decides(),
    s(
        "from",
        None,
        Some("from"),
        Some("data_job_id"),
        "dbsync import --from; in the execution the job whose parts load (a retry's too)",
    ),
    s(
        "mode",
        None,
        Some("mode"),
        Some("mode"),
        "commands of their own: dbsync sync, export, dump (refresh: sync --changed-only)",
    ),
    s(
        "consistency",
        None,
        Some("consistency"),
        Some("consistency"),
        "one machine holds one snapshot throughout; the service relays it",
    )
    .export_decides(),
    s(
        "snapshot_window_seconds",
        None,
        Some("snapshot_window_seconds"),
        Some("snapshot_window_seconds"),
        "the service's snapshot relay",
    )
    .export_decides(),
    s(
        "export_budget_seconds",
        None,
        Some("export_budget_seconds"),
        Some("export_budget_seconds"),
        "Lambda time limits",
    )
    .export_decides(),
    s(
        "finalize_budget_seconds",
        None,
        Some("finalize_budget_seconds"),
        Some("finalize_budget_seconds"),
        "Lambda time limits",
    ),
    s(
        "page_rows",
        None,
        Some("page_rows"),
        Some("page_rows"),
        "the service's keyset pages; a local sync streams each chunk whole",
    )
    .export_decides(),
    s(
        "source_connections",
        None,
        Some("source_connections"),
        Some("source_connections"),
        "connection leases shared by the service's jobs",
    )
    .export_decides(),
    s(
        "protected",
        Some("protected"),
        None,
        None,
        "a deployment setting of the service (DBSYNC_PROTECTED_TARGETS), never a request's",
    ),
    s(
        "dry_run",
        Some("dry_run"),
        None,
        None,
        "POST /syncs?dry_run=true, a query parameter; nothing starts",
    ),
    s(
        "verify",
        Some("verify"),
        None,
        None,
        "the service's loads check rows and checksums per part; dbsync verify compares",
    ),
    s(
        "via",
        Some("via"),
        None,
        None,
        "the service always goes through S3 parts",
    ),
    s(
        "force",
        Some("force"),
        None,
        None,
        "the service's parts go under the job's own id",
    ),
    s(
        "atomic_max_size",
        Some("atomic_max_size"),
        None,
        None,
        "the service's cap is fixed (8 GiB: the swap is one Finalize invocation)",
    ),
    s(
        "changed_only",
        Some("changed_only"),
        Some("mode"),
        Some("mode"),
        "the request's and the execution's \"mode\": \"refresh\"",
    ),
    s(
        "changed_max_share",
        Some("changed_max_share"),
        None,
        None,
        "the local refresh's fallback to a whole table; the service replaces a span at once \
         past half of it",
    ),
    s("job_id", None, None, Some("job_id"), "made by the service"),
    s(
        "lock_key",
        None,
        None,
        Some("lock_key"),
        "made by the service",
    ),
];

/// One row of [`SYNC_SETTINGS`].
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// The setting's one name.
    pub name: &'static str,
    /// `dbsync sync --<flag>` (underscores for dashes).
    pub cli: Option<&'static str>,
    /// The API request's field.
    pub request: Option<&'static str>,
    /// The state machine input's field.
    pub execution: Option<&'static str>,
    /// Why a blank is blank, or why the names differ.
    pub why: &'static str,
    /// The deployed service only: the local console refuses the request field (settings
    /// without a flag are, and those marked [`Setting::service_only`]).
    pub service_only: bool,
    /// A load `from` an earlier export may not give it: the export decided it.
    pub export_decides: bool,
}

const fn s(
    name: &'static str,
    cli: Option<&'static str>,
    request: Option<&'static str>,
    execution: Option<&'static str>,
    why: &'static str,
) -> Setting {
    Setting {
        name,
        cli,
        request,
        execution,
        why,
        service_only: cli.is_none() && request.is_some(),
        export_decides: false,
    }
}

/// A setting under one name on the command line and in the request (`execution`: its field
/// there, `scope` for the table patterns the execution carries as one scope).
const fn same(name: &'static str, execution: &'static str) -> Setting {
    s(name, Some(name), Some(name), Some(execution), "")
}

impl Setting {
    /// Marked as the deployed service's only (a flag of its own exists, the request's form
    /// needs the service: a backup's S3 place).
    const fn service_only(self) -> Setting {
        Setting {
            service_only: true,
            ..self
        }
    }

    /// Marked as decided by an export (a load `from` it may not give it).
    const fn export_decides(self) -> Setting {
        Setting {
            export_decides: true,
            ..self
        }
    }
}

/// The first setting `marked` picks whose request field `given` says a request gives: its
/// request field.
pub fn first_given(
    marked: impl Fn(&Setting) -> bool,
    given: impl Fn(&str) -> bool,
) -> Option<&'static str> {
    SYNC_SETTINGS
        .iter()
        .filter(|s| marked(s))
        .filter_map(|s| s.request)
        .find(|f| given(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_only_and_export_decided_settings_are_request_fields() {
        for st in SYNC_SETTINGS {
            if st.service_only || st.export_decides {
                assert!(st.request.is_some(), "{} has no request field", st.name);
            }
        }
        let given = |f: &str| f == "page_rows" || f == "tables";
        assert_eq!(first_given(|s| s.service_only, given), Some("page_rows"));
        assert_eq!(first_given(|s| s.export_decides, given), Some("tables"));
        assert_eq!(first_given(|s| s.service_only, |_| false), None);
    }

    #[test]
    fn every_setting_has_one_name_or_says_why_not() {
        let mut names = std::collections::BTreeSet::new();
        for st in SYNC_SETTINGS {
            assert!(names.insert(st.name), "{} listed twice", st.name);
            let shown = [st.cli, st.request, st.execution];
            let blank = shown.iter().any(Option::is_none);
            let renamed = shown
                .iter()
                .flatten()
                .any(|n| *n != st.name && *n != "scope");
            assert!(
                !(blank || renamed) || !st.why.is_empty(),
                "{} is missing or renamed somewhere without a reason",
                st.name
            );
        }
    }
}
