//! The serverless cost and time plan of a job, before anything runs (`dbsync plan`, the API's
//! `dry_run`): from the chunks a plan makes and a few published rates, how many parts, Map
//! child executions, state transitions, Lambda GB-seconds, S3 requests and GB-months and
//! DynamoDB writes the job takes, how long it should last at its fan-out, what it costs, and
//! which service limit it would cross. A model, not a measurement: every rate is a setting
//! (`DBSYNC_COST_*`) with the default documented in docs/serverless.md.

use crate::error::{Error, Result};
use crate::model::chunk::Plan;
use serde::Serialize;

const MIB: f64 = 1024.0 * 1024.0;
const GIB: f64 = 1024.0 * MIB;
/// S3's most parts in one multipart upload.
const MAX_UPLOAD_PARTS: u64 = 10_000;
/// The part size dbsync uploads parts in.
const UPLOAD_PART_BYTES: f64 = 8.0 * MIB;
/// Step Functions' largest state payload.
const MAX_PAYLOAD_BYTES: u64 = 256 * 1024;
/// Step Functions' most history events in one Standard execution.
const MAX_HISTORY_EVENTS: u64 = 25_000;
/// A Distributed Map's highest concurrency.
const MAX_MAP_CONCURRENCY: u32 = 10_000;
/// The longest a Lambda invocation runs, less dbsync's margin.
const INVOCATION_SECONDS: f64 = 840.0;

/// Rates and prices the model uses, each a `DBSYNC_COST_*` setting.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rates {
    /// MB/s one export invocation reads and compresses (`DBSYNC_COST_EXPORT_MBPS`).
    pub export_mbps: f64,
    /// MB/s one import invocation loads (`DBSYNC_COST_IMPORT_MBPS`).
    pub import_mbps: f64,
    /// MB/s the source serves in all (`DBSYNC_COST_SOURCE_MBPS`).
    pub source_mbps: f64,
    /// MB/s the target takes in all (`DBSYNC_COST_TARGET_MBPS`).
    pub target_mbps: f64,
    /// MB/s of table the target rebuilds indexes and keys for (`DBSYNC_COST_REBUILD_MBPS`).
    pub rebuild_mbps: f64,
    /// Seconds a Lambda invocation costs beyond its work: start, connect, S3 round trips
    /// (`DBSYNC_COST_INVOCATION_SECONDS`).
    pub invocation_seconds: f64,
    /// Compressed size of a part per byte on disk (`DBSYNC_COST_COMPRESSION`).
    pub compression: f64,
    /// Memory of the export, import and step functions, MB (`DBSYNC_COST_MEMORY_MB`).
    pub memory_mb: f64,
    /// Memory of the snapshot holders, MB (`DBSYNC_COST_HOLDER_MEMORY_MB`).
    pub holder_memory_mb: f64,
    /// Days the parts stay in S3 (`DBSYNC_COST_RETENTION_DAYS`; the bucket's lifecycle).
    pub retention_days: f64,
    /// $ per Lambda GB-second, arm64 (`DBSYNC_COST_LAMBDA_GB_SECOND`).
    pub lambda_gb_second: f64,
    /// $ per Lambda request (`DBSYNC_COST_LAMBDA_REQUEST`).
    pub lambda_request: f64,
    /// $ per Standard state transition (`DBSYNC_COST_TRANSITION`).
    pub transition: f64,
    /// $ per S3 PUT, COPY, POST or LIST (`DBSYNC_COST_S3_PUT`).
    pub s3_put: f64,
    /// $ per S3 GET (`DBSYNC_COST_S3_GET`).
    pub s3_get: f64,
    /// $ per S3 Standard GB-month (`DBSYNC_COST_S3_GB_MONTH`).
    pub s3_gb_month: f64,
    /// $ per DynamoDB on-demand write request unit (`DBSYNC_COST_DYNAMODB_WRITE`).
    pub dynamodb_write: f64,
}

