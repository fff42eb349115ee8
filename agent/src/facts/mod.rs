//! Facts: what the agent knows about the machine it runs on.
//!
//! Facts are gathered at the start of every run (docs/agent.md,
//! step 1), reported to the server, and given to templates as `node.*`.
//! They must be cheap enough to gather every run, so they come from files
//! under `/proc`, `/sys` and `/etc` plus one getifaddrs(3) call, with no
//! subprocess and no network traffic: never a DNS query, never the EC2
//! metadata address (decisions.md, "EC2 metadata only on EC2").
//!
//! Gathering never fails. A fact that cannot be read is empty (an empty
//! string, zero, an empty list or `None`) and a `debug!` line says why, so
//! a container without `/sys` still converges.
//!
//! [`gather`] does not read EC2 metadata, which is network traffic: the
//! daemon calls [`ec2::gather`] on a blocking thread and sets [`Facts::ec2`];
//! it asks only when configured to or when DMI says the node is on EC2.
//! Nor does it own the `--node FILE` override: the caller deserializes a
//! [`Facts`] from that file instead of calling [`gather`].
//!
//! docs/facts.md lists every fact with its source and an example.

pub mod ec2;
mod hardware;
mod host;
mod kernel;
mod network;
mod os;
mod runtime;
mod source;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use ec2::{Cloud, Ec2Facts, Ec2Settings};
pub use kernel::KernelFacts;
pub use network::{AddressFamily, Interface, InterfaceAddress};
pub use os::OsFacts;
pub use runtime::InitSystem;

use source::SystemRoot;

/// What the agent knows about the machine it runs on; templates see it as `node.*`.
///
/// Field names are the template names. Missing fields take their empty
/// value when deserializing, so a hand-written `--node` file may list only
/// the facts a test needs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Facts {
    /// Short hostname, `web1`.
    pub hostname: String,
    /// Fully qualified name from `/etc/hosts`, else the hostname.
    pub fqdn: String,
    /// Primary IPv4 address: on the default route's interface.
    pub ipaddress: Option<Ipv4Addr>,
    /// Primary global IPv6 address, if the node has one.
    pub ip6address: Option<Ipv6Addr>,
    /// Every interface with its addresses and MAC.
    pub interfaces: Vec<Interface>,
    /// The distribution, from os-release.
    pub os: OsFacts,
    /// The running kernel.
    pub kernel: KernelFacts,
    /// Debian architecture name, `amd64` or `arm64`: what apt calls it.
    pub arch: String,
    /// Online CPUs.
    pub cpu_count: u32,
    /// Total memory in MiB.
    pub memory_mib: u64,
    /// Total swap in MiB.
    pub swap_mib: u64,
    /// The init system that manages services.
    pub init: InitSystem,
    /// Container runtime (`docker`, `lxc`, ...) when the node is a container.
    pub container: Option<String>,
    /// Whole seconds since boot.
    pub uptime_seconds: u64,
    /// EC2 instance metadata; [`gather`] leaves it `None` and the caller
    /// fills it from [`ec2::gather`]. Absent from `node` when `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ec2: Option<Ec2Facts>,
}

/// Gathers the facts of the machine the agent runs on.
pub fn gather() -> Facts {
    gather_from(Path::new("/"))
}

/// Gathers facts reading `/proc`, `/sys`, `/etc` and `/run` under `root`
/// instead of `/`, so tests can use a fake tree. Interfaces still come from
/// the real machine: no file lists IPv4 addresses.
pub fn gather_from(root: &Path) -> Facts {
    let root = SystemRoot::new(root);
    let names = host::gather(&root);
    let network = network::gather(&root);
    let kernel = kernel::gather(&root);
    let memory = hardware::memory(&root);
    Facts {
        hostname: names.hostname,
        fqdn: names.fqdn,
        ipaddress: network.ipaddress,
        ip6address: network.ip6address,
        interfaces: network.interfaces,
        os: os::gather(&root),
        arch: kernel::debian_arch(&kernel.machine),
        kernel,
        cpu_count: hardware::cpu_count(&root),
        memory_mib: memory.memory_mib,
        swap_mib: memory.swap_mib,
        init: runtime::init_system(&root),
        container: runtime::container(&root),
        uptime_seconds: runtime::uptime_seconds(&root),
        ec2: None,
    }
}

#[cfg(test)]
mod tests {
    use super::source::fake_root;
    use super::*;

    const FAKE_TREE: &[(&str, &str)] = &[
        ("proc/sys/kernel/hostname", "web1\n"),
        ("proc/sys/kernel/osrelease", "6.1.0-18-cloud-amd64\n"),
        ("proc/sys/kernel/arch", "aarch64\n"),
        (
            "etc/hosts",
            "127.0.0.1 localhost\n127.0.1.1 web1.prod.example.com web1\n",
        ),
        (
            "etc/os-release",
            "ID=ubuntu\nID_LIKE=debian\nNAME=\"Ubuntu\"\nVERSION_ID=\"22.04\"\nVERSION_CODENAME=jammy\n",
        ),
        ("proc/meminfo", "MemTotal: 8388608 kB\nSwapTotal: 0 kB\n"),
        ("sys/devices/system/cpu/online", "0-3\n"),
        ("proc/uptime", "3600.25 7000.00\n"),
        ("proc/1/comm", "init\n"),
        ("proc/1/cgroup", "0::/docker/abc123\n"),
        (
            "proc/net/route",
            "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n",
        ),
    ];

