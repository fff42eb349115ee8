//! Plan-change fan-out: when a node's plan hash changes, every Watch stream
//! of that node (on this replica) hears of it. Replicas learn of each
//! other's changes through the store (LISTEN/NOTIFY on PostgreSQL) and
//! recompute (see [`crate::recompute`]); this hub delivers, and remembers
//! the last hash it told or showed each node, so that a replica wakes its
//! own watchers even when another replica already recorded the new hash.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::broadcast;

/// A node's plan changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanChanged {
    pub node: String,
    pub plan_hash: String,
    pub reason: String,
}

/// One sender, a receiver per Watch stream.
#[derive(Debug)]
pub struct WatchHub {
    tx: broadcast::Sender<PlanChanged>,
    /// Node → the plan hash this replica last told it (an event) or saw it
    /// hold (a recomputation, a Watch call).
    last_told: Mutex<HashMap<String, String>>,
}

impl Default for WatchHub {
    fn default() -> Self {
        Self::new()
    }
}

impl WatchHub {
    pub fn new() -> WatchHub {
        // A lagging stream skips ahead; the agent re-asks for its plan anyway.
        let (tx, _) = broadcast::channel(4096);
        WatchHub {
            tx,
            last_told: Mutex::new(HashMap::new()),
        }
    }

    fn told(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        // A map of strings replaced whole: never left half-written.
        self.last_told.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn publish(&self, event: PlanChanged) {
        self.note(&event.node, &event.plan_hash);
        let _ = self.tx.send(event);
    }

    /// Remember that `node`'s plan hash is `hash` as far as this replica's
    /// watchers know.
    pub fn note(&self, node: &str, hash: &str) {
        let mut told = self.told();
        match told.get_mut(node) {
            Some(h) if h == hash => {}
            Some(h) => *h = hash.to_string(),
            None => {
                told.insert(node.to_string(), hash.to_string());
            }
        }
    }

    /// The hash this replica last told or saw for `node`, if any.
    pub fn last_told(&self, node: &str) -> Option<String> {
        self.told().get(node).cloned()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<PlanChanged> {
        self.tx.subscribe()
    }

    pub fn watchers(&self) -> usize {
        self.tx.receiver_count()
    }
}
