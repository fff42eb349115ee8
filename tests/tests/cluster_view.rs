//! The cluster view end to end: real agents on loopback read their role's
//! members through their plans, and a node joining, leaving or moving to
//! another environment rewrites the file that lists them on every member.

use cm_e2e::agent::{TestAgent, cmctl, cmctl_refused, read, set_environment, set_role};
use cm_e2e::{TestServer, enroll, full_plan};
use cm_proto::v1::agent_client::AgentClient;
use cm_proto::v1::nodes_client::NodesClient;
use cm_proto::v1::tokens_client::TokensClient;
use cm_proto::v1::{CreateTokenRequest, FactsRequest, SetAttributeRequest};
use serde_json::json;

/// A cookbook declaring the `ring` role and listing its members.
fn members_cookbook(dir: &std::path::Path) -> std::path::PathBuf {
    let root = dir.join("members");
    let files = [
        (
            "metadata.yaml",
            "name: members\nversion: 1.0.0\ncluster: [ring]\n",
        ),
        ("attributes.yaml", "members:\n  dir: /nonexistent\n"),
        (
            "recipes/default.yaml",
            "- directory: \"{{attrs.members.dir}}\"\n\
             - template: \"{{attrs.members.dir}}/members\"\n  source: members.hbs\n",
        ),
        (
            "templates/members.hbs",
            "me {{member.ring.ordinal}}{{#if member.ring.replaces}} replaces {{member.ring.replaces.name}} {{member.ring.replaces.address}}{{/if}}\n{{#each cluster.ring}}{{ordinal}} {{name}} {{reachable}}\n{{/each}}",
        ),
    ];
    for (rel, text) in files {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    root
}

/// An agent in the `ring` role, writing under its own directory (a role
/// of its own sets it).
async fn ring_agent(server: &TestServer, name: &str) -> TestAgent {
    let out_role = format!("out-{name}");
    let token = server.token(&out_role, 1).await;
    let agent = TestAgent::new(server, name, &token);
    set_role(
        server,
        &format!(
            "name: {out_role}\nattributes:\n  members:\n    dir: {}\n",
            agent.out().display()
        ),
    )
    .await;
    // The token names both roles: ring first, then the node's own.
    let token = TokensClient::new(server.admin().await)
        .create(CreateTokenRequest {
            roles: vec!["ring".into(), out_role],
            environment: "production".into(),
            ttl_seconds: 600,
            uses: 1,
        })
        .await
        .unwrap()
        .into_inner()
        .token;
    let settings = std::fs::read_to_string(agent.config()).unwrap();
    let settings = settings
        .lines()
        .map(|l| match l.starts_with("token:") {
            true => format!("token: {token}"),
            false => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(agent.config(), settings + "\n").unwrap();
    agent
}

/// Converge and return the members file without its first line, which
/// must name the node's own ordinal.
async fn converge(agent: &TestAgent) -> String {
    let run = agent.run_once().await;
    assert!(run.status.success(), "{}\n{}", run.json, run.stderr);
    let text = read(agent.out().join("members"));
    let (me, members) = text.split_once('\n').unwrap();
    let ordinal = me.strip_prefix("me ").unwrap().split(' ').next().unwrap();
    assert!(
        members.contains(&format!("{ordinal} {} true\n", agent.name)),
        "{text}"
    );
    members.to_string()
}

/// A server with the members cookbook, the `ring` role and production.
async fn ring_server() -> (TestServer, tempfile::TempDir) {
    let server = TestServer::start().await;
    let books = tempfile::tempdir().unwrap();
    let cookbook = members_cookbook(books.path());
    cmctl(&server, &["push", "cookbook", cookbook.to_str().unwrap()]).await;
    set_environment(
        &server,
        books.path(),
        "name: production\nsplay_seconds: 0\n",
    )
    .await;
    set_role(&server, "name: ring\nrun_list: [members]\n").await;
    (server, books)
}

#[tokio::test(flavor = "multi_thread")]
async fn members_joining_and_leaving_rewrite_the_list_on_every_member() {
    let (server, _books) = ring_server().await;

    let a = ring_agent(&server, "node-a").await;
    let b = ring_agent(&server, "node-b").await;
    assert_eq!(converge(&a).await, "0 node-a true\n");
    assert_eq!(converge(&b).await, "0 node-a true\n1 node-b true\n");
    assert_eq!(converge(&a).await, "0 node-a true\n1 node-b true\n");

    // A third node joins: both see it on their next run.
    let c = ring_agent(&server, "node-c").await;
    let three = "0 node-a true\n1 node-b true\n2 node-c true\n";
    assert_eq!(converge(&c).await, three);
    assert_eq!(converge(&a).await, three);
    assert_eq!(converge(&b).await, three);

    // node-b's address as the view shows it, for its replacement below.
    let shown = cmctl(
        &server,
        &["--format", "json", "cluster", "show", "--role", "ring"],
    )
    .await;
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    let b_address = shown
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["node"] == "node-b")
        .and_then(|m| m["address"].as_str())
        .expect("node-b has an address in the view")
        .to_string();

    // One is retired: it leaves the list, and the others keep their ordinals.
    cmctl(&server, &["node", "retire", "node-b"]).await;
    assert_eq!(converge(&a).await, "0 node-a true\n2 node-c true\n");
    assert_eq!(converge(&c).await, "0 node-a true\n2 node-c true\n");

    // Its replacement takes its ordinal and is told whom it replaces, with
    // that node's address (Cassandra's replace_address_first_boot).
    let d = ring_agent(&server, "node-d").await;
    let four = "0 node-a true\n1 node-d true\n2 node-c true\n";
    assert_eq!(converge(&d).await, four);
    let me = read(d.out().join("members"));
    assert_eq!(
        me.lines().next().unwrap(),
        format!("me 1 replaces node-b {b_address}")
    );
    assert_eq!(converge(&a).await, four);
    assert!(read(a.out().join("members")).starts_with("me 0\n"));
    cmctl(&server, &["node", "retire", "node-d"]).await;

    // Admins see the same view.
    let shown = cmctl(
        &server,
        &["--format", "json", "cluster", "show", "--role", "ring"],
    )
    .await;
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    let listed: Vec<(&str, i64, &str)> = shown
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["node"].as_str().unwrap(),
                m["ordinal"].as_i64().unwrap(),
                m["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(listed, [("node-a", 0, "active"), ("node-c", 2, "active")]);
    let table = cmctl(&server, &["cluster", "show", "--env", "production"]).await;
    assert!(table.starts_with("ENVIRONMENT"), "{table}");
    assert_eq!(
        table.lines().filter(|l| l.contains(" ring ")).count(),
        2,
        "{table}"
    );
    let node = cmctl(&server, &["--format", "json", "node", "show", "node-c"]).await;
    let node: serde_json::Value = serde_json::from_str(&node).unwrap();
    let ordinals: Vec<(&str, i64)> = node["memberships"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["role"].as_str().unwrap(), m["ordinal"].as_i64().unwrap()))
        .collect();
    assert_eq!(ordinals, [("out-node-c", 0), ("ring", 2)], "{node}");
    let retired = cmctl(&server, &["--format", "json", "node", "show", "node-b"]).await;
    let retired: serde_json::Value = serde_json::from_str(&retired).unwrap();
    assert_eq!(retired["memberships"], serde_json::json!([]), "{retired}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_moved_to_another_environment_joins_the_members_there() {
    let (server, books) = ring_server().await;
    let a = ring_agent(&server, "node-a").await;
    let b = ring_agent(&server, "node-b").await;
    converge(&a).await;
    assert_eq!(converge(&b).await, "0 node-a true\n1 node-b true\n");
    set_environment(&server, books.path(), "name: staging\nsplay_seconds: 0\n").await;

    let moved = cmctl(
        &server,
        &["--format", "json", "node", "move", "node-b", "staging"],
    )
    .await;
    let moved: serde_json::Value = serde_json::from_str(&moved).unwrap();
    assert_eq!(moved["environment"], "staging", "{moved}");
    // The reply shows what the move made: the new ordinals and plan.
    let ring: Vec<_> = moved["memberships"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "ring")
        .map(|m| (m["environment"].clone(), m["ordinal"].clone()))
        .collect();
    assert_eq!(ring, [(json!("staging"), json!(0))], "{moved}");
    server.running.state.recompute.settled().await;
    let shown = cmctl(&server, &["--format", "json", "node", "show", "node-b"]).await;
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(moved["plan_hash"], shown["plan_hash"], "the new plan");
    // Ordinals are per environment: node-b is the first of staging's ring.
    assert_eq!(converge(&b).await, "0 node-b true\n");
    assert_eq!(converge(&a).await, "0 node-a true\n");

    // What is in use is not deleted, and the refusal says who uses it.
    let refused = cmctl_refused(&server, &["env", "delete", "staging"]).await;
    assert!(
        refused.contains("environment staging is still in use"),
        "{refused}"
    );
    assert!(refused.contains("1 node: node-b"), "{refused}");
    let refused = cmctl_refused(&server, &["role", "delete", "ring"]).await;
    assert!(refused.contains("2 nodes: node-a, node-b"), "{refused}");

    // Back in production it takes the lowest free ordinal there.
    cmctl(&server, &["node", "move", "node-b", "production"]).await;
    assert_eq!(converge(&b).await, "0 node-a true\n1 node-b true\n");
    let deleted = cmctl(&server, &["env", "delete", "staging"]).await;
    assert_eq!(deleted, "environment staging deleted\n");
    let gone = cmctl_refused(&server, &["env", "show", "staging"]).await;
    assert!(
        gone.contains("environment staging does not exist"),
        "{gone}"
    );
    let refused = cmctl_refused(&server, &["node", "move", "node-a", "staging"]).await;
    assert!(
        refused.contains("environment staging does not exist"),
        "{refused}"
    );
}

/// The addresses of `cluster.ring` in a node's plan, by ordinal.
async fn ring_addresses(agent: &mut AgentClient<tonic::transport::Channel>) -> Vec<String> {
    let plan = full_plan(agent).await;
    let cluster: serde_json::Value = serde_json::from_str(&plan.cluster_json).unwrap();
    cluster["ring"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| format!("{} {}", m["name"].as_str().unwrap(), m["address"]))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_view_is_read_again_when_the_fleet_or_its_roles_change_not_on_every_change() {
    let (server, _books) = ring_server().await;
    let state = server.running.state.clone();
    let token = server.token("ring", 2).await;
    let mut agents = Vec::new();
    for name in ["node-a", "node-b"] {
        let (cert, key) = enroll(&server, &token, name).await.unwrap();
        agents.push(AgentClient::new(server.channel(Some((&cert, &key))).await));
    }
    state.recompute.settled().await;
    let both = ["node-a \"10.1.2.3\"", "node-b \"10.1.2.3\""];
    assert_eq!(ring_addresses(&mut agents[0]).await, both);
    let reads = state.cluster_view_reads();

    // What the view does not read: a role's content, a node's attributes.
    set_role(
        &server,
        "name: ring\nrun_list: [members]\nattributes: {x: 1}\n",
    )
    .await;
    NodesClient::new(server.admin().await)
        .set_attribute(SetAttributeRequest {
            node: "node-a".into(),
            key: "members.dir".into(),
            value_json: "\"/tmp\"".into(),
        })
        .await
        .unwrap();
    state.recompute.settled().await;
    let attrs = full_plan(&mut agents[0]).await.attributes_json;
    assert!(
        attrs.contains(r#""x":1"#) && attrs.contains(r#""dir":"/tmp""#),
        "{attrs}"
    );
    assert_eq!(ring_addresses(&mut agents[1]).await, both);
    assert_eq!(
        state.cluster_view_reads(),
        reads,
        "kept across those changes"
    );

    // A new role is listed in every view (empty).
    set_role(&server, "name: spare\n").await;
    state.recompute.settled().await;
    let cluster = full_plan(&mut agents[0]).await.cluster_json;
    assert!(cluster.contains(r#""spare":[]"#), "{cluster}");
    let after_role = state.cluster_view_reads();
    assert!(after_role > reads, "read again for the new role");

    // A member's new address reaches its peers' plans.
    agents[1]
        .report_facts(FactsRequest {
            facts_json: r#"{"hostname":"b","ipaddress":"10.9.9.9"}"#.into(),
        })
        .await
        .unwrap();
    state.recompute.settled().await;
    assert_eq!(
        ring_addresses(&mut agents[0]).await,
        ["node-a \"10.1.2.3\"", "node-b \"10.9.9.9\""]
    );
    assert!(state.cluster_view_reads() > after_role, "read again");
}
