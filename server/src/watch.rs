//! Plan-change fan-out: when a node's plan hash changes, every Watch stream
//! of that node (on this replica) hears of it. Replicas learn of each
//! other's changes through the store (LISTEN/NOTIFY on PostgreSQL) and
//! recompute (see [`crate::recompute`]); this hub delivers, and remembers
//! the last hash it told or showed each node, so that a replica wakes its
//! own watchers even when another replica already recorded the new hash.
//!
//! Delivery is per node and keeps only the latest event: a stream that
//! falls behind (a slow agent, a pass that changes thousands of plans at
//! once) is handed its newest plan hash when it reads again, never nothing,
//! and a change costs one send to that node's streams, not one message to
//! every stream of the replica.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::watch;

/// A node's plan changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanChanged {
    pub node: String,
    pub plan_hash: String,
    pub reason: String,
}

/// What a node's streams read: the latest event, `None` before the first.
pub type NodeEvents = watch::Receiver<Option<PlanChanged>>;

/// What the hub knows of one node.
#[derive(Debug, Default)]
struct Slot {
    /// The plan hash this replica last told the node (an event) or saw it
    /// hold (a recomputation, a Watch call).
    told: Option<String>,
    /// Its streams on this replica, while it has any.
    events: Option<watch::Sender<Option<PlanChanged>>>,
}

#[derive(Debug, Default)]
pub struct WatchHub {
    nodes: Mutex<HashMap<String, Slot>>,
    published: AtomicU64,
}

impl WatchHub {
    pub fn new() -> WatchHub {
        WatchHub::default()
    }

    fn nodes(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        // Every change to the map is one insert or one field replaced:
        // never left half-written by a panic.
        self.nodes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tell `event.node`'s streams; one that is reading something else
    /// finds this event (or a newer one) when it reads next.
    pub fn publish(&self, event: PlanChanged) {
        self.published.fetch_add(1, Ordering::Relaxed);
        let mut nodes = self.nodes();
        let slot = nodes.entry(event.node.clone()).or_default();
        slot.told = Some(event.plan_hash.clone());
        if let Some(events) = &slot.events {
            if events.receiver_count() == 0 {
                slot.events = None;
            } else {
                events.send_replace(Some(event));
            }
        }
    }

    /// Remember that `node`'s plan hash is `hash` as far as this replica's
    /// watchers know.
    pub fn note(&self, node: &str, hash: &str) {
        let mut nodes = self.nodes();
        match nodes.get_mut(node) {
            Some(slot) if slot.told.as_deref() == Some(hash) => {}
            Some(slot) => slot.told = Some(hash.to_string()),
            None => {
                nodes.insert(
                    node.to_string(),
                    Slot {
                        told: Some(hash.to_string()),
                        events: None,
                    },
                );
            }
        }
    }

    /// The hash this replica last told or saw for `node`, if any.
    pub fn last_told(&self, node: &str) -> Option<String> {
        self.nodes().get(node).and_then(|s| s.told.clone())
    }

    /// The events of `node` from now on (what was published before is
    /// already seen).
    pub fn subscribe(&self, node: &str) -> NodeEvents {
        let mut nodes = self.nodes();
        let slot = nodes.entry(node.to_string()).or_default();
        match &slot.events {
            Some(events) => events.subscribe(),
            None => {
                let (events, rx) = watch::channel(None);
                slot.events = Some(events);
                rx
            }
        }
    }

    /// Watch streams open on this replica.
    pub fn watchers(&self) -> usize {
        self.nodes()
            .values()
            .filter_map(|s| s.events.as_ref())
            .map(|e| e.receiver_count())
            .sum()
    }

    /// Events published since the server started (each wakes at most one
    /// node's streams).
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changed(node: &str, hash: &str) -> PlanChanged {
        PlanChanged {
            node: node.into(),
            plan_hash: hash.into(),
            reason: "test".into(),
        }
    }

    #[test]
    fn a_stream_that_fell_behind_gets_its_latest_hash() {
        let hub = WatchHub::new();
        let mut mine = hub.subscribe("web-1");
        hub.publish(changed("web-1", "a"));
        // More changes than any queue would hold, none of them its own...
        for i in 0..10_000 {
            hub.publish(changed(&format!("other-{i}"), "x"));
        }
        // ...and then its own again: it reads the newest, once.
        hub.publish(changed("web-1", "b"));
        assert!(mine.has_changed().unwrap());
        let seen = mine.borrow_and_update().clone().unwrap();
        assert_eq!(seen.plan_hash, "b");
        assert!(!mine.has_changed().unwrap());
        assert_eq!(hub.last_told("web-1").as_deref(), Some("b"));
        assert_eq!(hub.published(), 10_002);
    }

    #[test]
    fn a_stream_hears_only_its_node() {
        let hub = WatchHub::new();
        let mine = hub.subscribe("web-1");
        let twin = hub.subscribe("web-1");
        assert_eq!(hub.watchers(), 2);
        hub.publish(changed("web-2", "a"));
        assert!(!mine.has_changed().unwrap());
        hub.publish(changed("web-1", "c"));
        assert!(mine.has_changed().unwrap() && twin.has_changed().unwrap());
        drop((mine, twin));
        assert_eq!(hub.watchers(), 0);
        // The last stream gone, the next event drops the channel.
        hub.publish(changed("web-1", "d"));
        assert!(hub.nodes()["web-1"].events.is_none());
        assert_eq!(hub.last_told("web-1").as_deref(), Some("d"));
    }
}
