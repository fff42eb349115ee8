//! The fleet-wide plan recomputation after a change, in the background.
//!
//! A change that can alter plans (a role, an environment, a cookbook, a
//! secret, `node set`, ...) commits and is acknowledged at once: the request
//! only bumps the plan generation ([`State::changed`]), after which every
//! GetPlan resolves the node's new plan on demand. What remains is to find
//! the nodes whose plan hash changed, record their hashes and wake their
//! Watch streams; at 10,000 nodes that is seconds of work, so one task per
//! server ([`run`]) does it in passes ([`State::recompute_plans`]).
//!
//! Requests that arrive while a pass runs (here, or from other replicas
//! through [`crate::replication`]) are merged into one following pass: a
//! burst of N changes costs at most two passes, and the last pass sees the
//! final state, so the last event each affected node hears carries its
//! final plan hash. Nothing here decides what a node is served; it only
//! decides when watchers are told.
//!
//! Pending requests are not persisted: after a restart the agents' Watch
//! streams reconnect with the hash they know and are told at once if their
//! plan differs (see the Watch call).

use std::sync::Arc;
use std::sync::Mutex;

use tokio::sync::{Notify, watch};

use crate::state::State;

/// What is waiting for the next pass.
#[derive(Debug, Default)]
struct Queue {
    /// Requests made so far (a counter, never reset).
    requested: u64,
    /// Requests a pass has taken.
    taken: u64,
    /// The first reason since the last pass took the queue.
    reason: Option<String>,
    /// How many more requests came with it.
    more: usize,
    /// Pauses held ([`Recompute::pause`]).
    paused: usize,
    /// Passes finished.
    passes: u64,
}

/// The queue of one server's background recomputation.
#[derive(Debug)]
pub struct Recompute {
    queue: Mutex<Queue>,
    wake: Notify,
    /// The request count the newest finished pass covered.
    done: watch::Sender<u64>,
}

impl Default for Recompute {
    fn default() -> Self {
        Self::new()
    }
}

/// Holds passes back while it lives (see [`Recompute::pause`]).
#[must_use = "passes resume as soon as the pause is dropped"]
pub struct Paused<'a> {
    recompute: &'a Recompute,
}

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        self.recompute.lock().paused -= 1;
        self.recompute.wake.notify_one();
    }
}

impl Recompute {
    pub fn new() -> Recompute {
        Recompute {
            queue: Mutex::new(Queue::default()),
            wake: Notify::new(),
            done: watch::Sender::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // The queue is a few counters updated in place: a panic elsewhere
        // while it was held cannot leave it half-written.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ask for a pass (the change has committed and the generation moved).
    /// Returns at once.
    pub fn request(&self, reason: &str) {
        {
            let mut q = self.lock();
            q.requested += 1;
            match q.reason {
                None => q.reason = Some(reason.to_string()),
                Some(_) => q.more += 1,
            }
        }
        self.wake.notify_one();
    }

    /// Hold passes back until the returned guard is dropped; requests keep
    /// queueing and are merged into the pass that follows. For tests and
    /// the bench, which show that a change is answered before any pass.
    pub fn pause(&self) -> Paused<'_> {
        self.lock().paused += 1;
        Paused { recompute: self }
    }

    /// Wait until every request made before this call has been covered by
    /// a finished pass (at once when there was none).
    pub async fn settled(&self) {
        let target = self.lock().requested;
        let mut done = self.done.subscribe();
        // The sender lives in `self`, so it cannot be dropped while we wait.
        let _ = done.wait_for(|covered| *covered >= target).await;
    }

    /// Whether every request made so far is covered by a finished pass:
    /// no pass runs and none is due.
    pub fn is_idle(&self) -> bool {
        self.lock().requested == *self.done.borrow()
    }

    /// How many passes have finished.
    pub fn passes(&self) -> u64 {
        self.lock().passes
    }

    /// Wait for work, then take everything queued: the reason to give the
    /// watchers and the request count the pass covers.
    async fn next_batch(&self) -> (String, u64) {
        loop {
            {
                let mut q = self.lock();
                if q.paused == 0 && q.requested > q.taken {
                    q.taken = q.requested;
                    let first = q.reason.take().unwrap_or_default();
                    let reason = match std::mem::take(&mut q.more) {
                        0 => first,
                        n => format!("{first} (and {n} more changes)"),
                    };
                    return (reason, q.taken);
                }
            }
            // A request or an unpause between the check and here leaves a
            // permit, so no wake-up is lost.
            self.wake.notified().await;
        }
    }

    fn finished(&self, covered: u64) {
        self.lock().passes += 1;
        self.done.send_replace(covered);
    }
}

/// The background task: one pass at a time, each covering every request
/// queued when it starts. Runs until aborted (at shutdown).
pub async fn run(state: Arc<State>) {
    loop {
        let (reason, covered) = state.recompute.next_batch().await;
        let started = std::time::Instant::now();
        let changed = state.recompute_plans(&reason).await;
        let took = started.elapsed();
        metrics::histogram!(crate::metrics::PASS_DURATION).record(took.as_secs_f64());
        metrics::counter!(crate::metrics::PLANS_CHANGED).increment(changed as u64);
        tracing::debug!(%reason, ?took, changed, "recomputed plans");
        state.recompute.finished(covered);
        crate::memory::trim_when_quiet(&state, state.recompute.passes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn it_is_idle_only_when_every_request_is_covered() {
        let r = Recompute::new();
        assert!(r.is_idle());
        r.request("a change");
        assert!(!r.is_idle(), "a pass is due");
        let (_, covered) = r.next_batch().await;
        assert!(!r.is_idle(), "a pass runs");
        r.finished(covered);
        assert!(r.is_idle());
    }

    #[tokio::test]
    async fn requests_queued_during_a_pause_make_one_batch() {
        let r = Recompute::new();
        let paused = r.pause();
        r.request("role web changed");
        r.request("role db changed");
        r.request("secret x changed");
        drop(paused);
        let (reason, covered) = r.next_batch().await;
        assert_eq!(reason, "role web changed (and 2 more changes)");
        assert_eq!(covered, 3);
        r.finished(covered);
        assert_eq!(r.passes(), 1);
        // Settled at once: nothing requested since.
        r.settled().await;
        r.request("env production changed");
        assert_eq!(r.next_batch().await, ("env production changed".into(), 4));
    }

    #[tokio::test]
    async fn nothing_is_taken_while_paused() {
        let r = Recompute::new();
        let paused = r.pause();
        r.request("a");
        let taken = tokio::select! {
            biased;
            b = r.next_batch() => Some(b),
            () = std::future::ready(()) => None,
        };
        assert!(taken.is_none());
        drop(paused);
        assert_eq!(r.next_batch().await, ("a".into(), 1));
    }
}
