//! The load loop that `sync` and `import` share: waves one after the other, the items of a
//! wave on the worker pool, each item retried on fresh sessions after a transient failure,
//! a table finished by the worker that loads its last part, progress and the report's
//! totals kept as parts land.

use crate::error::Result;
use crate::model::part::LoadOutcome;
use crate::pipeline::finish::TableCountdown;
use crate::pipeline::interrupt::Interrupt;
use crate::pipeline::progress::Progress;
use crate::pipeline::workers::{run_pool, with_retries, Loader};
use crate::pipeline::LoadReport;
use std::future::Future;
use std::sync::Arc;

/// One unit of a load: what to load, the table it fills, what it is called in logs, and its
/// estimated size (for progress).
#[derive(Debug, Clone)]
pub struct LoadItem<I> {
    /// What the load function is given.
    pub item: I,
    /// Index of the table it fills.
    pub table: usize,
    /// `copying chunk t0001.c00002 of app.orders`, for logs and retries.
    pub what: String,
    /// Its share of the table on disk.
    pub est_bytes: u64,
}

/// How to load items and how to get a fresh worker.
pub struct LoadFns<F, R> {
    /// Loads one item on a worker and hands the worker back.
    pub load: F,
    /// A fresh worker after a transient failure.
    pub reconnect: R,
    /// Stops the load when fired.
    pub interrupt: Interrupt,
}

/// Runs `waves` in order on `workers`; returns the workers for the finalize phase.
pub async fn run_waves<W, I, F, Fut, R, RFut>(
    mut workers: Vec<W>,
    waves: Vec<Vec<LoadItem<I>>>,
    fns: LoadFns<F, R>,
    countdown: Arc<TableCountdown>,
    progress: Arc<dyn Progress>,
    report: &mut LoadReport,
) -> Result<Vec<W>>
where
    W: Loader,
    I: Clone + Send + Sync + 'static,
    F: Fn(W, I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = (W, Result<LoadOutcome>)> + Send + 'static,
    R: Fn() -> RFut + Send + Sync + 'static,
    RFut: Future<Output = Result<W>> + Send + 'static,
{
    let interrupt = fns.interrupt.clone();
    let fns = Arc::new(fns);
    for items in waves {
        let (fns, countdown, progress) = (fns.clone(), countdown.clone(), progress.clone());
        let (back, outs) = run_pool(workers, items, &interrupt, move |w: W, it: LoadItem<I>| {
            let (fns, countdown, progress) = (fns.clone(), countdown.clone(), progress.clone());
            async move {
                countdown.part_started(it.table);
                let work = |w: W| {
                    let (fns, countdown, item) = (fns.clone(), countdown.clone(), it.item.clone());
                    let (table, progress) = (it.table, progress.clone());
                    async move {
                        let (w, r) = (fns.load)(w, item).await;
                        let r = match r {
                            Ok(o) => {
                                let loaded = match &o {
                                    LoadOutcome::Loaded(s) => Some(s),
                                    LoadOutcome::AlreadyLoaded => None,
                                };
                                let done =
                                    countdown.part_done(w.target(), table, loaded, &*progress);
                                done.await.map(|()| o)
                            }
                            Err(e) => Err(e),
                        };
                        (w, r)
                    }
                };
                let (w, r, retries) = with_retries(w, &it.what, work, || (fns.reconnect)()).await;
                if let Ok(LoadOutcome::Loaded(s)) = &r {
                    progress.chunk_done(countdown.name(it.table), s.rows, s.bytes, it.est_bytes);
                }
                (w, r.map(|o| (o, retries)))
            }
        })
        .await?;
        workers = back;
        report.tally(outs);
    }
    Ok(workers)
}
