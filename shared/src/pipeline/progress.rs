//! Progress reporting: the core tells a [`Progress`] sink what happened; the CLI draws bars or
//! prints lines, a Lambda updates its job record. Never carries row data.

use crate::model::ident::QualName;

/// Receives progress events. Implementations must be cheap: called once per chunk.
pub trait Progress: Send + Sync {
    /// Work is about to start: `chunks` units covering about `est_bytes` on disk.
    fn planned(&self, phase: &str, chunks: usize, est_bytes: u64);
    /// One chunk finished: its rows, COPY-text bytes and share of the on-disk estimate.
    fn chunk_done(&self, table: &QualName, rows: u64, bytes: u64, est_bytes: u64);
    /// A phase-level message (plain text, no data).
    fn note(&self, message: &str);
}

/// Discards everything.
pub struct NoProgress;

impl Progress for NoProgress {
    fn planned(&self, _: &str, _: usize, _: u64) {}
    fn chunk_done(&self, _: &QualName, _: u64, _: u64, _: u64) {}
    fn note(&self, _: &str) {}
}
