//! Default routes from the kernel's routing tables, `/proc/net/route` and
//! `/proc/net/ipv6_route`: the interface holding the default route is the
//! one peers reach the node through, so its address is the primary one.

/// `RTF_UP` from `<linux/route.h>`: the route is usable.
const RTF_UP: u32 = 0x0001;
/// `RTF_REJECT`: an unreachable route, such as the kernel's IPv6 default
/// on `lo` when no real IPv6 default exists.
const RTF_REJECT: u32 = 0x0200;

/// A usable default route: the interface it leaves through and its metric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DefaultRoute {
    pub(super) interface: String,
    pub(super) metric: u32,
}

/// Default routes in `/proc/net/route`: a header line, then
/// `Iface Destination Gateway Flags RefCnt Use Metric Mask ...` with
/// addresses and flags in hex.
pub(super) fn ipv4_default_routes(table: &str) -> Vec<DefaultRoute> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (interface, destination, flags) = (fields.first()?, fields.get(1)?, fields.get(3)?);
            let (metric, mask) = (fields.get(6)?, fields.get(7)?);
            let is_default = hex(destination)? == 0 && hex(mask)? == 0;
            usable_default(is_default, interface, hex(flags)?, metric.parse().ok()?)
        })
        .collect()
}

/// Default routes in `/proc/net/ipv6_route`: no header, fields
/// `dest dest_len src src_len next_hop metric refcnt use flags iface`,
/// all in hex.
pub(super) fn ipv6_default_routes(table: &str) -> Vec<DefaultRoute> {
    table
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (destination, prefix_len) = (fields.first()?, fields.get(1)?);
            let (metric, flags, interface) = (fields.get(5)?, fields.get(8)?, fields.get(9)?);
            let is_default = destination.bytes().all(|b| b == b'0') && hex(prefix_len)? == 0;
            usable_default(is_default, interface, hex(flags)?, hex(metric)?)
        })
        .collect()
}

fn usable_default(
    is_default: bool,
    interface: &str,
    flags: u32,
    metric: u32,
) -> Option<DefaultRoute> {
    let usable = flags & RTF_UP != 0 && flags & RTF_REJECT == 0 && interface != "lo";
    (is_default && usable).then(|| DefaultRoute {
        interface: interface.to_string(),
        metric,
    })
}

fn hex(field: &str) -> Option<u32> {
    u32::from_str_radix(field, 16).ok()
}

/// The interface of the default route the kernel prefers: the lowest
/// metric, the first listed among equals.
pub(super) fn preferred_interface(routes: &[DefaultRoute]) -> Option<&str> {
    routes
        .iter()
        .min_by_key(|route| route.metric)
        .map(|route| route.interface.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTE: &str = "\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
wlan0\t00000000\t0102A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0
eth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0
docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
";

    const IPV6_ROUTE: &str = "\
fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000002 00000000 00000003     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
";

    #[test]
    fn ipv4_default_route_with_lowest_metric_wins() {
        let routes = ipv4_default_routes(ROUTE);
        assert_eq!(routes.len(), 2);
        assert_eq!(preferred_interface(&routes), Some("eth0"));
    }

    #[test]
    fn ipv6_default_skips_the_reject_route_on_lo() {
        let routes = ipv6_default_routes(IPV6_ROUTE);
        assert_eq!(
            routes,
            vec![DefaultRoute {
                interface: "eth0".into(),
                metric: 0x400,
            }]
        );
    }

    #[test]
    fn tables_without_default_route_have_no_preferred_interface() {
        let header_only = ROUTE.lines().next().unwrap_or_default();
        assert_eq!(preferred_interface(&ipv4_default_routes(header_only)), None);
        assert_eq!(preferred_interface(&ipv6_default_routes("garbage\n")), None);
    }
}
