//! The atomic import (`dbsync import --atomic`, API `"atomic": true`): the parts load in
//! parallel (any number of sessions or Lambdas) into shadow tables (`pg::shadow`) while
//! the target's own tables keep their old rows, unlocked; then one transaction, the swap,
//! checks the shadows' row counts against the manifest, empties the tables, fills them from
//! the shadows in foreign-key order, rebuilds what it dropped, validates, ANALYZEs, sets the
//! sequences and commits. Any failure before the commit leaves the target's tables exactly
//! as they were. Costs, plainly: the swap holds ACCESS EXCLUSIVE locks on every table in
//! scope from its TRUNCATE to its commit (readers wait, they never see a half-loaded
//! table); the target needs room for the shadows, the old rows and the new rows at once;
//! and the swap is one session's work (in the cloud, one finalize Lambda, 15 minutes at
//! most), which `--atomic-max-size` bounds.

use crate::error::{Error, Result, Role};
use crate::model::ident::QualName;
use crate::model::manifest::Manifest;
use crate::model::restore::{Restore, ShadowJob};
use crate::pg::conn::ConnSpec;
use crate::pg::ledger::{self, JobState};
use crate::pg::start::{self, Start};
use crate::pg::{shadow, target};
use crate::pipeline::atomic::{check_size, finish_in_transaction};
use crate::pipeline::target::{check_target, import_spec, CheckedTarget, TargetJob};
use crate::pipeline::workers::app_name;
use crate::pipeline::{Analyze, ImportOptions};
use crate::plan::load;

/// Starts (or resumes) an atomic import on a checked target: creates the shadow tables and
/// records the job `shadow`. The target's own tables are not touched.
pub async fn start_shadow(
    checked: CheckedTarget,
    m: &Manifest,
    opts: &ImportOptions,
) -> Result<TargetJob> {
    let total: u64 = m.tables.iter().map(|t| t.table.bytes.max(0) as u64).sum();
    check_size(total, opts.atomic_max_bytes)?;
    let CheckedTarget {
        mut coord,
        order,
        replica,
        ..
    } = checked;
    ledger::ensure(&mut coord).await?;
    if opts.restart {
        ledger::set_aside(&coord, &m.job_id).await?;
    }
    let (restore, already_done) = match ledger::job_state(&coord, &m.job_id).await? {
        JobState::Done => (Restore::default(), true),
        JobState::Shadow(r) => (r, false),
        JobState::New => {
            let restore = Restore {
                no_analyze: !opts.analyze.runs(),
                shadow: Some(ShadowJob {
                    keep_indexes: opts.keep_indexes,
                }),
                ..Default::default()
            };
            shadow::start(&mut coord, &m.job_id, &m.table_list(), &restore).await?;
            (restore, false)
        }
        JobState::Loading(_) | JobState::Interrupted(_) => {
            return Err(Error::config(
                "--atomic",
                format!(
                    "job {} was started in this target without --atomic; run it again without --atomic to resume it, or add --restart to start it over atomically",
                    m.job_id
                ),
            ))
        }
    };
    Ok(TargetJob {
        coord,
        order,
        restore,
        replica,
        already_done,
        formats: Vec::new(),
    })
}

/// The swap: finishes an atomic import whose parts are all in the shadow tables (see the
/// module docs), then drops the shadows. Runs the target's pre-flight again (the target may
/// have changed while the parts loaded) and takes the target lock for its session.
/// Idempotent: a job already done does nothing.
pub async fn finish_shadow_import(target: &ConnSpec, m: &Manifest) -> Result<()> {
    let probe = target
        .connect(Role::Target, &app_name(&m.job_id, "fin"))
        .await?;
    let restore = match ledger::job_state(&probe, &m.job_id).await? {
        JobState::Done => return Ok(()),
        JobState::Shadow(r) => r,
        _ => {
            return Err(Error::Ledger(format!(
                "job {} is not an atomic import loading into shadow tables in this target",
                m.job_id
            )))
        }
    };
    drop(probe);
    let opts = ImportOptions {
        keep_indexes: restore.shadow.unwrap_or_default().keep_indexes,
        analyze: if restore.no_analyze {
            Analyze::Off
        } else {
            Analyze::Copy
        },
        ..Default::default()
    };
    let tables = m.table_list();
    let spec = import_spec(target, m, &tables, &opts);
    let mut checked = check_target(&spec).await?;
    ledger::require_all_parts(&checked.coord, m).await?;
    check_shadow_rows(&checked, m).await?;
    swap(&mut checked, m).await?;
    if let Err(e) = shadow::drop_all(&checked.coord).await {
        tracing::warn!(job = %m.job_id, error = %e, "the swap committed but its shadow tables could not be dropped; drop schema dbsync_shadow by hand");
    }
    Ok(())
}

/// Every shadow holds exactly the rows the manifest says its parts hold.
async fn check_shadow_rows(checked: &CheckedTarget, m: &Manifest) -> Result<()> {
    let mut differences = Vec::new();
    for t in &m.tables {
        let want: u64 = t.parts.iter().map(|p| p.stats.rows).sum();
        let got = shadow::rows(&checked.coord, &t.table.name).await?;
        if got as u64 != want {
            differences.push(format!(
                "table {}: manifest {want} rows, shadow table {got}",
                t.table.name
            ));
        }
    }
    if differences.is_empty() {
        Ok(())
    } else {
        Err(Error::VerifyMismatch { differences })
    }
}

/// The swap's one transaction.
async fn swap(checked: &mut CheckedTarget, m: &Manifest) -> Result<()> {
    let take = checked.take.clone();
    let (order, replica) = (checked.order.clone(), checked.replica);
    let tables = m.table_list();
    let names: Vec<QualName> = tables.iter().map(|t| t.name.clone()).collect();
    let roots = load::partition_roots(&tables);
    let mut tx = target::begin_atomic(&mut checked.coord).await?;
    ledger::end_shadow_job(&tx, &m.job_id).await?;
    let restore = start::start_job(
        &mut tx,
        Start {
            job_id: &m.job_id,
            kind: "import",
            tables: &names,
            roots: &roots,
            take,
        },
    )
    .await?;
    let indexes: Vec<usize> = (0..tables.len()).collect();
    let waves = load::waves(&order, replica, &indexes, |i| *i, |_| 0);
    for i in waves.into_iter().flatten() {
        shadow::swap_in(&tx, &m.job_id, &tables[i]).await?;
    }
    finish_in_transaction(tx, &restore, &names, &m.sequences, &m.job_id).await
}
