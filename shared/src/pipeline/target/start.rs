//! The start of a load: the job begun in the target's ledger with the tables emptied and
//! what the load must not meet taken away ([`start_load`]; [`start_new`] also in an
//! `--atomic` transaction), and what a dry run reports instead.

use super::{CheckedTarget, LoadSpec, TargetJob};
use crate::error::{Error, Result};
use crate::model::catalog::{Catalog, Table};
use crate::model::ident::QualName;
use crate::model::part::CopyFormat;
use crate::model::restore::Restore;
use crate::pg::ledger::{self, JobState};
use crate::pg::start::{self, Start};
use crate::pipeline::{DryRun, LoadReport};
use crate::plan::load;
use tokio_postgres::GenericClient;

/// Starts `spec`'s job afresh in `client` (a session, or the --atomic transaction): the
/// tables in scope emptied, `take` taken away, the job recorded.
pub(crate) async fn start_new(
    client: &mut (impl GenericClient + Send + Sync),
    spec: &LoadSpec<'_>,
    take: Restore,
) -> Result<Restore> {
    let names: Vec<QualName> = spec.tables.iter().map(|t| t.name.clone()).collect();
    let roots = load::partition_roots(spec.tables);
    let job = Start {
        job_id: spec.job_id,
        kind: spec.kind,
        tables: &names,
        roots: &roots,
        take,
    };
    start::start_job(client, job).await
}

/// Starts the job on a checked target: the first change to it. Creates the ledger if needed;
/// with `restart`, sets an earlier run of the same job aside; then resumes a job the ledger
/// knows, or empties the tables, drops what [`CheckedTarget::take`] lists and records it.
pub async fn start_load(
    checked: CheckedTarget,
    spec: &LoadSpec<'_>,
    restart: bool,
) -> Result<TargetJob> {
    let CheckedTarget {
        mut coord,
        order,
        take,
        replica,
        formats,
        ..
    } = checked;
    ledger::ensure(&mut coord).await?;
    if restart {
        ledger::set_aside(&coord, spec.job_id).await?;
    }
    let (restore, already_done) = match ledger::job_state(&coord, spec.job_id).await? {
        JobState::Done => (Restore::default(), true),
        JobState::Loading(restore) => (restore, false),
        JobState::Shadow(_) => {
            return Err(Error::config(
                "--atomic",
                format!(
                    "job {} was started in this target with --atomic; run it again with --atomic to finish it, or add --restart to start it over",
                    spec.job_id
                ),
            ))
        }
        JobState::Interrupted(pending) => (
            start::retake(&mut coord, spec.job_id, pending, take).await?,
            false,
        ),
        JobState::New => {
            let restore = start_new(&mut coord, spec, take).await?;
            (restore, false)
        }
    };
    Ok(TargetJob {
        coord,
        order,
        restore,
        replica,
        already_done,
        formats,
    })
}

/// The report of a dry run of a sync: what every check found the job would do.
pub fn dry_run_report(
    job_id: &str,
    catalog: &Catalog,
    checked: &CheckedTarget,
    elapsed_ms: u64,
) -> LoadReport {
    LoadReport {
        job_id: job_id.to_string(),
        tables: catalog.tables.len(),
        sequences: catalog.sequences.len(),
        dry_run: Some(DryRun::new(checked, &catalog.tables)),
        elapsed_ms,
        ..Default::default()
    }
}

impl DryRun {
    /// What a checked target would go through, tables in load order.
    pub fn new(checked: &CheckedTarget, tables: &[Table]) -> Self {
        let mut order: Vec<(usize, String)> = tables
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let level = checked.order.levels.get(i).copied().unwrap_or(0);
                (level, t.name.to_string())
            })
            .collect();
        order.sort();
        let take = &checked.take;
        DryRun {
            tables: order.into_iter().map(|(_, n)| n).collect(),
            foreign_keys: take
                .fks
                .iter()
                .map(|f| format!("{} on {}", f.name, f.table))
                .collect(),
            indexes: take
                .indexes
                .iter()
                .map(|i| format!("{} on {}", i.name, i.table))
                .collect(),
            keys: take
                .keys
                .iter()
                .map(|k| format!("{} on {}", k.name, k.table))
                .collect(),
            checks: take
                .checks
                .iter()
                .map(|c| format!("{} on {}", c.name, c.on))
                .collect(),
            triggers_disabled_on: take.triggers.iter().map(|t| t.to_string()).collect(),
            replica_mode: checked.replica,
            text_copy: tables
                .iter()
                .zip(&checked.formats)
                .filter(|(_, f)| **f == CopyFormat::Text)
                .map(|(t, _)| t.name.to_string())
                .collect(),
        }
    }
}
