//! `dbsync export`: every chunk of a plan into its own gzip part in a store, on workers that
//! read one snapshot, then the manifest (also built here for the serverless assembler).

use crate::error::{Error, Result, Role};
use crate::model::catalog::Sequence;
use crate::model::chunk::{Chunk, Plan};
use crate::model::manifest::{self, Manifest, ManifestTable, PartEntry};
use crate::model::part::{part_key, ExportedPart};
use crate::parts::PartStore;
use crate::pg::conn::{ConnSpec, SESSION_SETTINGS};
use crate::pg::{catalog, snapshot};
use crate::pipeline::planning::{chunk_context, open_source, OpenedSource};
use crate::pipeline::progress::{Meter, Progress};
use crate::pipeline::relay::{Follow, Holder};
use crate::pipeline::segment::{export_chunk, PartTarget};
use crate::pipeline::workers::run_pool;
use crate::pipeline::ExportOptions;
use crate::plan::chunks::estimated_bytes;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;
use tokio_postgres::Client;

/// What every chunk of one export shares.
#[derive(Clone)]
struct ExportRun {
    plan: Arc<Plan>,
    store: Arc<dyn PartStore>,
    /// gzip level of the parts.
    level: u32,
    /// The relayed snapshot to move to before each chunk, when it is relayed.
    follow: Option<Follow>,
    progress: Arc<dyn Progress>,
}

/// Exports one chunk of the run's plan on a worker into its part, first moving the worker to
/// the current snapshot when it is relayed.
async fn export_one(w: Client, run: &ExportRun, chunk: Chunk) -> (Client, Result<ExportedPart>) {
    if let Some(f) = &run.follow {
        if let Err(e) = f.rejoin(&w).await {
            return (w, Err(e));
        }
    }
    let plan = &run.plan;
    let table = &plan.catalog.tables[chunk.table];
    let key = part_key(&chunk);
    let part = PartTarget {
        store: run.store.as_ref(),
        key: &key,
        level: run.level,
    };
    let meter = Meter {
        progress: run.progress.as_ref(),
        table: &table.name,
        est_bytes: estimated_bytes(plan, &chunk),
    };
    let context = chunk_context(plan, &chunk);
    let r = export_chunk(&w, table, &chunk.range, context, part, meter)
        .await
        .map(|(stats, compressed_bytes)| ExportedPart {
            id: chunk.id(),
            chunk: chunk.clone(),
            key: key.clone(),
            stats,
            compressed_bytes,
            snapshot: None,
        });
    (w, r)
}

/// Exports every chunk of the run's plan on `workers`, largest first (so the slowest one
/// does not start last).
async fn export_chunks(
    workers: Vec<Client>,
    run: ExportRun,
    interrupt: &crate::pipeline::interrupt::Interrupt,
) -> Result<Vec<ExportedPart>> {
    let mut items = run.plan.chunks.clone();
    items.sort_by_key(|c| std::cmp::Reverse(estimated_bytes(&run.plan, c)));
    let (_, parts) = run_pool(workers, items, interrupt, move |w: Client, chunk: Chunk| {
        let run = run.clone();
        async move {
            let est = estimated_bytes(&run.plan, &chunk);
            let (w, r) = export_one(w, &run, chunk).await;
            if let Ok(p) = &r {
                let name = &run.plan.catalog.tables[p.chunk.table].name;
                run.progress
                    .chunk_done(name, p.stats.rows, p.stats.bytes, est);
            }
            (w, r)
        }
    })
    .await?;
    Ok(parts)
}

/// `dbsync export`: every chunk into its own gzip part, then the manifest.
/// Refuses a location that already holds anything (an earlier export, or other files), naming
/// what it found, unless `force`, which empties it first: an export written over another
/// would leave one folder mixing two exports' parts. `setting` is the flag that named it.
pub async fn fresh_location(store: &dyn PartStore, setting: &str, force: bool) -> Result<()> {
    let found = store.existing().await?;
    if found.is_empty() {
        return Ok(());
    }
    if force {
        return store.clear().await;
    }
    let what = if found.iter().any(|k| k == manifest::KEY) {
        "an export (manifest.json)".to_string()
    } else {
        let shown: Vec<&str> = found.iter().take(3).map(String::as_str).collect();
        format!(
            "{} ({}{})",
            if found.len() == 1 { "a file" } else { "files" },
            shown.join(", "),
            if found.len() > 3 { ", ..." } else { "" }
        )
    };
    Err(Error::config(
        setting,
        format!(
            "{} already holds {what}; give a new location, or add --force to empty it first",
            store.location("").trim_end_matches('/')
        ),
    ))
}

