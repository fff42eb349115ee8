//! Plan resolution: everything one node needs for a run, computed from the
//! node's environment and roles, the cookbook catalog and the secrets.
//! Pure: the caller loads the inputs and caches the result by node and
//! generation, so a herd of unchanged check-ins never re-solves anything.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

use cm_model::attributes::{Attributes, Layer, Source};
use cm_model::checks::Check;
use cm_model::manifest::Manifest;
use cm_model::metadata::ClusterRoles;
use cm_model::role::{Environment, Role};
use cm_model::runlist::RecipeRef;
use cm_model::secrets::SecretString;
use cm_model::solver::{self, Candidate, Constraint, Origin};
use semver::{Version, VersionReq};
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::cluster_view::{EnvView, Shared, no_members};

mod agent_version;
pub mod check;

/// One pushed cookbook version, as plans need it.
#[derive(Debug, Clone)]
pub struct CatalogEntry {
    pub version: Version,
    pub description: String,
    pub depends: BTreeMap<String, VersionReq>,
    pub manifest: Manifest,
    /// The cookbook's `attributes.yaml`.
    pub attributes: Map<String, Value>,
    /// The lowest cm-agent that compiles it, recorded at push; `None` for a
    /// version pushed before the server recorded it (any agent compiles it).
    pub min_agent: Option<Version>,
    /// The roles of the cluster view it reads (`cluster:` in its metadata).
    pub cluster: ClusterRoles,
}

/// Every pushed version of every cookbook.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub cookbooks: BTreeMap<String, Vec<CatalogEntry>>,
}

impl Catalog {
    pub fn entry(&self, name: &str, version: &Version) -> Option<&CatalogEntry> {
        self.cookbooks
            .get(name)?
            .iter()
            .find(|e| &e.version == version)
    }
}

/// The node as plan resolution sees it.
#[derive(Debug, Clone)]
pub struct NodeView {
    pub name: String,
    pub environment: String,
    pub roles: Vec<String>,
    /// Admin-set attributes (`cmctl node set`).
    pub attributes: Map<String, Value>,
    /// The cm-agent version the node last reported; `None` when unknown
    /// (plan checks, a node that has not asked for a plan yet).
    pub agent_version: Option<Version>,
    /// Its place in each role it is a member of (`member.<role>`:
    /// `{ordinal}`, and `replaces` when it took a departed node's ordinal).
    pub member: Map<String, Value>,
}

/// A secret and the roles whose nodes may read it.
#[derive(Debug, Clone)]
pub struct SecretGrant {
    pub name: String,
    pub value: SecretString,
    pub roles: Vec<String>,
}

/// What resolution reads.
pub struct PlanInputs<'a> {
    pub node: &'a NodeView,
    pub environment: &'a Environment,
    pub roles: &'a BTreeMap<String, Role>,
    pub catalog: &'a Catalog,
    pub secrets: &'a [SecretGrant],
    /// The node's environment's view: a list for every role the server
    /// knows; the plan keeps the roles its cookbooks declare.
    pub cluster: &'a EnvView,
}

/// A resolved cookbook version of a plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedCookbook {
    pub name: String,
    pub version: Version,
    pub manifest_digest: String,
}

/// Everything a node needs for a run: the part its group shares and its
/// own place in its roles.
#[derive(Debug, Clone)]
pub struct Plan {
    pub hash: String,
    /// Shared by every node of the same environment, roles and agent
    /// version without attributes of its own (see [`GroupKey`]).
    pub body: Arc<Body>,
    /// `member.<role>.ordinal`: the node's own place in each of its roles.
    pub member: Map<String, Value>,
}

/// What the nodes of one group share: at 10,000 nodes of one role, one
/// copy instead of 10,000.
#[derive(Debug)]
pub struct Body {
    pub environment: String,
    pub roles: Vec<String>,
    pub run_list: Vec<RecipeRef>,
    pub cookbooks: Vec<PlannedCookbook>,
    /// Without a node layer when the node sets no attribute of its own.
    pub attributes: Attributes,
    /// `cluster.<role>`: lists shared with every plan that reads the role.
    pub cluster: BTreeMap<String, Arc<Shared>>,
    /// `cluster_nodes`: every member of the environment once, with its
    /// roles, for plans whose cookbooks declare `cluster: all`; else empty.
    pub cluster_nodes: Arc<Shared>,
    pub secrets: BTreeMap<String, SecretString>,
    pub splay_seconds: u32,
    /// Cookbooks the environment does not pin.
    pub unpinned: Vec<String>,
    /// Role → its `checks:`, for the roles that have some.
    pub checks: BTreeMap<String, Vec<Check>>,
    /// The plan hash's input but `member`, hashed once for the group.
    hashing: HashParts,
    /// The merged attributes and `cluster` as JSON, written once for
    /// every GetPlan of the group.
    attributes_json: OnceLock<String>,
    cluster_json: OnceLock<String>,
}

