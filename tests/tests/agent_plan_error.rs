//! The real cm-agent when the server has no valid plan for its node (a
//! forced change broke it): it converges the last good plan, its run is a
//! warning with the reason (exit status 5 for `run --once`), the server and
//! `cmctl node list` say so, and once the plan is valid again the node is
//! told and converges it.

use std::time::Duration;

use cm_e2e::TestServer;
use cm_e2e::agent::{TestAgent, cmctl, demo_cookbook, demo_role, node_listed};

/// A server with the demo cookbook, an unpinned production environment,
/// and an agent (not run yet) whose role `role-n` writes into its dir.
async fn one_node() -> (TestServer, TestAgent, tempfile::TempDir) {
    let server = TestServer::start().await;
    let books = tempfile::tempdir().unwrap();
    let demo = demo_cookbook(books.path(), "1.0.0");
    cmctl(&server, &["push", "cookbook", demo.to_str().unwrap()]).await;
    let env = books.path().join("production.yaml");
    std::fs::write(&env, "name: production\nsplay_seconds: 0\n").unwrap();
    cmctl(&server, &["env", "set", env.to_str().unwrap()]).await;
    let token = server.token("role-n", 1).await;
    let agent = TestAgent::new(&server, "node-w", &token);
    role(&server, &agent, "hello", None, &[]).await;
    (server, agent, books)
}

/// `cmctl role set` of the agent's role, optionally with a constraint on demo.
async fn role(
    server: &TestServer,
    agent: &TestAgent,
    message: &str,
    constraint: Option<&str>,
    extra: &[&str],
) {
    let mut yaml = demo_role("role-n", &agent.out(), message);
    if let Some(c) = constraint {
        yaml.push_str(&format!("cookbooks:\n  demo: \"{c}\"\n"));
    }
    let file = agent.dir.path().join("role.yaml");
    std::fs::write(&file, yaml).unwrap();
    let mut args = vec!["role", "set", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    cmctl(server, &args).await;
}

fn read(path: std::path::PathBuf) -> String {
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_plan_converges_the_last_good_one_and_reports_a_warning_with_the_reason() {
    let (server, agent, _books) = one_node().await;
    let first = agent.run_once().await;
    assert!(first.status.success(), "{}\n{}", first.json, first.stderr);

    role(&server, &agent, "broken", Some(">= 2.0"), &["--force"]).await;
    let run = agent.run_once().await;
    assert_eq!(run.status.code(), Some(5), "{}\n{}", run.json, run.stderr);
    let report = &run.json["report"];
    assert_eq!(report["status"], "warning", "{report}");
    let reason = report["plan_error"].as_str().unwrap_or_default();
    assert!(reason.contains(">= 2.0"), "{report}");
    assert_eq!(report["resources_total"], 3, "the cached plan converged");
    assert_eq!(report["resources_failed"], 0);
    assert_eq!(run.json["plan_hash"], first.json["plan_hash"]);
    assert_eq!(read(agent.out().join("message")), "hello\n");

    let node = node_listed(&server, "node-w").await;
    assert!(
        node["plan_error"]
            .as_str()
            .is_some_and(|e| e.contains(">= 2.0")),
        "{node}"
    );
    assert_eq!(node["last_run"]["status"], "warning", "{node}");
    let runs: serde_json::Value =
        serde_json::from_str(&cmctl(&server, &["--format", "json", "runs", "node-w"]).await)
            .unwrap();
    assert_eq!(runs[0]["status"], "warning", "{runs}");
    assert_eq!(runs[0]["report"]["plan_error"], reason, "{runs}");

    role(&server, &agent, "fixed", None, &[]).await;
    let fixed = agent.run_once().await;
    assert!(fixed.status.success(), "{}\n{}", fixed.json, fixed.stderr);
    assert_eq!(fixed.json["report"]["status"], "success");
    assert!(fixed.json["report"].get("plan_error").is_none());
    assert_eq!(read(agent.out().join("message")), "fixed\n");
    let node = node_listed(&server, "node-w").await;
    assert!(node["plan_error"].is_null(), "{node}");
    assert_eq!(node["last_run"]["status"], "success");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_hears_its_plan_break_and_come_back_as_it_was() {
    let (server, agent, _books) = one_node().await;
    let daemon = agent.spawn_daemon();
    daemon
        .expect_log("converged", 1, Duration::from_secs(60))
        .await;
    // The forced change wakes the daemon, which reports the plan error.
    role(&server, &agent, "hello", Some(">= 2.0"), &["--force"]).await;
    daemon
        .expect_log(
            "plan error: the last good plan was applied",
            1,
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(
        node_listed(&server, "node-w").await["last_run"]["status"],
        "warning"
    );
    // Put back as it was: the plan is the one the node already has, yet it
    // is told, runs, and reports success again.
    role(&server, &agent, "hello", None, &[]).await;
    daemon
        .expect_log("converged", 2, Duration::from_secs(60))
        .await;
    let node = node_listed(&server, "node-w").await;
    assert_eq!(node["last_run"]["status"], "success", "{node}");
    assert!(node["plan_error"].is_null(), "{node}");
    let status = daemon.stop().await;
    assert!(status.success(), "{status:?}");
}
