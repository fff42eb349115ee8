//! Liveness and the cluster view's membership, as the server runs it: check-ins
//! are kept in memory and written in batches, then the verdicts are passed
//! (`store::membership`), and a verdict that moved anyone recomputes the
//! plans (which wakes the Watch streams of the nodes whose view changed).
//! Time is a parameter, so tests pass verdicts at any instant.

use cm_model::role::Environment;

use super::State;
use crate::store::{StoreError, Timers, Verdicts};

impl State {
    /// Write the check-ins kept since the last flush; nodes that came back
    /// (from unreachable or expired) change the view.
    pub async fn flush_check_ins(&self) {
        let batch: Vec<(String, i64)> = self.last_seen.lock().await.drain().collect();
        if batch.is_empty() {
            return;
        }
        match self.store.record_last_seen(&batch).await {
            Ok(back) if back.is_empty() => {}
            Ok(back) => {
                tracing::info!(nodes = ?back, "nodes back in the cluster view");
                self.changed(&format!("{} back", names(&back))).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, nodes = batch.len(), "cannot record check-ins; keeping them for the next flush");
                let mut kept = self.last_seen.lock().await;
                for (node, at) in batch {
                    let slot = kept.entry(node).or_insert(at);
                    *slot = (*slot).max(at);
                }
            }
        }
    }

    /// Flush check-ins, then pass the liveness verdicts at `now` (unix
    /// seconds) with each environment's timers.
    pub async fn membership_pass(&self, now: i64) -> Result<Verdicts, StoreError> {
        self.flush_check_ins().await;
        let environments = match self.environments().await {
            Ok(e) => e,
            Err(e) => {
                // A stored environment that no longer parses: its nodes get
                // the default timers rather than none.
                tracing::warn!(error = %e, "cannot read the environments' timers");
                Default::default()
            }
        };
        let verdicts = self
            .store
            .pass_verdicts(now, |name| {
                let default_env;
                let e = match environments.get(name) {
                    Some(e) => e,
                    None => {
                        default_env = Environment::default_named(name);
                        &default_env
                    }
                };
                Timers {
                    unreachable_after: i64::from(e.unreachable_after_seconds),
                    expire_after: i64::from(e.expire_after_seconds),
                }
            })
            .await?;
        if verdicts.credited > 0 {
            tracing::info!(
                seconds = verdicts.credited,
                "no verdicts were passed for a while (the servers were down): that time is not counted against the nodes"
            );
        }
        if !verdicts.is_empty() {
            let mut what = Vec::new();
            if !verdicts.unreachable.is_empty() {
                what.push(format!("{} unreachable", names(&verdicts.unreachable)));
            }
            if !verdicts.expired.is_empty() {
                what.push(format!("{} expired", names(&verdicts.expired)));
            }
            tracing::info!(unreachable = ?verdicts.unreachable, expired = ?verdicts.expired, "membership verdicts");
            self.changed(&what.join("; ")).await;
        }
        Ok(verdicts)
    }
}

/// `a, b and 3 more`: reasons stay short however many nodes moved.
fn names(nodes: &[String]) -> String {
    const SHOWN: usize = 3;
    let shown = nodes[..nodes.len().min(SHOWN)].join(", ");
    match nodes.len().saturating_sub(SHOWN) {
        0 => format!("node{} {shown}", if nodes.len() == 1 { "" } else { "s" }),
        more => format!("nodes {shown} and {more} more"),
    }
}
