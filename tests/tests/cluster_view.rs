//! The cluster view end to end: real agents on loopback read their role's
//! members through their plans, and a node joining or leaving rewrites the
//! file that lists them on every member.

use cm_e2e::TestServer;
use cm_e2e::agent::{TestAgent, cmctl, read, set_environment, set_role};
use cm_proto::v1::CreateTokenRequest;
use cm_proto::v1::tokens_client::TokensClient;

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
            "{{#each cluster.ring}}{{ordinal}} {{name}} {{reachable}}\n{{/each}}",
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

async fn converge(agent: &TestAgent) -> String {
    let run = agent.run_once().await;
    assert!(run.status.success(), "{}\n{}", run.json, run.stderr);
    read(agent.out().join("members"))
}

#[tokio::test(flavor = "multi_thread")]
async fn members_joining_and_leaving_rewrite_the_list_on_every_member() {
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

    // One is retired: it leaves the list, and the others keep their ordinals.
    cmctl(&server, &["node", "retire", "node-b"]).await;
    assert_eq!(converge(&a).await, "0 node-a true\n2 node-c true\n");
    assert_eq!(converge(&c).await, "0 node-a true\n2 node-c true\n");
}