impl Default for Rates {
    fn default() -> Self {
        Rates {
            export_mbps: 40.0,
            import_mbps: 25.0,
            source_mbps: 500.0,
            target_mbps: 250.0,
            rebuild_mbps: 250.0,
            invocation_seconds: 1.0,
            compression: 0.35,
            memory_mb: 1024.0,
            holder_memory_mb: 256.0,
            retention_days: 30.0,
            lambda_gb_second: 0.000_013_333_4,
            lambda_request: 0.000_000_2,
            transition: 0.000_025,
            s3_put: 0.000_005,
            s3_get: 0.000_000_4,
            s3_gb_month: 0.023,
            dynamodb_write: 0.000_000_625,
        }
    }
}

impl Rates {
    /// The defaults, with any `DBSYNC_COST_*` setting `env` holds instead.
    pub fn from_lookup(env: &dyn Fn(&str) -> Option<String>) -> Result<Rates> {
        let mut r = Rates::default();
        let fields: [(&str, &mut f64); 17] = [
            ("EXPORT_MBPS", &mut r.export_mbps),
            ("IMPORT_MBPS", &mut r.import_mbps),
            ("SOURCE_MBPS", &mut r.source_mbps),
            ("TARGET_MBPS", &mut r.target_mbps),
            ("REBUILD_MBPS", &mut r.rebuild_mbps),
            ("INVOCATION_SECONDS", &mut r.invocation_seconds),
            ("COMPRESSION", &mut r.compression),
            ("MEMORY_MB", &mut r.memory_mb),
            ("HOLDER_MEMORY_MB", &mut r.holder_memory_mb),
            ("RETENTION_DAYS", &mut r.retention_days),
            ("LAMBDA_GB_SECOND", &mut r.lambda_gb_second),
            ("LAMBDA_REQUEST", &mut r.lambda_request),
            ("TRANSITION", &mut r.transition),
            ("S3_PUT", &mut r.s3_put),
            ("S3_GET", &mut r.s3_get),
            ("S3_GB_MONTH", &mut r.s3_gb_month),
            ("DYNAMODB_WRITE", &mut r.dynamodb_write),
        ];
        for (name, field) in fields {
            let key = format!("DBSYNC_COST_{name}");
            if let Some(v) = env(&key) {
                *field = v
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x >= 0.0)
                    .ok_or_else(|| {
                        Error::config(&key, format!("{v:?} is not a number of 0 or more"))
                    })?;
            }
        }
        for (key, v) in [
            ("DBSYNC_COST_EXPORT_MBPS", r.export_mbps),
            ("DBSYNC_COST_IMPORT_MBPS", r.import_mbps),
            ("DBSYNC_COST_SOURCE_MBPS", r.source_mbps),
            ("DBSYNC_COST_TARGET_MBPS", r.target_mbps),
            ("DBSYNC_COST_REBUILD_MBPS", r.rebuild_mbps),
        ] {
            if v <= 0.0 {
                return Err(Error::config(key, "must be more than 0"));
            }
        }
        Ok(r)
    }
}

/// What a job does with the chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Export, then load a target.
    Sync,
    /// Export to S3 only.
    Export,
    /// Export, then compose one SQL file.
    Dump,
}

/// One chunk as the model sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLoad {
    /// Bytes on disk.
    pub bytes: u64,
    /// Its table's foreign-key level (load wave).
    pub level: usize,
}

/// The job the model prices.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// Every chunk.
    pub chunks: Vec<ChunkLoad>,
    /// Tables in scope.
    pub tables: usize,
    /// What the job does.
    pub kind: JobKind,
    /// Exports and loads at once (the Map's concurrency).
    pub fanout: u32,
    /// Keep the target's indexes during the load (nothing to rebuild after).
    pub keep_indexes: bool,
    /// Seconds of work per export invocation (`export_budget_seconds`, else the limit).
    pub budget_seconds: f64,
    /// Seconds one snapshot holder holds (`snapshot_window_seconds`).
    pub window_seconds: f64,
}

