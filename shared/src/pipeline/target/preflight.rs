//! Pre-flight: every check of the target before anything changes ([`check_target`]): the
//! same-database and lock checks, the catalog compared with the source's, what the load will
//! take away and how each table is copied, and the source's rows tested against the
//! target's own unique keys and checks.

use super::{CheckedTarget, LoadSpec};
use crate::error::{Error, Result, Role};
use crate::model::catalog::{Catalog, Table};
use crate::model::part::CopyFormat;
use crate::model::restore::StatsCopy;
use crate::model::scope::Scope;
use crate::pg::ledger;
use crate::pg::{catalog, ledger_owner, preflight, stats, target};
use crate::pipeline::workers::app_name;
use crate::plan::{compat, format, load, order};
use tokio_postgres::Client;

/// Pre-flight: refuses, changing nothing, when the target is the source, is locked, lacks
/// tables, columns or sequences, cannot take the types, may not be loaded by this role, or is
/// referenced from outside the scope. Takes the target lock for the coordinator session.
pub async fn check_target(spec: &LoadSpec<'_>) -> Result<CheckedTarget> {
    let coord = spec
        .target
        .connect(Role::Target, &app_name(spec.job_id, "ctl"))
        .await?;
    if let Some(app) = spec.source_app {
        if target::is_same_database(&coord, app).await? {
            return Err(Error::SameDatabase(spec.target.redacted()));
        }
    }
    ledger::lock_target(&coord, &spec.target.redacted()).await?;
    let tcat = catalog::load(&coord, Role::Target, &Scope::default()).await?;
    let source = compat::SourceSide {
        server: spec.source,
        tables: spec.tables,
        sequences: spec.sequences,
        enums: spec.enums,
    };
    let mut problems = compat::check(&source, &tcat, compat::Purpose::Load);
    if let Some(reader) = spec.source_reader {
        problems.extend(source_breaks_target_rules(reader, spec.tables, &tcat).await?);
    }
    if let Some(p) = ledger_owner::usable(&coord).await? {
        problems.push(p);
    }
    if !problems.is_empty() {
        return Err(Error::Incompatible { problems });
    }
    let ttables: Vec<Table> = spec
        .tables
        .iter()
        .filter_map(|t| tcat.table(&t.name).cloned())
        .collect();
    compat::outside_references(&load::fk_units(&ttables), &tcat.foreign_keys)?;
    let order = order::fk_order(&ttables, &tcat.foreign_keys);
    // Triggers must not fire during the load: replica mode where we may set it (it also skips
    // FK checks, which the snapshot makes redundant), else disable user triggers per table.
    let replica = target::try_replica_mode(&coord).await?;
    let mut take = load::what_to_take(
        &ttables,
        &tcat.not_valid_checks,
        &order,
        load::LoadMode {
            replica,
            keep_indexes: spec.keep_indexes,
            analyze: spec.analyze.runs(),
        },
    );
    take.stats = stats_copies(spec, &tcat);
    if replica {
        let keys = load::unenforced_keys(&ttables, &tcat.foreign_keys, &take.fks);
        // A key to a table outside the scope is checked by no one in replica mode: it is
        // re-added and validated after the load, so a target whose parent rows differ from
        // the source's fails loudly instead of keeping a key that lies.
        take.fks.extend(keys.outward);
        take.unenforced = keys.inside;
    }
    Ok(CheckedTarget {
        coord,
        order,
        take,
        replica,
        formats: formats(spec, &tcat),
        target_tables: spec
            .tables
            .iter()
            .map(|t| tcat.table(&t.name).cloned())
            .collect(),
    })
}

/// The COPY format of each table. Parts are text (an import lists no formats); only a
/// streaming sync may go binary.
fn formats(spec: &LoadSpec<'_>, tcat: &Catalog) -> Vec<CopyFormat> {
    match spec.source_app {
        Some(_) => spec
            .tables
            .iter()
            .map(|t| match tcat.table(&t.name) {
                Some(tt) => format::copy_format(t, tt, spec.source, &tcat.server, spec.enums),
                None => CopyFormat::Text,
            })
            .collect(),
        None => Vec::new(),
    }
}

/// The tables whose statistics are restored from the source instead of analyzed: on a
/// PostgreSQL 18+ target, with `--analyze copy`, where `plan::stats` finds columns to copy.
fn stats_copies(spec: &LoadSpec<'_>, tcat: &Catalog) -> Vec<StatsCopy> {
    if !spec.analyze.copies() || tcat.server.version_num < stats::RESTORE_VERSION {
        return Vec::new();
    }
    spec.tables
        .iter()
        .filter_map(|s| crate::plan::stats::copy_plan(s, tcat.table(&s.name)?))
        .collect()
}

/// Target-only unique keys and checks that the source's rows break, each naming table,
/// constraint and a sample row. A test the source cannot run (an expression calling a
/// function only the target has) is left to the load itself.
async fn source_breaks_target_rules(
    reader: &Client,
    tables: &[Table],
    tcat: &Catalog,
) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for t in tables {
        let Some(tt) = tcat.table(&t.name) else {
            continue;
        };
        for rule in compat::target_only(t, tt) {
            let found = match rule {
                compat::TargetOnly::Unique(k) => preflight::first_duplicate(reader, t, k).await?,
                compat::TargetOnly::Check(c) => preflight::first_breaking_row(reader, t, c).await?,
            };
            if let Some(sample) = found {
                problems.push(describe_violation(t, rule, &sample));
            }
        }
    }
    Ok(problems)
}

fn describe_violation(t: &Table, rule: compat::TargetOnly<'_>, sample: &str) -> String {
    match rule {
        compat::TargetOnly::Unique(k) => format!(
            "the target's unique index {} on {} ({}) is not on the source, and the source has duplicates, e.g. {sample}; drop it on the target, or remove the duplicates on the source",
            k.name,
            t.name,
            k.columns.join(", ")
        ),
        compat::TargetOnly::Check(c) => format!(
            "the target's check constraint {} on {} ({}) is not on the source, and source rows break it, e.g. {sample}; drop it on the target (or add it NOT VALID), or fix the rows on the source",
            c.name, t.name, c.expression
        ),
    }
}
