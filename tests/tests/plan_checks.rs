//! Admin changes that would leave nodes without a plan, against a real
//! server with the real cmctl: refused naming the nodes and why, committed
//! and audited with --force, never blocked by nodes already in plan error;
//! the check costs one resolution per group of nodes, not per node; and a
//! token for a role or environment that does not exist is refused.

use assert_cmd::Command;
use cm_e2e::agent::{demo_cookbook, demo_role, node_listed};
use cm_e2e::{TestServer, enroll};
use cm_server::store::NodeEnrollment;
use predicates::prelude::*;

fn cmctl(s: &TestServer) -> Command {
    Command::from_std(cm_e2e::agent::cmctl_command(s))
}

/// Run blocking cmctl calls next to the async server.
async fn run(s: &TestServer, args: &[&str]) -> assert_cmd::assert::Assert {
    let mut c = cmctl(s);
    c.args(args);
    tokio::task::spawn_blocking(move || c.assert())
        .await
        .expect("cmctl ran")
}

/// `cmctl role set` / `env set` of `yaml`, with extra arguments.
async fn set(s: &TestServer, kind: &str, yaml: &str, extra: &[&str]) -> assert_cmd::assert::Assert {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), yaml).unwrap();
    let mut args = vec![kind, "set", file.path().to_str().unwrap()];
    args.extend_from_slice(extra);
    run(s, &args).await
}

fn json(assert: &assert_cmd::assert::Assert) -> serde_json::Value {
    serde_json::from_slice(&assert.get_output().stdout).unwrap()
}

fn role_web(constraint: Option<&str>, message: &str) -> String {
    let mut yaml = demo_role("web", std::path::Path::new("/nonexistent"), message);
    if let Some(c) = constraint {
        yaml.push_str(&format!("cookbooks:\n  demo: \"{c}\"\n"));
    }
    yaml
}

/// A server with the demo cookbook 1.0.0, an unpinned production
/// environment, the role `web` running it, and node web-1 enrolled in it.
async fn fleet() -> (TestServer, tempfile::TempDir) {
    let s = TestServer::start().await;
    let books = tempfile::tempdir().unwrap();
    let demo = demo_cookbook(books.path(), "1.0.0");
    run(&s, &["push", "cookbook", demo.to_str().unwrap()])
        .await
        .success();
    set(&s, "env", "name: production\n", &[]).await.success();
    set(&s, "role", &role_web(None, "hello"), &[])
        .await
        .success();
    let token = s.token("web", 1).await;
    enroll(&s, &token, "web-1").await.unwrap();
    (s, books)
}