impl Workload {
    /// The chunks of `plan`, each its table's share of the table's size.
    pub fn from_plan(plan: &Plan, kind: JobKind, fanout: u32) -> Workload {
        let chunks = plan
            .chunks
            .iter()
            .map(|c| ChunkLoad {
                bytes: crate::plan::chunks::estimated_bytes(plan, c),
                level: plan.order.levels.get(c.table).copied().unwrap_or(0),
            })
            .collect();
        Workload {
            chunks,
            tables: plan.catalog.tables.len(),
            kind,
            fanout,
            keep_indexes: false,
            budget_seconds: INVOCATION_SECONDS,
            window_seconds: INVOCATION_SECONDS,
        }
    }

    fn total_bytes(&self) -> u64 {
        self.chunks.iter().map(|c| c.bytes).sum()
    }
}

/// Counts of what the job does in AWS.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Usage {
    /// Export invocations and parts (a chunk longer than one invocation's budget is several).
    pub parts: u64,
    /// Foreign-key waves of the load.
    pub waves: u64,
    /// Map Runs (the export Map, one per load wave).
    pub map_runs: u64,
    /// Child executions of all Map Runs.
    pub map_child_executions: u64,
    /// Lambda invocations.
    pub lambda_invocations: u64,
    /// Standard state transitions (the job's execution and its Map children).
    pub state_transitions: u64,
    /// History events of the job's own execution (Map children have their own).
    pub history_events: u64,
    /// Lambda GB-seconds.
    pub lambda_gb_seconds: f64,
    /// S3 PUT/COPY/POST/LIST requests.
    pub s3_puts: u64,
    /// S3 GET requests.
    pub s3_gets: u64,
    /// S3 storage of the parts over the retention, GB-months.
    pub s3_gb_months: f64,
    /// DynamoDB write request units.
    pub dynamodb_writes: u64,
}

/// Dollars per service.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Dollars {
    /// Lambda (GB-seconds and requests).
    pub lambda: f64,
    /// Step Functions transitions.
    pub step_functions: f64,
    /// S3 requests.
    pub s3_requests: f64,
    /// S3 storage.
    pub s3_storage: f64,
    /// DynamoDB writes.
    pub dynamodb: f64,
    /// All of it.
    pub total: f64,
    /// Per GB on disk at the source.
    pub per_gb: f64,
}

/// The plan's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostPlan {
    /// What the job does.
    pub kind: JobKind,
    /// Exports and loads at once.
    pub fanout: u32,
    /// Bytes on disk at the source.
    pub bytes: u64,
    /// Chunks (export Map items).
    pub chunks: u64,
    /// What it does in AWS.
    pub usage: Usage,
    /// Seconds of the export phase (plan, exports, assemble).
    pub export_seconds: u64,
    /// Seconds of the load (or the dump's composition), indexes and keys included.
    pub import_seconds: u64,
    /// The whole job, seconds.
    pub estimated_duration_seconds: u64,
    /// What it costs.
    pub cost: Dollars,
    /// Service limits the job would cross, and what to change; empty when none.
    pub warnings: Vec<String>,
    /// The rates the figures come from.
    pub rates: Rates,
}

/// Seconds to move `bytes` with `lanes` invocations at `per_lane` MB/s, capped by the
/// database's `cap` MB/s, never less than the largest single piece takes alone.
fn phase_seconds(bytes: u64, largest: u64, lanes: f64, per_lane: f64, cap: f64) -> f64 {
    let rate = (lanes * per_lane).min(cap) * MIB;
    (bytes as f64 / rate).max(largest as f64 / (per_lane * MIB))
}

