//! Stopping a run on request (SIGINT, SIGTERM): the command line fires an [`Interrupt`]; the
//! worker pool stops taking items and abandons the ones in flight (their sessions close, so
//! their COPYs roll back), and the pipeline puts back what it took away from the target.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

#[derive(Default)]
struct Inner {
    fired: AtomicBool,
    by: Mutex<Option<String>>,
    notify: Notify,
}

/// A request to stop, shared by everything a run does. The default one never fires.
#[derive(Clone, Default)]
pub struct Interrupt(Arc<Inner>);

impl std::fmt::Debug for Interrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Interrupt({:?})", self.fired())
    }
}

impl Interrupt {
    /// Asks the run to stop; `by` names why (`SIGINT`).
    pub fn fire(&self, by: &str) {
        if let Ok(mut b) = self.0.by.lock() {
            b.get_or_insert_with(|| by.to_string());
        }
        self.0.fired.store(true, Ordering::SeqCst);
        self.0.notify.notify_waiters();
    }

    /// What fired it, once it has.
    pub fn fired(&self) -> Option<String> {
        if !self.0.fired.load(Ordering::SeqCst) {
            return None;
        }
        Some(
            self.0
                .by
                .lock()
                .ok()
                .and_then(|b| b.clone())
                .unwrap_or_else(|| "a request to stop".into()),
        )
    }

    /// Waits until it fires; returns what fired it.
    pub async fn wait(&self) -> String {
        loop {
            let notified = self.0.notify.notified();
            if let Some(by) = self.fired() {
                return by;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiter_wakes_when_the_interrupt_fires_and_names_its_cause() {
        let i = Interrupt::default();
        assert_eq!(i.fired(), None);
        let waiter = tokio::spawn({
            let i = i.clone();
            async move { i.wait().await }
        });
        tokio::task::yield_now().await;
        i.fire("SIGTERM");
        i.fire("SIGINT");
        assert_eq!(waiter.await.expect("join"), "SIGTERM");
        assert_eq!(i.wait().await, "SIGTERM");
    }
}
