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
        p.cluster
            .iter()
            .map(|(role, list)| (role.clone(), list.value.clone()))
            .collect(),
    )
}

#[test]
fn pins_precedence_and_secrets_of_the_nodes_roles_only() {
    let f = Fixture::new();
    let p = f.resolve().unwrap();
    assert_eq!(p.cookbooks.len(), 1);
    assert_eq!(
        p.cookbooks[0].version,
        Version::new(1, 0, 0),
        "the pin wins over the newest"
    );
    assert_eq!(
        p.attributes.get("memcached.memory_mb"),
        Some(&json!(256)),
        "the role beats the environment"
    );
    assert_eq!(p.attributes.get("memcached.port"), Some(&json!(11211)));
    assert_eq!(p.secrets.keys().collect::<Vec<_>>(), ["cache_key"]);
    assert!(p.unpinned.is_empty());
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
    assert_eq!(p.attributes.get("apache.port"), Some(&json!(9000)));
    // apache_php's defaults override its dependency memcached's.
    assert_eq!(p.attributes.get("memcached.port"), Some(&json!(1)));
    let versions: Vec<_> = p
        .cookbooks
        .iter()
        .map(|c| format!("{}@{}", c.name, c.version))
        .collect();
    assert_eq!(versions, ["apache_php@2.0.0", "memcached@1.1.0"]);
    assert_eq!(p.unpinned, ["apache_php", "memcached"]);
    assert_eq!(
        p.run_list
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
    assert!(without.checks.is_empty());
    let doc = "name: memcached\nrun_list: [memcached]\nattributes: {memcached: {memory_mb: 256}}\n";
    f.roles.insert(
        "memcached".into(),
        role(&format!("{doc}checks:\n  - tcp: {{port: 11211}}\n")),
    );
    let with = f.resolve().unwrap();
    assert_eq!(with.checks["memcached"][0].name, "tcp address:11211");
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
        reads.cluster.keys().collect::<Vec<_>>(),
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
    assert_eq!(all.cluster.keys().collect::<Vec<_>>(), ["memcached", "web"]);
    // ...and every member once, with its roles.
    assert_eq!(
        all.cluster_nodes.value,
        json!([{"name": "w1", "roles": ["web"]}, {"name": "w2", "roles": ["web"]}])
    );
    assert_eq!(reads.cluster_nodes.value, json!([]), "only for `all`");
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
