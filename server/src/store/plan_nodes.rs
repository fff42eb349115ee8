//! What a node's plan reads of its row, without its facts and last run:
//! the background pass reads every node after each change, and a node's
//! facts (kilobytes of JSON on a real machine) matter to plans only through
//! the cluster view, which is rebuilt only when the fleet changes.

use serde_json::{Map, Value};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::nodes::{NodeState, not_found};
use super::pools::InTime;
use super::{Result, Store, StoreError, from_json};

/// A node as its plan reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanNode {
    pub name: String,
    pub environment: String,
    /// In the order they were given: the run list follows it.
    pub roles: Vec<String>,
    /// Admin-set attributes (`cmctl node set`).
    pub attributes: Map<String, Value>,
    pub state: NodeState,
    /// The hash of the plan the node last fetched or was told.
    pub plan_hash: String,
    /// Why the server had no valid plan for the node; empty when it had.
    pub plan_error: String,
    /// The cm-agent version the node last reported; empty before it did.
    pub agent_version: String,
}

/// The `SELECT` of a plan row, with a tail (`WHERE ...`).
macro_rules! select_plan_nodes {
    ($tail:literal) => {
        concat!(
            "SELECT name, environment, roles_json, attributes_json, state, plan_hash, \
             plan_error, agent_version FROM nodes ",
            $tail
        )
    };
}

fn from_row(row: &AnyRow) -> Result<PlanNode> {
    let name: String = row.try_get("name")?;
    let state: String = row.try_get("state")?;
    let roles: String = row.try_get("roles_json")?;
    let attributes: String = row.try_get("attributes_json")?;
    Ok(PlanNode {
        state: NodeState::parse(&state)
            .ok_or_else(|| StoreError::corrupt("node", &name, "state", format!("{state:?}")))?,
        roles: from_json(&roles, "node", &name, "roles_json")?,
        attributes: from_json(&attributes, "node", &name, "attributes_json")?,
        environment: row.try_get("environment")?,
        plan_hash: row.try_get("plan_hash")?,
        plan_error: row.try_get("plan_error")?,
        agent_version: row.try_get("agent_version")?,
        name,
    })
}

impl Store {
    /// What the plan of every node that is not retired reads, by name.
    pub async fn plan_nodes(&self) -> Result<Vec<PlanNode>> {
        let rows = sqlx::query(select_plan_nodes!("WHERE state <> 'retired' ORDER BY name"))
            .fetch_all(&self.pool)
            .in_time()
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// What one node's plan reads.
    pub async fn plan_node(&self, name: &str) -> Result<PlanNode> {
        let row = sqlx::query(select_plan_nodes!("WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .in_time()
            .await?;
        row.as_ref()
            .map(from_row)
            .transpose()?
            .ok_or_else(|| not_found(name))
    }
}
