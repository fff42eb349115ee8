//! `/`: the fleet. Counts by environment and state, then the nodes that
//! match the filters, 50 a page, filtered and paged by the database.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Query, State as Extract};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};

use super::layout::{self, ago, badge, link, node_link, plan_word};
use crate::dashboard::session::Admin;
use crate::state::State;
use crate::store::{FleetFilter, NodeState, NodeSummary};

pub const PAGE_SIZE: u32 = 50;
const STATES: [&str; 5] = ["", "active", "unreachable", "expired", "retired"];
const PLANS: [&str; 4] = ["", "ok", "error", "none"];
const RUNS: [&str; 5] = ["", "success", "failed", "warning", "none"];

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct FleetQuery {
    env: String,
    role: String,
    state: String,
    plan: String,
    run: String,
    q: String,
    page: u32,
}

impl FleetQuery {
    fn filter(&self) -> Result<FleetFilter, String> {
        let some = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
        let state =
            match self.state.as_str() {
                "" => None,
                s => Some(NodeState::parse(s).ok_or_else(|| {
                    format!("state {s:?}: active, unreachable, expired or retired")
                })?),
            };
        let word = |name: &str, value: &str, words: &[&str]| match value {
            "" => Ok(None),
            v if words.contains(&v) => Ok(Some(v.to_string())),
            v => Err(format!("{name} {v:?}: {}", words.join(", "))),
        };
        Ok(FleetFilter {
            plan: word("plan", &self.plan, &PLANS[1..])?,
            run: word("run", &self.run, &RUNS[1..])?,
            environment: some(&self.env),
            role: some(&self.role),
            state,
            search: some(&self.q),
        })
    }

    /// This query on another page.
    fn at_page(&self, page: u32) -> String {
        let page = page.to_string();
        link(
            "/",
            &[
                ("env", &self.env),
                ("role", &self.role),
                ("state", &self.state),
                ("plan", &self.plan),
                ("run", &self.run),
                ("q", &self.q),
                ("page", if page == "0" { "" } else { &page }),
            ],
        )
    }
}

pub async fn page(
    Admin(session): Admin,
    Extract(state): Extract<Arc<State>>,
    Query(query): Query<FleetQuery>,
) -> Response {
    let filter = match query.filter() {
        Ok(f) => f,
        Err(e) => return layout::message(StatusCode::BAD_REQUEST, "Bad filter", &e),
    };
    let offset = query.page.saturating_mul(PAGE_SIZE);
    let (census, page) = tokio::join!(
        state.store.census(),
        state.store.fleet_page(&filter, offset, PAGE_SIZE)
    );
    let (census, (total, nodes)) = match (census, page) {
        (Ok(c), Ok(p)) => (c, p),
        (Err(e), _) | (_, Err(e)) => return layout::store_error(&e),
    };
    // Why the runs on this page that did not succeed did not: their
    // reports, at most one page of them.
    let unhappy: Vec<i64> = nodes
        .iter()
        .filter_map(|n| n.last_run.as_ref())
        .filter(|r| r.status != "success")
        .map(|r| r.id)
        .collect();
    let reports = match state.store.run_reports(&unhappy).await {
        Ok(r) => r,
        Err(e) => return layout::store_error(&e),
    };
    let why = |n: &NodeSummary| -> String {
        n.last_run
            .as_ref()
            .and_then(|r| reports.get(&r.id))
            .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok())
            .and_then(|report| cm_model::report::why(&report))
            .unwrap_or_default()
    };
    let mut by_state: BTreeMap<&str, i64> = BTreeMap::new();
    let mut environments: Vec<&str> = Vec::new();
    let mut plan_errors = 0;
    for c in &census {
        *by_state.entry(c.state.as_str()).or_default() += c.nodes;
        if !environments.contains(&c.environment.as_str()) {
            environments.push(&c.environment);
        }
        if c.plan == "error" {
            plan_errors += c.nodes;
        }
    }
    let pages = total.div_ceil(u64::from(PAGE_SIZE)).max(1);
    let body = html! {
        h1 { "Fleet" }
        div.counts {
            @for (state, n) in &by_state {
                span { (badge(state)) " " (n) }
            }
            span { "plan errors " (plan_errors) }
        }
        (filters(&query, &environments))
        p.muted { (total) " nodes match · page " (u64::from(query.page) + 1) " of " (pages) }
        table id="nodes" {
            thead { tr {
                th { "Node" } th { "Environment" } th { "Roles" } th { "State" }
                th { "Last seen" } th { "Last run" } th { "Why" } th { "Plan age" } th { "Plan" }
            } }
            tbody {
                @for n in &nodes { (row(n, &why(n))) }
            }
        }
        div.pager {
            @if query.page > 0 { a href=(query.at_page(query.page - 1)) { "← previous" } }
            @if u64::from(query.page) + 1 < pages { a href=(query.at_page(query.page + 1)) { "next →" } }
        }
    };
    layout::page(&session, "/", "Fleet", body)
}

fn filters(q: &FleetQuery, environments: &[&str]) -> Markup {
    html! {
        form.filter method="get" action="/" {
            input type="search" name="q" placeholder="node name" value=(q.q);
            select name="env" {
                option value="" { "every environment" }
                @for env in environments { option value=(env) selected[q.env == *env] { (env) } }
            }
            input type="text" name="role" placeholder="role" value=(q.role);
            (choice("state", "any state", &STATES, &q.state))
            (choice("plan", "any plan", &PLANS, &q.plan))
            (choice("run", "any last run", &RUNS, &q.run))
            button type="submit" { "Filter" }
        }
    }
}

fn choice(name: &str, any: &str, values: &[&str], chosen: &str) -> Markup {
    html! {
        select name=(name) {
            @for v in values {
                option value=(v) selected[chosen == *v] { @if v.is_empty() { (any) } @else { (v) } }
            }
        }
    }
}

fn row(n: &NodeSummary, why: &str) -> Markup {
    let plan = plan_word(&n.plan_hash, &n.plan_error);
    html! {
        tr data-node=(n.name) {
            td { a href=(node_link(&n.name)) { (n.name) } }
            td { (n.environment) }
            td { (n.roles.join(", ")) }
            td { (badge(n.state.as_str())) }
            td { (ago(n.last_seen)) }
            td {
                @match &n.last_run {
                    Some(r) => { (badge(&r.status)) " " (ago(r.at)) " (" (r.resources_changed) " changed)" }
                    None => { span.muted { "no run yet" } }
                }
            }
            td.why { (why) }
            td { (n.last_run.as_ref().map(|r| cm_model::time::span(r.plan_age_seconds.max(0).unsigned_abs())).unwrap_or_else(|| "-".into())) }
            td {
                (badge(plan))
                @if plan == "error" { " " span.muted { (n.plan_error) } }
            }
        }
    }
}