impl Body {
    pub fn attributes_json(&self) -> &str {
        self.attributes_json
            .get_or_init(|| to_json(&self.attributes.merged))
    }

    /// `cluster.<role>` as one JSON object, from each list's text as the
    /// view wrote it once.
    pub fn cluster_json(&self) -> &str {
        self.cluster_json.get_or_init(|| {
            let mut out = String::from("{");
            for (i, (role, list)) in self.cluster.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(role.clone()).to_string());
                out.push(':');
                out.push_str(&list.json);
            }
            out.push('}');
            out
        })
    }
}

/// A map as JSON text, written from the map itself (no copy as a `Value`).
pub fn to_json(map: &Map<String, Value>) -> String {
    serde_json::to_string(map).expect("a map with string keys serializes")
}

/// The nodes whose plans share one [`Body`]: the same environment, roles
/// and agent version, and no attributes set on the node (a node that has
/// some is a group of its own: its name is in the key).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupKey {
    environment: String,
    roles: Vec<String>,
    agent_version: Option<Version>,
    own_attributes: Option<String>,
}

impl GroupKey {
    pub fn of(node: &NodeView) -> GroupKey {
        GroupKey {
            environment: node.environment.clone(),
            roles: node.roles.clone(),
            agent_version: node.agent_version.clone(),
            own_attributes: (!node.attributes.is_empty()).then(|| node.name.clone()),
        }
    }
}

impl Plan {
    /// The plan of a node of `body`'s group, with its own place.
    pub fn for_node(body: Arc<Body>, member: Map<String, Value>) -> Plan {
        Plan {
            hash: hash(&body, &member),
            body,
            member,
        }
    }
}

/// Why a node has no plan.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    #[error("node {node} has role {role}, which does not exist (cmctl role set)")]
    MissingRole { node: String, role: String },
    #[error("node {node}: {source}")]
    Versions {
        node: String,
        source: solver::SolveError,
    },
    #[error(
        "node {node}: cookbook {cookbook} needs cm-agent >= {needs}, and the node runs cm-agent {runs}: upgrade its agent"
    )]
    AgentTooOld {
        node: String,
        /// `name@version`.
        cookbook: String,
        /// The versions, as text: a `Version` each would make every
        /// resolution's error large.
        needs: String,
        runs: String,
    },
}

impl PlanError {
    /// The same error, said of `name` (a group's error, for each node).
    pub fn for_node(mut self, name: &str) -> PlanError {
        match &mut self {
            PlanError::MissingRole { node, .. }
            | PlanError::Versions { node, .. }
            | PlanError::AgentTooOld { node, .. } => *node = name.to_string(),
        }
        self
    }

    /// Why, without the node's name: the same for every node of its
    /// environment and roles.
    pub fn reason(&self) -> String {
        match self {
            PlanError::MissingRole { role, .. } => {
                format!("role {role} does not exist (cmctl role set)")
            }
            PlanError::Versions { source, .. } => source.to_string(),
            PlanError::AgentTooOld {
                cookbook,
                needs,
                runs,
                ..
            } => format!(
                "cookbook {cookbook} needs cm-agent >= {needs}, and the node runs cm-agent {runs}: upgrade its agent"
            ),
        }
    }
}

/// Resolve the plan of one node.
pub fn resolve(inputs: &PlanInputs) -> Result<Plan, PlanError> {
    let body = resolve_body(inputs)?;
    Ok(Plan::for_node(Arc::new(body), inputs.node.member.clone()))
}