/// How long the phases take: (export, load or dump composition, index rebuild), seconds.
fn durations(w: &Workload, r: &Rates, parts: u64) -> (f64, f64, f64) {
    let lanes = f64::from(w.fanout.max(1));
    let bytes = w.total_bytes();
    let largest = w.chunks.iter().map(|c| c.bytes).max().unwrap_or(0);
    let rounds = (parts as f64 / lanes).ceil();
    let export = 3.0 * r.invocation_seconds
        + rounds * r.invocation_seconds
        + phase_seconds(bytes, largest, lanes, r.export_mbps, r.source_mbps);
    let load = match w.kind {
        JobKind::Export => 0.0,
        // Composed in S3: parts over 5 MiB are copied server-side.
        JobKind::Dump => r.invocation_seconds * (1.0 + parts as f64 / 2_000.0),
        JobKind::Sync => {
            let levels = w.chunks.iter().map(|c| c.level + 1).max().unwrap_or(0);
            (0..levels)
                .map(|l| {
                    let wave: Vec<u64> = w
                        .chunks
                        .iter()
                        .filter(|c| c.level == l)
                        .map(|c| c.bytes)
                        .collect();
                    let (sum, max) = (wave.iter().sum(), wave.iter().copied().max().unwrap_or(0));
                    let rounds = (wave.len() as f64 / lanes).ceil();
                    rounds * r.invocation_seconds
                        + phase_seconds(sum, max, lanes, r.import_mbps, r.target_mbps)
                })
                .sum::<f64>()
                + 2.0 * r.invocation_seconds
        }
    };
    let rebuild = if w.kind == JobKind::Sync && !w.keep_indexes {
        bytes as f64 / (r.rebuild_mbps * MIB)
    } else {
        0.0
    };
    (export, load, rebuild)
}

/// Counts what the job does, given the phase durations.
fn usage(w: &Workload, r: &Rates, parts: u64, export_s: f64, rebuild_s: f64) -> Usage {
    let bytes = w.total_bytes() as f64;
    let chunks = w.chunks.len() as u64;
    let loads = w.kind == JobKind::Sync;
    let waves = if loads {
        w.chunks
            .iter()
            .map(|c| c.level as u64 + 1)
            .max()
            .unwrap_or(0)
    } else {
        0
    };
    let imports = if loads { parts } else { 0 };
    // Two holder loops, each one invocation per window, for the whole export.
    let holders = 2 * (export_s / w.window_seconds.max(1.0)).ceil().max(1.0) as u64;
    // A Finalize longer than one invocation hands over (its index build runs on in the
    // target): one more invocation, Choice and Wait each time, three transitions (Finalize
    // -> Choice -> Wait -> Finalize).
    let finalize_more = (rebuild_s / INVOCATION_SECONDS).ceil().max(1.0) as u64 - 1;
    let steps = 4 + u64::from(loads) * 2 + u64::from(w.kind == JobKind::Dump) + finalize_more;
    let gb = r.memory_mb / 1024.0;
    let export_work = bytes / (r.export_mbps * MIB) + parts as f64 * r.invocation_seconds;
    let import_work = if loads {
        bytes / (r.import_mbps * MIB) + imports as f64 * r.invocation_seconds
    } else {
        0.0
    };
    // Plan, assemble, prepare, finalize: a few seconds each, and the index rebuild.
    let fixed = steps as f64 * r.invocation_seconds * 5.0 + rebuild_s;
    let compressed = bytes * r.compression;
    let upload_parts = |b: f64| (b / UPLOAD_PART_BYTES).ceil().max(1.0) as u64;
    let per_part_puts = upload_parts(compressed / parts.max(1) as f64) + 3;
    let dump_puts = if w.kind == JobKind::Dump {
        upload_parts(compressed) + 2
    } else {
        0
    };
    Usage {
        parts,
        waves,
        map_runs: 1 + waves,
        map_child_executions: chunks + imports,
        lambda_invocations: parts + imports + holders + steps,
        state_transitions: 20
            + 3 * holders
            + chunks
            + 2 * parts
            + 2 * imports
            + 5 * waves
            + 3 * finalize_more,
        history_events: 80 + 7 * holders + 14 * waves + 8 * steps + 5 * finalize_more,
        lambda_gb_seconds: (export_work + import_work + fixed) * gb
            + holders as f64 * w.window_seconds.min(export_s) * r.holder_memory_mb / 1024.0,
        s3_puts: parts * per_part_puts + waves + 6 + dump_puts,
        s3_gets: parts * 2 + imports + 4,
        s3_gb_months: compressed / GIB * r.retention_days / 30.0,
        dynamodb_writes: 3 * parts + 2 * imports + holders + 12,
    }
}

