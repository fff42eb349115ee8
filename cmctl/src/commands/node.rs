//! `cmctl node list|show|assign|unassign|move|set|unset|retire|explain`.

use anyhow::{Context, Result};
use cm_proto::v1::nodes_client::NodesClient;
use cm_proto::v1::{
    AssignRequest, ExplainRequest, ListNodesRequest, MoveRequest, Name, Node, SetAttributeRequest,
};
use tonic::transport::Channel;

use crate::output::{self, Format};

fn node_json(n: &Node) -> serde_json::Value {
    serde_json::json!({
        "name": n.name, "environment": n.environment, "roles": n.roles, "state": n.state,
        "last_seen": n.last_seen, "plan_hash": n.plan_hash, "enrolled_at": n.enrolled_at,
        "cert_expires_at": n.cert_expires_at,
        "plan_error": (!n.plan_error.is_empty()).then_some(&n.plan_error),
        "plan_state": plan_state_word(n),
        "plan_age_seconds": n.last_run.as_ref().map(|r| r.plan_age_seconds),
        "facts": serde_json::from_str::<serde_json::Value>(&n.facts_json).unwrap_or_default(),
        "attributes": serde_json::from_str::<serde_json::Value>(&n.attributes_json).unwrap_or_default(),
        "memberships": n.memberships.iter().map(super::cluster::member_json).collect::<Vec<_>>(),
        "last_run": n.last_run.as_ref().map(|r| serde_json::json!({
            "at": r.at, "status": r.status, "resources_total": r.resources_total,
            "resources_changed": r.resources_changed, "resources_failed": r.resources_failed,
            "duration_ms": r.duration_ms, "cause": r.cause, "plan_age_seconds": r.plan_age_seconds})),
    })
}

/// The node's plan as the server sees it: `ok`, `-` before the first
/// resolution, or `plan error: REASON`.
fn plan_state(n: &Node) -> String {
    if !n.plan_error.is_empty() {
        format!("plan error: {}", n.plan_error)
    } else if n.plan_hash.is_empty() {
        "-".into()
    } else {
        "ok".into()
    }
}

/// `ok`, `error` or `none` (not resolved yet): for scripts.
fn plan_state_word(n: &Node) -> &'static str {
    match (n.plan_error.is_empty(), n.plan_hash.is_empty()) {
        (false, _) => "error",
        (true, true) => "none",
        (true, false) => "ok",
    }
}

/// How old the plan the node last converged was (since the server last
/// confirmed it): `0 s` for a node online, hours for one cut off.
fn plan_age(n: &Node) -> String {
    n.last_run
        .as_ref()
        .map_or_else(|| "-".into(), |r| output::duration(r.plan_age_seconds))
}

fn last_run(n: &Node) -> String {
    n.last_run
        .as_ref()
        .map(|r| {
            format!(
                "{} {} ({} changed)",
                r.status,
                output::ago(r.at),
                r.resources_changed
            )
        })
        .unwrap_or_else(|| "-".into())
}

pub async fn list(
    channel: Channel,
    role: Option<String>,
    env: Option<String>,
    format: Format,
) -> Result<()> {
    let nodes = NodesClient::new(channel)
        .list(ListNodesRequest {
            role: role.unwrap_or_default(),
            environment: env.unwrap_or_default(),
        })
        .await?
        .into_inner()
        .nodes;
    let rows = nodes
        .iter()
        .map(|n| {
            vec![
                n.name.clone(),
                n.environment.clone(),
                n.roles.join(","),
                n.state.clone(),
                output::ago(n.last_seen),
                last_run(n),
                plan_age(n),
                plan_state(n),
            ]
        })
        .collect();
    let json: Vec<_> = nodes.iter().map(node_json).collect();
    output::print(
        format,
        &[
            "NAME",
            "ENVIRONMENT",
            "ROLES",
            "STATE",
            "LAST SEEN",
            "LAST RUN",
            "PLAN AGE",
            "PLAN",
        ],
        rows,
        &json,
    );
    Ok(())
}

fn print_node(n: &Node, format: Format) {
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&node_json(n)).unwrap_or_default()
        ),
        Format::Human => {
            println!("node {}  ({})", n.name, n.state);
            println!(
                "environment {}  roles {}",
                n.environment,
                if n.roles.is_empty() {
                    "-".into()
                } else {
                    n.roles.join(", ")
                }
            );
            println!(
                "enrolled {}  certificate expires {}",
                output::when(n.enrolled_at),
                output::when(n.cert_expires_at)
            );
            println!(
                "last seen {}  last run {}",
                output::when(n.last_seen),
                last_run(n)
            );
            println!(
                "plan {}",
                if n.plan_hash.is_empty() {
                    "-"
                } else {
                    &n.plan_hash[..12.min(n.plan_hash.len())]
                }
            );
            if !n.plan_error.is_empty() {
                println!("plan error: {}", n.plan_error);
            }
            if !n.memberships.is_empty() {
                let ordinals: Vec<String> = n
                    .memberships
                    .iter()
                    .map(|m| format!("{} #{}", m.role, m.ordinal))
                    .collect();
                println!("cluster {}", ordinals.join(", "));
            }
            if n.attributes_json != "{}" && !n.attributes_json.is_empty() {
                println!("attributes {}", n.attributes_json);
            }
        }
    }
}

pub async fn show(channel: Channel, name: String, format: Format) -> Result<()> {
    let n = NodesClient::new(channel)
        .show(Name { name })
        .await?
        .into_inner();
    print_node(&n, format);
    Ok(())
}

