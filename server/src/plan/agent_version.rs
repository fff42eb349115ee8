//! Whether the node's agent can compile its plan. Each cookbook version
//! records at push the lowest cm-agent that compiles it
//! (`cm_model::features`); a plan with a version that needs a newer agent
//! than the node last reported is a plan error, so the node keeps
//! converging its last good plan and the node list says why.

use std::collections::BTreeMap;

use semver::Version;

use super::{CatalogEntry, PlanError};

/// The cookbook of `chosen` that needs the newest agent, when that is
/// newer than `agent`; an agent that has not said its version is not
/// refused (the agent itself checks).
pub(super) fn check(
    node: &str,
    agent: Option<&Version>,
    chosen: &BTreeMap<&str, &CatalogEntry>,
) -> Result<(), PlanError> {
    let Some(agent) = agent else {
        return Ok(());
    };
    let neediest = chosen
        .iter()
        .filter_map(|(name, e)| Some((*name, e, e.min_agent.as_ref()?)))
        .filter(|(_, _, needs)| *needs > agent)
        .max_by(|a, b| a.2.cmp(b.2).then_with(|| b.0.cmp(a.0)));
    match neediest {
        None => Ok(()),
        Some((name, entry, needs)) => Err(PlanError::AgentTooOld {
            node: node.to_string(),
            cookbook: format!("{name}@{}", entry.version),
            needs: needs.to_string(),
            runs: agent.to_string(),
        }),
    }
}
