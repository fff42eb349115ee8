//! `/cluster?env=ENV`: the cluster view of one environment, as plans read
//! it: each role's members by ordinal, with address, state and whom a
//! member replaced.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State as Extract};
use axum::response::Response;
use maud::html;

use super::layout::{self, ago, badge, link, node_link};
use crate::dashboard::session::Admin;
use crate::state::State;
use crate::store::NodeRow;

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct ClusterQuery {
    env: String,
}

pub async fn page(
    Admin(session): Admin,
    Extract(state): Extract<Arc<State>>,
    Query(query): Query<ClusterQuery>,
) -> Response {
    let census = match state.store.census().await {
        Ok(c) => c,
        Err(e) => return layout::store_error(&e),
    };
    let mut environments: Vec<&str> = census.iter().map(|c| c.environment.as_str()).collect();
    environments.dedup();
    let env = match query.env.as_str() {
        "" => environments.first().copied().unwrap_or_default(),
        env => env,
    };
    let (members, nodes) = tokio::join!(
        state.store.members(Some(env), None),
        state.store.nodes(None, Some(env)),
    );
    let (members, nodes) = match (members, nodes) {
        (Ok(m), Ok(n)) => (m, n),
        (Err(e), _) | (_, Err(e)) => return layout::store_error(&e),
    };
    let by_name: HashMap<&str, &NodeRow> = nodes.iter().map(|n| (n.name.as_str(), n)).collect();
    let mut roles: Vec<&str> = members.iter().map(|m| m.role.as_str()).collect();
    roles.dedup();
    let body = html! {
        h1 { "Cluster view of " (env) }
        p {
            @for e in &environments {
                a href=(link("/cluster", &[("env", e)])) { (e) } " "
            }
        }
        @if members.is_empty() { p.muted { "No members in this environment." } }
        @for role in &roles {
            h2 { (role) }
            table.members {
                thead { tr { th { "#" } th { "Node" } th { "Address" } th { "State" } th { "Last seen" } th { "Replaces" } } }
                tbody {
                    @for m in members.iter().filter(|m| m.role == *role) {
                        @let node = by_name.get(m.node.as_str());
                        tr {
                            td.num { (m.ordinal) }
                            td { a href=(node_link(&m.node)) { (m.node) } }
                            td { (node.and_then(|n| crate::cluster_view::address(&n.facts).as_str().map(str::to_string)).unwrap_or_default()) }
                            td { @if let Some(n) = node { (badge(n.state.as_str())) } }
                            td { (node.map(|n| ago(n.last_seen)).unwrap_or_default()) }
                            td { (m.replaces) }
                        }
                    }
                }
            }
        }
    };
    layout::page(&session, "/cluster", &format!("Cluster {env}"), body)
}
