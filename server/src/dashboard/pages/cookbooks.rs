//! `/cookbooks`: every version pushed, who pushed it, which environments
//! run it (the newest version the environment's pin allows; roles' and
//! dependencies' constraints are not weighed), and the roles whose run
//! lists name the cookbook with how many member nodes of each environment
//! have them. Cookbooks reached only as another's dependency show their
//! environments, not their nodes. Counted with one grouped read.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State as Extract;
use axum::response::Response;
use maud::html;
use semver::Version;

use super::layout::{self, ago, encode_segment, link};
use crate::dashboard::session::Admin;
use crate::state::State;
use crate::store::CookbookVersionRow;

pub async fn page(Admin(session): Admin, Extract(state): Extract<Arc<State>>) -> Response {
    let versions = match state.store.cookbook_versions(None).await {
        Ok(v) => v,
        Err(e) => return layout::store_error(&e),
    };
    let (environments, roles) = match tokio::join!(state.environments(), state.roles()) {
        (Ok(e), Ok(r)) => (e, r),
        (Err(e), _) | (_, Err(e)) => {
            return layout::message(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "A stored document does not read",
                &e.to_string(),
            );
        }
    };
    let mut by_name: BTreeMap<&str, Vec<&CookbookVersionRow>> = BTreeMap::new();
    for v in &versions {
        by_name.entry(&v.name).or_default().push(v);
    }
    // The version each environment runs of each cookbook: the newest its
    // pin allows (no pin: the newest).
    let runs = |name: &str, env: &str| -> Option<Version> {
        let pin = environments.get(env).and_then(|e| e.cookbooks.get(name));
        by_name
            .get(name)?
            .iter()
            .filter_map(|v| v.semver())
            .filter(|v| pin.is_none_or(|p| p.matches(v)))
            .max()
    };
    let counts = match state.store.role_counts().await {
        Ok(c) => c,
        Err(e) => return layout::store_error(&e),
    };
    let mut rows = Vec::new();
    for (name, versions) in &by_name {
        let users: Vec<&str> = roles
            .values()
            .filter(|r| r.run_list.iter().any(|rr| rr.cookbook == *name))
            .map(|r| r.name.as_str())
            .collect();
        for v in versions.iter().rev() {
            let semver = v.semver();
            let pinned: Vec<String> = environments
                .keys()
                .filter(|env| semver.is_some() && runs(name, env) == semver)
                .cloned()
                .collect();
            let nodes: Vec<(String, String, u64)> = counts
                .iter()
                .filter(|(env, role, _)| pinned.contains(env) && users.contains(&role.as_str()))
                .cloned()
                .collect();
            rows.push((*v, users.clone(), pinned, nodes));
        }
    }
    let body = html! {
        h1 { "Cookbooks" }
        table id="cookbooks" {
            thead { tr {
                th { "Cookbook" } th { "Version" } th { "Pushed" } th { "By" }
                th { "Run in" } th { "Nodes (environment · role)" }
            } }
            tbody {
                @for (v, users, pinned, nodes) in &rows {
                    tr {
                        td { (v.name) }
                        td { (v.version) }
                        td { (ago(v.created_at)) }
                        td { (v.pushed_by) }
                        td {
                            @for (i, env) in pinned.iter().enumerate() {
                                @if i > 0 { ", " }
                                a href=(format!("/environments/{}", encode_segment(env))) { (env) }
                            }
                        }
                        td {
                            @if users.is_empty() { span.muted { "in no role's run list" } }
                            @for (env, role, n) in nodes {
                                div { a href=(link("/", &[("env", env), ("role", role)])) { (n) " · " (env) " · " (role) } }
                            }
                        }
                    }
                }
            }
        }
    };
    layout::page(&session, "/cookbooks", "Cookbooks", body)
}
