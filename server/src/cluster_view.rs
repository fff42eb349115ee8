//! The cluster view as plans carry it: `cluster.<role>`, the role's members
//! in the node's own environment, sorted by ordinal. Each member is a small
//! documented object (docs/cookbooks.md, "The cluster view"); nothing else
//! of one node reaches another node's plan, and every value is checked
//! again here (an address is an IP, strings are short words).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock};

use serde_json::{Map, Value, json};

use crate::store::{MemberRow, NodeRow, NodeState};

/// Longest string value of a member.
const MAX_STRING: usize = 255;

/// One list of the view (a role's members, or `cluster_nodes`), shared by
/// every plan that carries it: built, written out and hashed once per
/// generation, so a plan holds a pointer to it and hashes its digest. A
/// role of 1,000 members read by its 1,000 members is one list, not 1,000
/// copies of it (hundreds of megabytes, and seconds of hashing, per pass).
/// Only its text is kept: as a `Value` each member took about 5 KiB more.
#[derive(Debug)]
pub struct Shared {
    /// The list as JSON text, as plans send it.
    pub json: String,
    /// sha256 of `json`, as plan hashes include it.
    pub digest: String,
}

impl Shared {
    pub fn new(value: Value) -> Arc<Shared> {
        let json = value.to_string();
        let digest = crate::blobs::sha256_hex(json.as_bytes());
        Arc::new(Shared { json, digest })
    }

    #[cfg(test)]
    pub fn value(&self) -> Value {
        serde_json::from_str(&self.json).expect("written from a Value")
    }
}

/// The empty list, shared by every plan with a role it does not read.
pub fn no_members() -> Arc<Shared> {
    static EMPTY: LazyLock<Arc<Shared>> = LazyLock::new(|| Shared::new(Value::Array(Vec::new())));
    EMPTY.clone()
}

/// One environment's view: `cluster.<role>` for every role the server
/// knows, and `cluster_nodes` (every member once, with its roles).
#[derive(Debug, Clone)]
pub struct EnvView {
    pub roles: BTreeMap<String, Arc<Shared>>,
    pub nodes: Arc<Shared>,
}

impl EnvView {
    pub fn new(lists: Map<String, Value>) -> EnvView {
        let nodes = Shared::new(cm_model::cluster_nodes::of(&lists));
        EnvView {
            roles: lists
                .into_iter()
                .map(|(role, list)| (role, Shared::new(list)))
                .collect(),
            nodes,
        }
    }
}

/// Environment → its view.
pub type View = BTreeMap<String, EnvView>;

/// Build the view of every environment: each role the server knows is
/// listed (empty when it has no members), so a template reading
/// `cluster.<role>` of a role nobody holds yet gets an empty list.
pub fn build<'a>(
    roles: impl Iterator<Item = &'a String> + Clone,
    members: &[MemberRow],
    nodes: &HashMap<&str, &NodeRow>,
) -> View {
    lists(roles, members, nodes)
        .into_iter()
        .map(|(env, lists)| (env, EnvView::new(lists)))
        .collect()
}

/// The view of an environment without members: every known role, empty.
/// Every list is the one shared empty list: nothing is written or hashed
/// (the plan check builds one per resolution).
pub fn empty<'a>(roles: impl Iterator<Item = &'a String>) -> EnvView {
    EnvView {
        roles: roles.map(|r| (r.clone(), no_members())).collect(),
        nodes: no_members(),
    }
}

/// Node → role → `member.<role>` of its plans: `{ordinal}`, and with
/// `replaces: {name, address}` when it took the ordinal of a node that left
/// the role (a Cassandra replacement boots with that address; `address` is
/// `null` when that node's row is gone or has no IP).
pub fn own_places(
    members: &[MemberRow],
    nodes: &HashMap<&str, &NodeRow>,
) -> HashMap<String, Map<String, Value>> {
    let mut places: HashMap<String, Map<String, Value>> = HashMap::new();
    for m in members {
        let mut place = json!({ "ordinal": m.ordinal });
        if !m.replaces.is_empty() {
            let address = nodes
                .get(m.replaces.as_str())
                .map_or(Value::Null, |n| address(&n.facts));
            place["replaces"] = json!({ "name": m.replaces, "address": address });
        }
        places
            .entry(m.node.clone())
            .or_default()
            .insert(m.role.clone(), place);
    }
    places
}

/// Environment → role → members, as plain values.
fn lists<'a>(
    roles: impl Iterator<Item = &'a String> + Clone,
    members: &[MemberRow],
    nodes: &HashMap<&str, &NodeRow>,
) -> BTreeMap<String, Map<String, Value>> {
    let mut view = BTreeMap::new();
    for m in members {
        let Some(node) = nodes.get(m.node.as_str()) else {
            continue;
        };
        let roles_of_env = view
            .entry(m.environment.clone())
            .or_insert_with(|| empty_lists(roles.clone()));
        let list = roles_of_env
            .entry(m.role.clone())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = list {
            list.push(member(node, m.ordinal));
        }
    }
    view
}

fn empty_lists<'a>(roles: impl Iterator<Item = &'a String>) -> Map<String, Value> {
    roles
        .map(|r| (r.clone(), Value::Array(Vec::new())))
        .collect()
}

