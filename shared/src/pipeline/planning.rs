//! Planning: the catalog of the tables in scope read inside the caller's snapshot, FK levels,
//! and every table split into chunks (keyset ranges from a key sample, CTID ranges without a
//! key). The decisions are `plan`'s; this module only feeds them what the source says.

use crate::error::{Error, Result, Role};
use crate::model::catalog::{Catalog, Key, Table};
use crate::model::chunk::{Chunk, ChunkRange, Plan};
use crate::model::rules::{AppliedColumn, RulesFile};
use crate::model::scope::{is_glob, Scope};
use crate::pg::conn::ConnSpec;
use crate::pg::{self, catalog, sample, snapshot, stats, verify};
use crate::pipeline::workers::{app_name, new_job_id};
use crate::plan::chunks::{self, Sizing};
use crate::plan::{self, order};
use tokio_postgres::Client;

/// The scope as people wrote it, for the "nothing in scope" error.
pub fn scope_text(scope: &Scope) -> String {
    format!(
        "schemas [{}], tables [{}], exclude [{}]",
        scope.schemas.join(","),
        scope.tables.join(","),
        scope.exclude.join(",")
    )
}

/// What a chunk is called in logs and errors.
pub fn chunk_context(plan: &Plan, chunk: &Chunk) -> String {
    format!(
        "copying chunk {} of {}",
        chunk.id(),
        plan.catalog.tables[chunk.table].name
    )
}

/// Refuses scope patterns that match nothing: an exact name always (a typo that would
/// otherwise sync the rest silently, or, in `--exclude`, empty the table it meant to spare),
/// a glob unless the scope allows empty patterns.
pub fn check_patterns(catalog: &Catalog, scope: &Scope) -> Result<()> {
    let refused = scope.refused_patterns(&catalog.unmatched_patterns);
    let Some(first) = refused.first() else {
        return Ok(());
    };
    let globs = refused.iter().any(|u| is_glob(&u.pattern));
    let what = if first.setting == "--schemas" {
        "schema with tables"
    } else {
        "table"
    };
    let named: Vec<String> = refused
        .iter()
        .map(|u| format!("{} {}", u.setting, u.pattern))
        .collect();
    Err(Error::config(
        first.setting.clone(),
        format!(
            "{} {} no {what} in database {}; check the spelling (schema.table){}",
            named.join(", "),
            if refused.len() == 1 {
                "matches"
            } else {
                "match"
            },
            catalog.server.database,
            if globs {
                ", or pass --allow-empty-patterns for globs that may match nothing"
            } else {
                ""
            }
        ),
    ))
}

/// Reads the catalog and splits every table into chunks. Runs inside the caller's
/// transaction, so a plan made in a snapshot describes that snapshot.
pub async fn build_plan(client: &Client, scope: &Scope, sizing: Sizing) -> Result<Plan> {
    let mut catalog = catalog::load(client, Role::Source, scope).await?;
    // A typo is named as such, whether or not something else is left in scope.
    check_patterns(&catalog, scope)?;
    if catalog.tables.is_empty() {
        return Err(Error::EmptyScope(scope_text(scope)));
    }
    // In the plan and so in the manifest, as pg_dump 18 keeps them in a dump: any later
    // load into a PostgreSQL 18 target may restore them instead of running ANALYZE.
    stats::read(client, catalog.server.version_num, &mut catalog.tables).await?;
    let order = order::fk_order(&catalog.tables, &catalog.foreign_keys);
    let chunk_bytes = sizing.chunk_bytes_for(catalog.total_bytes());
    let by_heap = sizing.by_heap && catalog.server.version_num >= chunks::TID_RANGE_SCAN_VERSION;
    let mut all = Vec::new();
    for (i, t) in catalog.tables.iter().enumerate() {
        let n = chunks::chunk_count(t.bytes, chunk_bytes);
        let ranges = if n <= 1 {
            vec![ChunkRange::Whole]
        } else if let (Some(key), false) = (&t.key, by_heap) {
            let bounds = key_bounds(client, t, key, n - 1, sizing.exact_keys_up_to).await?;
            chunks::key_ranges(&bounds)
        } else {
            chunks::ctid_ranges(t.pages.max(0) as u64, n)
        };
        all.extend(ranges.into_iter().enumerate().map(|(seq, range)| Chunk {
            table: i,
            seq,
            range,
        }));
    }
    Ok(Plan {
        catalog,
        order,
        chunks: all,
        chunk_bytes,
    })
}

