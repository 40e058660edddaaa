//! The settings that every surface shares, each one type under one name: the command line's
//! flags (clap value enums, with the `clap` feature), the API request and the state machine's
//! input (serde, the same lowercase words), the pipelines' options and the console. A word
//! added here is accepted everywhere at once; an unknown one is refused naming the setting.

use serde::{Deserialize, Deserializer, Serialize};

/// How a loaded table gets its statistics (`--analyze`, the request's `"analyze"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum Analyze {
    /// Restore the source's statistics on a PostgreSQL 18+ target for the columns copied
    /// unchanged (masked columns and filtered tables are analyzed there); ANALYZE elsewhere.
    #[default]
    Copy,
    /// Always ANALYZE.
    On,
    /// Leave statistics to autovacuum, as pg_restore --data-only does.
    Off,
}

impl Analyze {
    /// Whether the loaded tables get statistics at all.
    pub fn runs(self) -> bool {
        self != Analyze::Off
    }

    /// Whether the source's statistics are restored where the target can take them.
    pub fn copies(self) -> bool {
        self == Analyze::Copy
    }
}

// The request's `analyze` was a boolean before it had three values: `true` meant "give the
// tables statistics" (now `copy`, what true did on every target) and `false` `off`.
impl<'de> Deserialize<'de> for Analyze {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Given {
            Flag(bool),
            Word(String),
        }
        match Given::deserialize(d)? {
            Given::Flag(true) => Ok(Analyze::Copy),
            Given::Flag(false) => Ok(Analyze::Off),
            Given::Word(w) => match w.as_str() {
                "copy" => Ok(Analyze::Copy),
                "on" => Ok(Analyze::On),
                "off" => Ok(Analyze::Off),
                _ => Err(serde::de::Error::custom(format!(
                    "analyze {w:?} is not one of \"copy\", \"on\", \"off\""
                ))),
            },
        }
    }
}

/// Whether an import reads every part and checks it against the manifest (gzip, rows,
/// sha256) before it changes the target (`--check-parts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum PartCheck {
    /// A local directory always; S3 up to [`AUTO_CHECK_S3_BYTES`] of parts (reading them
    /// twice costs a second download there).
    #[default]
    Auto,
    /// Always.
    On,
    /// Never: damage is found when the part loads, after the target was emptied.
    Off,
}

/// `--check-parts auto` checks an S3 export up to this many compressed bytes (1 GiB).
pub const AUTO_CHECK_S3_BYTES: u64 = 1 << 30;

impl PartCheck {
    /// Whether an export at `location` with `compressed` bytes of parts is checked.
    pub fn wanted(self, location: &str, compressed: u64) -> bool {
        match self {
            PartCheck::On => true,
            PartCheck::Off => false,
            PartCheck::Auto => !location.starts_with("s3://") || compressed <= AUTO_CHECK_S3_BYTES,
        }
    }
}

/// What a job does (the request's `"mode"`, `dbsync plan --mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case", try_from = "String")]
pub enum Mode {
    /// Export, then load the target.
    #[default]
    Sync,
    /// Export a snapshot only.
    Export,
    /// Export (or take an earlier export) and write it as one psql-restorable script.
    Dump,
}

impl Mode {
    /// Whether the job loads a target.
    pub fn loads(&self) -> bool {
        *self == Mode::Sync
    }
}

// serde's own message for an unknown variant does not name the field; this does.
impl TryFrom<String> for Mode {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        match s.as_str() {
            "sync" => Ok(Mode::Sync),
            "export" => Ok(Mode::Export),
            "dump" => Ok(Mode::Dump),
            _ => Err(format!(
                "mode {s:?} is not one of \"sync\", \"export\", \"dump\""
            )),
        }
    }
}

/// Which load choices a job makes, as far as which of them combine: the one check of that
/// the command line, the pipelines and the API make (each in its own spelling of the names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadChoices {
    /// The job loads a target (an export-only job does not).
    pub loads_target: bool,
    /// `--atomic` / `"atomic"`.
    pub atomic: bool,
    /// `--create-schema` / `"create_schema"`.
    pub create_schema: bool,
    /// `--backup` / `"backup"`.
    pub backup: bool,
    /// `--dry-run`: checks the target's existing tables, changes nothing.
    pub dry_run: bool,
    /// `sync --via`: through parts, export then import.
    pub via: bool,
}

/// How a surface spells a setting: the command line's flags or the request's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spelling {
    /// `--create-schema`.
    Flag,
    /// `create_schema`.
    Field,
}

impl Spelling {
    /// `setting` (a field name) as this surface spells it.
    pub fn name(self, setting: &str) -> String {
        match self {
            Spelling::Flag => format!("--{}", setting.replace('_', "-")),
            Spelling::Field => setting.to_string(),
        }
    }
}

