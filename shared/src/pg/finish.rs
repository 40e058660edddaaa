//! Finishing steps that may outlast one invocation. The statements that end a stateless
//! load (index and key rebuilds, ANALYZE, foreign keys, triggers, sequences) run one at a
//! time, each in one transaction with its row in `dbsync.finish_steps` and under an advisory
//! lock of its job and number. A caller with a deadline (the Finalize Lambda, 15 minutes at
//! most, where one index of a large table may take longer) waits for the running step until
//! then and returns [`Progress::Pending`]; the step goes on in the server, its session kept
//! open by the detached task, and commits its row when it ends. The next call finds it done,
//! still running (its lock is held: it waits again), or gone without its row (its session
//! died with its process), and then runs it again: every step is idempotent.

use crate::error::{Error, Result, Role};
use crate::model::ident::quote_literal;
use crate::pg::conn::ConnSpec;
use crate::pg::steps::Step;
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::time::Instant;
use tokio_postgres::Client;

/// How far a run of finishing steps got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Every step is done.
    Done,
    /// At the deadline, step `step` (from 0) of `steps` was still running or not started.
    Pending {
        /// The step that runs next (or still runs).
        step: usize,
        /// Steps in all.
        steps: usize,
        /// What that step does.
        what: String,
    },
}

/// How often a call looks whether an earlier call's step still runs.
const POLL: Duration = Duration::from_millis(250);

/// Runs a job's finishing steps on the target, resuming after those already done.
pub struct Finisher<'a> {
    /// The target.
    pub target: &'a ConnSpec,
    /// A session for the bookkeeping (not the steps, which each have their own).
    pub client: &'a Client,
    /// The job.
    pub job_id: &'a str,
    /// `application_name` of the step sessions.
    pub app: &'a str,
}

impl Finisher<'_> {
    /// Runs `steps` in order from the first not yet done, until all are or `until` passes
    /// (never, when `None`). The step running at `until` is left running in the server.
    pub async fn run_until(&self, steps: &[Step], until: Option<Instant>) -> Result<Progress> {
        let done = self.done().await?;
        let pending = |n: usize| Progress::Pending {
            step: n,
            steps: steps.len(),
            what: steps[n].what.clone(),
        };
        let mut session: Option<Client> = None;
        for (n, step) in steps.iter().enumerate() {
            if done.contains(&number(n)) {
                continue;
            }
            // An earlier call's session may still be running this step.
            while self.running(n).await? {
                if until.is_some_and(|t| Instant::now() + POLL >= t) {
                    return Ok(pending(n));
                }
                tokio::time::sleep(POLL).await;
            }
            if self.done().await?.contains(&number(n)) {
                continue;
            }
            let c = match session.take() {
                Some(c) => c,
                None => self.target.connect(Role::Target, self.app).await?,
            };
            let task = tokio::spawn(run_step(c, self.step_sql(n, step)));
            let joined = match until {
                None => task.await,
                Some(t) => match tokio::time::timeout_at(t, task).await {
                    Ok(j) => j,
                    // Dropping the handle detaches the task: the step runs on.
                    Err(_) => return Ok(pending(n)),
                },
            };
            let (c, outcome) = joined.map_err(|e| {
                Error::Internal(format!("the session running '{}' ended: {e}", step.what))
            })?;
            outcome?;
            session = Some(c);
        }
        Ok(Progress::Done)
    }

    /// The steps of the job already done.
    async fn done(&self) -> Result<BTreeSet<i32>> {
        let rows = self
            .client
            .query(
                "SELECT step FROM dbsync.finish_steps WHERE job_id = $1",
                &[&self.job_id],
            )
            .await
            .map_err(|e| Error::pg(Role::Target, "reading the finished steps", e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Whether a session holds step `n`'s lock, i.e. is running it (the probe's own lock
    /// ends with its statement).
    async fn running(&self, n: usize) -> Result<bool> {
        let row = self
            .client
            .query_one(
                "SELECT NOT pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtext($1), $2)",
                &[&self.job_id, &number(n)],
            )
            .await
            .map_err(|e| Error::pg(Role::Target, "looking for a running finishing step", e))?;
        Ok(row.get(0))
    }

    /// Step `n` as one transaction that holds its lock and records it done. No notices: the
    /// server writes nothing to the session before the end, so a step whose Lambda is gone
    /// still commits.
    fn step_sql(&self, n: usize, step: &Step) -> Step {
        let job = quote_literal(self.job_id);
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
                n = number(n),
            ),
        }
    }
}

/// Runs one step on `c` and hands the session back for the next.
async fn run_step(c: Client, step: Step) -> (Client, Result<()>) {
    let outcome = step.run(&c).await;
    (c, outcome)
}

/// A step's number in the ledger.
fn number(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}
