//! The hold-snapshot step's event types; the holder itself is [`crate::cloud::holder`].

use crate::cloud::holder::Released;
use serde::{Deserialize, Serialize};

/// The hold-snapshot function's input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldSnapshotEvent {
    /// The job.
    pub job_id: String,
    /// Secrets Manager id of the source's credentials.
    pub source_secret: String,
    /// How long to hold at most (the invocation's own time limit caps it too).
    #[serde(default)]
    pub window_seconds: Option<u64>,
}

/// The hold-snapshot function's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldSnapshotOutput {
    /// The job.
    pub job_id: String,
    /// The snapshot that was held.
    pub snapshot: String,
    /// Why it was let go.
    pub released: Released,
}
