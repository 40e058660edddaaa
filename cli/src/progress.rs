//! Progress display: an indicatif bar (rows, bytes, rate, ETA) on a terminal, plain periodic
//! lines otherwise (CI, pipes, logs), nothing with --quiet. Also renders `dbsync plan`.

use dbsync_core::model::chunk::{ChunkRange, Plan};
use dbsync_core::model::ident::QualName;
use dbsync_core::model::size::human_bytes;
use dbsync_core::pipeline::progress::{NoProgress, Progress};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The sink for this terminal.
pub fn new(quiet: bool) -> Arc<dyn Progress> {
    if quiet {
        Arc::new(NoProgress)
    } else if std::io::stderr().is_terminal() {
        Arc::new(Bar::default())
    } else {
        Arc::new(Lines::default())
    }
}

#[derive(Default)]
struct Counters {
    rows: AtomicU64,
    bytes: AtomicU64,
    chunks: AtomicU64,
}

impl Counters {
    fn add(&self, rows: u64, bytes: u64) {
        self.rows.fetch_add(rows, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.chunks.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Default)]
struct Bar {
    bar: Mutex<Option<ProgressBar>>,
    counts: Counters,
}

impl Progress for Bar {
    fn planned(&self, phase: &str, chunks: usize, est_bytes: u64) {
        let pb = ProgressBar::new(est_bytes.max(1));
        pb.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {percent:>3}% {msg} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        pb.set_prefix(format!("{phase} ({chunks} chunks)"));
        pb.enable_steady_tick(Duration::from_millis(250));
        if let Ok(mut b) = self.bar.lock() {
            *b = Some(pb);
        }
    }

    fn chunk_done(&self, _table: &QualName, rows: u64, bytes: u64, est: u64) {
        self.counts.add(rows, bytes);
        if let Ok(b) = self.bar.lock() {
            if let Some(pb) = b.as_ref() {
                pb.inc(est);
                let secs = pb.elapsed().as_secs_f64().max(0.001);
                let total = self.counts.bytes.load(Ordering::Relaxed);
                pb.set_message(format!(
                    "{} rows, {} ({}/s)",
                    self.counts.rows.load(Ordering::Relaxed),
                    human_bytes(total),
                    human_bytes((total as f64 / secs) as u64)
                ));
            }
        }
    }

    fn note(&self, message: &str) {
        if let Ok(b) = self.bar.lock() {
            match b.as_ref() {
                Some(pb) => pb.suspend(|| eprintln!("{message}")),
                None => eprintln!("{message}"),
            }
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        if let Ok(b) = self.bar.lock() {
            if let Some(pb) = b.as_ref() {
                pb.finish_and_clear();
            }
        }
    }
}

/// Plain lines, at most one every 5 seconds, plus the last chunk.
#[derive(Default)]
struct Lines {
    state: Mutex<Option<(Instant, Instant, usize, u64)>>,
    counts: Counters,
    done_est: AtomicU64,
}

impl Progress for Lines {
    fn planned(&self, phase: &str, chunks: usize, est_bytes: u64) {
        eprintln!(
            "{phase}: {chunks} chunks, about {} on disk",
            human_bytes(est_bytes)
        );
        if let Ok(mut s) = self.state.lock() {
            *s = Some((Instant::now(), Instant::now(), chunks, est_bytes));
        }
    }

    fn chunk_done(&self, _table: &QualName, rows: u64, bytes: u64, est: u64) {
        self.counts.add(rows, bytes);
        self.done_est.fetch_add(est, Ordering::Relaxed);
        let Ok(mut s) = self.state.lock() else { return };
        let Some((start, last, chunks, est_total)) = s.as_mut() else {
            return;
        };
        let done = self.counts.chunks.load(Ordering::Relaxed) as usize;
        if last.elapsed() < Duration::from_secs(5) && done < *chunks {
            return;
        }
        *last = Instant::now();
        let secs = start.elapsed().as_secs_f64().max(0.001);
        let total = self.counts.bytes.load(Ordering::Relaxed);
        let frac =
            (self.done_est.load(Ordering::Relaxed) as f64 / (*est_total).max(1) as f64).min(1.0);
        let eta = if frac > 0.0 { secs / frac - secs } else { 0.0 };
        eprintln!(
            "progress: {done}/{chunks} chunks, {} rows, {} ({}/s), {:.0}%, eta {:.0} s",
            self.counts.rows.load(Ordering::Relaxed),
            human_bytes(total),
            human_bytes((total as f64 / secs) as u64),
            frac * 100.0,
            eta.max(0.0)
        );
    }

    fn note(&self, message: &str) {
        eprintln!("{message}");
    }
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
        "serverless {} job, {} at once (rates: DBSYNC_COST_* settings, see docs/DESIGN.md):",
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