async fn audit(s: &TestServer) -> Vec<serde_json::Value> {
    let events = json(&run(s, &["--format", "json", "audit"]).await.success());
    events.as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_role_set_that_breaks_a_nodes_pin_is_refused_naming_it_and_forced_with_an_audit() {
    let (s, _books) = fleet().await;
    let breaking = role_web(Some(">= 2.0"), "hello");
    set(&s, "role", &breaking, &[]).await.code(1).stderr(
        predicate::str::contains("refused role.set web: 1 node would have no valid plan")
            .and(predicate::str::contains(
                "web-1 (environment production, roles web)",
            ))
            .and(predicate::str::contains(">= 2.0"))
            .and(predicate::str::contains("--force")),
    );
    let shown = json(
        &run(&s, &["--format", "json", "role", "show", "web"])
            .await
            .success(),
    );
    assert_eq!(
        shown["revision"], 1,
        "the refused change stored nothing: {shown}"
    );
    assert!(node_listed(&s, "web-1").await["plan_error"].is_null());

    set(&s, "role", &breaking, &["--force"]).await.success();
    let shown = json(
        &run(&s, &["--format", "json", "role", "show", "web"])
            .await
            .success(),
    );
    assert_eq!(shown["revision"], 2);
    let events = audit(&s).await;
    let forced = events
        .iter()
        .find(|e| e["what"] == "plan.force role.set web")
        .unwrap_or_else(|| panic!("no plan.force event: {events:?}"));
    let after: serde_json::Value = serde_json::from_str(forced["after"].as_str().unwrap()).unwrap();
    assert_eq!(after["forced"], true);
    assert_eq!(after["broken"][0]["nodes"], serde_json::json!(["web-1"]));
    assert_eq!(after["broken"][0]["count"], 1);
    // The server knows the node's plan error before its agent runs.
    let web1 = node_listed(&s, "web-1").await;
    let error = web1["plan_error"].as_str().unwrap_or_default();
    assert!(error.contains("demo") && error.contains(">= 2.0"), "{web1}");
    run(&s, &["node", "list"])
        .await
        .success()
        .stdout(predicate::str::contains("PLAN").and(predicate::str::contains("plan error: ")));
    run(&s, &["node", "show", "web-1"])
        .await
        .success()
        .stdout(predicate::str::contains("plan error: "));

    // Fixing the role clears it.
    set(&s, "role", &role_web(None, "hello"), &[])
        .await
        .success();
    assert!(node_listed(&s, "web-1").await["plan_error"].is_null());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_already_in_plan_error_does_not_block_unrelated_changes() {
    let (s, _books) = fleet().await;
    set(&s, "role", &role_web(Some(">= 2.0"), "hello"), &["--force"])
        .await
        .success();
    // Still broken after it, but not by it: accepted.
    set(&s, "role", &role_web(Some(">= 3.0"), "changed"), &[])
        .await
        .success();
    set(&s, "env", "name: production\nattributes: {x: 1}\n", &[])
        .await
        .success();
    let token = s.token("db", 1).await;
    enroll(&s, &token, "db-1").await.unwrap();
    run(&s, &["node", "assign", "db-1", "web"])
        .await
        .code(1)
        .stderr(predicate::str::contains(
            "db-1 (environment production, roles db,web)",
        ));
    assert!(node_listed(&s, "web-1").await["plan_error"].is_string());
    assert!(node_listed(&s, "db-1").await["plan_error"].is_null());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_environment_pin_that_no_version_meets_is_refused() {
    let (s, _books) = fleet().await;
    set(
        &s,
        "env",
        "name: production\ncookbooks: {demo: 9.9.9}\n",
        &[],
    )
    .await
    .code(1)
    .stderr(
        predicate::str::contains("refused environment.set production")
            .and(predicate::str::contains("web-1"))
            .and(predicate::str::contains("9.9.9")),
    );
    set(
        &s,
        "env",
        "name: production\ncookbooks: {demo: 1.0.0}\n",
        &[],
    )
    .await
    .success();
}

#[tokio::test(flavor = "multi_thread")]
async fn assigning_a_role_that_does_not_exist_is_refused_unless_forced() {
    let (s, _books) = fleet().await;
    run(&s, &["node", "assign", "web-1", "ghost"])
        .await
        .code(1)
        .stderr(
            predicate::str::contains("refused node.assign web-1 ghost")
                .and(predicate::str::contains("role ghost does not exist")),
        );
    let web1 = node_listed(&s, "web-1").await;
    assert_eq!(web1["roles"], serde_json::json!(["web"]));
    run(&s, &["node", "assign", "web-1", "ghost", "--force"])
        .await
        .success();
    assert!(
        audit(&s)
            .await
            .iter()
            .any(|e| e["what"] == "plan.force node.assign web-1 ghost")
    );
    let web1 = node_listed(&s, "web-1").await;
    assert!(
        web1["plan_error"]
            .as_str()
            .is_some_and(|e| e.contains("role ghost does not exist")),
        "{web1}"
    );
    // Taking the role away again resolves; it is not refused.
    run(&s, &["node", "unassign", "web-1", "ghost"])
        .await
        .success();
    assert!(node_listed(&s, "web-1").await["plan_error"].is_null());
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_the_only_version_an_unpinned_node_resolves_to_is_refused() {
    let (s, books) = fleet().await;
    run(&s, &["cookbook", "delete", "demo", "1.0.0"])
        .await
        .code(1)
        .stderr(
            predicate::str::contains("refused cookbook.delete demo 1.0.0")
                .and(predicate::str::contains("web-1")),
        );
    // With a newer version to move to, nobody breaks.
    let newer = demo_cookbook(books.path(), "1.1.0");
    run(&s, &["push", "cookbook", newer.to_str().unwrap()])
        .await
        .success();
    run(&s, &["cookbook", "delete", "demo", "1.0.0"])
        .await
        .success();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_for_a_role_or_environment_that_does_not_exist_is_refused() {
    let s = TestServer::start().await;
    let create = ["token", "create", "--role", "web", "--env", "staging"];
    run(&s, &create)
        .await
        .code(1)
        .stderr(predicate::str::contains("role web does not exist"));
    set(&s, "role", "name: web\n", &[]).await.success();
    run(&s, &create)
        .await
        .code(1)
        .stderr(predicate::str::contains(
            "environment staging does not exist",
        ));
    set(&s, "env", "name: staging\n", &[]).await.success();
    run(&s, &create)
        .await
        .success()
        .stdout(predicate::str::starts_with("cmt_"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_check_resolves_each_group_of_nodes_once_however_many_share_it() {
    const WEB_NODES: usize = 2000;
    let (s, _books) = fleet().await;
    let state = s.running.state.clone();
    // web-1 is enrolled already; the rest of the group is registered
    // straight into the store (no certificates, as the bench does).
    let now = cm_server::store::unix_now();
    for i in 2..=WEB_NODES {
        let e = NodeEnrollment {
            name: format!("web-{i}"),
            facts_json: r#"{"hostname": "web", "ipaddress": "10.0.0.1"}"#.into(),
            cert_serial: format!("serial-{i}"),
            cert_expires_at: now + 86400,
            now,
        };
        state
            .store
            .enroll_node(&e, "production", &["web".into()], "test")
            .await
            .unwrap();
    }
    set(&s, "role", "name: db\n", &[]).await.success();
    let token = s.token("db", 1).await;
    enroll(&s, &token, "db-1").await.unwrap();

    // Two groups: (production, [web]) and (production, [db]).
    let before = state.plan_check_resolutions();
    set(&s, "role", &role_web(None, "changed"), &[])
        .await
        .success();
    assert_eq!(
        state.plan_check_resolutions() - before,
        2,
        "one resolution per group"
    );

    // Refused: the web group fails after the change and resolved before it
    // (two resolutions), the db group resolves after it (one).
    let before = state.plan_check_resolutions();
    set(&s, "role", &role_web(Some(">= 2.0"), "x"), &[])
        .await
        .code(1)
        .stderr(
            predicate::str::contains(format!("{WEB_NODES} nodes would have no valid plan")).and(
                predicate::str::contains(format!(
                    "and {} more (environment production, roles web)",
                    WEB_NODES - 10
                )),
            ),
        );
    assert_eq!(state.plan_check_resolutions() - before, 3);
}
