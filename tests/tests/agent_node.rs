//! The real cm-agent against a real server on loopback: enrollment, plan
//! sync, the blob cache, reports, renewal, refusals and offline runs.

use std::time::Duration;

use cm_e2e::TestServer;
use cm_e2e::agent::{TestAgent, cmctl, demo_cookbook, demo_role, fleet, read, set_role};

#[tokio::test(flavor = "multi_thread")]
async fn fresh_agents_enroll_sync_converge_and_report() {
    let (server, agents, _books) = fleet(&["node-a", "node-b"]).await;
    for agent in &agents {
        let run = agent.run_once().await;
        assert!(run.status.success(), "{}\n{}", run.json, run.stderr);
        assert_eq!(run.json["node"], agent.name.as_str());
        assert_eq!(run.json["cause"], "new_plan");
        assert_eq!(run.json["blobs_fetched"], 4, "{}", run.json);
        assert_eq!(read(agent.out().join("message")), "hello\n");
        assert_eq!(
            read(agent.out().join("node.conf")),
            "cookbook 1.0.0, role hello\n"
        );
        // The token is gone from disk; the key is private.
        let settings = read(agent.config());
        assert!(!settings.contains("token:"), "{settings}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(agent.state().join("identity.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Second run: nothing fetched, nothing changed, drift repair.
    let again = agents[0].run_once().await;
    assert!(again.status.success(), "{}", again.stderr);
    assert_eq!(again.json["blobs_fetched"], 0);
    assert_eq!(again.json["cause"], "drift_repair");
    assert_eq!(again.json["report"]["resources_changed"], 0);

    // The server has both runs of node-a, with the plan hash.
    let runs: serde_json::Value =
        serde_json::from_str(&cmctl(&server, &["--format", "json", "runs", "node-a"]).await)
            .unwrap();
    let runs = runs.as_array().expect("a list of runs");
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert!(runs.iter().all(|r| r["status"] == "success"), "{runs:?}");
    assert_eq!(runs[0]["plan_hash"], again.json["plan_hash"]);
    let nodes = cmctl(&server, &["node", "list"]).await;
    assert!(
        nodes.contains("node-a") && nodes.contains("node-b"),
        "{nodes}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_role_change_reaches_a_running_daemon() {
    let (server, agents, _books) = fleet(&["node-w"]).await;
    let agent = &agents[0];
    let daemon = agent.spawn_daemon();
    daemon
        .expect_log("converged", 1, Duration::from_secs(60))
        .await;
    assert_eq!(read(agent.out().join("message")), "hello\n");
    let changed = std::time::Instant::now();
    set_role(&server, &demo_role("role-node-w", &agent.out(), "changed")).await;
    daemon
        .expect_log("plan changed", 1, Duration::from_secs(60))
        .await;
    let wake = changed.elapsed();
    daemon
        .expect_log("converged", 2, Duration::from_secs(60))
        .await;
    eprintln!(
        "role change to converge start: {wake:?}; to converged: {:?}",
        changed.elapsed()
    );
    assert_eq!(read(agent.out().join("message")), "changed\n");
    let runs = cmctl(&server, &["--format", "json", "runs", "node-w"]).await;
    let runs: serde_json::Value = serde_json::from_str(&runs).unwrap();
    assert_eq!(runs[0]["cause"], "new_plan", "{runs}");
    let status = daemon.stop().await;
    assert!(
        status.success(),
        "SIGTERM stops the daemon cleanly: {status:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn offline_runs_converge_the_cached_plan_and_reports_wait() {
    let (server, agents, _books) = fleet(&["node-o"]).await;
    let agent = &agents[0];
    assert!(agent.run_once().await.status.success());
    let port = server.running.grpc_addr.port();
    let dir = server.stop().await;

    // Drift while the server is away is repaired from the cache.
    std::fs::remove_file(agent.out().join("message")).unwrap();
    let offline = agent.run_once().await;
    assert!(
        offline.status.success(),
        "{}\n{}",
        offline.json,
        offline.stderr
    );
    assert_eq!(offline.json["online"], false);
    assert_eq!(offline.json["cause"], "drift_repair");
    assert_eq!(read(agent.out().join("message")), "hello\n");
    let queued = std::fs::read_dir(agent.state().join("reports"))
        .unwrap()
        .count();
    assert_eq!(queued, 1, "the offline run's report waits on disk");

    // Back online: the queued report is delivered with the next one.
    let server = TestServer::start_on(dir, port).await;
    let online = agent.run_once().await;
    assert!(online.status.success(), "{}", online.stderr);
    assert_eq!(online.json["online"], true);
    let runs = cmctl(&server, &["--format", "json", "runs", "node-o"]).await;
    let runs: serde_json::Value = serde_json::from_str(&runs).unwrap();
    assert_eq!(runs.as_array().map(Vec::len), Some(3), "{runs}");
    assert!(
        runs.as_array()
            .unwrap()
            .iter()
            .any(|r| r["cause"] == "drift_repair"),
        "{runs}"
    );
    assert_eq!(
        std::fs::read_dir(agent.state().join("reports"))
            .unwrap()
            .count(),
        0
    );
}

/// Backdate the identity's issue time so that renewal is due.
fn age_identity(agent: &TestAgent) {
    let path = agent.state().join("identity.json");
    let mut id: serde_json::Value = serde_json::from_str(&read(path.clone())).unwrap();
    let expires = id["expires_at"].as_i64().unwrap();
    id["issued_at"] = serde_json::json!(expires - 300 * 86400);
    std::fs::write(&path, id.to_string()).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_certificate_is_renewed_after_two_thirds_of_its_life() {
    let (server, agents, _books) = fleet(&["node-r"]).await;
    let agent = &agents[0];
    assert!(agent.run_once().await.status.success());
    let path = agent.state().join("identity.json");
    let id: serde_json::Value = serde_json::from_str(&read(path.clone())).unwrap();
    let old_cert = id["cert_pem"].as_str().unwrap().to_string();
    let old_key = id["key_pem"].as_str().unwrap().to_string();
    age_identity(agent);

    let run = agent.run_once().await;
    assert!(run.status.success(), "{}", run.stderr);
    let renewed: serde_json::Value = serde_json::from_str(&read(path)).unwrap();
    assert_ne!(renewed["cert_pem"], old_cert.as_str());
    assert_ne!(
        renewed["key_pem"],
        old_key.as_str(),
        "a fresh key with each renewal"
    );
    // The old certificate is revoked.
    let old = server.channel(Some((&old_cert, &old_key))).await;
    let refused = cm_proto::v1::agent_client::AgentClient::new(old)
        .get_plan(cm_proto::v1::GetPlanRequest {
            since: String::new(),
            agent_version: cm_proto::VERSION.into(),
        })
        .await
        .expect_err("the old certificate no longer works");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retired_node_stops_and_says_so() {
    let (server, agents, _books) = fleet(&["node-x"]).await;
    let agent = &agents[0];
    assert!(agent.run_once().await.status.success());
    cmctl(&server, &["node", "retire", "node-x"]).await;
    let run = agent.run_once().await;
    assert_eq!(run.status.code(), Some(4), "{}", run.stderr);
    assert!(run.stderr.contains("revoked"), "{}", run.stderr);

    // As the docs say: a new token in agent.yaml brings it back.
    let token = server.token("role-node-x", 1).await;
    let mut settings = read(agent.config());
    settings.push_str(&format!("token: {token}\n"));
    std::fs::write(agent.config(), settings).unwrap();
    let back = agent.run_once().await;
    assert!(back.status.success(), "{}", back.stderr);
    assert!(!read(agent.config()).contains("token:"));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_tokens_are_refused_once_with_a_clear_message() {
    let (server, _agents, _books) = fleet(&[]).await;
    let wrong = TestAgent::new(&server, "node-t", "cmt_00000000_nope");
    let run = wrong.run_once().await;
    assert_eq!(run.status.code(), Some(3), "{}", run.stderr);
    assert!(run.stderr.contains("enrollment refused"), "{}", run.stderr);
    // `start` (what user-data runs) starts nothing after a refusal.
    let mut start = wrong.command(&["start"]);
    let out = tokio::task::spawn_blocking(move || start.output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(!wrong.state().join("identity.json").exists());

    // A used-up token says so.
    let token = server.token("role-any", 1).await;
    let first = TestAgent::new(&server, "node-u1", &token);
    set_role(&server, &demo_role("role-any", &first.out(), "x")).await;
    assert!(first.run_once().await.status.success());
    let second = TestAgent::new(&server, "node-u2", &token);
    let run = second.run_once().await;
    assert_eq!(run.status.code(), Some(3));
    assert!(run.stderr.contains("used up"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_ca_fingerprint_is_refused_before_the_token_is_sent() {
    let (server, _agents, _books) = fleet(&[]).await;
    let token = server.token("role-any", 1).await;
    let agent = TestAgent::with_settings(
        "node-p",
        &format!(
            "server: {}\nca_fingerprint: {}\ntoken: {token}\n",
            server.url(),
            "ab".repeat(32)
        ),
    );
    let run = agent.run_once().await;
    assert_eq!(run.status.code(), Some(3), "{}", run.stderr);
    assert!(run.stderr.contains("fingerprint"), "{}", run.stderr);
    let tokens = cmctl(&server, &["--format", "json", "token", "list"]).await;
    let tokens: serde_json::Value = serde_json::from_str(&tokens).unwrap();
    assert_eq!(tokens[0]["uses_left"], 1, "the token is unused: {tokens}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_waits_for_a_server_that_is_not_up_yet() {
    // Reserve a port, start the daemon against it, then the server.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_on(dir, port).await;
    let (token, fingerprint) = (
        server.token("role-late", 1).await,
        server.running.state.pki.ca().fingerprint(),
    );
    let books = tempfile::tempdir().unwrap();
    let demo = demo_cookbook(books.path(), "1.0.0");
    cmctl(&server, &["push", "cookbook", demo.to_str().unwrap()]).await;
    let env = books.path().join("production.yaml");
    std::fs::write(&env, "name: production\n").unwrap();
    cmctl(&server, &["env", "set", env.to_str().unwrap()]).await;
    let agent = TestAgent::with_settings(
        "node-late",
        &format!(
            "server: https://localhost:{port}\nca_fingerprint: {fingerprint}\ntoken: {token}\n"
        ),
    );
    set_role(&server, &demo_role("role-late", &agent.out(), "late")).await;
    let dir = server.stop().await;

    let daemon = agent.spawn_daemon();
    daemon
        .expect_log("cannot enroll yet", 1, Duration::from_secs(30))
        .await;
    let _server = TestServer::start_on(dir, port).await;
    daemon
        .expect_log("converged", 1, Duration::from_secs(120))
        .await;
    assert_eq!(read(agent.out().join("message")), "late\n");

    // A second daemon on the same node refuses to start.
    let mut second = agent.spawn_daemon();
    let mut waited = 0;
    let status = loop {
        if let Some(s) = second.try_status() {
            break s;
        }
        assert!(waited < 300, "the second daemon kept running");
        waited += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status.code(), Some(2));
    assert!(
        second.log_text().contains("another cm-agent daemon"),
        "{}",
        second.log_text()
    );
}

/// Bit rot in the server's blob store: the server checks what it serves
/// and refuses to send it (the agent's own check is the next test's).
#[tokio::test(flavor = "multi_thread")]
async fn a_blob_rotten_in_the_servers_store_is_refused_by_the_server_and_reported() {
    let (server, agents, _books) = fleet(&["node-d"]).await;
    let stored = server.blob_files();
    assert!(stored.len() >= 4, "found {stored:?}");
    for path in &stored {
        let mut bytes = std::fs::read(path).unwrap();
        bytes.push(b'!');
        std::fs::write(path, bytes).unwrap();
    }
    let agent = &agents[0];
    let run = agent.run_once().await;
    assert_eq!(run.status.code(), Some(1), "{}", run.stderr);
    let error = run.json["report"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("is corrupted in the store"), "{error}");
    assert!(!agent.out().exists(), "nothing was touched");
    assert!(
        !agent.state().join("plan.pb").exists(),
        "no plan kept without its files"
    );
    let runs = cmctl(&server, &["--format", "json", "runs", "node-d"]).await;
    let runs: serde_json::Value = serde_json::from_str(&runs).unwrap();
    assert_eq!(
        runs[0]["status"], "failed",
        "the failure is reported: {runs}"
    );
}

/// The agent checks every cached blob against its digest before it uses
/// it: a damaged cache is refused while the server is away, and fetched
/// again once it is back.
#[tokio::test(flavor = "multi_thread")]
async fn a_blob_damaged_in_the_agents_cache_is_never_converged() {
    let (server, agents, _books) = fleet(&["node-c"]).await;
    let agent = &agents[0];
    assert!(agent.run_once().await.status.success());
    let cached: Vec<_> = std::fs::read_dir(agent.state().join("blobs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(cached.len(), 4, "{cached:?}");
    for path in &cached {
        std::fs::write(path, "#!/bin/sh\nrm -rf /\n").unwrap();
    }
    std::fs::remove_file(agent.out().join("message")).unwrap();
    let port = server.running.grpc_addr.port();
    let dir = server.stop().await;

    let offline = agent.run_once().await;
    assert_eq!(offline.status.code(), Some(1), "{}", offline.stderr);
    assert_eq!(offline.json["online"], false);
    let error = offline.json["report"]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("not in the local cache (or damaged)"),
        "{error}"
    );
    assert_eq!(offline.json["report"]["resources_total"], 0);
    assert!(!agent.out().join("message").exists(), "nothing was touched");

    // Back online: the damaged blobs are fetched again and the run repairs.
    let server = TestServer::start_on(dir, port).await;
    let online = agent.run_once().await;
    assert!(online.status.success(), "{}", online.stderr);
    assert_eq!(online.json["blobs_fetched"], 4, "{}", online.json);
    assert_eq!(read(agent.out().join("message")), "hello\n");
    let runs = cmctl(&server, &["--format", "json", "runs", "node-c"]).await;
    let runs: serde_json::Value = serde_json::from_str(&runs).unwrap();
    let statuses: Vec<_> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(statuses, ["success", "failed", "success"], "{runs}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plan_the_engine_rejects_touches_nothing_and_is_reported() {
    let (server, agents, _books) = fleet(&["node-e"]).await;
    // A relative path is no place for a file.
    set_role(
        &server,
        &demo_role("role-node-e", std::path::Path::new("relative/dir"), "x"),
    )
    .await;
    let agent = &agents[0];
    let run = agent.run_once().await;
    assert_eq!(run.status.code(), Some(1), "{}", run.stderr);
    assert_eq!(run.json["report"]["resources_total"], 0, "{}", run.json);
    assert!(!std::path::Path::new("relative").exists());
    let runs = cmctl(&server, &["--format", "json", "runs", "node-e"]).await;
    let runs: serde_json::Value = serde_json::from_str(&runs).unwrap();
    assert_eq!(runs[0]["status"], "failed", "{runs}");
    let error = runs[0]["report"]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("relative/dir"),
        "the error names the path: {error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_follows_its_plan_across_a_server_restart() {
    let (server, agents, _books) = fleet(&["node-s"]).await;
    let agent = &agents[0];
    // Enrolled, with renewal due: the daemon's first run renews, and the
    // watch stream must reconnect with the new certificate, not the revoked one.
    assert!(agent.run_once().await.status.success());
    age_identity(agent);
    let daemon = agent.spawn_daemon();
    daemon
        .expect_log("converged", 1, Duration::from_secs(60))
        .await;
    let log = daemon.log_text();
    assert!(log.contains("certificate renewed"), "{log}");
    let port = server.running.grpc_addr.port();
    let dir = server.stop().await;
    let server = TestServer::start_on(dir, port).await;
    // Changed at once: if the watch has not reconnected yet, the server
    // tells it on reconnection that the plan changed meanwhile.
    set_role(&server, &demo_role("role-node-s", &agent.out(), "after")).await;
    daemon
        .expect_log("converged", 2, Duration::from_secs(120))
        .await;
    assert_eq!(read(agent.out().join("message")), "after\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_run_is_retried_before_the_interval() {
    let (_server, agents, _books) = fleet(&["node-f"]).await;
    let agent = &agents[0];
    // A plain file where the cookbook wants its directory: the run fails.
    std::fs::write(agent.out(), "in the way").unwrap();
    let daemon = agent.spawn_daemon();
    daemon
        .expect_log("run failed", 1, Duration::from_secs(60))
        .await;
    // Fixed by hand; the daemon (interval 1h) tries again by itself.
    std::fs::remove_file(agent.out()).unwrap();
    daemon
        .expect_log("converged", 1, Duration::from_secs(90))
        .await;
    assert!(daemon.log_text().contains("retrying a failed run"));
    assert_eq!(read(agent.out().join("message")), "hello\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_renewal_whose_answer_was_lost_is_made_again() {
    let (server, agents, _books) = fleet(&["node-l"]).await;
    let agent = &agents[0];
    assert!(agent.run_once().await.status.success());
    // Renew with the node's own certificate and drop the answer: the server
    // has revoked the certificate the node still holds.
    let id: serde_json::Value =
        serde_json::from_str(&read(agent.state().join("identity.json"))).unwrap();
    let (cert, key) = (
        id["cert_pem"].as_str().unwrap(),
        id["key_pem"].as_str().unwrap(),
    );
    let (_, csr_pem) = cm_server::pki::new_key_and_csr("node-l").unwrap();
    let channel = server.channel(Some((cert, key))).await;
    cm_proto::v1::agent_client::AgentClient::new(channel.clone())
        .renew(cm_proto::v1::RenewRequest { csr_pem })
        .await
        .expect("renewed; the answer is thrown away");
    let refused = cm_proto::v1::agent_client::AgentClient::new(channel)
        .report_facts(cm_proto::v1::FactsRequest {
            facts_json: "{}".into(),
        })
        .await
        .expect_err("the held certificate is revoked");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);

    let run = agent.run_once().await;
    assert!(run.status.success(), "{}", run.stderr);
    let renewed: serde_json::Value =
        serde_json::from_str(&read(agent.state().join("identity.json"))).unwrap();
    assert_ne!(renewed["cert_pem"], id["cert_pem"]);
}
