//! `/nodes/NAME`: one node. Its state, roles and places in the cluster,
//! plan, facts, the attributes admins set, `explain` of an attribute, and
//! its runs with their resources and diffs. A run report never holds a
//! secret (the agent leaves out the diff of a sensitive resource); the
//! page shows what it holds, escaped.

use std::sync::Arc;

use axum::extract::{Path, Query, State as Extract};
use axum::response::Response;
use maud::{Markup, html};
use serde_json::Value;

use super::layout::{self, ago, badge, link, node_link, plan_word, when};
use crate::dashboard::session::Admin;
use crate::state::State;
use crate::store::{NodeRow, RunRow};

/// Runs listed on the page.
const RUNS: u32 = 20;

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct NodeQuery {
    /// An attribute path to explain (`memcached.port`).
    explain: String,
    /// The run to show in full; default the newest.
    run: i64,
}

pub async fn page(
    Admin(session): Admin,
    Extract(state): Extract<Arc<State>>,
    Path(name): Path<String>,
    Query(query): Query<NodeQuery>,
) -> Response {
    let node = match state.store.node(&name).await {
        Ok(n) => n,
        Err(e) => return layout::store_error(&e),
    };
    let (members, runs) = tokio::join!(
        state.store.memberships_of(&name),
        state.store.current_runs(&name, RUNS),
    );
    let (members, runs) = match (members, runs) {
        (Ok(m), Ok(r)) => (m, r),
        (Err(e), _) | (_, Err(e)) => return layout::store_error(&e),
    };
    let places: Vec<String> = members
        .iter()
        .map(|m| format!("{} #{}", m.role, m.ordinal))
        .collect();
    let shown = runs
        .iter()
        .find(|r| r.id == query.run)
        .or_else(|| runs.first());
    let explained = match query.explain.trim() {
        "" => None,
        key => Some((key.to_string(), explain(&state, &name, key).await)),
    };
    let body = html! {
        h1 { "Node " (node.name) }
        (summary(&node, &places))
        h2 { "Runs" }
        (run_list(&node.name, &runs, shown.map(|r| r.id)))
        @if let Some(run) = shown { (run_detail(run)) }
        h2 { "Explain an attribute" }
        form.filter method="get" action=(node_link(&node.name)) {
            input type="text" name="explain" placeholder="memcached.port" value=(query.explain);
            button type="submit" { "Explain" }
        }
        @if let Some((key, answer)) = &explained { (explanation(key, answer)) }
        h2 { "Facts" }
        (tree(&node.facts))
        @if !node.attributes.is_empty() {
            h2 { "Attributes set on the node" }
            (tree(&Value::Object(node.attributes.clone())))
        }
    };
    layout::page(&session, "/", &format!("Node {}", node.name), body)
}

fn summary(node: &NodeRow, places: &[String]) -> Markup {
    let plan = plan_word(&node.plan_hash, &node.plan_error);
    html! {
        table id="summary" {
            tr { th { "State" } td { (badge(node.state.as_str())) } }
            tr { th { "Environment" } td { a href=(link("/", &[("env", &node.environment)])) { (node.environment) } } }
            tr { th { "Roles" } td {
                @for (i, role) in node.roles.iter().enumerate() {
                    @if i > 0 { ", " }
                    a href=(format!("/roles/{}", layout::encode_segment(role))) { (role) }
                }
            } }
            tr { th { "Cluster places" } td { @if places.is_empty() { span.muted { "none" } } @else { (places.join(", ")) } } }
            tr { th { "Plan" } td {
                (badge(plan))
                @if plan == "error" { " " (node.plan_error) }
                @if !node.plan_hash.is_empty() { " " span.muted { (node.plan_hash.get(..12).unwrap_or(&node.plan_hash)) } }
            } }
            tr { th { "Last seen" } td { (when(node.last_seen)) } }
            tr { th { "Enrolled" } td { (when(node.enrolled_at)) } }
            tr { th { "Certificate expires" } td { (when(node.cert_expires_at)) } }
            tr { th { "Agent" } td { (if node.agent_version.is_empty() { "-" } else { &node.agent_version }) } }
        }
    }
}

