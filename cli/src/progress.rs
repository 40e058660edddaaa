//! What the command line prints besides the live display (`live`): `dbsync plan`, its
//! serverless price, a dry run, and the per-table summary of a load.

use dbsync_core::model::chunk::{ChunkRange, Plan};
use dbsync_core::model::size::human_bytes;
use dbsync_core::pipeline::TableSummary;
use std::time::Duration;

/// At most this many tables in the summary a load prints (`--json` lists them all).
const SUMMARY_TABLES: usize = 10;

/// The per-table summary of a load, slowest first: rows, bytes, parts and time of each.
pub fn render_tables(tables: &[TableSummary]) -> String {
    use std::fmt::Write;
    let mut sorted: Vec<&TableSummary> = tables.iter().collect();
    sorted.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
    let mut out = String::new();
    if sorted.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "  {:<40} {:>12} {:>10} {:>6} {:>8}",
        "table (slowest first)", "rows", "bytes", "parts", "seconds"
    );
    for t in sorted.iter().take(SUMMARY_TABLES) {
        let _ = writeln!(
            out,
            "  {:<40} {:>12} {:>10} {:>6} {:>8.1}",
            t.table,
            t.rows,
            human_bytes(t.bytes),
            t.parts,
            t.seconds
        );
    }
    if sorted.len() > SUMMARY_TABLES {
        let _ = writeln!(
            out,
            "  and {} more (--json lists every table)",
            count((sorted.len() - SUMMARY_TABLES) as u64, "table")
        );
    }
    out
}

/// The text of `dbsync plan`; `asked` is the `--chunk-size` and `jobs` the `--jobs` given.
pub fn render_plan(plan: &Plan, asked: u64, jobs: usize) -> String {
    use std::fmt::Write;
    let cat = &plan.catalog;
    let mut out = String::new();
    let why = if plan.chunk_bytes < asked {
        format!(
            " (--chunk-size {} lowered to this job's share over {}, so that no table finishes alone)",
            human_bytes(asked),
            count(jobs as u64, "job")
        )
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "source: PostgreSQL {} database {} ({}); chunk size {}{why}",
        cat.server.version,
        cat.server.database,
        cat.server.encoding,
        human_bytes(plan.chunk_bytes)
    );
    let _ = writeln!(
        out,
        "{} in {}, {}, {} on disk, {}",
        count(cat.tables.len() as u64, "table"),
        count(plan.order.level_count() as u64, "FK level"),
        count(plan.chunks.len() as u64, "chunk"),
        human_bytes(cat.tables.iter().map(|t| t.bytes.max(0) as u64).sum()),
        count(cat.sequences.len() as u64, "sequence")
    );
    for level in 0..plan.order.level_count() {
        let _ = writeln!(out, "level {level}:");
        for (i, t) in cat.tables.iter().enumerate() {
            if plan.order.levels[i] != level {
                continue;
            }
            let chunks: Vec<_> = plan.chunks.iter().filter(|c| c.table == i).collect();
            let key = t.key.as_ref().map(|k| {
                format!(
                    "key {} ({})",
                    k.index,
                    k.columns
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            });
            // A sync splits by heap pages (ctid) even where a key exists: it needs no key
            // sample and reads each page once; an export splits by key where it can.
            let how = match (key, chunks.first().map(|c| &c.range)) {
                (Some(k), Some(ChunkRange::Ctid { .. })) => {
                    format!("page ranges (ctid: a sync needs no key sample); {k}")
                }
                (None, Some(ChunkRange::Ctid { .. })) => {
                    "page ranges (ctid: no usable key)".to_string()
                }
                (Some(k), _) => k,
                (None, _) => "no usable key".to_string(),
            };
            let _ = writeln!(
                out,
                "  {:<40} {:>10} {:>12} rows~ {:>4} chunks  {how}",
                t.name.to_string(),
                human_bytes(t.bytes.max(0) as u64),
                t.est_rows.max(0),
                chunks.len()
            );
        }
    }
    if !plan.order.cyclic.is_empty() {
        let _ = writeln!(
            out,
            "foreign keys dropped during the load and re-added after (cycles, self-references):"
        );
        for fk in &plan.order.cyclic {
            let _ = writeln!(out, "  {} on {} -> {}", fk.name, fk.table, fk.references);
        }
    }
    render_rules(&mut out, plan);
    if !cat.skipped.is_empty() {
        let _ = writeln!(out, "not copied (no rows of their own to copy):");
        for s in &cat.skipped {
            let _ = writeln!(out, "  {} ({})", s.name, s.kind);
        }
    }
    out
}

/// What `--rules` does to each table: its filter, whether its parents' filters reach it,
/// and each column's rule.
fn render_rules(out: &mut String, plan: &Plan) {
    use std::fmt::Write;
    let ruled: Vec<_> = plan
        .catalog
        .tables
        .iter()
        .filter_map(|t| t.rules.as_ref().map(|r| (t, r)))
        .collect();
    if ruled.is_empty() {
        return;
    }
    let _ = writeln!(out, "data rules (applied in the source's query):");
    for (t, r) in ruled {
        let _ = writeln!(out, "  {}", t.name);
        if let Some(f) = &r.filter {
            let _ = writeln!(out, "    rows where {f}");
        }
        if r.condition.is_some() && r.filter.as_deref().map(|f| format!("({f})")) != r.condition {
            let _ = writeln!(
                out,
                "    rows whose foreign-key parents are exported (a parent's filter reaches them)"
            );
        }
        for (c, a) in &r.columns {
            let _ = writeln!(out, "    {c}: {}", a.rule);
        }
    }
}

/// The text of a dry run.
/// The serverless cost and time plan, for `dbsync plan`.
pub fn render_cost(p: &dbsync_core::plan::cost::CostPlan) -> String {
    use std::fmt::Write;
    let (u, c) = (&p.usage, &p.cost);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "serverless {} job, {} at once (rates: DBSYNC_COST_* settings, see docs/serverless.md):",
        serde_json::to_value(p.kind)
            .ok()
            .and_then(|k| k.as_str().map(str::to_string))
            .unwrap_or_default(),
        p.fanout
    );
    let _ = writeln!(
        out,
        "  {} chunks -> {} parts in {} load waves; {} Map runs, {} Map child executions, {} Lambda invocations, {} state transitions",
        p.chunks, u.parts, u.waves, u.map_runs, u.map_child_executions, u.lambda_invocations, u.state_transitions
    );
    let _ = writeln!(
        out,
        "  Lambda {:.0} GB-s; S3 {} PUT, {} GET, {:.2} GB-months; DynamoDB {} writes",
        u.lambda_gb_seconds, u.s3_puts, u.s3_gets, u.s3_gb_months, u.dynamodb_writes
    );
    let _ = writeln!(
        out,
        "  estimated duration {} (export {}, load {})",
        humantime::format_duration(Duration::from_secs(p.estimated_duration_seconds)),
        humantime::format_duration(Duration::from_secs(p.export_seconds)),
        humantime::format_duration(Duration::from_secs(p.import_seconds)),
    );
    let _ = writeln!(
        out,
        "  estimated cost ${:.4}: Lambda ${:.4}, Step Functions ${:.4}, S3 requests ${:.4}, S3 storage ${:.4}, DynamoDB ${:.4} (${:.4} per GB)",
        c.total, c.lambda, c.step_functions, c.s3_requests, c.s3_storage, c.dynamodb, c.per_gb
    );
    for w in &p.warnings {
        let _ = writeln!(out, "  warning: {w}");
    }
    out
}

