//! Reconnecting: what a worker needs to open its sessions again after a transient failure.

use crate::error::{Error, Result};
use crate::pg::conn::ConnSpec;
use crate::pg::{snapshot, target};
use crate::pipeline::workers::{app_name, SyncWorker};
use tokio_postgres::Client;

/// Everything a worker needs to open its sessions again after a transient failure.
pub struct Reconnect {
    /// The source, for a streaming sync (None for an import).
    pub source: Option<ConnSpec>,
    /// The target.
    pub target: ConnSpec,
    /// The snapshot readers join.
    pub snapshot: String,
    /// Readers' application name.
    pub read_app: String,
    /// The job.
    pub job_id: String,
    /// Load sessions run in replica mode.
    pub replica: bool,
}

impl Reconnect {
    /// A fresh load session.
    pub async fn loader(&self) -> Result<Client> {
        target::connect_loader(&self.target, &app_name(&self.job_id, "load"), self.replica).await
    }

    /// A fresh worker pair.
    pub async fn sync_worker(&self) -> Result<SyncWorker> {
        Ok(SyncWorker {
            src: self.reader().await?,
            tgt: self.loader().await?,
        })
    }

    /// A fresh source reader in the job's snapshot.
    pub async fn reader(&self) -> Result<Client> {
        let source = self
            .source
            .as_ref()
            .ok_or_else(|| Error::Internal("a reader was asked of an import".into()))?;
        snapshot::join_snapshot(source, &self.snapshot, &self.read_app).await
    }
}