pub async fn assign(channel: Channel, req: AssignRequest, add: bool, format: Format) -> Result<()> {
    let mut c = NodesClient::new(channel);
    let n = if add {
        c.assign(req).await?
    } else {
        c.unassign(req).await?
    }
    .into_inner();
    print_node(&n, format);
    Ok(())
}

/// `node set`'s VALUE for attribute `key`: JSON (`512`, `true`, `[1,2]`),
/// or text with `--string`. Malformed JSON is an error, never silently
/// stored as a string the admin did not mean; so is a value YAML reads two
/// ways (`on`, `0644`, a number past 64 bits), as in a role or a cookbook.
pub fn attribute_value(key: &str, text: &str, as_string: bool) -> Result<serde_json::Value> {
    if as_string {
        return Ok(serde_json::Value::String(text.to_string()));
    }
    if let Some(advice) = cm_model::yaml::ambiguous_plain_value(text) {
        anyhow::bail!(
            "{key}: {advice} (on the command line: '\"{}\"' or --string for the string)",
            text.trim()
        );
    }
    serde_json::from_str(text).map_err(|e| {
        anyhow::anyhow!(
            "{key}: VALUE {text:?} is not JSON ({e}); for text, quote it as JSON ('\"{text}\"') or pass --string"
        )
    })
}

pub async fn set(
    channel: Channel,
    node: String,
    key: String,
    value: Option<serde_json::Value>,
    format: Format,
) -> Result<()> {
    let mut c = NodesClient::new(channel);
    let n = match value {
        Some(json) => {
            c.set_attribute(SetAttributeRequest {
                node,
                key,
                value_json: json.to_string(),
            })
            .await?
        }
        None => {
            c.unset_attribute(SetAttributeRequest {
                node,
                key,
                value_json: String::new(),
            })
            .await?
        }
    }
    .into_inner();
    print_node(&n, format);
    Ok(())
}

pub async fn move_to(
    channel: Channel,
    node: String,
    environment: String,
    force: bool,
    format: Format,
) -> Result<()> {
    let n = NodesClient::new(channel)
        .r#move(MoveRequest {
            node,
            environment,
            force,
        })
        .await?
        .into_inner();
    print_node(&n, format);
    Ok(())
}

pub async fn retire(channel: Channel, name: String, format: Format) -> Result<()> {
    let n = NodesClient::new(channel)
        .retire(Name { name })
        .await?
        .into_inner();
    print_node(&n, format);
    Ok(())
}

pub async fn explain(channel: Channel, node: String, key: String, format: Format) -> Result<()> {
    let e = NodesClient::new(channel)
        .explain(ExplainRequest {
            node: node.clone(),
            key: key.clone(),
        })
        .await?
        .into_inner();
    match format {
        Format::Json => println!(
            "{}",
            serde_json::json!({"node": node, "key": key,
                "value": serde_json::from_str::<serde_json::Value>(&e.value_json).context("value")?,
                "contributions": e.contributions.iter().map(|c| serde_json::json!({"source": c.source, "value": serde_json::from_str::<serde_json::Value>(&c.value_json).unwrap_or_default(), "wins": c.wins})).collect::<Vec<_>>()})
        ),
        Format::Human => {
            println!("{node} {key} = {}", e.value_json);
            if e.contributions.is_empty() {
                println!("  (no layer sets it)");
            }
            for c in &e.contributions {
                println!(
                    "  {} {:<36} {}",
                    if c.wins { "*" } else { " " },
                    c.source,
                    c.value_json
                );
            }
            println!("precedence: cookbook defaults < environment < roles (run-list order) < node");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::attribute_value;
    use serde_json::json;

    #[test]
    fn values_are_json_and_text_needs_quotes_or_string() {
        assert_eq!(attribute_value("k", "128", false).unwrap(), json!(128));
        assert_eq!(
            attribute_value("k", "[\"a\"]", false).unwrap(),
            json!(["a"])
        );
        assert_eq!(attribute_value("k", "\"x\"", false).unwrap(), json!("x"));
        assert_eq!(
            attribute_value("k", "{\"a\":", true).unwrap(),
            json!("{\"a\":")
        );
        assert_eq!(attribute_value("k", "\"on\"", false).unwrap(), json!("on"));
        assert_eq!(attribute_value("k", "on", true).unwrap(), json!("on"));
        assert_eq!(attribute_value("k", "true", false).unwrap(), json!(true));
    }

    #[test]
    fn malformed_json_is_refused_not_stored_as_text() {
        for bad in ["{\"a\": 1", "[1, 2", "hello", "0644x"] {
            let e = attribute_value("app.x", bad, false)
                .unwrap_err()
                .to_string();
            assert!(e.contains("is not JSON") && e.contains("--string"), "{e}");
            assert!(e.starts_with("app.x: "), "{e}");
        }
    }

    #[test]
    fn values_yaml_reads_two_ways_are_refused_naming_the_key_and_the_quoted_form() {
        assert_eq!(
            attribute_value("apache.keepalive", "On", false)
                .unwrap_err()
                .to_string(),
            "apache.keepalive: On is read as the boolean true: write true/false, or \"On\" quoted for the string (on the command line: '\"On\"' or --string for the string)"
        );
        for (text, words) in [
            (
                "0644",
                "write \"0644\" (quoted) for the string, or 644 for the number",
            ),
            ("1_000", "or 1000 for the number"),
            // serde_json would read it as an inexact float.
            ("99999999999999999999", "too large for an integer"),
        ] {
            let e = attribute_value("app.n", text, false)
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("app.n: ") && e.contains(words), "{e}");
            assert!(e.contains(&format!("'\"{text}\"'")), "{e}");
        }
    }
}
