//! The real cm-agent daemon against a real server on loopback: how it wakes
//! for a plan change (after the environment's splay), what it converges
//! when the server has no new plan to give it, and how SIGTERM stops it in
//! the middle of a resource. Each test asserts what the daemon did and in
//! what order, from its log and the server, never how long it took.

use std::path::Path;
use std::time::Duration;

use cm_e2e::agent::{cmctl, demo_cookbook, demo_role, fleet, read, set_environment, set_role};

/// Generous: a daemon that has not done it by then hangs.
const WAIT: Duration = Duration::from_secs(90);

/// Where `needle` first appears in `log` from `from` on, failing the test if it does not.
fn position(log: &str, needle: &str, from: usize) -> usize {
    log[from..]
        .find(needle)
        .map(|i| from + i)
        .unwrap_or_else(|| panic!("{needle:?} is not in the log after byte {from}:\n{log}"))
}

/// The value of `name=` on the log line at `at` (quoted or not).
fn field(log: &str, at: usize, name: &str) -> String {
    let line = log[at..].lines().next().unwrap_or_default();
    let key = format!(" {name}=");
    let start = line
        .find(&key)
        .unwrap_or_else(|| panic!("no {name}= in {line:?}"))
        + key.len();
    let rest = &line[start..];
    match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next().unwrap_or_default(),
        None => rest.split_whitespace().next().unwrap_or_default(),
    }
    .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plan_change_waits_out_a_splay_within_the_environments_bound() {
    let (server, agents, books) = fleet(&["node-splay"]).await;
    let agent = &agents[0];
    set_environment(
        &server,
        books.path(),
        "name: production\nsplay_seconds: 2\n",
    )
    .await;
    let daemon = agent.spawn_daemon();
    daemon.expect_log("converged", 1, WAIT).await;
    set_role(
        &server,
        &demo_role("role-node-splay", &agent.out(), "spread"),
    )
    .await;
    daemon.expect_log("converged", 2, WAIT).await;
    assert_eq!(read(agent.out().join("message")), "spread\n");

    // Woken by the watch stream, then the splay, then the run.
    let log = daemon.log_text();
    let first = position(&log, "converged", 0);
    let woken = position(&log, "plan changed", first);
    let splay = position(&log, "waiting out the splay", woken);
    let run = position(&log, "converging", splay);
    assert_eq!(field(&log, run, "cause"), "plan changed", "{log}");
    position(&log, "converged", run);
    assert_eq!(field(&log, splay, "at_most"), "2", "{log}");
    let seconds: f32 = field(&log, splay, "seconds").parse().unwrap();
    assert!((0.0..=2.0).contains(&seconds), "{log}");
}

/// The server answers, but the new plan cannot be had (here its new blobs
/// rotted in the store before any node fetched them): the daemon keeps
/// converging the last good plan, repairing drift, and reports that.
#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_converges_its_last_good_plan_when_the_server_has_no_new_one() {
    let (server, agents, books) = fleet(&["node-g"]).await;
    let agent = &agents[0];
    let pinned = "name: production\nsplay_seconds: 0\ncookbooks:\n  demo: 1.0.0\n";
    set_environment(&server, books.path(), pinned).await;
    // Version 1.1.0, whose new files rot in the store while nothing uses it.
    let before = server.blob_files();
    let newer = demo_cookbook(books.path(), "1.1.0");
    cmctl(&server, &["push", "cookbook", newer.to_str().unwrap()]).await;
    let added: Vec<_> = server
        .blob_files()
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    assert!(!added.is_empty(), "1.1.0 stored new blobs");
    for path in &added {
        std::fs::write(path, "rotten").unwrap();
    }

    let daemon = agent.spawn_daemon();
    daemon.expect_log("converged", 1, WAIT).await;
    let runs = cmctl(&server, &["--format", "json", "runs", "node-g"]).await;
    let runs: serde_json::Value = serde_json::from_str(&runs).unwrap();
    let good_plan = runs[0]["plan_hash"].as_str().unwrap().to_string();

    // Drift, then the unpinned environment: the plan now wants 1.1.0.
    std::fs::remove_file(agent.out().join("message")).unwrap();
    set_environment(
        &server,
        books.path(),
        "name: production\nsplay_seconds: 0\n",
    )
    .await;
    daemon.expect_log("converged", 2, WAIT).await;

    let log = daemon.log_text();
    let woken = position(&log, "plan changed", position(&log, "converged", 0));
    let refused = position(&log, "no new plan from the server", woken);
    assert!(log[refused..].contains("corrupted"), "{log}");
    let converged = position(&log, "converged", refused);
    assert_eq!(field(&log, converged, "plan"), good_plan, "{log}");
    assert_eq!(field(&log, converged, "cause"), "drift_repair", "{log}");
    assert_eq!(read(agent.out().join("message")), "hello\n");
    assert_eq!(
        read(agent.out().join("node.conf")),
        "cookbook 1.0.0, role hello\n"
    );
    let runs = cmctl(&server, &["--format", "json", "runs", "node-g"]).await;
    let runs: serde_json::Value = serde_json::from_str(&runs).unwrap();
    assert_eq!(
        (
            runs[0]["status"].as_str(),
            runs[0]["cause"].as_str(),
            runs[0]["plan_hash"].as_str()
        ),
        (
            Some("success"),
            Some("drift_repair"),
            Some(good_plan.as_str())
        ),
        "{runs}"
    );
}

