//! Signals: the first SIGINT or SIGTERM fires the run's interrupt (a load puts back what it
//! took away, an --atomic one rolls back), a second one ends the process.

use dbsync_core::pipeline::interrupt::Interrupt;

/// The run's interrupt: fired by SIGINT or SIGTERM, carried into every pipeline's options.
pub fn interrupt() -> Interrupt {
    static INTERRUPT: std::sync::OnceLock<Interrupt> = std::sync::OnceLock::new();
    INTERRUPT.get_or_init(Interrupt::default).clone()
}

/// The shell's convention: 128 + the signal's number.
pub fn signal_exit_code(by: &str) -> u8 {
    if by.starts_with("SIGTERM") {
        143
    } else {
        130
    }
}

/// The first SIGINT or SIGTERM asks the run to stop and put back what it took away from the
/// target; a second one stops at once (the ledger still lets the next run finish the job).
pub async fn watch_signals(interrupt: Interrupt) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    loop {
        let by = tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        };
        if interrupt.fired().is_some() {
            eprintln!("dbsync: {by} again: stopping now; the next run finishes what this one left");
            std::process::exit(i32::from(signal_exit_code(by)));
        }
        eprintln!("dbsync: {by}: stopping; a load puts back what it took away, an --atomic one rolls back (again to stop at once)");
        interrupt.fire(by);
    }
}
