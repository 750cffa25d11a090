//! The gateway's life phases and how a shutdown hands work back. On SIGTERM the gateway
//! stops taking requests (`Draining`: a request that still arrives is answered 503 with
//! `Retry-After`) and lets those in flight finish for `shutdown_grace_ms`; then
//! (`Abandoning`) every Letta call and every wait for one gives up, the leases are
//! released and each unfinished request is answered 503 with `Retry-After`. Nothing
//! unfinished was acknowledged, and what a batch stored before is kept: the queue's retry
//! finds it applied, and the catch-up (or the next instance) writes it to Letta.

use std::sync::Arc;
use tokio::sync::watch;

/// A phase of the gateway's life, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Taking requests.
    Serving,
    /// Finishing the requests in flight; new ones are turned away.
    Draining,
    /// Giving up what is still in flight.
    Abandoning,
}

/// A shared handle on the phase.
#[derive(Clone)]
pub struct Shutdown {
    tx: Arc<watch::Sender<Phase>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown {
            tx: Arc::new(watch::Sender::new(Phase::Serving)),
        }
    }
}

impl Shutdown {
    /// The phase now.
    pub fn phase(&self) -> Phase {
        *self.tx.borrow()
    }

    /// Moves to `to` unless the gateway is further already.
    pub fn advance(&self, to: Phase) {
        self.tx.send_if_modified(|p| {
            let later = to > *p;
            if later {
                *p = to;
            }
            later
        });
    }

    /// Resolves once the phase is `at` or later.
    pub async fn reached(&self, at: Phase) {
        let mut rx = self.tx.subscribe();
        // The sender lives as long as `self`: the wait cannot fail.
        let _ = rx.wait_for(|p| *p >= at).await;
    }
}
