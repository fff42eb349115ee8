//! A role's `checks:`: how to tell that a node of the role works once it
//! has converged. `cm-agent check` runs them (scripts/try-role.sh does
//! after a converge); later health checks read the same key.
//!
//! ```yaml
//! checks:
//!   - name: memcached answers       # optional: a name is made from the probe
//!     tcp: {port: 11211}            # host: the node's private address
//!   - http: {port: 80, path: /health, status: 200, contains: ok}
//!   - command: apache2ctl configtest
//!     timeout_seconds: 10           # default 5, at most 300
//! ```
//!
//! Each check has exactly one probe. `host` defaults to the node's private
//! address (EC2's local IPv4, else its primary address), the one its peers
//! reach it on; `command` runs with `sh -c` as root and passes on exit 0.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use crate::error::{LoadError, Pos};

pub const DEFAULT_TIMEOUT_SECONDS: u32 = 5;
pub const MAX_TIMEOUT_SECONDS: u32 = 300;

/// One check: a probe, and how long it may take.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    #[serde(flatten)]
    pub probe: Probe,
    pub timeout_seconds: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Probe {
    /// `sh -c COMMAND` exits 0.
    Command(String),
    /// A TCP connection is accepted.
    Tcp(Tcp),
    /// A plain-HTTP GET answers with `status`, its body holding `contains`.
    Http(Http),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tcp {
    /// `None`: the node's private address.
    pub host: Option<String>,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Http {
    /// `None`: the node's private address.
    pub host: Option<String>,
    pub port: u16,
    pub path: String,
    pub status: u16,
    pub contains: Option<String>,
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = |h: &Option<String>| h.clone().unwrap_or_else(|| "address".into());
        match self {
            Probe::Command(c) => write!(f, "command {c}"),
            Probe::Tcp(t) => write!(f, "tcp {}:{}", host(&t.host), t.port),
            Probe::Http(h) => write!(f, "http {}:{}{}", host(&h.host), h.port, h.path),
        }
    }
}

/// `checks:` as written, checked by [`parse`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCheck {
    name: Option<String>,
    command: Option<String>,
    tcp: Option<RawTcp>,
    http: Option<RawHttp>,
    timeout_seconds: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTcp {
    host: Option<String>,
    port: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    host: Option<String>,
    #[serde(default = "http_port")]
    port: u32,
    #[serde(default = "root_path")]
    path: String,
    #[serde(default = "ok_status")]
    status: u16,
    contains: Option<String>,
}

fn http_port() -> u32 {
    80
}

fn root_path() -> String {
    "/".into()
}

fn ok_status() -> u16 {
    200
}

/// Validate a role's checks; errors name the file, the line and `checks[N]`.
pub(crate) fn parse(file: &Path, raw: Vec<Spanned<RawCheck>>) -> Result<Vec<Check>, LoadError> {
    let mut checks: Vec<Check> = Vec::with_capacity(raw.len());
    for (i, c) in raw.into_iter().enumerate() {
        let pos = Pos::of(&c.referenced);
        let check =
            one(c.value).map_err(|e| LoadError::new(file, pos, format!("checks[{i}]: {e}")))?;
        if checks.iter().any(|earlier| earlier.name == check.name) {
            return Err(LoadError::new(
                file,
                pos,
                format!("checks[{i}]: another check is named {:?}", check.name),
            ));
        }
        checks.push(check);
    }
    Ok(checks)
}

fn one(raw: RawCheck) -> Result<Check, String> {
    if let Some(name) = &raw.name
        && (name.trim().is_empty() || name.chars().any(char::is_control))
    {
        return Err(format!(
            "name {name:?}: some text, without control characters"
        ));
    }
    let probe = match (raw.command, raw.tcp, raw.http) {
        (Some(c), None, None) if c.trim().is_empty() => return Err("command is empty".into()),
        (Some(c), None, None) => Probe::Command(c),
        (None, Some(t), None) => Probe::Tcp(Tcp {
            host: host(t.host)?,
            port: port(t.port)?,
        }),
        (None, None, Some(h)) => {
            if !h.path.starts_with('/') || !h.path.chars().all(|c| c.is_ascii_graphic()) {
                return Err(format!(
                    "http.path {:?} must start with / and hold printable ASCII only (no spaces)",
                    h.path
                ));
            }
            if h.contains.as_deref() == Some("") {
                return Err("http.contains is empty: leave it out to check the status only".into());
            }
            if !(100..=599).contains(&h.status) {
                return Err(format!("http.status {} is not an HTTP status", h.status));
            }
            Probe::Http(Http {
                host: host(h.host)?,
                port: port(h.port)?,
                path: h.path,
                status: h.status,
                contains: h.contains,
            })
        }
        _ => return Err("give exactly one of command, tcp or http".into()),
    };
    let timeout_seconds = raw.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT_SECONDS);
    if !(1..=MAX_TIMEOUT_SECONDS).contains(&timeout_seconds) {
        return Err(format!(
            "timeout_seconds: {timeout_seconds} is outside 1..={MAX_TIMEOUT_SECONDS}"
        ));
    }
    Ok(Check {
        name: raw.name.unwrap_or_else(|| probe.to_string()),
        probe,
        timeout_seconds,
    })
}