/// Applies the data rules (`--rules`) to the tables of a catalog, then has the source check
/// the SQL they make (a filter that does not parse, a constant that does not fit its
/// column) before anything is copied. `keyed`: the source sessions hold the hash key.
pub async fn apply_rules(
    client: &Client,
    catalog: &mut Catalog,
    rules: Option<&RulesFile>,
    keyed: bool,
) -> Result<()> {
    let Some(file) = rules else {
        return Ok(());
    };
    let decided = plan::rules::apply(catalog, file, keyed)?;
    for (t, d) in catalog.tables.iter_mut().zip(&decided) {
        if let Some(r) = t.rules.as_mut() {
            r.condition = pg::rules::condition_sql(&d.condition, &t.name);
            r.columns = d
                .columns
                .iter()
                .map(|(name, c)| {
                    let sql = pg::column_rules::column_sql(c);
                    (
                        name.clone(),
                        AppliedColumn {
                            rule: c.rule.clone(),
                            sql,
                        },
                    )
                })
                .collect();
        }
    }
    catalog
        .tables
        .iter_mut()
        .for_each(plan::stats::without_ruled);
    // Tables with a filter of their own first: a child's condition holds its parents'
    // filters, and an error there should name the table whose filter it is.
    let mut ruled: Vec<&Table> = catalog
        .tables
        .iter()
        .filter(|t| t.rules.is_some())
        .collect();
    ruled.sort_by_key(|t| t.rules.as_ref().is_none_or(|r| r.filter.is_none()));
    for t in ruled {
        verify::check_rules(client, t).await?;
    }
    Ok(())
}

/// About `want` interior boundaries of a keyed table, in key order, without repeats.
pub async fn key_bounds(
    client: &Client,
    table: &Table,
    key: &Key,
    want: usize,
    exact_up_to: i64,
) -> Result<Vec<Vec<String>>> {
    let sample = sample::sample_keys(client, Role::Source, table, key, want, exact_up_to).await?;
    Ok(chunks::pick_quantiles(sample, want))
}

/// A job's source side, opened: its id, the coordinator session (named `app`) holding the
/// snapshot every reader joins, and the plan made in that snapshot.
pub struct OpenedSource {
    /// The new job's id.
    pub job_id: String,
    /// The coordinator's application name (unique per job: the same-database check).
    pub app: String,
    /// The coordinator session; the snapshot lives as long as its transaction.
    pub coord: Client,
    /// The exported snapshot.
    pub snapshot: String,
    /// The plan, made in the snapshot.
    pub plan: Plan,
}

/// Starts a job on the source: a new job id, the snapshot, the plan of the tables in
/// `scope` with the data `rules` applied.
pub async fn open_source(
    source: &ConnSpec,
    scope: &Scope,
    rules: Option<&RulesFile>,
    sizing: Sizing,
) -> Result<OpenedSource> {
    let job_id = new_job_id();
    let app = app_name(&job_id, "src");
    let (coord, snapshot) = snapshot::open_snapshot(source, &app).await?;
    let plan = plan_with_rules(&coord, source, scope, rules, sizing).await?;
    Ok(OpenedSource {
        job_id,
        app,
        coord,
        snapshot,
        plan,
    })
}

/// `dbsync plan`: the plan a job of this sizing would make of the tables in `scope` with
/// the data `rules` applied, without changing anything.
pub async fn plan_only(
    source: &ConnSpec,
    scope: &Scope,
    rules: Option<&RulesFile>,
    sizing: Sizing,
) -> Result<Plan> {
    let (c, _snap) = snapshot::open_snapshot(source, "dbsync-plan").await?;
    plan_with_rules(&c, source, scope, rules, sizing).await
}

/// The plan of `scope` with the data `rules` applied, made on `client` (a session of
/// `source`, in the job's snapshot).
async fn plan_with_rules(
    client: &Client,
    source: &ConnSpec,
    scope: &Scope,
    rules: Option<&RulesFile>,
    sizing: Sizing,
) -> Result<Plan> {
    let mut plan = build_plan(client, scope, sizing).await?;
    let keyed = source.has_rules_key();
    apply_rules(client, &mut plan.catalog, rules, keyed).await?;
    Ok(plan)
}