fn run_list(node: &str, runs: &[RunRow], shown: Option<i64>) -> Markup {
    html! {
        @if runs.is_empty() { p.muted { "No run reported yet." } }
        @else {
            table id="runs" {
                thead { tr {
                    th { "When" } th { "Status" } th { "Cause" } th { "Changed" } th { "Failed" }
                    th { "Took" } th { "Why" }
                } }
                tbody {
                    @for r in runs {
                        tr class=[(Some(r.id) == shown).then_some("shown")] {
                            td { a href=(link(&node_link(node), &[("run", &r.id.to_string())])) { (ago(r.at)) } }
                            td { (badge(&r.status)) }
                            td { (r.cause) }
                            td.num { (r.resources_changed) "/" (r.resources_total) }
                            td.num { (r.resources_failed) }
                            td.num { (r.duration_ms) " ms" }
                            td.why { (why(r).unwrap_or_default()) }
                        }
                    }
                }
            }
        }
    }
}

fn why(run: &RunRow) -> Option<String> {
    let report: Value = serde_json::from_str(&run.report_json).ok()?;
    cm_model::report::why(&report)
}

/// One run's resources: what changed, what failed and why, diffs.
fn run_detail(run: &RunRow) -> Markup {
    let report: Value = serde_json::from_str(&run.report_json).unwrap_or_default();
    let resources = report["resources"].as_array().cloned().unwrap_or_default();
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    html! {
        h2 { "Run of " (when(run.at)) }
        @if let Some(error) = report["error"].as_str() { p.error-text { "Error: " (error) } }
        @if let Some(error) = report["plan_error"].as_str() { p { "Plan error: " (error) } }
        table id="resources" {
            thead { tr { th { "Resource" } th { "Action" } th { "Result" } th { "Changes" } } }
            tbody {
                @for r in &resources {
                    tr {
                        td { (text(&r["type"])) "[" (text(&r["name"])) "]" }
                        td { (text(&r["action"])) }
                        td {
                            @if let Some(e) = r["error"].as_str() { (badge("failed")) " " (e) }
                            @else if let Some(s) = r["skipped"].as_str() { "skipped: " (s) }
                            @else if r["changed"].as_bool() == Some(true) { (badge("changed")) }
                            @else { span.muted { "unchanged" } }
                        }
                        td {
                            @if let Some(changes) = r["changes"].as_array() {
                                @for c in changes { div { (text(c)) } }
                            }
                            @if r["sensitive"].as_bool() == Some(true) { span.muted { "(sensitive: not shown)" } }
                            @if let Some(diff) = r["diff"].as_str() { pre { (diff) } }
                        }
                    }
                }
            }
        }
    }
}

/// `explain`'s answer: the value, then each source in precedence order.
type Explained = Result<(Value, Vec<(String, Value, bool)>), String>;

async fn explain(state: &State, node: &str, key: &str) -> Explained {
    let plan = state.plan_for(node).await.map_err(|e| e.to_string())?;
    let value = plan
        .body
        .attributes
        .get(key)
        .cloned()
        .unwrap_or(Value::Null);
    let contributions = plan
        .body
        .attributes
        .explain(key)
        .into_iter()
        .map(|c| (c.source.to_string(), c.value.clone(), c.wins))
        .collect();
    Ok((value, contributions))
}

fn explanation(key: &str, answer: &Explained) -> Markup {
    html! {
        @match answer {
            Err(e) => p { "No plan to explain " (key) " from: " (e) }
            Ok((value, sources)) => {
                p { code { (key) } " = " code { (value.to_string()) } }
                table id="explain" {
                    thead { tr { th { "Source (lowest precedence first)" } th { "Value" } } }
                    tbody {
                        @for (source, value, wins) in sources {
                            tr class=[wins.then_some("wins")] { td { (source) @if *wins { " (wins)" } } td { code { (value.to_string()) } } }
                        }
                    }
                }
            }
        }
    }
}

/// A JSON object as `path = value` rows (nested objects flattened).
fn tree(value: &Value) -> Markup {
    let mut rows = Vec::new();
    flatten("", value, &mut rows);
    html! {
        table.tree {
            @for (path, value) in &rows { tr { th { (path) } td { code { (value) } } } }
        }
    }
}

fn flatten(prefix: &str, value: &Value, rows: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let path = match prefix {
                    "" => k.clone(),
                    p => format!("{p}.{k}"),
                };
                flatten(&path, v, rows);
            }
        }
        Value::String(s) => rows.push((prefix.to_string(), s.clone())),
        other => rows.push((prefix.to_string(), other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_flatten_to_paths_and_stay_escaped() {
        let facts = serde_json::json!({"os": {"family": "debian"}, "motd": "<script>x()</script>", "cpus": 2});
        let shown = tree(&facts).into_string();
        assert!(shown.contains("os.family"), "{shown}");
        assert!(
            shown.contains("&lt;script&gt;x()&lt;/script&gt;"),
            "{shown}"
        );
        assert!(!shown.contains("<script>"), "{shown}");
    }
}