/// Resolve what every node of `inputs.node`'s [`GroupKey`] shares: all of
/// its plan but its place in its roles.
pub fn resolve_body(inputs: &PlanInputs) -> Result<Body, PlanError> {
    let node = inputs.node;
    let mut roles = Vec::new();
    for name in &node.roles {
        let role = inputs
            .roles
            .get(name)
            .ok_or_else(|| PlanError::MissingRole {
                node: node.name.clone(),
                role: name.clone(),
            })?;
        roles.push(role);
    }
    // The run list: every role's, in role order, each recipe once.
    let mut run_list: Vec<RecipeRef> = Vec::new();
    let mut roots: Vec<(String, Origin)> = Vec::new();
    for role in &roles {
        for r in &role.run_list {
            if !run_list.contains(r) {
                run_list.push(r.clone());
            }
            if !roots.iter().any(|(c, _)| c == &r.cookbook) {
                roots.push((r.cookbook.clone(), Origin::RunList(Some(role.name.clone()))));
            }
        }
    }
    let mut constraints: Vec<Constraint> = inputs
        .environment
        .cookbooks
        .iter()
        .map(|(c, req)| Constraint {
            cookbook: c.clone(),
            req: req.clone(),
            origin: Origin::EnvironmentPin(inputs.environment.name.clone()),
        })
        .collect();
    for role in &roles {
        constraints.extend(role.cookbooks.iter().map(|(c, req)| Constraint {
            cookbook: c.clone(),
            req: req.clone(),
            origin: Origin::Role(role.name.clone()),
        }));
    }
    let available: BTreeMap<String, Vec<Candidate>> = inputs
        .catalog
        .cookbooks
        .iter()
        .map(|(name, versions)| {
            let candidates = versions
                .iter()
                .map(|e| Candidate {
                    version: e.version.clone(),
                    depends: e.depends.clone(),
                })
                .collect();
            (name.clone(), candidates)
        })
        .collect();
    let resolution = solver::resolve(&roots, &constraints, &available).map_err(|source| {
        PlanError::Versions {
            node: node.name.clone(),
            source,
        }
    })?;

    let chosen: BTreeMap<&str, &CatalogEntry> = resolution
        .versions
        .iter()
        .filter_map(|(n, v)| Some((n.as_str(), inputs.catalog.entry(n, v)?)))
        .collect();
    agent_version::check(&node.name, node.agent_version.as_ref(), &chosen)?;
    let attributes = Attributes::merge(layers(inputs, &roots, &chosen, &roles));
    let node_roles: BTreeSet<&str> = node.roles.iter().map(String::as_str).collect();
    let secrets = inputs
        .secrets
        .iter()
        .filter(|s| s.roles.iter().any(|r| node_roles.contains(r.as_str())))
        .map(|s| (s.name.clone(), s.value.clone()))
        .collect();
    let cookbooks: Vec<PlannedCookbook> = chosen
        .iter()
        .map(|(n, e)| PlannedCookbook {
            name: n.to_string(),
            version: e.version.clone(),
            manifest_digest: e.manifest.digest(),
        })
        .collect();
    let mut body = Body {
        environment: inputs.environment.name.clone(),
        roles: node.roles.clone(),
        run_list,
        cookbooks,
        attributes,
        cluster: cluster_of(inputs.cluster, &chosen),
        cluster_nodes: match chosen.values().any(|e| e.cluster == ClusterRoles::All) {
            true => inputs.cluster.nodes.clone(),
            false => no_members(),
        },
        secrets,
        splay_seconds: inputs.environment.splay_seconds,
        unpinned: resolution.unpinned,
        checks: roles
            .iter()
            .filter(|r| !r.checks.is_empty())
            .map(|r| (r.name.clone(), r.checks.clone()))
            .collect(),
        hashing: HashParts::default(),
        attributes_json: OnceLock::new(),
        cluster_json: OnceLock::new(),
    };
    body.hashing = hash_parts(&body);
    Ok(body)
}

/// `cluster.<role>` of a plan: the members of the roles the chosen
/// cookbooks declare. Every other role the server knows is an empty list,
/// as it was before roles were declared: a version pushed before 0.3.0
/// (which could not declare any) reads what it read then, and a join never
/// changes it. A declared role with no role document yet is empty too.
fn cluster_of(
    view: &EnvView,
    chosen: &BTreeMap<&str, &CatalogEntry>,
) -> BTreeMap<String, Arc<Shared>> {
    let mut cluster: BTreeMap<String, Arc<Shared>> = view
        .roles
        .iter()
        .map(|(role, members)| {
            let members = match chosen.values().any(|e| e.cluster.reads(role)) {
                true => members.clone(),
                false => no_members(),
            };
            (role.clone(), members)
        })
        .collect();
    for e in chosen.values() {
        if let ClusterRoles::Roles(roles) = &e.cluster {
            for role in roles {
                cluster.entry(role.clone()).or_insert_with(no_members);
            }
        }
    }
    cluster
}

