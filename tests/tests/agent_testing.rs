//! The cookbook author's tools against a real server: `cm-agent pose`
//! stands in for a peer in the cluster view, `cm-agent check` runs a
//! role's `checks:` from the cached plan (scripts/try-role.sh uses both).

use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use cm_e2e::agent::{TestAgent, cmctl, demo_role, fleet, node_listed, set_role};
use cm_e2e::{TestServer, bin};

/// `cm-agent pose` for `name`, its state under `dir`, with the facts file `facts`.
fn pose(
    server: &TestServer,
    dir: &Path,
    name: &str,
    token: &str,
    facts: &Path,
) -> std::process::Command {
    let mut c = std::process::Command::new(bin("cm-agent"));
    c.args(["pose", "--server", &server.url(), "--name", name])
        .arg("--ca-fingerprint")
        .arg(server.running.state.pki.ca().fingerprint())
        .arg("--state-dir")
        .arg(dir.join(name))
        .arg("--facts")
        .arg(facts)
        .env("CM_TOKEN", token)
        .env_remove("CM_LOG");
    c
}

async fn output(mut c: std::process::Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || c.output().expect("cm-agent runs"))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_posing_peer_is_in_the_cluster_view_with_its_facts_and_keeps_beating() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let facts = dir.path().join("peer.yaml");
    std::fs::write(&facts, "ipaddress: 192.0.2.11\nmemory_mib: 2048\n").unwrap();
    let token = server.token("memcached", 2).await;

    let once = output({
        let mut c = pose(&server, dir.path(), "mc-a", &token, &facts);
        c.arg("--once");
        c
    })
    .await;
    assert!(
        once.status.success(),
        "{}",
        String::from_utf8_lossy(&once.stderr)
    );
    assert_eq!(node_listed(&server, "mc-a").await["state"], "active");
    let view = cmctl(
        &server,
        &["--format", "json", "cluster", "show", "--role", "memcached"],
    )
    .await;
    let view: serde_json::Value = serde_json::from_str(&view).unwrap();
    assert_eq!(view[0]["node"], "mc-a", "{view}");
    assert_eq!(view[0]["address"], "192.0.2.11", "the facts file's: {view}");

    // Without --once it beats until stopped, and a stop is a clean exit.
    let mut beating = pose(&server, dir.path(), "mc-b", &token, &facts)
        .spawn()
        .unwrap();
    let mut listed = false;
    for _ in 0..100 {
        let list = cmctl(&server, &["--format", "json", "node", "list"]).await;
        if list.contains("\"mc-b\"") {
            listed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(listed, "mc-b enrolled");
    assert!(beating.try_wait().unwrap().is_none(), "still beating");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(beating.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = tokio::task::spawn_blocking(move || beating.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "a stopped pose exits 0: {status:?}");

    // A used-up token is refused with the enrollment refusal's status.
    let mut again = pose(&server, dir.path(), "mc-c", &token, &facts);
    again.arg("--once");
    let refused = output(again).await;
    assert_eq!(refused.status.code(), Some(3));

    // A bad facts file is named, and nothing is enrolled.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "ipaddress: not-an-address\n").unwrap();
    let mut c = pose(&server, dir.path(), "mc-d", "unused", &bad);
    c.arg("--once");
    let out = output(c).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.yaml"), "{stderr}");
    assert!(!dir.path().join("mc-d").exists(), "no state for a bad file");
}

#[tokio::test(flavor = "multi_thread")]
async fn check_runs_the_roles_checks_from_the_cached_plan() {
    let (server, agents, _books) = fleet(&["node-c"]).await;
    let agent: &TestAgent = &agents[0];
    let check = |wait: &str| {
        let mut c = agent.command(&["check", "--format", "json", "--wait", wait]);
        c.env_remove("CM_LOG");
        c
    };

    // No run yet: no plan to read the checks from.
    let none = output(check("0")).await;
    assert_eq!(none.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&none.stderr).contains("has not run yet"));

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let flag = agent.dir.path().join("ready");
    let role = format!(
        "{}checks:\n  - tcp: {{host: 127.0.0.1, port: {port}}}\n  - name: ready\n    command: test -e {}\n",
        demo_role("role-node-c", &agent.out(), "hello"),
        flag.display()
    );
    set_role(&server, &role).await;
    let run = agent.run_once().await;
    assert!(run.status.success(), "{}", run.stderr);

    let failed = output(check("0")).await;
    assert_eq!(failed.status.code(), Some(1), "the flag is missing");
    let results: serde_json::Value = serde_json::from_slice(&failed.stdout).unwrap();
    assert_eq!(results[0]["ok"], true, "{results}");
    assert_eq!(results[0]["probe"], format!("tcp 127.0.0.1:{port}"));
    assert_eq!(results[1]["ok"], false, "{results}");
    assert_eq!(results[1]["role"], "role-node-c");
    assert_eq!(results[1]["detail"], "exit 1");

    std::fs::write(&flag, "").unwrap();
    let passed = output(check("5")).await;
    assert!(
        passed.status.success(),
        "{}",
        String::from_utf8_lossy(&passed.stdout)
    );
    drop(listener);
}
