//! `/metrics`, `/healthz` and `/readyz` as Prometheus and a load balancer
//! read them: the page passes `promtool check metrics` (Prometheus' own
//! linter, from Debian), and the fleet's work shows in it.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use cm_e2e::agent::{cmctl, fleet};
use cm_e2e::{TestServer, require};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// GET `path` on the plain-HTTP port: (status line, body).
async fn get(s: &TestServer, path: &str) -> (String, String) {
    let mut tcp = tokio::net::TcpStream::connect(s.running.http_addr)
        .await
        .unwrap();
    tcp.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut text = String::new();
    tcp.read_to_string(&mut text).await.unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_string(), body.to_string())
}

fn promtool() -> bool {
    Command::new("promtool").arg("--version").output().is_ok()
}

/// `promtool check metrics` on `page`: its complaints, empty when none.
fn lint(page: &str) -> String {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && said.trim().is_empty() {
        String::new()
    } else {
        format!("{}: {said}", out.status)
    }
}

/// The value of the sample `series` (name and labels as printed).
fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_pass_promtool_and_count_the_fleets_work() {
    let (server, agents, _books) = fleet(&["node-m"]).await;
    let run = agents[0].run_once().await;
    assert!(run.status.success(), "{}", run.stderr);
    // A call without a certificate, and one to a path cm does not serve.
    let _ = cmctl(&server, &["node", "list"]).await;
    server.running.state.recompute.settled().await;

    let (status, page) = get(&server, "/metrics").await;
    assert!(status.contains("200"), "{status}");
    if require(
        promtool(),
        "promtool is missing (scripts/test.sh installs it)",
    ) {
        assert_eq!(lint(&page), "", "promtool check metrics:\n{page}");
    }
    for family in [
        "cm_rpc_requests_total",
        "cm_rpc_duration_seconds",
        "cm_runs_total",
        "cm_enrollments_total",
        "cm_background_pass_duration_seconds",
        "cm_nodes",
        "cm_plans",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
    ] {
        assert!(
            page.contains(&format!("# HELP {family} "))
                && page.contains(&format!("# TYPE {family} ")),
            "{family} has HELP and TYPE:\n{page}"
        );
    }
    assert_eq!(
        sample(
            &page,
            "cm_nodes{environment=\"production\",state=\"active\"}"
        ),
        Some(1.0),
        "{page}"
    );
    assert_eq!(
        sample(&page, "cm_plans{environment=\"production\",state=\"ok\"}"),
        Some(1.0),
        "{page}"
    );
    // The recorder is the process's: other tests in this binary add to it.
    let at_least = |series: &str, n: f64| {
        let v = sample(&page, series).unwrap_or_else(|| panic!("{series} in:\n{page}"));
        assert!(v >= n, "{series} = {v}");
    };
    at_least("cm_runs_total{status=\"success\",cause=\"new_plan\"}", 1.0);
    at_least("cm_enrollments_total{outcome=\"accepted\"}", 1.0);
    at_least(
        "cm_rpc_requests_total{method=\"Agent/GetPlan\",code=\"OK\"}",
        1.0,
    );
    at_least(
        "cm_rpc_requests_total{method=\"Nodes/List\",code=\"OK\"}",
        1.0,
    );
    assert!(
        page.contains("cm_rpc_duration_seconds_bucket{method=\"Agent/ReportRun\",le=\"0.005\"}"),
        "{page}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_daemons_watch_stream_is_counted_while_it_is_open() {
    let (server, agents, _books) = fleet(&["node-w"]).await;
    let daemon = agents[0].spawn_daemon();
    daemon
        .expect_log("converged", 1, Duration::from_secs(60))
        .await;
    let (_, page) = get(&server, "/metrics").await;
    let open = sample(&page, "cm_watch_streams").expect("cm_watch_streams");
    assert!(open >= 1.0, "{page}");
    daemon.stop().await;
    // Closing is seen by the server once the connection ends.
    let mut closed = false;
    for _ in 0..50 {
        let (_, page) = get(&server, "/metrics").await;
        if sample(&page, "cm_watch_streams") < Some(open) {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        closed,
        "the stream is no longer counted once the daemon stopped"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn healthz_says_alive_and_readyz_that_the_stores_answer() {
    let server = TestServer::start().await;
    assert_eq!(
        get(&server, "/healthz").await,
        ("HTTP/1.0 200 OK".into(), "ok\n".into())
    );
    let (status, body) = get(&server, "/readyz").await;
    assert!(status.contains("200"), "{status} {body}");
    assert_eq!(body, "ready\n");

    // Without its blob directory the server cannot serve cookbooks.
    let blobs = server.data_dir().join("blobs");
    std::fs::rename(&blobs, server.data_dir().join("blobs.away")).unwrap();
    std::fs::write(&blobs, "not a directory").unwrap();
    let (status, body) = get(&server, "/readyz").await;
    std::fs::remove_file(&blobs).unwrap();
    std::fs::rename(server.data_dir().join("blobs.away"), &blobs).unwrap();
    assert!(status.contains("503"), "{status} {body}");
    assert!(body.starts_with("not ready: blobs: "), "{body}");
}

#[test]
fn the_example_alerts_in_the_operations_guide_pass_promtool() {
    if !require(
        promtool(),
        "promtool is missing (scripts/test.sh installs it)",
    ) {
        return;
    }
    let guide = std::fs::read_to_string(cm_e2e::repo().join("docs/operations.md")).unwrap();
    let rules = guide
        .split("```yaml\n")
        .filter_map(|block| block.split_once("```").map(|(yaml, _)| yaml))
        .find(|yaml| yaml.starts_with("groups:"))
        .expect("docs/operations.md has the example alerts");
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), rules).unwrap();
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(file.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("SUCCESS: 5 rules found"));
}
