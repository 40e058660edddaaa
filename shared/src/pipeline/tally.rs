//! The figures of a job under way, kept from its progress events: the plan (chunks and
//! tables), rows and bytes as they stream (not only when a chunk ends), chunks done, each
//! table's state and the finishing statements under way. The command line's display and the
//! console's jobs both read them; a new phase ([`Progress::planned`]) starts them again.

use crate::model::ident::QualName;
use crate::pipeline::progress::Progress;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// A running job's figures.
#[derive(Default)]
pub struct Tally {
    chunks: AtomicU64,
    est_total: AtomicU64,
    done_chunks: AtomicU64,
    done_est: AtomicU64,
    done_rows: AtomicU64,
    done_bytes: AtomicU64,
    flow_rows: AtomicU64,
    flow_bytes: AtomicU64,
    flow_est: AtomicU64,
    tables: Mutex<BTreeMap<String, TableFigures>>,
    finishing: Mutex<Vec<String>>,
}

/// One table's figures.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct TableFigures {
    pub streaming: usize,
    pub chunks_total: u64,
    pub chunks_done: u64,
    pub rows: u64,
    pub bytes: u64,
}

/// The figures at one moment (what the console's job record keeps once the job ended).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Figures {
    /// Whether the work was planned (chunks known).
    pub planned: bool,
    pub chunks_total: u64,
    pub chunks_done: u64,
    pub rows: u64,
    pub bytes: u64,
    /// The share done, 0 to 1, by the on-disk estimate.
    pub fraction: f64,
    /// Each table's figures, by qualified name.
    pub tables: BTreeMap<String, TableFigures>,
    /// Finishing statements under way.
    pub finishing: Vec<String>,
}

impl Tally {
    /// The figures now.
    pub fn figures(&self) -> Figures {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        // A chunk under way counts up to its share of the estimate, no further.
        let moved = load(&self.done_est) + load(&self.flow_bytes).min(load(&self.flow_est));
        Figures {
            planned: load(&self.est_total) > 0,
            chunks_total: load(&self.chunks),
            chunks_done: load(&self.done_chunks),
            rows: load(&self.done_rows) + load(&self.flow_rows),
            bytes: load(&self.done_bytes) + load(&self.flow_bytes),
            fraction: (moved as f64 / load(&self.est_total).max(1) as f64).min(1.0),
            tables: self.tables.lock().map(|t| t.clone()).unwrap_or_default(),
            finishing: self.finishing.lock().map(|f| f.clone()).unwrap_or_default(),
        }
    }

    fn table(&self, t: &QualName, f: impl FnOnce(&mut TableFigures)) {
        if let Ok(mut m) = self.tables.lock() {
            f(m.entry(t.to_string()).or_default());
        }
    }
}

impl Figures {
    /// The share done in percent, to a tenth.
    pub fn percent(&self) -> f64 {
        (self.fraction * 1000.0).round() / 10.0
    }

    /// The tables streaming now, by name.
    pub fn streaming(&self) -> Vec<&str> {
        self.tables
            .iter()
            .filter(|(_, f)| f.streaming > 0)
            .map(|(t, _)| t.as_str())
            .collect()
    }

    /// The table streaming now (the first by name), if one is.
    pub fn current_table(&self) -> Option<&str> {
        self.streaming().first().copied()
    }

    /// Tables whose every chunk is loaded.
    pub fn tables_done(&self) -> usize {
        self.tables
            .values()
            .filter(|f| f.streaming == 0 && f.chunks_done >= f.chunks_total)
            .count()
    }
}

impl TableFigures {
    /// `waiting`, `streaming` or `loaded`.
    pub fn state(&self) -> &'static str {
        if self.streaming > 0 {
            "streaming"
        } else if self.chunks_done >= self.chunks_total {
            "loaded"
        } else {
            "waiting"
        }
    }
}

impl Progress for Tally {
    // A phase's figures start from nothing (an export, then the import of its parts).
    fn planned(&self, _phase: &str, chunks: usize, est_bytes: u64) {
        for c in [
            &self.done_chunks,
            &self.done_rows,
            &self.done_bytes,
            &self.done_est,
            &self.flow_rows,
            &self.flow_bytes,
            &self.flow_est,
        ] {
            c.store(0, Ordering::Relaxed);
        }
        if let Ok(mut t) = self.tables.lock() {
            t.clear();
        }
        self.chunks.store(chunks as u64, Ordering::Relaxed);
        self.est_total.store(est_bytes.max(1), Ordering::Relaxed);
    }

    fn table_planned(&self, table: &QualName, chunks: usize) {
        self.table(table, |f| f.chunks_total = chunks as u64);
    }

    fn chunk_done(&self, table: &QualName, rows: u64, bytes: u64, est_bytes: u64) {
        self.done_chunks.fetch_add(1, Ordering::Relaxed);
        self.done_est.fetch_add(est_bytes, Ordering::Relaxed);
        self.done_rows.fetch_add(rows, Ordering::Relaxed);
        self.done_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.table(table, |f| {
            f.chunks_done += 1;
            f.rows += rows;
            f.bytes += bytes;
        });
    }

    fn note(&self, _message: &str) {}

    fn stream_started(&self, table: &QualName, est_bytes: u64) {
        self.flow_est.fetch_add(est_bytes, Ordering::Relaxed);
        self.table(table, |f| f.streaming += 1);
    }

    fn streamed(&self, rows: u64, bytes: u64) {
        self.flow_rows.fetch_add(rows, Ordering::Relaxed);
        self.flow_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    // A stream's figures are taken back when it ends: chunk_done counts a loaded chunk once,
    // so a retried one is not counted twice.
    fn stream_ended(&self, table: &QualName, rows: u64, bytes: u64, est_bytes: u64) {
        for (c, n) in [
            (&self.flow_est, est_bytes),
            (&self.flow_rows, rows),
            (&self.flow_bytes, bytes),
        ] {
            let _ = c.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(n))
            });
        }
        self.table(table, |f| f.streaming = f.streaming.saturating_sub(1));
    }

    fn activity(&self, what: &str, running: bool) {
        if let Ok(mut f) = self.finishing.lock() {
            if running {
                f.push(what.to_string());
            } else if let Some(i) = f.iter().position(|w| w == what) {
                f.remove(i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str) -> QualName {
        QualName::new("public", name)
    }

    #[test]
    fn a_table_waits_streams_and_is_loaded_when_its_last_chunk_is_done() {
        let live = Tally::default();
        live.planned("sync", 3, 300);
        live.table_planned(&t("a"), 2);
        live.table_planned(&t("b"), 1);
        let state = |l: &Tally, n: &str| l.figures().tables[&format!("public.{n}")].state();
        assert_eq!(state(&live, "a"), "waiting");
        live.stream_started(&t("a"), 100);
        live.streamed(10, 1000);
        let f = live.figures();
        assert_eq!((f.rows, f.current_table()), (10, Some("public.a")));
        assert_eq!(state(&live, "a"), "streaming");
        live.stream_ended(&t("a"), 10, 1000, 100);
        live.chunk_done(&t("a"), 10, 1000, 100);
        assert_eq!(state(&live, "a"), "waiting", "one of two chunks");
        live.chunk_done(&t("a"), 5, 500, 100);
        live.chunk_done(&t("b"), 1, 10, 100);
        let f = live.figures();
        assert_eq!((f.rows, f.tables_done(), f.percent()), (16, 2, 100.0));
        live.planned("import", 1, 10);
        assert_eq!(live.figures().rows, 0, "a new phase starts from nothing");
    }
}
