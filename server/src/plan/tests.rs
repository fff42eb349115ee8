use std::path::Path;

use serde_json::json;

use super::*;

fn entry(version: &str, depends: &[(&str, &str)], attrs: Value) -> CatalogEntry {
    CatalogEntry {
        version: Version::parse(version).unwrap(),
        description: String::new(),
        depends: depends
            .iter()
            .map(|(n, r)| (n.to_string(), VersionReq::parse(r).unwrap()))
            .collect(),
        manifest: Manifest::default(),
        attributes: attrs.as_object().cloned().unwrap_or_default(),
        min_agent: None,
        cluster: Default::default(),
    }
}

fn catalog() -> Catalog {
    let mut c = Catalog::default();
    c.cookbooks.insert(
        "memcached".into(),
        vec![
            entry(
                "1.0.0",
                &[],
                json!({"memcached": {"port": 11211, "memory_mb": 64}}),
            ),
            entry(
                "1.1.0",
                &[],
                json!({"memcached": {"port": 11211, "memory_mb": 128}}),
            ),
        ],
    );
    c.cookbooks.insert(
        "apache_php".into(),
        vec![entry(
            "2.0.0",
            &[("memcached", ">= 1.0")],
            json!({"memcached": {"port": 1}, "apache": {"port": 80}}),
        )],
    );
    c
}

fn role(yaml: &str) -> Role {
    Role::parse(Path::new("role.yaml"), yaml).unwrap()
}

fn env(yaml: &str) -> Environment {
    Environment::parse(Path::new("env.yaml"), yaml).unwrap()
}

struct Fixture {
    node: NodeView,
    environment: Environment,
    roles: BTreeMap<String, Role>,
    catalog: Catalog,
    secrets: Vec<SecretGrant>,
    cluster: Map<String, Value>,
}

impl Fixture {
    fn new() -> Fixture {
        let roles = [
            role(
                "name: memcached\nrun_list: [memcached]\nattributes: {memcached: {memory_mb: 256}}\n",
            ),
            role(
                "name: web\nrun_list: ['apache_php', memcached]\nattributes: {apache: {port: 8080}}\n",
            ),
        ];
        Fixture {
            node: NodeView {
                name: "n1".into(),
                environment: "production".into(),
                roles: vec!["memcached".into()],
                attributes: Map::new(),
                agent_version: None,
                member: Default::default(),
            },
            environment: env(
                "name: production\ncookbooks: {memcached: 1.0.0}\nattributes: {memcached: {memory_mb: 100}}\n",
            ),
            roles: roles.into_iter().map(|r| (r.name.clone(), r)).collect(),
            catalog: catalog(),
            secrets: vec![
                SecretGrant {
                    name: "cache_key".into(),
                    value: SecretString::new("k-123456"),
                    roles: vec!["memcached".into()],
                },
                SecretGrant {
                    name: "db".into(),
                    value: SecretString::new("d-123456"),
                    roles: vec!["web".into()],
                },
            ],
            cluster: [
                ("memcached".to_string(), json!([])),
                ("web".to_string(), json!([])),
            ]
            .into_iter()
            .collect(),
        }
    }

    fn resolve(&self) -> Result<Plan, PlanError> {
        resolve(&PlanInputs {
            node: &self.node,
            environment: &self.environment,
            roles: &self.roles,
            catalog: &self.catalog,
            secrets: &self.secrets,
            cluster: &crate::cluster_view::EnvView::new(self.cluster.clone()),
        })
    }
}

/// A plan's `cluster.<role>` as plain values.
fn lists(p: &Plan) -> Value {
    Value::Object(
        p.body
            .cluster
            .iter()
            .map(|(role, list)| (role.clone(), list.value()))
            .collect(),
    )
}

#[test]
fn pins_precedence_and_secrets_of_the_nodes_roles_only() {
    let f = Fixture::new();
    let p = f.resolve().unwrap();
    assert_eq!(p.body.cookbooks.len(), 1);
    assert_eq!(
        p.body.cookbooks[0].version,
        Version::new(1, 0, 0),
        "the pin wins over the newest"
    );
    assert_eq!(
        p.body.attributes.get("memcached.memory_mb"),
        Some(&json!(256)),
        "the role beats the environment"
    );
    assert_eq!(p.body.attributes.get("memcached.port"), Some(&json!(11211)));
    assert_eq!(p.body.secrets.keys().collect::<Vec<_>>(), ["cache_key"]);
    assert!(p.body.unpinned.is_empty());
}