pub async fn export(
    source: &ConnSpec,
    store: Arc<dyn PartStore>,
    opts: &ExportOptions,
    progress: Arc<dyn Progress>,
) -> Result<Manifest> {
    let started = Instant::now();
    let created_at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let OpenedSource {
        job_id,
        app,
        coord,
        snapshot,
        plan,
    } = open_source(source, &opts.scope, opts.rules.as_ref(), opts.sizing()).await?;
    let plan = Arc::new(plan);
    let planned_ms = started.elapsed().as_millis() as u64;
    crate::pipeline::progress::planned(&*progress, "export", &plan);
    let n = opts.workers.clamp(1, plan.chunks.len().max(1));
    let mut workers = Vec::with_capacity(n);
    for _ in 0..n {
        workers.push(snapshot::join_snapshot(source, &snapshot, &app).await?);
    }
    let holder = Holder::new(source, coord, &snapshot, opts.snapshot_relay, &app);
    let follow = holder.follow();
    let run = ExportRun {
        plan: plan.clone(),
        store: store.clone(),
        level: opts.compress_level,
        follow,
        progress,
    };
    let exported = export_chunks(workers, run, &opts.interrupt).await;
    let (coord, relays) = holder.finish().await?;
    let parts = exported?;
    let export_ms = started.elapsed().as_millis() as u64 - planned_ms;
    let mut sequences = plan.catalog.sequences.clone();
    catalog::read_sequence_values(&coord, Role::Source, &mut sequences).await?;
    let mut manifest = assemble_manifest(
        &plan,
        ManifestHeader {
            job_id,
            created_at,
            snapshot,
            timings_ms: BTreeMap::from([
                ("plan".to_string(), planned_ms),
                ("export".to_string(), export_ms),
            ]),
        },
        parts,
        sequences,
    );
    manifest.snapshot_relays = relays;
    store.put(manifest::KEY, &manifest.to_json()).await?;
    Ok(manifest)
}

/// What a manifest says about its export besides the tables and parts.
pub struct ManifestHeader {
    /// The export's job id.
    pub job_id: String,
    /// When it started (RFC 3339).
    pub created_at: String,
    /// The snapshot its chunks read.
    pub snapshot: String,
    /// Milliseconds per phase.
    pub timings_ms: BTreeMap<String, u64>,
}

/// Builds the manifest from a plan and the parts its chunks produced.
pub fn assemble_manifest(
    plan: &Plan,
    header: ManifestHeader,
    mut parts: Vec<ExportedPart>,
    sequences: Vec<Sequence>,
) -> Manifest {
    parts.sort_by(|a, b| {
        (a.chunk.table, a.chunk.seq, &a.id).cmp(&(b.chunk.table, b.chunk.seq, &b.id))
    });
    let cat = &plan.catalog;
    let tables: Vec<ManifestTable> = cat
        .tables
        .iter()
        .enumerate()
        .map(|(i, t)| ManifestTable {
            table: t.clone(),
            level: plan.order.levels[i],
            parts: parts
                .iter()
                .filter(|p| p.chunk.table == i)
                .map(|p| PartEntry {
                    id: p.id.clone(),
                    key: p.key.clone(),
                    range: p.chunk.range.clone(),
                    stats: p.stats.clone(),
                    compressed_bytes: p.compressed_bytes,
                    snapshot: p.snapshot.clone(),
                })
                .collect(),
        })
        .collect();
    let per_chunk = parts.iter().any(|p| p.snapshot.is_some());
    Manifest {
        format: manifest::FORMAT.into(),
        version: manifest::VERSION,
        job_id: header.job_id,
        created_at: header.created_at,
        source: cat.server.clone(),
        consistency: if per_chunk { "per_chunk" } else { "snapshot" }.into(),
        snapshot: header.snapshot,
        settings: SESSION_SETTINGS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        compression: "gzip".into(),
        chunk_bytes: plan.chunk_bytes,
        tables,
        foreign_keys: cat.foreign_keys.clone(),
        sequences,
        enums: cat.enums.clone(),
        timings_ms: header.timings_ms,
        snapshot_relays: 0,
    }
}
