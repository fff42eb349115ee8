//! `cm-agent pose`: stand in for a node that does not exist, so a cookbook
//! can be tried against peers (scripts/try-role.sh puts them in a test
//! node's cluster view). It enrolls with the facts of a file instead of
//! this machine's, reports them, and beats every minute, as a daemon does,
//! until stopped. It never converges: nothing changes on the machine it
//! runs on but its state dir.

use std::path::Path;

use super::{Fatal, Node, revoked};
use crate::config::Config;
use crate::daemon::{Busy, heartbeat_loop, stop_signal};
use crate::facts::Facts;
use crate::remote::RemoteError;

/// The facts a posing node reports, from a YAML file: any fact may be
/// left out (`ipaddress` is the one peers read); `hostname` and `fqdn`
/// default to the node's name.
pub fn read_facts(path: &Path, name: &str) -> Result<Facts, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut facts: Facts = cm_model::yaml::parse(path, &text).map_err(|e| e.to_string())?;
    if facts.hostname.is_empty() {
        facts.hostname = name.to_string();
    }
    if facts.fqdn.is_empty() {
        facts.fqdn = facts.hostname.clone();
    }
    Ok(facts)
}

/// Enroll (or reuse the identity in the state dir), report `facts`, then
/// beat until SIGTERM or SIGINT. With `once`, return after the report.
pub async fn pose(config: &Config, facts: &Facts, once: bool) -> Result<String, Fatal> {
    let stop = stop_signal();
    let node = Node::connect(config, facts).await.map_err(|e| match e {
        RemoteError::Refused(m) => Fatal::Refused(m),
        RemoteError::Revoked(m) => Fatal::Revoked(m),
        e => Fatal::Setup(e.to_string()),
    })?;
    match node.report_facts(facts).await? {
        Ok(()) => {}
        Err(RemoteError::Revoked(m)) => return Err(revoked(m)),
        Err(e) => return Err(Fatal::Setup(format!("facts not taken: {e}"))),
    }
    let name = node.identity.name.clone();
    if !once {
        tracing::info!(node = %name, "posing: enrolled, facts reported, beating every minute");
        tokio::select! {
            () = heartbeat_loop(node.channel(), Busy::default()) => {}
            () = stop.notified() => {}
        }
    }
    Ok(name)
}
