//! The node's names: short hostname and fully qualified name.
//!
//! The fqdn comes from `/etc/hosts` only. Resolving it through DNS would
//! make fact gathering slow and dependent on the network (and on EC2 the
//! resolver may not be up yet at boot), so a name that `/etc/hosts` does not
//! qualify stays short.

use tracing::debug;

use super::source::SystemRoot;

/// The short hostname and the fqdn, as [`super::Facts`] reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct HostNames {
    pub(super) hostname: String,
    pub(super) fqdn: String,
}

pub(super) fn gather(root: &SystemRoot) -> HostNames {
    let Some(configured) = configured_hostname(root) else {
        debug!("hostname: no source gave a name");
        return HostNames {
            hostname: String::new(),
            fqdn: String::new(),
        };
    };
    let hosts = root.read("/etc/hosts").unwrap_or_default();
    names_from(&configured, &hosts)
}

/// The running kernel's name first (it is what the node answers to now),
/// then `/etc/hostname`, then the `gethostname` syscall.
fn configured_hostname(root: &SystemRoot) -> Option<String> {
    root.read_value("/proc/sys/kernel/hostname")
        .or_else(|| root.read("/etc/hostname").and_then(|t| first_name_line(&t)))
        .or_else(syscall_hostname)
}

/// `/etc/hostname` may carry comments (hostname(5)).
fn first_name_line(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .find(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_string)
}

fn syscall_hostname() -> Option<String> {
    match nix::unistd::gethostname() {
        Ok(name) => Some(name.to_string_lossy().into_owned()).filter(|n| !n.is_empty()),
        Err(error) => {
            debug!(%error, "hostname: gethostname failed");
            None
        }
    }
}

/// A configured name that is already dotted is its own fqdn; otherwise
/// `/etc/hosts` may qualify it; otherwise the fqdn is the short name.
fn names_from(configured: &str, hosts: &str) -> HostNames {
    let (short, domain) = match configured.split_once('.') {
        Some((short, domain)) => (short, Some(domain)),
        None => (configured, None),
    };
    let fqdn = match domain {
        Some(_) => configured.to_string(),
        None => fqdn_from_hosts(hosts, short).unwrap_or_else(|| short.to_string()),
    };
    HostNames {
        hostname: short.to_string(),
        fqdn,
    }
}

/// Finds the first line of `/etc/hosts` that names `short` and returns the
/// dotted name on it that starts with `short.` (Debian writes
/// `127.0.1.1 web1.example.com web1`).
pub(super) fn fqdn_from_hosts(hosts: &str, short: &str) -> Option<String> {
    let qualified_prefix = format!("{short}.");
    hosts
        .lines()
        .map(|line| line.split('#').next().unwrap_or_default())
        .filter_map(|line| {
            let names: Vec<&str> = line.split_whitespace().skip(1).collect();
            let mentions = names
                .iter()
                .any(|n| *n == short || n.starts_with(&qualified_prefix));
            mentions.then_some(names)
        })
        .find_map(|names| {
            names
                .into_iter()
                .find(|n| n.starts_with(&qualified_prefix) && n.len() > qualified_prefix.len())
                .map(str::to_string)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTS: &str = "\
127.0.0.1\tlocalhost
# 10.0.0.9 web1.wrong.example web1
127.0.1.1\tweb1.example.com web1   # the Debian installer's line
::1\tlocalhost ip6-localhost ip6-loopback
10.0.0.7 db1 db1.internal
";

    #[test]
    fn hosts_line_qualifies_short_name() {
        assert_eq!(
            fqdn_from_hosts(HOSTS, "web1").as_deref(),
            Some("web1.example.com")
        );
    }

    #[test]
    fn dotted_alias_after_short_name_still_qualifies() {
        assert_eq!(
            fqdn_from_hosts(HOSTS, "db1").as_deref(),
            Some("db1.internal")
        );
    }

    #[test]
    fn unknown_or_prefix_only_names_are_not_qualified() {
        assert_eq!(fqdn_from_hosts(HOSTS, "web"), None);
        assert_eq!(fqdn_from_hosts(HOSTS, "localhost"), None);
        assert_eq!(fqdn_from_hosts("10.0.0.1 web1.\n", "web1"), None);
    }

    #[test]
    fn short_hostname_without_hosts_entry_is_its_own_fqdn() {
        let names = names_from("cache3", HOSTS);
        assert_eq!(names.hostname, "cache3");
        assert_eq!(names.fqdn, "cache3");
    }

    #[test]
    fn dotted_configured_name_splits_into_short_and_fqdn() {
        let names = names_from("ip-10-0-0-1.ec2.internal", "");
        assert_eq!(names.hostname, "ip-10-0-0-1");
        assert_eq!(names.fqdn, "ip-10-0-0-1.ec2.internal");
    }

    #[test]
    fn etc_hostname_comments_are_skipped() {
        assert_eq!(
            first_name_line("# set by cloud-init\n\nweb1\n").as_deref(),
            Some("web1")
        );
    }
}
