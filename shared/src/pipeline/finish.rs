//! The end of a load: each table finished as its last part lands ([`TableCountdown`]: keys,
//! index rebuilds, statistics, shown to the progress sink while they run, and the table's
//! rows, bytes and time for the summary), then the job's end ([`finish_load`]: tables left
//! over, foreign keys, triggers, sequences, the job marked done).

use crate::error::Result;
use crate::model::catalog::{Sequence, Table};
use crate::model::ident::QualName;
use crate::model::part::PartStats;
use crate::model::restore::Restore;
use crate::pg::ledger;
use crate::pg::steps::{self, Step};
use crate::pipeline::interrupt::Interrupt;
use crate::pipeline::progress::Progress;
use crate::pipeline::target::{Reconnect, TargetJob};
use crate::pipeline::workers::{run_pool, with_retries};
use crate::pipeline::TableSummary;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio_postgres::Client;

/// Runs `steps` one after the other on `client`, each shown to `progress` while it runs.
pub async fn run_shown(client: &Client, steps: &[Step], progress: &dyn Progress) -> Result<()> {
    for step in steps {
        progress.activity(&step.what, true);
        let r = step.run(client).await;
        progress.activity(&step.what, false);
        r?;
    }
    Ok(())
}

/// One table's tallies while it loads.
#[derive(Default)]
struct Tallies {
    rows: AtomicU64,
    bytes: AtomicU64,
    parts: AtomicU64,
    /// When its first part started, and when it was finished.
    times: Mutex<(Option<Instant>, Option<Instant>)>,
}

/// Counts down the parts of each table; the worker that finishes a table's last part runs
/// its [`steps::table_steps`] (index rebuilds, ANALYZE) right away, while other tables load.
pub struct TableCountdown {
    remaining: Vec<AtomicUsize>,
    restore: Restore,
    names: Vec<QualName>,
    tallies: Vec<Tallies>,
}

impl TableCountdown {
    /// A countdown of `parts_of(i)` parts for each table `i`.
    pub fn new(
        restore: &Restore,
        tables: &[Table],
        parts_of: impl Fn(usize) -> usize,
    ) -> Arc<Self> {
        Arc::new(TableCountdown {
            remaining: (0..tables.len())
                .map(|i| AtomicUsize::new(parts_of(i)))
                .collect(),
            restore: restore.clone(),
            names: tables.iter().map(|t| t.name.clone()).collect(),
            tallies: tables.iter().map(|_| Tallies::default()).collect(),
        })
    }

    /// The name of table `i`.
    pub fn name(&self, table: usize) -> &QualName {
        &self.names[table]
    }

    /// A part of `table` starts loading (the first one starts the table's clock).
    pub fn part_started(&self, table: usize) {
        if let Ok(mut t) = self.tallies[table].times.lock() {
            t.0.get_or_insert_with(Instant::now);
        }
    }

    /// Records one part of `table` as in (`loaded`: what it held, None when an earlier
    /// attempt had loaded it); finishes the table if it was the last.
    pub async fn part_done(
        &self,
        client: &Client,
        table: usize,
        loaded: Option<&PartStats>,
        progress: &dyn Progress,
    ) -> Result<()> {
        if let Some(s) = loaded {
            let t = &self.tallies[table];
            t.rows.fetch_add(s.rows, Ordering::Relaxed);
            t.bytes.fetch_add(s.bytes, Ordering::Relaxed);
            t.parts.fetch_add(1, Ordering::Relaxed);
        }
        if self.remaining[table].fetch_sub(1, Ordering::AcqRel) == 1 {
            let steps = steps::table_steps(&self.restore, &self.names[table]);
            run_shown(client, &steps, progress).await?;
            if let Ok(mut t) = self.tallies[table].times.lock() {
                t.1 = Some(Instant::now());
            }
        }
        Ok(())
    }

    /// Each table's rows, bytes and parts loaded now, and the seconds from its first part's
    /// start to its end (keys and indexes back).
    pub fn summary(&self) -> Vec<TableSummary> {
        self.names
            .iter()
            .zip(&self.tallies)
            .map(|(name, t)| {
                let seconds = match t.times.lock().map(|g| *g) {
                    Ok((Some(a), Some(b))) => b.duration_since(a).as_secs_f64(),
                    _ => 0.0,
                };
                TableSummary {
                    table: name.to_string(),
                    rows: t.rows.load(Ordering::Relaxed),
                    bytes: t.bytes.load(Ordering::Relaxed),
                    parts: t.parts.load(Ordering::Relaxed),
                    seconds: (seconds * 1000.0).round() / 1000.0,
                }
            })
            .collect()
    }

    /// Tables not finished during the load (none, unless a manifest lists a table without
    /// parts).
    fn unfinished(&self) -> Vec<Step> {
        self.remaining
            .iter()
            .enumerate()
            .filter(|(_, r)| r.load(Ordering::Acquire) > 0)
            .flat_map(|(i, _)| steps::table_steps(&self.restore, &self.names[i]))
            .collect()
    }
}

/// What ends a job, besides its target: the countdown of its tables, its id and the
/// sequences to set.
pub struct JobEnd<'a> {
    /// The tables' countdown.
    pub countdown: &'a TableCountdown,
    /// The ledger's job id.
    pub job_id: &'a str,
    /// Sequences, with the values to set.
    pub sequences: &'a [Sequence],
}

/// The end of a job: tables left unfinished, then foreign keys (re-added serially, validated
/// in parallel on the loaders), triggers and sequences; then the job is marked done. Each
/// statement is shown to `progress` while it runs.
pub async fn finish_load(
    tj: &TargetJob,
    loaders: Vec<Client>,
    again: &Arc<Reconnect>,
    end: JobEnd<'_>,
    progress: Arc<dyn Progress>,
) -> Result<Vec<Client>> {
    let mut groups = vec![steps::StepGroup {
        parallel: true,
        steps: end.countdown.unfinished(),
    }];
    groups.extend(steps::finalize_steps(&tj.restore, end.sequences));
    let mut loaders = loaders;
    for group in groups {
        if !group.parallel {
            run_shown(&tj.coord, &group.steps, progress.as_ref()).await?;
            continue;
        }
        // Every parallel step is idempotent (IF NOT EXISTS, VALIDATE, ANALYZE): safe to retry.
        let (again, progress) = (again.clone(), progress.clone());
        // Finishing is short and leaves the target whole: it is not interrupted.
        let never = Interrupt::default();
        let (back, _) = run_pool(
            loaders,
            group.steps,
            &never,
            move |c: Client, step: Step| {
                let (again, progress) = (again.clone(), progress.clone());
                async move {
                    let work = |c: Client| {
                        let step = step.clone();
                        async move {
                            let r = step.run(&c).await;
                            (c, r)
                        }
                    };
                    progress.activity(&step.what, true);
                    let (c, r, _) = with_retries(c, &step.what, work, || again.loader()).await;
                    progress.activity(&step.what, false);
                    (c, r)
                }
            },
        )
        .await?;
        loaders = back;
    }
    ledger::mark_done(&tj.coord, end.job_id).await?;
    Ok(loaders)
}
