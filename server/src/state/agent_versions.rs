//! The cm-agent version each node reports in GetPlan, stored on the node
//! (plan resolution refuses a plan the node's agent is too old to compile:
//! `plan::agent_version`). It is written only when it differs from what
//! this replica last stored, so a check-in costs no write.

use tonic::Status;

use super::{State, status};

impl State {
    /// Record that `node` runs cm-agent `version` (empty: an agent that does
    /// not say, which changes nothing). When it differs from what this
    /// replica knew, the node's cached plan is dropped: it was resolved for
    /// another agent.
    pub async fn note_agent_version(&self, node: &str, version: &str) -> Result<(), Status> {
        if version.is_empty() {
            return Ok(());
        }
        let same = |known: &std::collections::HashMap<String, String>| {
            known.get(node).is_some_and(|v| v == version)
        };
        if same(&*self.agent_versions.lock().await) {
            return Ok(());
        }
        self.store
            .set_agent_version(node, version)
            .await
            .map_err(status)?;
        self.agent_versions
            .lock()
            .await
            .insert(node.to_string(), version.to_string());
        self.plans.write().await.remove(node);
        Ok(())
    }
}