#[test]
fn node_attributes_win_and_cookbook_defaults_layer_dependencies_first() {
    let mut f = Fixture::new();
    f.node.roles = vec!["web".into()];
    f.node.attributes = json!({"apache": {"port": 9000}})
        .as_object()
        .cloned()
        .unwrap();
    f.environment = env("name: production\n");
    let p = f.resolve().unwrap();
    assert_eq!(p.body.attributes.get("apache.port"), Some(&json!(9000)));
    // apache_php's defaults override its dependency memcached's.
    assert_eq!(p.body.attributes.get("memcached.port"), Some(&json!(1)));
    let versions: Vec<_> = p
        .body
        .cookbooks
        .iter()
        .map(|c| format!("{}@{}", c.name, c.version))
        .collect();
    assert_eq!(versions, ["apache_php@2.0.0", "memcached@1.1.0"]);
    assert_eq!(p.body.unpinned, ["apache_php", "memcached"]);
    assert_eq!(
        p.body
            .run_list
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["apache_php::default", "memcached::default"]
    );
}

#[test]
fn hash_changes_with_any_input_and_only_then() {
    let mut f = Fixture::new();
    let a = f.resolve().unwrap().hash;
    assert_eq!(f.resolve().unwrap().hash, a, "deterministic");
    f.roles.insert(
        "memcached".into(),
        role("name: memcached\nrun_list: [memcached]\nattributes: {memcached: {memory_mb: 512}}\n"),
    );
    let b = f.resolve().unwrap().hash;
    assert_ne!(a, b, "a role attribute");
    f.secrets[0].value = SecretString::new("k-rotated");
    assert_ne!(f.resolve().unwrap().hash, b, "a secret");
}

#[test]
fn a_roles_checks_travel_in_the_plan_and_its_hash() {
    let mut f = Fixture::new();
    let without = f.resolve().unwrap();
    assert!(without.body.checks.is_empty());
    let doc = "name: memcached\nrun_list: [memcached]\nattributes: {memcached: {memory_mb: 256}}\n";
    f.roles.insert(
        "memcached".into(),
        role(&format!("{doc}checks:\n  - tcp: {{port: 11211}}\n")),
    );
    let with = f.resolve().unwrap();
    assert_eq!(with.body.checks["memcached"][0].name, "tcp address:11211");
    assert_ne!(with.hash, without.hash, "checks are part of the plan");
    f.roles
        .insert("memcached".into(), role(&format!("{doc}checks: []\n")));
    assert_eq!(
        f.resolve().unwrap().hash,
        without.hash,
        "no checks: the hash plans had before checks existed"
    );
}

#[test]
fn missing_role_and_unsatisfiable_pins_are_explained() {
    let mut f = Fixture::new();
    f.node.roles = vec!["nagios".into()];
    assert_eq!(
        f.resolve().unwrap_err().to_string(),
        "node n1 has role nagios, which does not exist (cmctl role set)"
    );
    f.node.roles = vec!["memcached".into()];
    f.environment = env("name: production\ncookbooks: {memcached: 3.0.0}\n");
    let e = f.resolve().unwrap_err().to_string();
    assert!(e.contains("memcached") && e.contains("production"), "{e}");
}

