//! `cm-agent check`: run the `checks:` of the node's roles, as the cached
//! plan carries them, and say which pass. Probes are real: a command run
//! with `sh -c`, a TCP connection, a plain-HTTP GET. Nothing here changes
//! the node.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use cm_model::checks::{Check, Http, Probe};
use serde::Serialize;

use crate::command::Cmd;
use crate::facts::Facts;

/// The most of a response body read to look for `contains`.
const MAX_BODY: u64 = 1 << 20;

/// Role → its checks, from the cached plan's `checks_json`.
pub type RoleChecks = BTreeMap<String, Vec<Check>>;

pub fn from_plan(checks_json: &str) -> Result<RoleChecks, String> {
    if checks_json.is_empty() {
        return Ok(RoleChecks::new());
    }
    serde_json::from_str(checks_json).map_err(|e| format!("the plan's checks: {e}"))
}

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub role: String,
    pub name: String,
    /// What was probed: `tcp 10.0.0.5:11211`.
    pub probe: String,
    pub ok: bool,
    /// What it saw: `connected`, `HTTP 200`, `exit 1: <last lines>`.
    pub detail: String,
    pub duration_ms: u64,
}

/// The address a check without `host` probes: the one peers reach the node
/// on (EC2's local IPv4, else the primary address), else loopback.
pub fn own_address(facts: &Facts) -> String {
    facts
        .ec2
        .as_ref()
        .and_then(|e| e.local_ipv4)
        .or(facts.ipaddress)
        .map_or_else(|| "127.0.0.1".to_string(), |a| a.to_string())
}

/// Run every check once, in role order.
pub fn run_all(checks: &RoleChecks, address: &str) -> Vec<Outcome> {
    checks
        .iter()
        .flat_map(|(role, list)| list.iter().map(move |c| run(role, c, address)))
        .collect()
}

/// Run the checks until all pass or `wait` is over; returns the last
/// result of each. Passed checks are not run again.
pub fn run_until_passed(checks: &RoleChecks, address: &str, wait: Duration) -> Vec<Outcome> {
    let deadline = Instant::now() + wait;
    let mut outcomes = run_all(checks, address);
    let all: Vec<(&String, &Check)> = checks
        .iter()
        .flat_map(|(role, list)| list.iter().map(move |c| (role, c)))
        .collect();
    while outcomes.iter().any(|o| !o.ok) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(1));
        for (o, (role, check)) in outcomes.iter_mut().zip(&all) {
            if !o.ok {
                *o = run(role, check, address);
            }
        }
    }
    outcomes
}

fn run(role: &str, check: &Check, address: &str) -> Outcome {
    let start = Instant::now();
    let timeout = Duration::from_secs(u64::from(check.timeout_seconds));
    let (probe, result) = match &check.probe {
        Probe::Command(c) => (format!("command {c}"), command(c, timeout)),
        Probe::Tcp(t) => {
            let target = format!("{}:{}", t.host.as_deref().unwrap_or(address), t.port);
            let result = tcp(&target, timeout);
            (format!("tcp {target}"), result)
        }
        Probe::Http(h) => {
            let url = format!(
                "http://{}:{}{}",
                h.host.as_deref().unwrap_or(address),
                h.port,
                h.path
            );
            let result = http(&url, h, timeout);
            (format!("GET {url}"), result)
        }
    };
    let (ok, detail) = match result {
        Ok(d) => (true, d),
        Err(d) => (false, d),
    };
    Outcome {
        role: role.to_string(),
        name: check.name.clone(),
        probe,
        ok,
        detail,
        duration_ms: start.elapsed().as_millis() as u64,
    }
}

fn command(script: &str, timeout: Duration) -> Result<String, String> {
    let done = Cmd::shell(script)
        .timeout(timeout)
        .run()
        .map_err(|e| e.to_string())?;
    done.ok()
        .map(|_| "exit 0".to_string())
        .map_err(|e| e.to_string())
}

fn tcp(target: &str, timeout: Duration) -> Result<String, String> {
    let addrs: Vec<_> = target
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {target}: {e}"))?
        .collect();
    let mut last = format!("{target} resolves to no address");
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(_) => return Ok("connected".into()),
            Err(e) => last = format!("cannot connect to {a}: {e}"),
        }
    }
    Err(last)
}

