//! `dbsync verify` and `--verify`: every table's row count and content checksum compared on
//! both sides, in parallel on worker pairs, and every sequence's state.

use crate::error::{Error, Result, Role};
use crate::model::catalog::{Catalog, Sequence};
use crate::model::chunk::{FkOrder, Plan};
use crate::model::scope::Scope;
use crate::model::verify::{compare_sequences, TableComparison, VerifyReport};
use crate::pg::conn::ConnSpec;
use crate::pg::{catalog, verify};
use crate::pipeline::diff_keys::first_differing_keys;
use crate::pipeline::interrupt::Interrupt;
use crate::pipeline::planning::{apply_rules, check_patterns, scope_text};
use crate::pipeline::workers::{run_pool, SyncWorker};
use crate::pipeline::VerifyOptions;
use crate::plan::compat;
use std::sync::Arc;
use tokio_postgres::Client;

/// Fingerprints every table of `plan` on both sides of each worker pair.
pub async fn compare_tables(
    workers: Vec<SyncWorker>,
    plan: Arc<Plan>,
    interrupt: &Interrupt,
) -> Result<(Vec<SyncWorker>, Vec<TableComparison>)> {
    let idx: Vec<usize> = (0..plan.catalog.tables.len()).collect();
    let (w, mut cmp) = run_pool(workers, idx, interrupt, move |w: SyncWorker, i: usize| {
        let plan = plan.clone();
        async move {
            let t = &plan.catalog.tables[i];
            let cols: Vec<&str> = t.copy_columns().map(|c| c.name.as_str()).collect();
            let r = async {
                let (s, d) = tokio::try_join!(
                    verify::fingerprint(&w.src, Role::Source, t, &cols),
                    verify::fingerprint(&w.tgt, Role::Target, t, &cols)
                )?;
                Ok(TableComparison {
                    table: t.name.to_string(),
                    source: s,
                    target: d,
                    differing_keys: Vec::new(),
                })
            }
            .await;
            (w, r)
        }
    })
    .await?;
    cmp.sort_by(|a, b| a.table.cmp(&b.table));
    Ok((w, cmp))
}

/// `--verify` after a load: every table compared on the worker pairs, which still read the
/// job's snapshot, and every sequence as read from `seqs` against `target`.
pub async fn verify_against_snapshot(
    workers: Vec<SyncWorker>,
    plan: Arc<Plan>,
    target: &Client,
    seqs: &[Sequence],
    interrupt: &Interrupt,
) -> Result<VerifyReport> {
    let (_, tables) = compare_tables(workers, plan, interrupt).await?;
    let mut tseqs = seqs.to_vec();
    catalog::read_sequence_values(target, Role::Target, &mut tseqs).await?;
    VerifyReport {
        tables,
        sequence_differences: compare_sequences(seqs, &tseqs),
    }
    .into_result()
}

/// `dbsync verify`: compares the live source and target table by table.
pub async fn verify(
    source: &ConnSpec,
    target: &ConnSpec,
    opts: &VerifyOptions,
) -> Result<VerifyReport> {
    let src = source.connect(Role::Source, "dbsync-verify").await?;
    let tgt = target.connect(Role::Target, "dbsync-verify").await?;
    let mut cat = catalog::load(&src, Role::Source, &opts.scope).await?;
    check_patterns(&cat, &opts.scope)?;
    if cat.tables.is_empty() {
        return Err(Error::EmptyScope(scope_text(&opts.scope)));
    }
    apply_rules(&src, &mut cat, opts.rules.as_ref(), source.has_rules_key()).await?;
    let tcat = catalog::load(&tgt, Role::Target, &Scope::default()).await?;
    let side = compat::SourceSide {
        server: &cat.server,
        tables: &cat.tables,
        sequences: &[],
        enums: &cat.enums,
    };
    let problems = compat::check(&side, &tcat, compat::Purpose::Compare);
    if !problems.is_empty() {
        return Err(Error::Incompatible { problems });
    }
    catalog::read_sequence_values(&src, Role::Source, &mut cat.sequences).await?;
    let mut tseqs: Vec<Sequence> = tcat
        .sequences
        .iter()
        .filter(|s| cat.sequences.iter().any(|x| x.name == s.name))
        .cloned()
        .collect();
    catalog::read_sequence_values(&tgt, Role::Target, &mut tseqs).await?;
    let n = opts.workers.clamp(1, cat.tables.len());
    let mut workers = Vec::with_capacity(n);
    for _ in 0..n {
        workers.push(SyncWorker {
            src: source.connect(Role::Source, "dbsync-verify").await?,
            tgt: target.connect(Role::Target, "dbsync-verify").await?,
        });
    }
    let sequence_differences = compare_sequences(&cat.sequences, &tseqs);
    let plan = Arc::new(Plan {
        order: FkOrder {
            levels: vec![0; cat.tables.len()],
            cyclic: vec![],
        },
        catalog: cat,
        chunks: vec![],
        chunk_bytes: 0,
    });
    let (workers, mut tables) = compare_tables(workers, plan.clone(), &opts.interrupt).await?;
    name_differing_keys(&workers, &plan, &tcat, &mut tables).await?;
    Ok(VerifyReport {
        tables,
        sequence_differences,
    })
}

/// Names the first differing keys of each keyed table whose checksums differ.
async fn name_differing_keys(
    workers: &[SyncWorker],
    plan: &Plan,
    tcat: &Catalog,
    tables: &mut [TableComparison],
) -> Result<()> {
    let Some(w) = workers.first() else {
        return Ok(());
    };
    for cmp in tables.iter_mut().filter(|c| !c.matches()) {
        let Some(t) = plan
            .catalog
            .tables
            .iter()
            .find(|t| t.name.to_string() == cmp.table)
        else {
            continue;
        };
        cmp.differing_keys = first_differing_keys(w, t, tcat.table(&t.name)).await?;
    }
    Ok(())
}
