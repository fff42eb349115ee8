//! Network interfaces with their addresses and MAC, from getifaddrs(3).
//!
//! No file under `/proc` or `/sys` lists IPv4 addresses with their prefix
//! (`/proc/net/fib_trie` is a routing dump, not an address list), so this
//! is the one fact taken from a syscall even under a test root: one
//! netlink dump gives every interface, address and MAC in a consistent
//! snapshot.

use std::net::IpAddr;

use nix::sys::socket::SockaddrStorage;
use serde::{Deserialize, Serialize};
use tracing::debug;

/// A network interface; templates see the list as `node.interfaces`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    /// Kernel name: `eth0`, `ens5`.
    pub name: String,
    /// Every address on it, in the kernel's order (primary first).
    #[serde(default)]
    pub addresses: Vec<InterfaceAddress>,
    /// Hardware address, `0a:1b:2c:3d:4e:5f`; `None` for `lo` and tunnels.
    #[serde(default)]
    pub mac: Option<String>,
}

/// One address of an interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceAddress {
    /// `inet` or `inet6`, as `ip addr` says.
    pub family: AddressFamily,
    /// The address, `10.0.1.17` or `2001:db8::17`.
    pub address: IpAddr,
    /// Prefix length of the network: 24 for a /24.
    pub prefix: u8,
}

/// The address family, named as `ip addr` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AddressFamily {
    #[serde(rename = "inet")]
    Inet,
    #[serde(rename = "inet6")]
    Inet6,
}

/// What one getifaddrs entry tells about an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Entry {
    Address(String, IpAddr, u8),
    Mac(String, [u8; 6]),
    Present(String),
}

pub(super) fn gather() -> Vec<Interface> {
    match nix::ifaddrs::getifaddrs() {
        Ok(entries) => assemble(entries.map(|e| entry_of(e.interface_name, e.address, e.netmask))),
        Err(error) => {
            debug!(%error, "interfaces: getifaddrs failed");
            Vec::new()
        }
    }
}

fn entry_of(
    name: String,
    address: Option<SockaddrStorage>,
    netmask: Option<SockaddrStorage>,
) -> Entry {
    let Some(address) = address else {
        return Entry::Present(name);
    };
    let mask = netmask.as_ref();
    if let Some(v4) = address.as_sockaddr_in() {
        let prefix = mask
            .and_then(|m| m.as_sockaddr_in())
            .map_or(32, |m| m.ip().to_bits().count_ones());
        return Entry::Address(name, IpAddr::V4(v4.ip()), prefix_u8(prefix));
    }
    if let Some(v6) = address.as_sockaddr_in6() {
        let prefix = mask
            .and_then(|m| m.as_sockaddr_in6())
            .map_or(128, |m| m.ip().to_bits().count_ones());
        return Entry::Address(name, IpAddr::V6(v6.ip()), prefix_u8(prefix));
    }
    match address.as_link_addr().and_then(|link| link.addr()) {
        Some(mac) if mac != [0; 6] => Entry::Mac(name, mac),
        _ => Entry::Present(name),
    }
}

/// A prefix is at most 128, so this never saturates in practice.
fn prefix_u8(bits: u32) -> u8 {
    u8::try_from(bits).unwrap_or(u8::MAX)
}

/// Groups entries by interface, keeping the order interfaces first appear.
pub(super) fn assemble(entries: impl IntoIterator<Item = Entry>) -> Vec<Interface> {
    let mut interfaces: Vec<Interface> = Vec::new();
    for entry in entries {
        let name = match &entry {
            Entry::Address(name, ..) | Entry::Mac(name, _) | Entry::Present(name) => name,
        };
        let index = match interfaces.iter().position(|i| &i.name == name) {
            Some(index) => index,
            None => {
                interfaces.push(Interface {
                    name: name.clone(),
                    addresses: Vec::new(),
                    mac: None,
                });
                interfaces.len() - 1
            }
        };
        record(&mut interfaces[index], entry);
    }
    interfaces
}

fn record(interface: &mut Interface, entry: Entry) {
    match entry {
        Entry::Address(_, address, prefix) => interface.addresses.push(InterfaceAddress {
            family: if address.is_ipv4() {
                AddressFamily::Inet
            } else {
                AddressFamily::Inet6
            },
            address,
            prefix,
        }),
        Entry::Mac(_, mac) => interface.mac = Some(format_mac(mac)),
        Entry::Present(_) => {}
    }
}

fn format_mac(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|byte| format!("{byte:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(text: &str) -> IpAddr {
        text.parse().expect("test addresses are valid")
    }

    #[test]
    fn entries_group_by_interface_in_first_seen_order() {
        let interfaces = assemble([
            Entry::Present("lo".into()),
            Entry::Mac("eth0".into(), [0x02, 0xfc, 0, 0, 0, 0x01]),
            Entry::Address("lo".into(), address("127.0.0.1"), 8),
            Entry::Address("eth0".into(), address("192.0.2.2"), 24),
            Entry::Address("eth0".into(), address("fd00::2"), 64),
        ]);
        let names: Vec<&str> = interfaces.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["lo", "eth0"]);
        assert_eq!(interfaces[0].mac, None);
        assert_eq!(interfaces[1].mac.as_deref(), Some("02:fc:00:00:00:01"));
        assert_eq!(
            interfaces[1].addresses,
            [
                InterfaceAddress {
                    family: AddressFamily::Inet,
                    address: address("192.0.2.2"),
                    prefix: 24
                },
                InterfaceAddress {
                    family: AddressFamily::Inet6,
                    address: address("fd00::2"),
                    prefix: 64
                },
            ]
        );
    }

    #[test]
    fn addresses_serialize_as_templates_see_them() {
        let entry = InterfaceAddress {
            family: AddressFamily::Inet6,
            address: address("fd00::2"),
            prefix: 64,
        };
        let json = serde_json::to_value(entry).expect("serialize");
        assert_eq!(
            json,
            serde_json::json!({"family": "inet6", "address": "fd00::2", "prefix": 64})
        );
    }
}
