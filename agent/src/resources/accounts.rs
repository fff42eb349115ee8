//! What the user and group providers share: reading /etc/group, and running
//! the passwd package's tools (useradd, groupmod, gpasswd...) by argv, never
//! through a shell, so no name or comment is ever interpreted.
//!
//! State is read from the local files the tools edit: a group known only
//! through NSS (LDAP, sssd) is not one these tools can change.

use std::time::Duration;

use super::{CommandFailed, Outcome};
use crate::command::{Cmd, CommandError};
use crate::fsutil::OwnerError;

pub const GROUP_FILE: &str = "/etc/group";

/// The tools lock /etc/passwd and /etc/group; another writer may hold them briefly.
const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

/// Why an account (a user or a group) could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("reading {GROUP_FILE}: {0}")]
    ReadGroups(#[source] std::io::Error),
    #[error(transparent)]
    Lookup(#[from] OwnerError),
    /// A tool could not be started or waited for.
    #[error(transparent)]
    Run(#[from] CommandError),
    #[error(transparent)]
    Tool(#[from] CommandFailed),
}

impl AccountError {
    pub(super) fn without_output(&self) -> String {
        match self {
            AccountError::Tool(e) => e.without_output(),
            other => other.to_string(),
        }
    }
}

/// One line of /etc/group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// Parse /etc/group text; malformed lines (and NIS `+` lines) are skipped.
pub fn parse_group_file(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split(':');
            let (name, _pw, gid, members) = (f.next()?, f.next()?, f.next()?, f.next()?);
            let gid = gid.trim().parse().ok()?;
            let members = members
                .split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(String::from)
                .collect();
            Some(GroupEntry {
                name: name.to_string(),
                gid,
                members,
            })
        })
        .collect()
}

pub fn read_groups() -> Result<Vec<GroupEntry>, AccountError> {
    std::fs::read_to_string(GROUP_FILE)
        .map(|t| parse_group_file(&t))
        .map_err(AccountError::ReadGroups)
}

/// A tool call: program and its arguments.
pub type Call = (&'static str, Vec<String>);

/// What converging an account does: the differences in words, and the calls
/// that remove them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub changes: Vec<String>,
    pub calls: Vec<Call>,
}

impl Plan {
    /// Run the calls in order unless why-run; the first failure stops.
    pub fn apply(self, why_run: bool) -> Result<Outcome, AccountError> {
        if !why_run {
            for (program, args) in &self.calls {
                run_tool(program, args)?;
            }
        }
        Ok(Outcome {
            changes: self.changes,
            diff: None,
        })
    }
}

fn run_tool(program: &str, args: &[String]) -> Result<(), AccountError> {
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    Cmd::new(program, &argv)
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .timeout(TOOL_TIMEOUT)
        .run()?
        .ok()
        .map_err(|e| CommandFailed::new(format!("{program} {}", args.join(" ")), e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_groups_and_skips_malformed_lines() {
        let text = "root:x:0:\nadm:x:4:syslog,alice\n+nis\nbad:x:notanumber:\nweb:x:1001: bob , \n";
        let g = parse_group_file(text);
        assert_eq!(
            g.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
            ["root", "adm", "web"]
        );
        assert_eq!(g[1].members, ["syslog", "alice"]);
        assert_eq!((g[2].gid, g[2].members.clone()), (1001, vec!["bob".into()]));
        assert!(g[0].members.is_empty());
    }
}
