//! Finishing steps that may outlast one invocation. The statements that end a stateless
//! load (index and key rebuilds, ANALYZE, foreign keys, triggers, sequences) run each in one
//! transaction with its row in `dbsync.finish_steps` and under an advisory lock of its job
//! and number: each table's own steps in order on a session of their own, a few tables at
//! once, then the steps that need every table (foreign keys, triggers, sequences) in order.
//! A caller with a deadline (the Finalize Lambda, 15 minutes at most, where one index of a
//! large table may take longer) waits for the running steps until then and returns
//! [`Progress::Pending`]; each goes on in the server, its session kept open by the detached
//! task, and commits its row when it ends. The next call finds it done,
//! still running (its lock is held: it waits again), or gone without its row (its session
//! died with its process), and then runs it again: every step is idempotent.

use crate::error::{Error, Result, Role};
use crate::model::ident::quote_literal;
use crate::pg::conn::ConnSpec;
use crate::pg::steps::Step;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_postgres::Client;

/// How far a run of finishing steps got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Every step is done.
    Done,
    /// At the deadline, `step` of `steps` were done.
    Pending {
        /// Steps done.
        done: usize,
        /// Steps in all.
        steps: usize,
        /// What the first step not done does (it may be running).
        what: String,
    },
}

/// How often a call looks whether an earlier call's step still runs.
const POLL: Duration = Duration::from_millis(250);

/// What finishes a load: lanes that may run at the same time (one table's own steps, in
/// order), then the steps that need all of them done, in order.
#[derive(Debug, Clone, Default)]
pub struct Work {
    /// Per table, its steps.
    pub lanes: Vec<Vec<Step>>,
    /// After every lane.
    pub last: Vec<Step>,
}

/// A step with its number in the ledger (its place in the lanes, then `last`, flattened).
type Numbered = (i32, Step);

/// Runs a job's finishing steps on the target, resuming after those already done.
pub struct Finisher<'a> {
    /// The target.
    pub target: &'a ConnSpec,
    /// A session for the bookkeeping (not the steps, which have sessions of their own).
    pub client: &'a Client,
    /// The job.
    pub job_id: &'a str,
    /// `application_name` of the step sessions.
    pub app: &'a str,
}

impl Finisher<'_> {
    /// Runs `work` from the first steps not yet done, at most `sessions` lanes at once,
    /// until all are done or `until` passes (never, when `None`). The steps running at
    /// `until` are left running in the server; their lanes start nothing after them.
    pub async fn run_until(
        &self,
        work: &Work,
        sessions: usize,
        until: Option<Instant>,
    ) -> Result<Progress> {
        let done = self.done().await?;
        let mut n = 0;
        let mut numbered = |steps: &[Step]| -> Vec<Numbered> {
            steps
                .iter()
                .map(|s| {
                    n += 1;
                    (number(n - 1), s.clone())
                })
                .filter(|(k, _)| !done.contains(k))
                .collect()
        };
        let lanes: Vec<Vec<Numbered>> = work.lanes.iter().map(|l| numbered(l)).collect();
        let last = numbered(&work.last);
        if self.run_lanes(lanes, sessions, until).await?
            && self.run_lanes(vec![last], 1, until).await?
        {
            return Ok(Progress::Done);
        }
        let done = self.done().await?;
        let all: Vec<&Step> = work.lanes.iter().flatten().chain(&work.last).collect();
        let first = (0..all.len()).find(|k| !done.contains(&number(*k)));
        Ok(Progress::Pending {
            done: done.len(),
            steps: all.len(),
            what: first.map(|k| all[k].what.clone()).unwrap_or_default(),
        })
    }

    /// Runs the non-empty of `lanes`, `sessions` at a time; false when `until` passed first.
    async fn run_lanes(
        &self,
        lanes: Vec<Vec<Numbered>>,
        sessions: usize,
        until: Option<Instant>,
    ) -> Result<bool> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut queue = lanes.into_iter().filter(|l| !l.is_empty());
        let mut set = JoinSet::new();
        let lane = |steps| Lane {
            target: self.target.clone(),
            app: self.app.to_string(),
            job_id: self.job_id.to_string(),
            steps,
            stop: stop.clone(),
        };
        for steps in queue.by_ref().take(sessions.max(1)) {
            set.spawn(lane(steps).run());
        }
        let finish = |set: &mut JoinSet<Result<()>>| {
            stop.store(true, Ordering::SeqCst);
            // Dropping the set would cancel the tasks: the steps under way run on.
            set.detach_all();
        };
        loop {
            let next = match until {
                None => set.join_next().await,
                Some(t) => match tokio::time::timeout_at(t, set.join_next()).await {
                    Ok(next) => next,
                    Err(_) => {
                        finish(&mut set);
                        return Ok(false);
                    }
                },
            };
            let Some(joined) = next else {
                return Ok(true);
            };
            let outcome = joined
                .map_err(|e| Error::Internal(format!("a finishing session ended: {e}")))
                .and_then(|r| r);
            if let Err(e) = outcome {
                finish(&mut set);
                return Err(e);
            }
            if let Some(steps) = queue.next() {
                set.spawn(lane(steps).run());
            }
        }
    }

    /// The steps of the job already done.
    async fn done(&self) -> Result<BTreeSet<i32>> {
        done_steps(self.client, self.job_id).await
    }
}

