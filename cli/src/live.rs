//! The live display of a running job: an indicatif bar on a terminal, a plain line every 5 s
//! otherwise (CI, pipes, logs), nothing with --quiet. Both read the core's [`Tally`] of the
//! progress events: rows and bytes as they stream (not only when a chunk ends), the tables
//! streaming now, and the finishing statements under way.

use dbsync_core::model::ident::QualName;
use dbsync_core::model::size::human_bytes;
use dbsync_core::pipeline::progress::{NoProgress, Progress};
use dbsync_core::pipeline::tally::Tally;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The sink for this terminal.
pub fn new(quiet: bool) -> Arc<dyn Progress> {
    if quiet {
        Arc::new(NoProgress)
    } else if std::io::stderr().is_terminal() {
        Arc::new(Display::new(Style::Bar))
    } else {
        Arc::new(Display::new(Style::Lines))
    }
}

/// How the state is shown.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    /// A bar redrawn four times a second.
    Bar,
    /// A line every [`line_every`].
    Lines,
}

/// Off a terminal, one line this often: `DBSYNC_PROGRESS_SECONDS`, default 5.
fn line_every() -> Duration {
    std::env::var("DBSYNC_PROGRESS_SECONDS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(Duration::from_secs(5))
}

/// What is known of the phase under way: the core's [`Tally`] of it, when it started, and
/// the largest figures shown so far (a figure is never shown going back).
#[derive(Default)]
struct Live {
    tally: Tally,
    phase: Mutex<Option<(String, Instant)>>,
    shown: Mutex<(u64, u64, f64)>,
}

/// One reading of [`Live`], ready to print.
struct Reading {
    phase: String,
    chunks: (u64, u64),
    rows: u64,
    bytes: u64,
    rate: u64,
    fraction: f64,
    eta: Option<Duration>,
    now: String,
}

impl Live {
    fn reset(&self, phase: &str) {
        if let Ok(mut p) = self.phase.lock() {
            *p = Some((phase.to_string(), Instant::now()));
        }
        if let Ok(mut s) = self.shown.lock() {
            *s = (0, 0, 0.0);
        }
    }

    fn read(&self) -> Option<Reading> {
        let (phase, start) = self.phase.lock().ok()?.clone()?;
        let f = self.tally.figures();
        let (rows, bytes, fraction) = {
            let mut s = self.shown.lock().ok()?;
            *s = (s.0.max(f.rows), s.1.max(f.bytes), s.2.max(f.fraction));
            *s
        };
        let secs = start.elapsed().as_secs_f64().max(0.001);
        let eta = (fraction > 0.01).then(|| Duration::from_secs_f64(secs / fraction - secs));
        let streaming: Vec<String> = f.streaming().into_iter().map(str::to_string).collect();
        let now = if !f.finishing.is_empty() {
            format!("finishing: {}", few(&f.finishing))
        } else if !streaming.is_empty() {
            format!("now: {}", few(&streaming))
        } else {
            String::new()
        };
        Some(Reading {
            phase,
            chunks: (f.chunks_done, f.chunks_total),
            rows,
            bytes,
            rate: (bytes as f64 / secs) as u64,
            fraction,
            eta,
            now,
        })
    }
}

/// Up to three names, then how many more.
fn few(names: &[String]) -> String {
    let mut s = names.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > 3 {
        s.push_str(&format!(" (+{} more)", names.len() - 3));
    }
    s
}

/// The display: the state, and the thread that draws it.
struct Display {
    live: Arc<Live>,
    style: Style,
    bar: Mutex<Option<ProgressBar>>,
    stop: Arc<AtomicBool>,
    ticker: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Display {
    fn new(style: Style) -> Self {
        Display {
            live: Arc::default(),
            style,
            bar: Mutex::new(None),
            stop: Arc::default(),
            ticker: Mutex::new(None),
        }
    }

    /// Starts the drawing thread once.
    fn start_ticker(&self) {
        let Ok(mut t) = self.ticker.lock() else {
            return;
        };
        if t.is_some() {
            return;
        }
        let (live, stop, style) = (self.live.clone(), self.stop.clone(), self.style);
        let bar = self.bar.lock().ok().and_then(|b| b.clone());
        let every = line_every();
        *t = Some(std::thread::spawn(move || {
            let mut last = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
                match (style, &bar) {
                    (Style::Bar, Some(pb)) => {
                        if let Some(r) = live.read() {
                            draw(pb, &r);
                        }
                    }
                    _ if last.elapsed() >= every => {
                        last = Instant::now();
                        if let Some(r) = live.read() {
                            eprintln!("{}", line(&r));
                        }
                    }
                    _ => {}
                }
            }
        }));
    }
}

fn draw(pb: &ProgressBar, r: &Reading) {
    pb.set_prefix(format!("{} {}/{}", r.phase, r.chunks.0, r.chunks.1));
    pb.set_position((r.fraction * 1000.0) as u64);
    // What moves and what is under way first: a narrow terminal cuts the line's end, and a
    // line that wrapped would be redrawn below itself.
    pb.set_message(format!(
        "{} {}/s eta {}  {}  {} rows",
        human_bytes(r.bytes),
        human_bytes(r.rate),
        r.eta
            .map(|d| humantime::format_duration(Duration::from_secs(d.as_secs())).to_string())
            .unwrap_or_else(|| "-".into()),
        r.now,
        r.rows,
    ));
}

fn line(r: &Reading) -> String {
    format!(
        "progress: {}/{} chunks, {} rows, {} ({}/s), {:.0}%, eta {}{}",
        r.chunks.0,
        r.chunks.1,
        r.rows,
        human_bytes(r.bytes),
        human_bytes(r.rate),
        r.fraction * 100.0,
        r.eta
            .map(|d| format!("{} s", d.as_secs()))
            .unwrap_or_else(|| "-".into()),
        if r.now.is_empty() {
            String::new()
        } else {
            format!("; {}", r.now)
        }
    )
}

impl Progress for Display {
    fn planned(&self, phase: &str, chunks: usize, est_bytes: u64) {
        self.live.tally.planned(phase, chunks, est_bytes);
        self.live.reset(phase);
        match self.style {
            Style::Bar => {
                if let Ok(mut b) = self.bar.lock() {
                    if b.is_none() {
                        let pb = ProgressBar::new(1000);
                        pb.set_style(
                            ProgressStyle::with_template(
                                "{prefix} [{bar:20}] {percent:>3}% {wide_msg}",
                            )
                            .unwrap_or_else(|_| ProgressStyle::default_bar())
                            .progress_chars("=> "),
                        );
                        pb.enable_steady_tick(Duration::from_millis(250));
                        *b = Some(pb);
                    }
                }
            }
            Style::Lines => eprintln!(
                "{phase}: {chunks} chunks, about {} on disk",
                human_bytes(est_bytes)
            ),
        }
        self.start_ticker();
    }

    fn table_planned(&self, table: &QualName, chunks: usize) {
        self.live.tally.table_planned(table, chunks);
    }

    fn chunk_done(&self, table: &QualName, rows: u64, bytes: u64, est: u64) {
        self.live.tally.chunk_done(table, rows, bytes, est);
    }

    fn note(&self, message: &str) {
        match self.bar.lock().ok().as_deref().and_then(|b| b.as_ref()) {
            Some(pb) => pb.suspend(|| eprintln!("{message}")),
            None => eprintln!("{message}"),
        }
    }

    fn stream_started(&self, table: &QualName, est_bytes: u64) {
        self.live.tally.stream_started(table, est_bytes);
    }

    fn streamed(&self, rows: u64, bytes: u64) {
        self.live.tally.streamed(rows, bytes);
    }

    fn stream_ended(&self, table: &QualName, rows: u64, bytes: u64, est_bytes: u64) {
        self.live.tally.stream_ended(table, rows, bytes, est_bytes);
    }

    fn activity(&self, what: &str, running: bool) {
        self.live.tally.activity(what, running);
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.join();
        }
        if let Some(pb) = self.bar.lock().ok().and_then(|mut b| b.take()) {
            pb.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_under_way_moves_the_figures_and_its_end_never_takes_them_back() {
        let d = Display::new(Style::Lines);
        d.live.tally.planned("sync", 2, 1000);
        d.live.reset("sync");
        let t = QualName::new("app", "orders");
        d.stream_started(&t, 500);
        d.streamed(10, 200);
        let r = d.live.read().expect("reading");
        assert_eq!((r.rows, r.bytes), (10, 200));
        assert!((r.fraction - 0.2).abs() < 1e-9, "{}", r.fraction);
        assert_eq!(r.now, "now: app.orders");
        d.stream_ended(&t, 10, 200, 500);
        d.activity("rebuilding index o_idx on app.orders", true);
        let r = d.live.read().expect("reading");
        assert_eq!((r.rows, r.bytes), (10, 200), "the gap before chunk_done");
        assert_eq!(r.now, "finishing: rebuilding index o_idx on app.orders");
        d.chunk_done(&t, 25, 400, 500);
        d.activity("rebuilding index o_idx on app.orders", false);
        let r = d.live.read().expect("reading");
        assert_eq!((r.rows, r.bytes, r.chunks), (25, 400, (1, 2)));
        assert!((r.fraction - 0.5).abs() < 1e-9);
        assert_eq!(r.now, "");
    }
}