#[test]
fn a_plan_needing_a_newer_agent_than_the_node_runs_is_a_plan_error() {
    let mut f = Fixture::new();
    f.node.roles = vec!["web".into()];
    f.environment = env("name: production\n");
    let needs = |c: &mut Catalog, name: &str, v: &str| {
        for e in c.cookbooks.get_mut(name).unwrap() {
            e.min_agent = Some(Version::parse(v).unwrap());
        }
    };
    needs(&mut f.catalog, "memcached", "0.2.0");
    // An agent that has not said its version is not refused here.
    assert!(f.resolve().is_ok());
    f.node.agent_version = Some(Version::new(0, 2, 0));
    assert!(f.resolve().is_ok());
    f.node.agent_version = Some(Version::new(0, 1, 4));
    let e = f.resolve().unwrap_err();
    assert_eq!(
        e.reason(),
        "cookbook memcached@1.1.0 needs cm-agent >= 0.2.0, and the node runs cm-agent 0.1.4: upgrade its agent"
    );
    assert!(
        e.to_string()
            .starts_with("node n1: cookbook memcached@1.1.0"),
        "{e}"
    );
    // The cookbook that needs the newest agent is named.
    needs(&mut f.catalog, "apache_php", "0.3.0");
    assert!(
        f.resolve()
            .unwrap_err()
            .reason()
            .contains("apache_php@2.0.0 needs cm-agent >= 0.3.0")
    );
    // Versions pushed before servers recorded it need nothing.
    for versions in f.catalog.cookbooks.values_mut() {
        versions.iter_mut().for_each(|e| e.min_agent = None);
    }
    assert!(f.resolve().is_ok());
}

#[test]
fn a_plan_carries_only_the_roles_its_cookbooks_declare() {
    use cm_model::metadata::ClusterRoles;
    let mut f = Fixture::new();
    f.cluster
        .insert("web".into(), json!([{"name": "w1", "ordinal": 0}]));
    // memcached declares nothing: its plan lists no members, and a web
    // node joining moves nothing.
    let quiet = f.resolve().unwrap();
    assert_eq!(lists(&quiet), json!({"memcached": [], "web": []}));
    f.cluster
        .insert("web".into(), json!([{"name": "w1"}, {"name": "w2"}]));
    assert_eq!(f.resolve().unwrap().hash, quiet.hash);

    // Declaring web: the plan lists its members, and follows them; a
    // declared role with no role document yet is an empty list.
    for e in f.catalog.cookbooks.get_mut("memcached").unwrap() {
        e.cluster = ClusterRoles::Roles(vec!["web".into(), "later".into()]);
    }
    let reads = f.resolve().unwrap();
    assert_eq!(
        reads.body.cluster.keys().collect::<Vec<_>>(),
        ["later", "memcached", "web"]
    );
    assert_eq!(lists(&reads)["later"], json!([]));
    assert_eq!(lists(&reads)["web"][1]["name"], "w2");
    assert_ne!(reads.hash, quiet.hash);

    // `all`: every role of the view.
    for e in f.catalog.cookbooks.get_mut("memcached").unwrap() {
        e.cluster = ClusterRoles::All;
    }
    let all = f.resolve().unwrap();
    assert_eq!(
        all.body.cluster.keys().collect::<Vec<_>>(),
        ["memcached", "web"]
    );
    // ...and every member once, with its roles.
    assert_eq!(
        all.body.cluster_nodes.value(),
        json!([{"name": "w1", "roles": ["web"]}, {"name": "w2", "roles": ["web"]}])
    );
    assert_eq!(
        reads.body.cluster_nodes.value(),
        json!([]),
        "only for `all`"
    );
}

#[test]
fn a_plan_carries_the_nodes_own_ordinals_whatever_the_others_do() {
    let mut f = Fixture::new();
    f.node.member = json!({"memcached": {"ordinal": 3}})
        .as_object()
        .unwrap()
        .clone();
    let plan = f.resolve().unwrap();
    assert_eq!(plan.member["memcached"]["ordinal"], 3);
    // Others joining a role this plan does not read moves nothing.
    f.cluster
        .insert("memcached".into(), json!([{"name": "m9", "ordinal": 9}]));
    assert_eq!(f.resolve().unwrap().hash, plan.hash);
    f.node.member["memcached"]["ordinal"] = json!(0);
    assert_ne!(
        f.resolve().unwrap().hash,
        plan.hash,
        "its own ordinal is in the hash"
    );
}

