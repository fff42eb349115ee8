//! `/cluster?env=ENV`: the cluster view of one environment, as plans read
//! it: each role's members by ordinal, with address, state and whom a
//! member replaced; 100 members a role at a time (`&role=R&page=N` pages
//! through one role).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State as Extract};
use axum::response::Response;
use maud::{Markup, html};

use super::layout::{self, ago, badge, link, node_link};
use crate::dashboard::session::Admin;
use crate::state::State;
use crate::store::{MemberRow, NodeRow};

const PAGE_SIZE: u32 = 100;

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct ClusterQuery {
    env: String,
    role: String,
    page: u32,
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
    let counts = match state.store.member_counts(env).await {
        Ok(c) => c,
        Err(e) => return layout::store_error(&e),
    };
    let mut sections = Vec::new();
    for (role, total) in &counts {
        let page = if *role == query.role { query.page } else { 0 };
        let offset = page.saturating_mul(PAGE_SIZE);
        match state.store.members_page(env, role, offset, PAGE_SIZE).await {
            Ok((_, members)) => sections.push((role.as_str(), *total, page, members)),
            Err(e) => return layout::store_error(&e),
        }
    }
    let names: Vec<&str> = sections
        .iter()
        .flat_map(|(_, _, _, members)| members.iter().map(|m| m.node.as_str()))
        .collect();
    let nodes = match state.store.nodes_named(&names).await {
        Ok(n) => n,
        Err(e) => return layout::store_error(&e),
    };
    let by_name: HashMap<&str, &NodeRow> = nodes.iter().map(|n| (n.name.as_str(), n)).collect();
    let body = html! {
        h1 { "Cluster view of " (env) }
        p {
            @for e in &environments {
                a href=(link("/cluster", &[("env", e)])) { (e) } " "
            }
        }
        @if sections.is_empty() { p.muted { "No members in this environment." } }
        @for (role, total, page, members) in &sections {
            (role_section(env, role, *total, *page, members, &by_name))
        }
    };
    layout::page(&session, "/cluster", &format!("Cluster {env}"), body)
}

fn role_section(
    env: &str,
    role: &str,
    total: u64,
    page: u32,
    members: &[MemberRow],
    nodes: &HashMap<&str, &NodeRow>,
) -> Markup {
    let pages = total.div_ceil(u64::from(PAGE_SIZE)).max(1);
    let at = |page: u32| {
        let page = page.to_string();
        link("/cluster", &[("env", env), ("role", role), ("page", &page)])
    };
    html! {
        h2 { (role) " " span.muted { "(" (total) " members)" } }
        table.members {
            thead { tr { th { "#" } th { "Node" } th { "Address" } th { "State" } th { "Last seen" } th { "Replaces" } } }
            tbody {
                @for m in members {
                    @let node = nodes.get(m.node.as_str());
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
        @if pages > 1 {
            div.pager {
                @if page > 0 { a href=(at(page - 1)) { "← previous" } }
                span.muted { "page " (page + 1) " of " (pages) }
                @if u64::from(page) + 1 < pages { a href=(at(page + 1)) { "next →" } }
            }
        }
    }
}