impl LoadChoices {
    /// Refuses a combination that cannot work, naming the setting as `spelling` spells it.
    pub fn check(&self, spelling: Spelling) -> crate::error::Result<()> {
        let n = |s: &str| spelling.name(s);
        let refuse =
            |setting: &str, message: String| Err(crate::error::Error::config(n(setting), message));
        for (given, setting) in [
            (self.atomic, "atomic"),
            (self.create_schema, "create_schema"),
            (self.backup, "backup"),
        ] {
            if given && !self.loads_target {
                return refuse(
                    setting,
                    "is about the target a job loads; an export-only job loads none (name a target, or leave it out)".into(),
                );
            }
        }
        if self.create_schema && self.atomic {
            return refuse(
                "create_schema",
                format!(
                    "cannot be combined with {}: create the schema with a first sync, then use {}",
                    n("atomic"),
                    n("atomic")
                ),
            );
        }
        if self.backup && self.atomic {
            return refuse(
                "backup",
                format!(
                    "cannot be combined with {} (which keeps the old data until the commit)",
                    n("atomic")
                ),
            );
        }
        if self.create_schema && self.dry_run {
            return refuse(
                "create_schema",
                format!(
                    "cannot be combined with {} (a dry run checks the target's existing tables)",
                    n("dry_run")
                ),
            );
        }
        if self.via {
            for (given, setting, why) in [
                (
                    self.create_schema,
                    "create_schema",
                    " (the import has only the manifest); sync directly",
                ),
                (self.dry_run, "dry_run", ""),
                (
                    self.atomic,
                    "atomic",
                    " (an atomic sync streams in one transaction)",
                ),
            ] {
                if given {
                    return refuse(
                        setting,
                        format!("cannot be combined with {}{why}", n("via")),
                    );
                }
            }
        }
        Ok(())
    }
}

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
    ),
    s(
        "target",
        Some("target"),
        Some("target_secret"),
        Some("target_secret"),
        "a URL on the command line; a Secrets Manager id in the service",
    ),
    same("schemas", "scope"),
    same("tables", "scope"),
    same("exclude", "scope"),
    same("allow_empty_patterns", "scope"),
    s(
        "chunk_size",
        Some("chunk_size"),
        Some("chunk_size"),
        Some("chunk_bytes"),
        "the execution input holds the size resolved to bytes",
    ),
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
    ),
    s(
        "rules",
        Some("rules"),
        Some("rules"),
        Some("rules"),
        "a file on the command line; the file's JSON in a request",
    ),
    s(
        "rules_key",
        None,
        Some("rules_key_secret"),
        Some("rules_key_secret"),
        "DBSYNC_RULES_KEY in the environment, never a flag (so never in ps)",
    ),
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
        "commands of their own: dbsync sync, export, dump",
    ),
    s(
        "consistency",
        None,
        Some("consistency"),
        Some("consistency"),
        "one machine holds one snapshot throughout; the service relays it",
    ),
    s(
        "snapshot_window_seconds",
        None,
        Some("snapshot_window_seconds"),
        Some("snapshot_window_seconds"),
        "the service's snapshot relay",
    ),
    s(
        "export_budget_seconds",
        None,
        Some("export_budget_seconds"),
        Some("export_budget_seconds"),
        "Lambda time limits",
    ),
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
    ),
    s(
        "source_connections",
        None,
        Some("source_connections"),
        Some("source_connections"),
        "connection leases shared by the service's jobs",
    ),
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
    }
}

/// A setting under one name on the command line and in the request (`execution`: its field
/// there, `scope` for the table patterns the execution carries as one scope).
const fn same(name: &'static str, execution: &'static str) -> Setting {
    Setting {
        name,
        cli: Some(name),
        request: Some(name),
        execution: Some(execution),
        why: "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn analyze_reads_its_three_words_and_the_booleans_it_was_before() {
        let read = |v: &str| serde_json::from_str::<Analyze>(v);
        assert_eq!(read("\"copy\"").ok(), Some(Analyze::Copy));
        assert_eq!(read("\"on\"").ok(), Some(Analyze::On));
        assert_eq!(read("\"off\"").ok(), Some(Analyze::Off));
        assert_eq!(read("true").ok(), Some(Analyze::Copy));
        assert_eq!(read("false").ok(), Some(Analyze::Off));
        let e = read("\"yes\"")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("\"yes\" is not one of"), "{e}");
        assert_eq!(
            serde_json::to_string(&Analyze::On).ok().as_deref(),
            Some("\"on\"")
        );
        assert!(Analyze::Copy.runs() && Analyze::Copy.copies());
        assert!(Analyze::On.runs() && !Analyze::On.copies());
        assert!(!Analyze::Off.runs());
    }

    #[test]
    fn each_refused_combination_names_the_setting_in_the_surface_s_spelling() {
        let sync = LoadChoices {
            loads_target: true,
            ..Default::default()
        };
        let refused = |c: LoadChoices, s: Spelling| c.check(s).err().map(|e| e.to_string());
        let cases = [
            (
                LoadChoices {
                    atomic: true,
                    create_schema: true,
                    ..sync
                },
                "create_schema",
                "atomic",
            ),
            (
                LoadChoices {
                    atomic: true,
                    backup: true,
                    ..sync
                },
                "backup",
                "atomic",
            ),
            (
                LoadChoices {
                    dry_run: true,
                    create_schema: true,
                    ..sync
                },
                "create_schema",
                "dry_run",
            ),
            (
                LoadChoices {
                    via: true,
                    atomic: true,
                    ..sync
                },
                "atomic",
                "via",
            ),
            (
                LoadChoices {
                    via: true,
                    dry_run: true,
                    ..sync
                },
                "dry_run",
                "via",
            ),
            (
                LoadChoices {
                    backup: true,
                    ..Default::default()
                },
                "backup",
                "loads none",
            ),
        ];
        for (c, setting, other) in cases {
            let flag = refused(c, Spelling::Flag).unwrap_or_default();
            assert!(
                flag.starts_with(&format!("setting {}:", Spelling::Flag.name(setting))),
                "{flag}"
            );
            let field = refused(c, Spelling::Field).unwrap_or_default();
            assert!(field.starts_with(&format!("setting {setting}:")), "{field}");
            assert!(field.contains(other), "{field}");
        }
        assert!(LoadChoices {
            atomic: true,
            ..sync
        }
        .check(Spelling::Flag)
        .is_ok());
        assert!(LoadChoices {
            backup: true,
            create_schema: true,
            ..sync
        }
        .check(Spelling::Field)
        .is_ok());
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
