//! The cm-agent version each node reports in GetPlan, stored on the node
//! (plan resolution refuses a plan the node's agent is too old to compile:
//! `plan::agent_version`). It is written only when it differs from the
//! stored one (a check-in costs a read, no write), and this replica's
//! cached plan of the node is dropped whenever the version differs from
//! the one this replica last saw, since it may have been resolved for
//! another agent (another replica may have stored the version meanwhile).
//! On SQLite there is no other replica: a version this process saw last is
//! the stored one, and a check-in reads nothing (at 10,000 agents fetching
//! a changed plan at once, those reads queued on SQLite's one connection).

use super::{State, StateError};

impl State {
    /// Record that `node` runs cm-agent `version` (empty: an agent that does
    /// not say, which changes nothing).
    pub async fn note_agent_version(&self, node: &str, version: &str) -> Result<(), StateError> {
        if version.is_empty() {
            return Ok(());
        }
        let seen_here = self
            .agent_versions
            .lock()
            .await
            .get(node)
            .is_some_and(|v| v == version);
        if seen_here && !self.store.is_postgres() {
            return Ok(());
        }
        let stored = self.store.agent_version(node).await?;
        if stored != version {
            self.store.set_agent_version(node, version).await?;
        }
        if !seen_here || stored != version {
            self.plans.write().await.remove(node);
            self.agent_versions
                .lock()
                .await
                .insert(node.to_string(), version.to_string());
        }
        Ok(())
    }

    /// Forget the version this replica saw `node` run (it enrolled again:
    /// its row may be new), so that its next GetPlan reads and stores it.
    pub async fn forget_agent_version(&self, node: &str) {
        self.agent_versions.lock().await.remove(node);
    }
}