/// One lane's steps, run in order on one session of its own.
struct Lane {
    target: ConnSpec,
    app: String,
    job_id: String,
    steps: Vec<Numbered>,
    /// Set when the call gives up: start no further step.
    stop: Arc<AtomicBool>,
}

impl Lane {
    async fn run(self) -> Result<()> {
        let c = self.target.connect(Role::Target, &self.app).await?;
        for (n, step) in &self.steps {
            // An earlier call's session may still be running this step.
            while running(&c, &self.job_id, *n).await? {
                if self.stop.load(Ordering::SeqCst) {
                    return Ok(());
                }
                tokio::time::sleep(POLL).await;
            }
            if self.stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            if done_steps(&c, &self.job_id).await?.contains(n) {
                continue;
            }
            step_sql(&self.job_id, *n, step).run(&c).await?;
        }
        Ok(())
    }
}

/// The steps of `job_id` already done.
async fn done_steps(client: &Client, job_id: &str) -> Result<BTreeSet<i32>> {
    let rows = client
        .query(
            "SELECT step FROM dbsync.finish_steps WHERE job_id = $1",
            &[&job_id],
        )
        .await
        .map_err(|e| Error::pg(Role::Target, "reading the finished steps", e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Whether a session holds step `n`'s lock, i.e. is running it (the probe's own lock ends
/// with its statement).
async fn running(client: &Client, job_id: &str, n: i32) -> Result<bool> {
    let row = client
        .query_one(
            "SELECT NOT pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtext($1), $2)",
            &[&job_id, &n],
        )
        .await
        .map_err(|e| Error::pg(Role::Target, "looking for a running finishing step", e))?;
    Ok(row.get(0))
}

/// Step `n` as one transaction that holds its lock and records it done. No notices: the
/// server writes nothing to the session before the end, so a step whose Lambda is gone
/// still commits.
fn step_sql(job_id: &str, n: i32, step: &Step) -> Step {
    let job = quote_literal(job_id);
    Step {
        what: step.what.clone(),
        sql: format!(
            "BEGIN;
             SET LOCAL client_min_messages = warning;
             SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext({job}), {n});
             {};
             INSERT INTO dbsync.finish_steps (job_id, step, what) VALUES ({job}, {n}, {})
               ON CONFLICT DO NOTHING;
             COMMIT",
            step.sql,
            quote_literal(&step.what),
        ),
    }
}

/// A step's number in the ledger.
fn number(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}
