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
    /// Compare the source's key ranges with the target's and replace only those that differ
    /// (`dbsync sync --changed-only`).
    Refresh,
}

impl Mode {
    /// Whether the job loads a target.
    pub fn loads(&self) -> bool {
        matches!(self, Mode::Sync | Mode::Refresh)
    }

    /// The request's spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            Mode::Sync => "sync",
            Mode::Export => "export",
            Mode::Dump => "dump",
            Mode::Refresh => "refresh",
        }
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
            "refresh" => Ok(Mode::Refresh),
            _ => Err(format!(
                "mode {s:?} is not one of \"sync\", \"export\", \"dump\", \"refresh\""
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
    /// `sync --changed-only`: only the key ranges that differ are replaced.
    pub changed_only: bool,
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

/// Why a load setting is refused on a job that loads no target.
const NO_TARGET: &str =
    "is about the target a job loads; an export-only job loads none (name a target, or leave it out)";

impl LoadChoices {
    /// Refuses a combination that cannot work, naming the setting as `spelling` spells it:
    /// the first of its rules that applies.
    pub fn check(&self, spelling: Spelling) -> crate::error::Result<()> {
        let mut rules = self.rules(spelling);
        rules.extend(self.changed_rules(spelling));
        match rules.into_iter().find(|(refused, ..)| *refused) {
            Some((_, setting, message)) => {
                Err(crate::error::Error::config(spelling.name(setting), message))
            }
            None => Ok(()),
        }
    }

    /// The rules of `--changed-only`.
    fn changed_rules(&self, spelling: Spelling) -> Vec<(bool, &'static str, String)> {
        // The request says it as a mode of its own.
        let refresh = match spelling {
            Spelling::Flag => spelling.name("changed_only"),
            Spelling::Field => "mode \"refresh\"".to_string(),
        };
        let with = |_: &str, why: &str| format!("cannot be combined with {refresh}{why}");
        let (changed, via) = (self.changed_only, self.via);
        vec![
            (
                changed && self.atomic,
                "atomic",
                with(
                    "changed_only",
                    ": it replaces each range in a transaction of its own",
                ),
            ),
            (
                changed && self.create_schema,
                "create_schema",
                with(
                    "changed_only",
                    ": it compares tables the target has; sync once first",
                ),
            ),
            (
                changed && self.backup,
                "backup",
                with(
                    "changed_only",
                    ": it changes only what differs; back up with dbsync export",
                ),
            ),
            (
                changed && via,
                "via",
                with("changed_only", ": it reads both sides directly"),
            ),
        ]
    }

    /// Each combination rule: whether these choices break it, the setting it names, why.
    fn rules(&self, spelling: Spelling) -> Vec<(bool, &'static str, String)> {
        let n = |s: &str| spelling.name(s);
        let with = |other: &str, why: &str| format!("cannot be combined with {}{why}", n(other));
        let via = self.via;
        vec![
            (
                self.atomic && !self.loads_target,
                "atomic",
                NO_TARGET.into(),
            ),
            (
                self.create_schema && !self.loads_target,
                "create_schema",
                NO_TARGET.into(),
            ),
            (
                self.backup && !self.loads_target,
                "backup",
                NO_TARGET.into(),
            ),
            (
                self.create_schema && self.atomic,
                "create_schema",
                with(
                    "atomic",
                    &format!(
                        ": create the schema with a first sync, then use {}",
                        n("atomic")
                    ),
                ),
            ),
            (
                self.backup && self.atomic,
                "backup",
                with("atomic", " (which keeps the old data until the commit)"),
            ),
            (
                self.create_schema && self.dry_run,
                "create_schema",
                with(
                    "dry_run",
                    " (a dry run checks the target's existing tables)",
                ),
            ),
            (
                via && self.create_schema,
                "create_schema",
                with("via", " (the import has only the manifest); sync directly"),
            ),
            (via && self.dry_run, "dry_run", with("via", "")),
            (
                via && self.atomic,
                "atomic",
                with("via", " (an atomic sync streams in one transaction)"),
            ),
        ]
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
            (
                LoadChoices {
                    changed_only: true,
                    atomic: true,
                    ..sync
                },
                "atomic",
                "changed_only",
            ),
            (
                LoadChoices {
                    changed_only: true,
                    create_schema: true,
                    ..sync
                },
                "create_schema",
                "changed_only",
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
            // The request says --changed-only as a mode.
            let other = match other {
                "changed_only" => "mode \"refresh\"",
                o => o,
            };
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
}