/// A cookbook whose first resource says it has started, then holds until
/// the file `go` exists; its second resource must not run after a SIGTERM.
fn held_cookbook(dir: &Path) -> std::path::PathBuf {
    let root = dir.join("held");
    std::fs::create_dir_all(root.join("recipes")).unwrap();
    std::fs::write(root.join("metadata.yaml"), "name: held\nversion: 1.0.0\n").unwrap();
    std::fs::write(
        root.join("recipes/default.yaml"),
        "- execute: \"touch {{attrs.held.dir}}/started && while [ ! -e {{attrs.held.dir}}/go ]; \
         do sleep 0.05; done && touch {{attrs.held.dir}}/finished\"\n\
         - file: \"{{attrs.held.dir}}/after\"\n",
    )
    .unwrap();
    root
}

/// Poll `done` until it holds; not within [`WAIT`] is a failure (a hang).
async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + WAIT;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What `systemctl stop` does in the middle of a converge: the daemon
/// finishes the resource in hand, runs no other, reports the run to the
/// server, and exits 0.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_mid_resource_finishes_it_reports_the_run_and_stops_the_daemon() {
    let (server, _agents, books) = fleet(&[]).await;
    let held = held_cookbook(books.path());
    cmctl(&server, &["push", "cookbook", held.to_str().unwrap()]).await;
    let token = server.token("role-held", 1).await;
    let agent = cm_e2e::agent::TestAgent::new(&server, "node-held", &token);
    let out = agent.out();
    std::fs::create_dir_all(&out).unwrap();
    set_role(
        &server,
        &format!(
            "name: role-held\nrun_list: [held]\nattributes:\n  held:\n    dir: {}\n",
            out.display()
        ),
    )
    .await;

    let daemon = agent.spawn_daemon();
    wait_until("the first resource starts", || out.join("started").exists()).await;
    daemon.terminate();
    // Logged once the daemon has taken the signal: the resource is still in hand.
    daemon
        .expect_log("stopping after the resource in hand", 1, WAIT)
        .await;
    std::fs::write(out.join("go"), "").unwrap();
    let log = daemon.log.clone();
    let status = daemon.exit_status().await;
    let log = std::fs::read_to_string(log).unwrap();
    assert!(status.success(), "{status:?}\n{log}");
    assert!(
        out.join("finished").exists(),
        "the resource in hand was not finished"
    );
    assert!(!out.join("after").exists(), "the run went on after SIGTERM");
    assert!(log.contains("agent stopped"), "{log}");

    let runs = cmctl(&server, &["--format", "json", "runs", "node-held"]).await;
    let runs: serde_json::Value = serde_json::from_str(&runs).unwrap();
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "{runs}");
    assert_eq!(runs[0]["status"], "failed", "{runs}");
    let error = runs[0]["report"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("stopped by a signal after 1 of 2"), "{runs}");
}