/// Cookbook defaults (dependencies first) < environment < roles (in order) < node.
fn layers(
    inputs: &PlanInputs,
    roots: &[(String, Origin)],
    chosen: &BTreeMap<&str, &CatalogEntry>,
    roles: &[&Role],
) -> Vec<Layer> {
    fn visit<'a>(
        name: &'a str,
        chosen: &BTreeMap<&str, &'a CatalogEntry>,
        out: &mut Vec<&'a str>,
        seen: &mut BTreeSet<&'a str>,
    ) {
        if !seen.insert(name) {
            return;
        }
        if let Some(e) = chosen.get(name) {
            for dep in e.depends.keys() {
                visit(dep, chosen, out, seen);
            }
        }
        out.push(name);
    }
    let (mut order, mut seen) = (Vec::new(), BTreeSet::new());
    for (root, _) in roots {
        visit(root, chosen, &mut order, &mut seen);
    }
    let mut out: Vec<Layer> = order
        .into_iter()
        .filter_map(|n| {
            chosen.get(n).map(|e| Layer {
                source: Source::Cookbook(n.to_string()),
                values: e.attributes.clone(),
            })
        })
        .collect();
    out.push(Layer {
        source: Source::Environment(inputs.environment.name.clone()),
        values: inputs.environment.attributes.clone(),
    });
    out.extend(roles.iter().map(|r| Layer {
        source: Source::Role(r.name.clone()),
        values: r.attributes.clone(),
    }));
    // Left out when empty, so that nodes without attributes of their own
    // share one body (an empty layer never shows in `explain`).
    if !inputs.node.attributes.is_empty() {
        out.push(Layer {
            source: Source::Node(inputs.node.name.clone()),
            values: inputs.node.attributes.clone(),
        });
    }
    out
}

/// The content hash agents compare: equal plans, equal hashes. It is the
/// SHA-256 of one JSON object (`environment`, `roles`, `run_list`,
/// `cookbooks`, `attributes`, `cluster`, `member`, `cluster_nodes`,
/// `secrets`, `splay_seconds`, `checks` when there are some), of which
/// only `member` is the node's own: the body hashes the rest once.
fn hash(body: &Body, member: &Map<String, Value>) -> String {
    let mut h = body.hashing.before.clone();
    let member = serde_json::to_vec(member).expect("a map with string keys serializes");
    h.update(&member);
    h.update(&body.hashing.after);
    hex::encode(h.finalize())
}

/// The hash's state after the JSON up to `"member":`, and the JSON after
/// the member map (from its comma to the closing brace).
#[derive(Default)]
struct HashParts {
    before: Sha256,
    /// Holds the secrets' values: never printed.
    after: Vec<u8>,
}

impl std::fmt::Debug for HashParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HashParts { .. }")
    }
}

fn hash_parts(body: &Body) -> HashParts {
    #[derive(Serialize)]
    struct Before<'a> {
        environment: &'a str,
        roles: &'a [String],
        run_list: Vec<String>,
        cookbooks: &'a [PlannedCookbook],
        attributes: &'a Map<String, Value>,
        /// Role → the digest of its list (the lists are hashed once each).
        cluster: BTreeMap<&'a str, &'a str>,
    }
    #[derive(Serialize)]
    struct After<'a> {
        cluster_nodes: &'a str,
        secrets: BTreeMap<&'a str, &'a str>,
        splay_seconds: u32,
        /// Left out when empty: plans without checks kept their hashes.
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        checks: &'a BTreeMap<String, Vec<Check>>,
    }
    const SERIALIZES: &str = "plan parts serialize: maps with string keys only";
    let mut before = serde_json::to_vec(&Before {
        environment: &body.environment,
        roles: &body.roles,
        run_list: body.run_list.iter().map(ToString::to_string).collect(),
        cookbooks: &body.cookbooks,
        attributes: &body.attributes.merged,
        cluster: body
            .cluster
            .iter()
            .map(|(role, list)| (role.as_str(), list.digest.as_str()))
            .collect(),
    })
    .expect(SERIALIZES);
    // `{...}` becomes `{...,"member":`.
    before.pop();
    before.extend_from_slice(br#","member":"#);
    let mut after = serde_json::to_vec(&After {
        cluster_nodes: &body.cluster_nodes.digest,
        secrets: body
            .secrets
            .iter()
            .map(|(k, v)| (k.as_str(), v.expose()))
            .collect(),
        splay_seconds: body.splay_seconds,
        checks: &body.checks,
    })
    .expect(SERIALIZES);
    // `{...}` becomes `,...}`.
    after[0] = b',';
    HashParts {
        before: Sha256::new_with_prefix(&before),
        after,
    }
}

#[cfg(test)]
mod tests;
