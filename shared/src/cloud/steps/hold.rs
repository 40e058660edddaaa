//! The hold-snapshot step's event types; the holder itself is [`crate::cloud::holder`].

use crate::cloud::holder::Released;
use serde::{Deserialize, Serialize};

/// The hold-snapshot function's input. Its output carries the same fields, so the state
/// machine's holder loops feed each output back in while the window ended before the exports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldSnapshotEvent {
    /// The job.
    pub job_id: String,
    /// Secrets Manager id of the source's credentials.
    pub source_secret: String,
    /// How long one holder holds at most (the invocation's own time limit caps it too);
    /// the next one relays the snapshot. The request's name; `window_seconds` before.
    #[serde(default, alias = "window_seconds")]
    pub snapshot_window_seconds: Option<u64>,
    /// Wait half a window first (the second holder loop), returning early when the exports
    /// are done.
    #[serde(default)]
    pub stagger: bool,
}

/// The hold-snapshot function's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldSnapshotOutput {
    /// The job.
    pub job_id: String,
    /// Passed on to the next holder.
    pub source_secret: String,
    /// Passed on to the next holder.
    #[serde(default, alias = "window_seconds")]
    pub snapshot_window_seconds: Option<u64>,
    /// Always false: only a loop's first holder waits.
    #[serde(default)]
    pub stagger: bool,
    /// The snapshot id this holder held (the current one when it held none).
    pub snapshot: String,
    /// Why it was let go.
    pub released: Released,
}