fn dollars(u: &Usage, r: &Rates, bytes: u64) -> Dollars {
    let lambda =
        u.lambda_gb_seconds * r.lambda_gb_second + u.lambda_invocations as f64 * r.lambda_request;
    let step_functions = u.state_transitions as f64 * r.transition;
    let s3_requests = u.s3_puts as f64 * r.s3_put + u.s3_gets as f64 * r.s3_get;
    let s3_storage = u.s3_gb_months * r.s3_gb_month;
    let dynamodb = u.dynamodb_writes as f64 * r.dynamodb_write;
    let total = lambda + step_functions + s3_requests + s3_storage + dynamodb;
    Dollars {
        lambda,
        step_functions,
        s3_requests,
        s3_storage,
        dynamodb,
        total,
        per_gb: total / (bytes as f64 / GIB).max(1e-9),
    }
}

/// The limits the job would cross.
fn warnings(w: &Workload, r: &Rates, u: &Usage) -> Vec<String> {
    let mut out = Vec::new();
    let largest = w.chunks.iter().map(|c| c.bytes).max().unwrap_or(0) as f64;
    let per_part = largest * r.compression / UPLOAD_PART_BYTES;
    if per_part > MAX_UPLOAD_PARTS as f64 {
        out.push(format!("a part of the largest chunk needs {per_part:.0} upload parts, over S3's {MAX_UPLOAD_PARTS}: use a smaller chunk_size"));
    }
    if w.kind == JobKind::Dump && u.parts * 2 + 3 > MAX_UPLOAD_PARTS {
        out.push(format!("the dump composes {} pieces, over S3's {MAX_UPLOAD_PARTS} parts per upload: use a larger chunk_size", u.parts * 2 + 3));
    }
    if w.fanout > MAX_MAP_CONCURRENCY {
        out.push(format!(
            "concurrency {} is over a Distributed Map's {MAX_MAP_CONCURRENCY}",
            w.fanout
        ));
    }
    if u.history_events > MAX_HISTORY_EVENTS {
        out.push(format!("the execution's history would reach ~{} events, over Step Functions' {MAX_HISTORY_EVENTS}: raise snapshot_window_seconds or split the job", u.history_events));
    }
    let segments = (largest / (r.export_mbps * MIB * w.budget_seconds.max(1.0))).ceil() as u64;
    if 3 * segments + 10 > MAX_HISTORY_EVENTS / 3 {
        out.push(format!("the largest chunk needs {segments} export continuations: its Map child's history nears Step Functions' {MAX_HISTORY_EVENTS} events; use a smaller chunk_size"));
    }
    let waves_bytes = u.waves * 200;
    if waves_bytes > MAX_PAYLOAD_BYTES {
        out.push(format!("{} load waves make a {waves_bytes}-byte state, over Step Functions' {MAX_PAYLOAD_BYTES}", u.waves));
    }
    out
}

/// The cost and time plan of `w` at the rates `r`.
pub fn estimate(w: &Workload, r: &Rates) -> CostPlan {
    let bytes = w.total_bytes();
    // A chunk longer than one invocation's budget is exported as several parts.
    let per_invocation = r.export_mbps * MIB * w.budget_seconds.max(1.0);
    let parts: u64 = w
        .chunks
        .iter()
        .map(|c| (c.bytes as f64 / per_invocation).ceil().max(1.0) as u64)
        .sum();
    let (export_s, load_s, rebuild_s) = durations(w, r, parts);
    let usage = usage(w, r, parts, export_s, rebuild_s);
    let cost = dollars(&usage, r, bytes);
    CostPlan {
        kind: w.kind,
        fanout: w.fanout,
        bytes,
        chunks: w.chunks.len() as u64,
        warnings: warnings(w, r, &usage),
        usage,
        export_seconds: export_s.ceil() as u64,
        import_seconds: (load_s + rebuild_s).ceil() as u64,
        estimated_duration_seconds: (export_s + load_s + rebuild_s).ceil() as u64,
        cost,
        rates: r.clone(),
    }
}

#[cfg(test)]
#[path = "cost_tests.rs"]
mod tests;