/// The plan hash as it was defined before bodies were shared: one JSON
/// object of the whole plan. Agents compare hashes across server upgrades,
/// so the body's pre-hashed parts must give the same digest.
fn whole_plan_hash(p: &Plan) -> String {
    #[derive(Serialize)]
    struct Hashed<'a> {
        environment: &'a str,
        roles: &'a [String],
        run_list: Vec<String>,
        cookbooks: &'a [PlannedCookbook],
        attributes: &'a Map<String, Value>,
        cluster: BTreeMap<&'a str, &'a str>,
        member: &'a Map<String, Value>,
        cluster_nodes: &'a str,
        secrets: BTreeMap<&'a str, &'a str>,
        splay_seconds: u32,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        checks: &'a BTreeMap<String, Vec<Check>>,
    }
    let b = &p.body;
    let json = serde_json::to_vec(&Hashed {
        environment: &b.environment,
        roles: &b.roles,
        run_list: b.run_list.iter().map(ToString::to_string).collect(),
        cookbooks: &b.cookbooks,
        attributes: &b.attributes.merged,
        cluster: b
            .cluster
            .iter()
            .map(|(role, list)| (role.as_str(), list.digest.as_str()))
            .collect(),
        member: &p.member,
        cluster_nodes: &b.cluster_nodes.digest,
        secrets: b
            .secrets
            .iter()
            .map(|(k, v)| (k.as_str(), v.expose()))
            .collect(),
        splay_seconds: b.splay_seconds,
        checks: &b.checks,
    })
    .unwrap();
    hex::encode(Sha256::digest(json))
}

#[test]
fn a_shared_body_hashes_as_the_whole_plan_did() {
    let mut f = Fixture::new();
    let plain = f.resolve().unwrap();
    assert_eq!(plain.hash, whole_plan_hash(&plain), "no member, no checks");
    f.node.member = json!({"memcached": {"ordinal": 7}, "web": {"ordinal": 0, "replaces": "w0"}})
        .as_object()
        .cloned()
        .unwrap();
    f.roles.insert(
        "memcached".into(),
        role("name: memcached\nrun_list: [memcached]\nchecks:\n  - tcp: {port: 11211}\n"),
    );
    f.cluster
        .insert("memcached".into(), json!([{"name": "m1", "ordinal": 0}]));
    for e in f.catalog.cookbooks.get_mut("memcached").unwrap() {
        e.cluster = ClusterRoles::All;
    }
    let full = f.resolve().unwrap();
    assert!(!full.body.checks.is_empty() && !full.body.secrets.is_empty());
    assert_eq!(full.hash, whole_plan_hash(&full), "member, checks, cluster");
    assert_ne!(full.hash, plain.hash);
}

#[test]
fn nodes_of_one_group_share_a_body_and_differ_by_their_place() {
    let mut f = Fixture::new();
    let body = Arc::new(
        resolve_body(&PlanInputs {
            node: &f.node,
            environment: &f.environment,
            roles: &f.roles,
            catalog: &f.catalog,
            secrets: &f.secrets,
            cluster: &crate::cluster_view::EnvView::new(f.cluster.clone()),
        })
        .unwrap(),
    );
    let place = |n: i64| {
        json!({"memcached": {"ordinal": n}})
            .as_object()
            .cloned()
            .unwrap()
    };
    let (one, two) = (
        Plan::for_node(body.clone(), place(1)),
        Plan::for_node(body.clone(), place(2)),
    );
    assert!(Arc::ptr_eq(&one.body, &two.body));
    assert_ne!(one.hash, two.hash);
    // The same as resolving each node on its own.
    f.node.member = place(2);
    assert_eq!(f.resolve().unwrap().hash, two.hash);
    // No node layer for a node without attributes of its own; one with
    // some is a group of its own.
    assert!(
        body.attributes
            .layers
            .iter()
            .all(|l| !matches!(l.source, Source::Node(_)))
    );
    f.node.attributes = place(5);
    assert_ne!(
        GroupKey::of(&f.node),
        GroupKey::of(&NodeView {
            attributes: Map::new(),
            ..f.node.clone()
        })
    );
    let own = f.resolve().unwrap();
    assert_eq!(
        own.body.attributes.explain("memcached.ordinal")[0].source,
        Source::Node("n1".into())
    );
}

#[test]
fn a_groups_error_names_each_node() {
    let mut f = Fixture::new();
    f.node.roles.push("ghost".into());
    let e = f.resolve().unwrap_err().for_node("other-node");
    assert_eq!(
        e.to_string(),
        "node other-node has role ghost, which does not exist (cmctl role set)"
    );
}
