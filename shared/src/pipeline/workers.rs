//! The worker pool every pipeline runs on: one task per worker taking items from a shared
//! queue, stopping at the first error; retries of transient failures with full-jitter
//! backoff, on fresh sessions; the workers themselves (a loader, a reader-loader pair); job
//! ids and session names.

use crate::error::{Error, Result};
use crate::pipeline::interrupt::Interrupt;
use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio_postgres::Client;

/// A worker that loads into the target.
pub trait Loader: Send + 'static {
    /// Its target session.
    fn target(&self) -> &Client;
}

impl Loader for Client {
    fn target(&self) -> &Client {
        self
    }
}

/// A source reader in the job's snapshot and a target loader, working as one (a streaming
/// sync, and verification).
pub struct SyncWorker {
    /// Reads the source.
    pub src: Client,
    /// Loads the target.
    pub tgt: Client,
}

impl SyncWorker {
    /// Both sessions, as a comparison reads them.
    pub fn sides(&self) -> crate::pg::refresh::Sides<'_> {
        crate::pg::refresh::Sides {
            source: &self.src,
            target: &self.tgt,
        }
    }
}

impl Loader for SyncWorker {
    fn target(&self) -> &Client {
        &self.tgt
    }
}

/// Attempts per chunk or part before its error stops the job.
pub const ATTEMPTS: u32 = 4;

/// A new job id.
pub fn new_job_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The `application_name` of a job's sessions: `dbsync-<job id prefix>-<what>`. The source
/// coordinator's name is unique per job, which is how a target that is the source is found.
pub fn app_name(job_id: &str, what: &str) -> String {
    format!("dbsync-{}-{what}", &job_id[..8.min(job_id.len())])
}

/// Full-jitter exponential backoff: a random wait in `[0, min(8 s, 250 ms * 2^attempt)]`.
/// Workers that failed together (a database restart, a network blip) then retry spread out
/// instead of in lockstep.
fn backoff(attempt: u32) -> std::time::Duration {
    let ceiling = 8_000u64.min(250u64 << attempt.min(5));
    let random = (uuid::Uuid::new_v4().as_u128() % u128::from(ceiling + 1)) as u64;
    std::time::Duration::from_millis(random)
}

/// Runs `f` until it succeeds, fails for good, or uses up [`ATTEMPTS`] (opening sessions).
pub async fn retrying<T, F, Fut>(what: &str, f: F) -> Result<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut attempt = 0;
    loop {
        match f().await {
            Err(e) if e.is_retryable() && attempt + 1 < ATTEMPTS => {
                attempt += 1;
                tracing::warn!(work = what, attempt, error = %e, "transient failure, retrying");
                tokio::time::sleep(backoff(attempt)).await;
            }
            other => return other,
        }
    }
}

/// Opens `n` workers with `open`, each retried like any other unit of work.
pub async fn open_workers<W, F, Fut>(n: usize, what: &str, open: F) -> Result<Vec<W>>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<W>>,
{
    let mut workers = Vec::with_capacity(n);
    for _ in 0..n {
        workers.push(retrying(what, &open).await?);
    }
    Ok(workers)
}

/// Runs one unit of work on a worker, retrying transient failures on fresh sessions (the
/// ledger makes a retried part exactly-once). Returns the worker, the result and the retries.
pub async fn with_retries<W, O, F, Fut, R, RFut>(
    mut w: W,
    what: &str,
    work: F,
    reconnect: R,
) -> (W, Result<O>, u64)
where
    F: Fn(W) -> Fut,
    Fut: Future<Output = (W, Result<O>)>,
    R: Fn() -> RFut,
    RFut: Future<Output = Result<W>>,
{
    let mut attempt = 0;
    loop {
        let (back, r) = work(w).await;
        w = back;
        match r {
            Err(e) if e.is_retryable() && attempt + 1 < ATTEMPTS => {
                attempt += 1;
                tracing::warn!(work = what, attempt, error = %e, "transient failure, retrying on fresh sessions");
                tokio::time::sleep(backoff(attempt)).await;
                match reconnect().await {
                    Ok(fresh) => w = fresh,
                    Err(e) if e.is_retryable() => {}
                    Err(e) => return (w, Err(e), u64::from(attempt)),
                }
            }
            other => return (w, other, u64::from(attempt)),
        }
    }
}

/// Runs `f` over `items` with one task per worker; stops taking new items after the first
/// error and returns it. Workers are handed back for the next round. When `interrupt`
/// fires, items in flight are abandoned (their workers dropped, which closes their sessions
/// and rolls their work back) and the run ends with [`Error::Interrupted`].
pub async fn run_pool<W, I, O, F, Fut>(
    workers: Vec<W>,
    items: Vec<I>,
    interrupt: &Interrupt,
    f: F,
) -> Result<(Vec<W>, Vec<O>)>
where
    W: Send + 'static,
    I: Send + 'static,
    O: Send + 'static,
    F: Fn(W, I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = (W, Result<O>)> + Send + 'static,
{
    let queue = Arc::new(Mutex::new(VecDeque::from(items)));
    let failed = Arc::new(AtomicBool::new(false));
    let f = Arc::new(f);
    let mut set = tokio::task::JoinSet::new();
    for w in workers {
        let (queue, failed, f) = (queue.clone(), failed.clone(), f.clone());
        let interrupt = interrupt.clone();
        set.spawn(async move {
            let mut w = w;
            let mut outs = Vec::new();
            loop {
                if failed.load(Ordering::Relaxed) {
                    break;
                }
                if let Some(by) = interrupt.fired() {
                    return (None, outs, Some(Error::Interrupted(by)));
                }
                let item = queue.lock().ok().and_then(|mut q| q.pop_front());
                let Some(item) = item else { break };
                let (back, r) = tokio::select! {
                    done = f(w, item) => done,
                    by = interrupt.wait() => return (None, outs, Some(Error::Interrupted(by))),
                };
                w = back;
                match r {
                    Ok(o) => outs.push(o),
                    Err(e) => {
                        failed.store(true, Ordering::Relaxed);
                        return (Some(w), outs, Some(e));
                    }
                }
            }
            (Some(w), outs, None)
        });
    }
    let mut workers = Vec::new();
    let mut outs = Vec::new();
    let mut first_err = None;
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((w, o, e)) => {
                workers.extend(w);
                outs.extend(o);
                if first_err.is_none() {
                    first_err = e;
                }
            }
            Err(e) => {
                first_err.get_or_insert(Error::Internal(format!("a worker task failed: {e}")));
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok((workers, outs)),
    }
}