fn http(url: &str, h: &Http, timeout: Duration) -> Result<String, String> {
    let client = reqwest::blocking::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        // The node's own address, never through a proxy from the environment.
        .no_proxy()
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let response = client
        .get(url)
        .send()
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = response.status().as_u16();
    let mut body = Vec::new();
    // A body that breaks off is searched as far as it came.
    let _ = response.take(MAX_BODY).read_to_end(&mut body);
    if status != h.status {
        return Err(format!("HTTP {status}, wanted {}", h.status));
    }
    match &h.contains {
        Some(text) if !body.windows(text.len()).any(|w| w == text.as_bytes()) => {
            Err(format!("HTTP {status}, but the body lacks {text:?}"))
        }
        _ => Ok(format!("HTTP {status}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;

    fn checks(yaml: &str) -> RoleChecks {
        let role = cm_model::role::Role::parse(
            std::path::Path::new("r.yaml"),
            &format!("name: r\nchecks:\n{yaml}"),
        )
        .unwrap();
        RoleChecks::from([("r".to_string(), role.checks)])
    }

    /// A one-request HTTP server on a free loopback port.
    fn serve_once(answer: &'static str) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            s.write_all(answer.as_bytes()).unwrap();
        });
        port
    }

    #[test]
    fn commands_pass_on_exit_0_and_say_why_they_fail() {
        let out = run_all(
            &checks(
                "  - command: 'true'\n  - command: 'echo broken >&2; exit 3'\n  - command: sleep 5\n    timeout_seconds: 1\n",
            ),
            "127.0.0.1",
        );
        assert!(out[0].ok, "{out:?}");
        assert!(!out[1].ok && out[1].detail == "exit 3: broken", "{out:?}");
        assert!(!out[2].ok && out[2].detail.contains("timeout"), "{out:?}");
    }

    #[test]
    fn tcp_connects_to_the_node_address_by_default() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let out = run_all(
            &checks(&format!("  - tcp: {{port: {port}}}\n")),
            "127.0.0.1",
        );
        assert!(out[0].ok, "{out:?}");
        assert_eq!(out[0].probe, format!("tcp 127.0.0.1:{port}"));
        drop(listener);
        let out = run_all(
            &checks(&format!("  - tcp: {{port: {port}}}\n")),
            "127.0.0.1",
        );
        assert!(
            !out[0].ok && out[0].detail.contains("cannot connect"),
            "{out:?}"
        );
    }

    #[test]
    fn http_checks_status_and_body() {
        let ok = "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let port = serve_once(ok);
        let out = run_all(
            &checks(&format!(
                "  - http: {{port: {port}, path: /health, contains: ok}}\n"
            )),
            "127.0.0.1",
        );
        assert!(out[0].ok, "{out:?}");
        let port = serve_once(ok);
        let out = run_all(
            &checks(&format!("  - http: {{port: {port}, contains: fine}}\n")),
            "127.0.0.1",
        );
        assert_eq!(out[0].detail, "HTTP 200, but the body lacks \"fine\"");
        let port = serve_once("HTTP/1.0 503 Busy\r\nContent-Length: 0\r\n\r\n");
        let out = run_all(
            &checks(&format!("  - http: {{port: {port}}}\n")),
            "127.0.0.1",
        );
        assert_eq!(out[0].detail, "HTTP 503, wanted 200");
    }

    #[test]
    fn waiting_runs_failed_checks_again_until_they_pass() {
        let dir = tempfile::tempdir().unwrap();
        let flag = dir.path().join("up");
        let script = format!(
            "  - command: 'test -e {0} || {{ touch {0}; exit 1; }}'\n",
            flag.display()
        );
        let out = run_all(&checks(&script), "127.0.0.1");
        assert!(!out[0].ok, "the first try fails and leaves the flag");
        std::fs::remove_file(&flag).unwrap();
        let out = run_until_passed(&checks(&script), "127.0.0.1", Duration::from_secs(10));
        assert!(out[0].ok, "{out:?}");
    }
}