    #[test]
    fn gather_from_fake_tree_reads_every_file_fact() {
        let (dir, _) = fake_root(FAKE_TREE);
        let facts = gather_from(dir.path());
        assert_eq!(facts.hostname, "web1");
        assert_eq!(facts.fqdn, "web1.prod.example.com");
        assert_eq!(facts.os.id, "ubuntu");
        assert_eq!(facts.os.family, "debian");
        assert_eq!(facts.os.version_codename, "jammy");
        assert_eq!(facts.kernel.release, "6.1.0-18-cloud-amd64");
        assert_eq!(facts.kernel.machine, "aarch64");
        assert_eq!(facts.arch, "arm64");
        assert_eq!(facts.cpu_count, 4);
        assert_eq!(facts.memory_mib, 8192);
        assert_eq!(facts.swap_mib, 0);
        assert_eq!(facts.uptime_seconds, 3600);
        assert_eq!(facts.init, InitSystem::Sysvinit);
        assert_eq!(facts.container.as_deref(), Some("docker"));
        assert_eq!(facts.ec2, None);
    }

    #[test]
    fn gather_from_empty_tree_still_returns_facts() {
        let (dir, _) = fake_root(&[]);
        let facts = gather_from(dir.path());
        assert_eq!(facts.os, OsFacts::default());
        assert_eq!(facts.memory_mib, 0);
        assert_eq!(facts.init, InitSystem::NoInit);
        assert_eq!(facts.container, None);
        // The syscall fallbacks still name and count the real machine.
        assert!(!facts.hostname.is_empty());
        assert!(facts.cpu_count >= 1);
    }

    #[test]
    fn primary_address_belongs_to_a_gathered_interface() {
        let facts = gather();
        let listed = |address: std::net::IpAddr| {
            facts
                .interfaces
                .iter()
                .any(|i| i.addresses.iter().any(|a| a.address == address))
        };
        if let Some(v4) = facts.ipaddress {
            assert!(listed(v4.into()), "{v4} not among {:?}", facts.interfaces);
        }
        if let Some(v6) = facts.ip6address {
            assert!(listed(v6.into()), "{v6} not among {:?}", facts.interfaces);
        }
    }

    #[test]
    fn gather_on_this_debian_machine() {
        let facts = gather();
        assert!(!facts.hostname.is_empty());
        assert!(!facts.fqdn.is_empty());
        assert!(facts.memory_mib > 0);
        assert!(facts.cpu_count >= 1);
        assert_eq!(facts.os.id, "debian");
        assert_eq!(facts.os.family, "debian");
        assert!(!facts.kernel.release.is_empty());
        assert!(!facts.interfaces.is_empty());
    }

    #[test]
    fn serialized_names_are_the_template_names() {
        let facts = Facts {
            ipaddress: Some(Ipv4Addr::new(10, 0, 1, 17)),
            ..Facts::default()
        };
        let json = serde_json::to_value(&facts).expect("facts serialize");
        assert_eq!(json["ipaddress"], "10.0.1.17");
        assert_eq!(json["ip6address"], serde_json::Value::Null);
        assert_eq!(json["init"], "none");
        assert!(json.get("ec2").is_none(), "ec2 is skipped while None");
        assert!(json["os"].get("version_codename").is_some());
    }

    #[test]
    fn ec2_facts_serialize_as_a_map_under_ec2() {
        let facts = Facts {
            ec2: Some(Ec2Facts {
                instance_id: "i-0123456789abcdef0".into(),
                local_ipv4: Some(Ipv4Addr::new(10, 0, 1, 17)),
                ..Ec2Facts::default()
            }),
            ..Facts::default()
        };
        let json = serde_json::to_value(&facts).expect("facts serialize");
        assert_eq!(json["ec2"]["instance_id"], "i-0123456789abcdef0");
        assert_eq!(json["ec2"]["local_ipv4"], "10.0.1.17");
        assert_eq!(json["ec2"]["availability_zone"], "");
    }

    #[test]
    fn partial_node_file_fills_the_rest_with_empty_values() {
        let facts: Facts = serde_json::from_str(r#"{"hostname": "web1", "memory_mib": 2048}"#)
            .expect("partial facts deserialize");
        assert_eq!(facts.hostname, "web1");
        assert_eq!(facts.memory_mib, 2048);
        assert_eq!(facts.cpu_count, 0);
    }

    #[test]
    fn facts_round_trip_through_json() {
        let facts = gather();
        let json = serde_json::to_string(&facts).expect("facts serialize");
        let back: Facts = serde_json::from_str(&json).expect("facts deserialize");
        assert_eq!(back, facts);
    }
}