fn port(p: u32) -> Result<u16, String> {
    match u16::try_from(p) {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("port {p} is not a port (1-65535)")),
    }
}

/// A host name or address: no scheme, path, port or spaces.
fn host(h: Option<String>) -> Result<Option<String>, String> {
    match h {
        Some(h)
            if h.is_empty()
                || !h
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c)) =>
        {
            Err(format!(
                "host {h:?}: a host name or IPv4 address, without scheme or port"
            ))
        }
        h => Ok(h),
    }
}

#[cfg(test)]
mod tests {
    use crate::role::Role;

    fn role(checks: &str) -> Result<Role, String> {
        Role::parse(
            std::path::Path::new("roles/web.yaml"),
            &format!("name: web\nchecks:\n{checks}"),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn checks_parse_with_defaults_and_names() {
        let r = role(
            "  - tcp: {port: 11211}\n  - name: health\n    http: {path: /health, contains: ok}\n    timeout_seconds: 10\n  - command: apache2ctl configtest\n",
        )
        .unwrap();
        let names: Vec<_> = r.checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "tcp address:11211",
                "health",
                "command apache2ctl configtest"
            ]
        );
        let json = serde_json::to_value(&r.checks).unwrap();
        assert_eq!(json[0]["tcp"]["port"], 11211);
        assert_eq!(json[1]["http"]["port"], 80);
        assert_eq!(json[1]["http"]["status"], 200);
        assert_eq!(json[1]["timeout_seconds"], 10);
        assert_eq!(json[2]["command"], "apache2ctl configtest");
        assert_eq!(json[2]["timeout_seconds"], 5);
        let back: Vec<super::Check> = serde_json::from_value(json).unwrap();
        assert_eq!(back, r.checks, "the wire form reads back");
    }

    #[test]
    fn bad_checks_name_the_line_and_the_check() {
        for (yaml, wanted) in [
            ("  - {}\n", "checks[0]: give exactly one of"),
            (
                "  - tcp: {port: 1}\n  - tcp: {port: 1}\n    command: x\n",
                "roles/web.yaml:4:",
            ),
            (
                "  - tcp: {port: 1}\n  - tcp: {port: 1}\n    command: x\n",
                "checks[1]: give exactly one",
            ),
            ("  - tcp: {port: 0}\n", "port 0"),
            (
                "  - tcp: {port: 70000}\n",
                "checks[0]: port 70000 is not a port",
            ),
            ("  - tcp: {port: 1, host: 'http://x'}\n", "without scheme"),
            ("  - http: {path: health}\n", "must start with /"),
            ("  - http: {status: 1000}\n", "not an HTTP status"),
            ("  - command: ' '\n", "command is empty"),
            (
                "  - command: x\n    timeout_seconds: 0\n",
                "outside 1..=300",
            ),
            ("  - command: x\n    retries: 3\n", "retries"),
            ("  - http: {path: \"/a#b\\u0000\"}\n", "printable ASCII"),
            ("  - http: {contains: ''}\n", "http.contains is empty"),
            ("  - name: ''\n    command: x\n", "name \"\""),
            (
                "  - tcp: {port: 1}\n  - tcp: {port: 1}\n",
                "checks[1]: another check is named",
            ),
        ] {
            let err = role(yaml).unwrap_err();
            assert!(err.contains(wanted), "{yaml}: {err}");
            assert!(err.contains("roles/web.yaml"), "{err}");
        }
    }
}