/// One member as templates see it.
fn member(node: &NodeRow, ordinal: i64) -> Value {
    let mut member = visible(&node.facts);
    member["name"] = json!(node.name);
    member["ordinal"] = json!(ordinal);
    member["reachable"] = json!(node.state == NodeState::Active);
    member["state"] = json!(node.state.as_str());
    member
}

/// What of a node's facts its peers see: `address`, `zone` and `facts`.
/// A change of these (and only these) changes its peers' plans.
pub fn visible(facts: &Value) -> Value {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).and_then(word);
    let os = json!({
        "id": text(facts.pointer("/os/id")),
        "version_id": text(facts.pointer("/os/version_id")),
        "codename": text(facts.pointer("/os/version_codename")),
    });
    json!({
        "address": address(facts),
        "zone": text(facts.pointer("/ec2/availability_zone")),
        "facts": {
            "hostname": text(facts.get("hostname")),
            "cpus": facts.get("cpu_count").and_then(Value::as_u64),
            "memory_mib": facts.get("memory_mib").and_then(Value::as_u64),
            "arch": text(facts.get("arch")),
            "os": os,
        },
    })
}

/// The private address peers reach the node on: EC2's local IPv4, else the
/// default route's IPv4, else its IPv6; `null` when none is an IP.
pub fn address(facts: &Value) -> Value {
    [
        facts.pointer("/ec2/local_ipv4"),
        facts.get("ipaddress"),
        facts.get("ip6address"),
    ]
    .into_iter()
    .flatten()
    .filter_map(Value::as_str)
    .find_map(|s| s.parse::<std::net::IpAddr>().ok())
    .map_or(Value::Null, |ip| Value::String(ip.to_string()))
}

/// A short word of letters, digits, `.`, `_` and `-`, else nothing: what
/// host names, zones and OS ids are, and nothing a peer's template or shell
/// line could be made to run.
fn word(s: &str) -> Option<String> {
    let ok = !s.is_empty()
        && s.len() <= MAX_STRING
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    ok.then(|| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, state: NodeState, facts: Value) -> NodeRow {
        NodeRow {
            name: name.into(),
            environment: "prod".into(),
            roles: vec!["cache".into()],
            attributes: Map::new(),
            facts,
            state,
            cert_serial: String::new(),
            cert_expires_at: 0,
            enrolled_at: 0,
            last_seen: 0,
            last_run: None,
            plan_hash: String::new(),
            plan_error: String::new(),
            agent_version: String::new(),
        }
    }

    fn row(node: &str, ordinal: i64) -> MemberRow {
        MemberRow {
            environment: "prod".into(),
            role: "cache".into(),
            ordinal,
            node: node.into(),
            joined_at: 0,
            replaces: String::new(),
        }
    }

    #[test]
    fn members_carry_checked_values_only() {
        let a = node(
            "a",
            NodeState::Active,
            json!({
                "ipaddress": "10.0.0.5; reboot", "ip6address": "fd00::1",
                "hostname": "a$(reboot)", "cpu_count": 2, "memory_mib": 3931,
                "os": {"id": "debian", "version_id": "12"},
                "ec2": {"availability_zone": "eu-west-1a", "local_ipv4": "10.1.2.3"},
                "secret_fact": "never shown",
            }),
        );
        let b = node("b", NodeState::Unreachable, json!({"ipaddress": "bogus"}));
        let nodes = HashMap::from([("a", &a), ("b", &b)]);
        let roles = ["cache".to_string(), "web".to_string()];
        let view = lists(roles.iter(), &[row("a", 0), row("b", 1)], &nodes);
        let cache = &view["prod"]["cache"];
        assert_eq!(cache[0]["address"], "10.1.2.3", "EC2's address first");
        assert_eq!(cache[0]["zone"], "eu-west-1a");
        assert_eq!(cache[0]["facts"]["hostname"], Value::Null);
        assert_eq!(cache[0]["facts"]["os"]["version_id"], "12");
        assert_eq!(cache[0]["reachable"], true);
        assert!(!cache[0].to_string().contains("never shown"));
        assert_eq!(cache[1]["address"], Value::Null);
        assert_eq!(cache[1]["reachable"], false);
        assert_eq!(cache[1]["ordinal"], 1);
        assert_eq!(view["prod"]["web"], json!([]), "every known role is listed");
    }
}

#[cfg(test)]
mod shared_tests {
    use super::*;

    #[test]
    fn a_shared_list_carries_its_text_and_digest() {
        let list = Shared::new(json!([{"name": "a"}]));
        assert_eq!(list.json, r#"[{"name":"a"}]"#);
        assert_eq!(list.digest, crate::blobs::sha256_hex(list.json.as_bytes()));
        let view = EnvView::new(
            json!({"web": [{"name": "a"}], "db": []})
                .as_object()
                .unwrap()
                .clone(),
        );
        assert_eq!(view.nodes.value(), json!([{"name": "a", "roles": ["web"]}]));
        assert_eq!(view.roles["db"].digest, no_members().digest);
        let none = empty(["web".to_string()].iter());
        assert_eq!(none.roles["web"].json, "[]");
        assert_eq!(
            none.nodes.digest, view.roles["db"].digest,
            "as built from lists"
        );
    }
}
