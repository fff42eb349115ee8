//! Plan-change fan-out: when an admin change alters a node's plan hash, every
//! Watch stream of that node (on this replica) hears of it at once.
//! Replicas learn of each other's changes through the store (LISTEN/NOTIFY on
//! PostgreSQL) and recompute; this hub only delivers.

use tokio::sync::broadcast;

/// A node's plan changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanChanged {
    pub node: String,
    pub plan_hash: String,
    pub reason: String,
}

/// One sender, a receiver per Watch stream.
#[derive(Debug, Clone)]
pub struct WatchHub {
    tx: broadcast::Sender<PlanChanged>,
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
        WatchHub { tx }
    }

    pub fn publish(&self, event: PlanChanged) {
        let _ = self.tx.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<PlanChanged> {
        self.tx.subscribe()
    }

    pub fn watchers(&self) -> usize {
        self.tx.receiver_count()
    }
}
