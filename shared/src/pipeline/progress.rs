//! Progress reporting: the core tells a [`Progress`] sink what happened; the CLI draws bars or
//! prints lines, a Lambda updates its job record. Never carries row data. Also owns
//! [`Metered`], which reports a COPY stream's rows and bytes while it flows, so a display
//! moves within a chunk and not only when one ends.

use crate::error::Result;
use crate::model::ident::QualName;
use crate::model::part::{ByteSource, CopyFormat, RowCounter};
use bytes::Bytes;

/// Receives progress events. Implementations must be cheap: [`Progress::streamed`] comes
/// every few hundred kB of every stream, the others once per chunk or step.
pub trait Progress: Send + Sync {
    /// Work is about to start: `chunks` units covering about `est_bytes` on disk.
    fn planned(&self, phase: &str, chunks: usize, est_bytes: u64);
    /// A table of the plan and how many chunks it has (after [`Progress::planned`]).
    fn table_planned(&self, _table: &QualName, _chunks: usize) {}
    /// One chunk finished: its rows, COPY-text bytes and share of the on-disk estimate.
    fn chunk_done(&self, table: &QualName, rows: u64, bytes: u64, est_bytes: u64);
    /// A phase-level message (plain text, no data).
    fn note(&self, message: &str);
    /// A chunk (or part) of `table` starts to stream; `est_bytes` is its share of the estimate.
    fn stream_started(&self, _table: &QualName, _est_bytes: u64) {}
    /// Rows and bytes that went through a stream under way since its last report.
    fn streamed(&self, _rows: u64, _bytes: u64) {}
    /// A stream ended (finished, failed or given up): what it reported through
    /// [`Progress::streamed`] is taken back; a finished chunk is counted by
    /// [`Progress::chunk_done`], a retried one streams again.
    fn stream_ended(&self, _table: &QualName, _rows: u64, _bytes: u64, _est_bytes: u64) {}
    /// A finishing statement starts (`running`) or ends: `what` says what it does
    /// ("rebuilding index i on t", "analyzing t").
    fn activity(&self, _what: &str, _running: bool) {}
}

/// Says [`Progress::planned`] and then [`Progress::table_planned`] of each table of `plan`.
pub fn planned(progress: &dyn Progress, phase: &str, plan: &crate::model::chunk::Plan) {
    progress.planned(phase, plan.chunks.len(), plan.catalog.total_bytes());
    for (table, chunks) in plan.chunks_per_table() {
        progress.table_planned(table, chunks);
    }
}

/// Discards everything.
pub struct NoProgress;

impl Progress for NoProgress {
    fn planned(&self, _: &str, _: usize, _: u64) {}
    fn chunk_done(&self, _: &QualName, _: u64, _: u64, _: u64) {}
    fn note(&self, _: &str) {}
}

/// What a stream is, for [`Metered`].
#[derive(Clone, Copy)]
pub struct Meter<'a> {
    /// Where reports go.
    pub progress: &'a dyn Progress,
    /// The table the stream belongs to.
    pub table: &'a QualName,
    /// The chunk's share of the on-disk estimate.
    pub est_bytes: u64,
}

/// Reports are gathered up to this many bytes: a sink is called a few times per MB, not per
/// row.
const REPORT_EVERY: u64 = 256 * 1024;

/// A [`ByteSource`] that reports the rows and bytes passing through it to a [`Meter`]'s sink.
pub struct Metered<'a> {
    inner: &'a mut dyn ByteSource,
    meter: Meter<'a>,
    counter: RowCounter,
    pending: (u64, u64),
    reported: (u64, u64),
}

impl<'a> Metered<'a> {
    /// Starts reporting `inner` (and says so to the sink).
    pub fn new(inner: &'a mut dyn ByteSource, meter: Meter<'a>) -> Self {
        meter.progress.stream_started(meter.table, meter.est_bytes);
        Metered {
            counter: RowCounter::new(inner.format()),
            inner,
            meter,
            pending: (0, 0),
            reported: (0, 0),
        }
    }

    fn flush(&mut self) {
        let (rows, bytes) = std::mem::take(&mut self.pending);
        if rows > 0 || bytes > 0 {
            self.meter.progress.streamed(rows, bytes);
            self.reported.0 += rows;
            self.reported.1 += bytes;
        }
    }
}

#[async_trait::async_trait]
impl ByteSource for Metered<'_> {
    async fn next_bytes(&mut self) -> Result<Option<Bytes>> {
        let next = self.inner.next_bytes().await?;
        match &next {
            Some(buf) => {
                self.pending.0 += self.counter.feed(buf);
                self.pending.1 += buf.len() as u64;
                if self.pending.1 >= REPORT_EVERY {
                    self.flush();
                }
            }
            None => self.flush(),
        }
        Ok(next)
    }

    fn format(&self) -> CopyFormat {
        self.inner.format()
    }
}

impl Drop for Metered<'_> {
    fn drop(&mut self) {
        let (rows, bytes) = self.reported;
        self.meter
            .progress
            .stream_ended(self.meter.table, rows, bytes, self.meter.est_bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Log(Mutex<Vec<String>>);

    impl Progress for Log {
        fn planned(&self, _: &str, _: usize, _: u64) {}
        fn chunk_done(&self, _: &QualName, _: u64, _: u64, _: u64) {}
        fn note(&self, _: &str) {}
        fn stream_started(&self, t: &QualName, est: u64) {
            self.0.lock().expect("log").push(format!("start {t} {est}"));
        }
        fn streamed(&self, rows: u64, bytes: u64) {
            self.0
                .lock()
                .expect("log")
                .push(format!("{rows} rows {bytes} bytes"));
        }
        fn stream_ended(&self, t: &QualName, rows: u64, bytes: u64, _: u64) {
            self.0
                .lock()
                .expect("log")
                .push(format!("end {t} {rows} {bytes}"));
        }
    }

    struct Lines(Vec<Bytes>);

    #[async_trait::async_trait]
    impl ByteSource for Lines {
        async fn next_bytes(&mut self) -> Result<Option<Bytes>> {
            Ok((!self.0.is_empty()).then(|| self.0.remove(0)))
        }
    }

    #[tokio::test]
    async fn a_metered_stream_reports_as_it_flows_and_takes_back_what_it_reported_at_the_end() {
        let log = Log::default();
        let table = QualName::new("app", "t");
        let mut line = vec![b'x'; 100 * 1024 - 1];
        line.push(b'\n');
        let row = Bytes::from(line);
        let mut src = Lines(vec![row.clone(), row.clone(), row.clone(), row]);
        {
            let meter = Meter {
                progress: &log,
                table: &table,
                est_bytes: 7,
            };
            let mut m = Metered::new(&mut src, meter);
            while m.next_bytes().await.expect("bytes").is_some() {}
        }
        let log = log.0.into_inner().expect("log");
        assert_eq!(
            log,
            [
                "start app.t 7",
                "3 rows 307200 bytes",
                "1 rows 102400 bytes",
                "end app.t 4 409600"
            ]
        );
    }
}
