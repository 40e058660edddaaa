//! Snapshot relay for a local export (`--snapshot-relay-seconds`, `DBSYNC_SNAPSHOT_RELAY_SECONDS`):
//! every N seconds a new session imports the current snapshot and exports it again under a new
//! id, the id is published to the workers, and only then does the old holder end. Workers
//! start each chunk in the current id. The export reads one state of the source all along,
//! and no session keeps one transaction for the whole export - what the serverless holders do
//! across Lambda invocations ([`crate::cloud::holder`]), here on one machine, so tests exercise
//! the relay without AWS.

use crate::error::{Error, Result};
use crate::pg::conn::ConnSpec;
use crate::pg::snapshot;
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio_postgres::Client;

/// The setting errors name.
pub const SETTING: &str = "--snapshot-relay-seconds";

/// The session that keeps an export's snapshot: the coordinator itself, or a relay.
pub enum Holder {
    /// The coordinator holds it for the whole export.
    Kept(Client),
    /// Handed over every so often.
    Relayed(Relay),
}

impl Holder {
    /// The coordinator's snapshot, relayed every `every` when given.
    pub fn new(
        source: &ConnSpec,
        coord: Client,
        snapshot: &str,
        every: Option<Duration>,
        app: &str,
    ) -> Holder {
        match every {
            None => Holder::Kept(coord),
            Some(every) => Holder::Relayed(Relay::start(
                source.clone(),
                coord,
                snapshot.to_string(),
                every,
                format!("{app}-relay"),
            )),
        }
    }

    /// What workers follow, when the snapshot moves.
    pub fn follow(&self) -> Option<Follow> {
        match self {
            Holder::Kept(_) => None,
            Holder::Relayed(r) => Some(r.follow()),
        }
    }

    /// The session holding the snapshot at the end, and how many relays there were.
    pub async fn finish(self) -> Result<(Client, u32)> {
        match self {
            Holder::Kept(c) => Ok((c, 0)),
            Holder::Relayed(r) => r.finish().await,
        }
    }
}

/// A running relay: the task that holds the current snapshot and hands it over.
pub struct Relay {
    current: watch::Receiver<String>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(Client, u32)>>,
}

/// What a worker follows: the id currently held.
#[derive(Clone)]
pub struct Follow(watch::Receiver<String>);

impl Follow {
    /// Starts a new transaction of `client` in the current snapshot. An id read just as the
    /// relay replaced it may be gone already; the next one was published before the old
    /// holder ended, so reading again finds a held one.
    pub async fn rejoin(&self, client: &Client) -> Result<()> {
        let mut tries = 0;
        loop {
            let id = self.0.borrow().clone();
            match snapshot::rejoin(client, &id).await {
                Err(Error::SnapshotReleased(_)) if tries < 3 => tries += 1,
                other => return other,
            }
        }
    }
}

impl Relay {
    /// Hands `snapshot`, held by `holder`, over every `every`.
    pub fn start(
        source: ConnSpec,
        holder: Client,
        snapshot: String,
        every: Duration,
        app: String,
    ) -> Relay {
        let (tx, current) = watch::channel(snapshot);
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let mut holder = holder;
            let mut relays = 0u32;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = &mut stopped => break,
                }
                let held = tx.borrow().clone();
                let (next_holder, next) = snapshot::relay_snapshot(&source, &held, &app).await?;
                tx.send_replace(next.clone());
                // The old holder's transaction ends here, after the new id is published.
                holder = next_holder;
                relays += 1;
                tracing::debug!(from = %held, to = %next, relays, "snapshot relayed");
            }
            Ok((holder, relays))
        });
        Relay {
            current,
            stop,
            task,
        }
    }

    /// What workers follow.
    pub fn follow(&self) -> Follow {
        Follow(self.current.clone())
    }

    /// Stops relaying; returns the session holding the snapshot now and how many relays
    /// there were, or the error that broke the chain.
    pub async fn finish(self) -> Result<(Client, u32)> {
        let _ = self.stop.send(());
        self.task
            .await
            .map_err(|e| Error::Internal(format!("the snapshot relay task failed: {e}")))?
    }
}
