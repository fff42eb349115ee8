//! The node's interfaces and its primary IPv4 and IPv6 addresses.
//!
//! "Primary" means the address peers should use: the first address on the
//! interface holding the default route. The cluster view hands it to other
//! nodes (Nagios checks it, Apache points PHP sessions at memcached's), so
//! a bridge such as `docker0` must not win over the routed interface.

mod interfaces;
mod routes;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use interfaces::{AddressFamily, Interface, InterfaceAddress};

use super::source::SystemRoot;

/// Interfaces and the primary addresses chosen among them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct NetworkFacts {
    pub(super) interfaces: Vec<Interface>,
    pub(super) ipaddress: Option<Ipv4Addr>,
    pub(super) ip6address: Option<Ipv6Addr>,
}

pub(super) fn gather(root: &SystemRoot) -> NetworkFacts {
    let interfaces = interfaces::gather();
    let v4_routes = root
        .read("/proc/net/route")
        .map(|t| routes::ipv4_default_routes(&t))
        .unwrap_or_default();
    let v6_routes = root
        .read("/proc/net/ipv6_route")
        .map(|t| routes::ipv6_default_routes(&t))
        .unwrap_or_default();
    let v4_interface = routes::preferred_interface(&v4_routes);
    // A node with no IPv6 default route usually still has its global IPv6
    // address on the same interface as its IPv4 one.
    let v6_interface = routes::preferred_interface(&v6_routes).or(v4_interface);
    NetworkFacts {
        ipaddress: primary_address(&interfaces, v4_interface, routable_ipv4),
        ip6address: primary_address(&interfaces, v6_interface, routable_ipv6),
        interfaces,
    }
}

/// The first address `pick` accepts on the preferred interface, else the
/// first it accepts on any interface.
fn primary_address<T>(
    interfaces: &[Interface],
    preferred: Option<&str>,
    pick: impl Fn(&IpAddr) -> Option<T> + Copy,
) -> Option<T> {
    let first_on =
        |interface: &Interface| interface.addresses.iter().find_map(|a| pick(&a.address));
    let on_preferred = interfaces
        .iter()
        .filter(|i| Some(i.name.as_str()) == preferred)
        .find_map(first_on);
    on_preferred.or_else(|| interfaces.iter().find_map(first_on))
}

fn routable_ipv4(address: &IpAddr) -> Option<Ipv4Addr> {
    match address {
        IpAddr::V4(v4) if !v4.is_loopback() && !v4.is_link_local() => Some(*v4),
        _ => None,
    }
}

/// Loopback, link-local (`fe80::/10`) and multicast addresses cannot be
/// given to peers.
fn routable_ipv6(address: &IpAddr) -> Option<Ipv6Addr> {
    match address {
        IpAddr::V6(v6)
            if !v6.is_loopback() && !v6.is_unicast_link_local() && !v6.is_multicast() =>
        {
            Some(*v6)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interface(name: &str, addresses: &[(&str, u8)]) -> Interface {
        let addresses = addresses
            .iter()
            .map(|(text, prefix)| {
                let address: IpAddr = text.parse().expect("test addresses are valid");
                let family = if address.is_ipv4() {
                    AddressFamily::Inet
                } else {
                    AddressFamily::Inet6
                };
                InterfaceAddress {
                    family,
                    address,
                    prefix: *prefix,
                }
            })
            .collect();
        Interface {
            name: name.into(),
            addresses,
            mac: None,
        }
    }

    fn machine() -> Vec<Interface> {
        vec![
            interface("lo", &[("127.0.0.1", 8), ("::1", 128)]),
            interface("docker0", &[("172.17.0.1", 16)]),
            interface(
                "eth0",
                &[
                    ("192.0.2.2", 24),
                    ("fe80::fc:ff:fe00:1", 64),
                    ("fd00::2", 64),
                ],
            ),
        ]
    }

    #[test]
    fn primary_ipv4_is_on_the_default_route_interface() {
        let primary = primary_address(&machine(), Some("eth0"), routable_ipv4);
        assert_eq!(primary, Some(Ipv4Addr::new(192, 0, 2, 2)));
    }

    #[test]
    fn without_default_route_first_non_loopback_ipv4_wins() {
        let primary = primary_address(&machine(), None, routable_ipv4);
        assert_eq!(primary, Some(Ipv4Addr::new(172, 17, 0, 1)));
    }

    #[test]
    fn primary_ipv6_skips_link_local_addresses() {
        let primary = primary_address(&machine(), Some("eth0"), routable_ipv6);
        assert_eq!(primary, "fd00::2".parse().ok());
    }

    #[test]
    fn loopback_only_machine_has_no_primary_address() {
        let lo = [interface("lo", &[("127.0.0.1", 8), ("::1", 128)])];
        assert_eq!(primary_address(&lo, None, routable_ipv4), None);
        assert_eq!(primary_address(&lo, Some("lo"), routable_ipv6), None);
    }
}