pub fn render_dry_run(d: &dbsync_core::pipeline::DryRun, target: &dyn std::fmt::Display) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "dry run: every check passed; nothing was changed in {target}"
    );
    let _ = writeln!(
        out,
        "would empty and load {}, in this order:",
        count(d.tables.len() as u64, "table")
    );
    for t in &d.tables {
        let _ = writeln!(out, "  {t}");
    }
    let list = |out: &mut String, what: &str, items: &[String]| {
        if !items.is_empty() {
            let _ = writeln!(out, "{what}:");
            for i in items {
                let _ = writeln!(out, "  {i}");
            }
        }
    };
    list(
        &mut out,
        "would drop and re-add foreign keys",
        &d.foreign_keys,
    );
    list(&mut out, "would drop and rebuild indexes", &d.indexes);
    list(&mut out, "would drop and add back keys", &d.keys);
    list(
        &mut out,
        "would set aside and re-add NOT VALID check constraints",
        &d.checks,
    );
    list(
        &mut out,
        "would disable user triggers on",
        &d.triggers_disabled_on,
    );
    list(
        &mut out,
        "would copy as text (a column type without a portable binary form)",
        &d.text_copy,
    );
    let _ = writeln!(
        out,
        "triggers during the load: {}",
        if d.replica_mode {
            "not fired (session_replication_role = replica)"
        } else if d.triggers_disabled_on.is_empty() {
            "none to disable"
        } else {
            "disabled per table, re-enabled after"
        }
    );
    out
}

/// `n` things, in English: "1 table", "2 tables".
pub fn count(n: u64, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

/// A changed-only refresh, per table: what differed and what was (or would be) replaced.
pub fn render_refresh(r: &dbsync_core::plan::refresh::RefreshReport, dry_run: bool) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let verb = if dry_run { "would replace" } else { "replaced" };
    let _ = writeln!(
        out,
        "{}: {} of {} compared on both sides differ{}",
        if dry_run { "dry run" } else { "changed only" },
        r.ranges_differing,
        count(r.ranges_compared as u64, "range"),
        if dry_run { "; nothing was changed" } else { "" }
    );
    if r.full_sync {
        let _ = writeln!(
            out,
            "most of the data differs: {} a full sync instead",
            if dry_run { "would run" } else { "ran" }
        );
    }
    for t in &r.tables {
        let what = match t.action {
            "unchanged" => "unchanged".to_string(),
            "whole" => format!("{verb} whole ({} rows)", t.rows),
            _ => format!(
                "{verb} {} of {} ({} rows)",
                t.differing,
                count(t.ranges as u64, "range"),
                t.rows
            ),
        };
        let _ = writeln!(out, "  {}: {what}", t.table);
    }
    out
}
