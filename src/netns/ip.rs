//! What `ip -j` says, typed: named namespaces, links, IPv4 routes and addresses of the root
//! namespace (or of a named one), and `Ipv4Net` for the overlap checks the subnet choice needs.

use std::net::Ipv4Addr;

use serde::Deserialize;

use super::cmd;
use super::NetnsError;

/// One entry of `ip -j netns list`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct NetnsEntry {
    pub name: String,
}

/// One entry of `ip -j link show`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Link {
    pub ifname: String,
    #[serde(default)]
    pub master: Option<String>,
    #[serde(default)]
    pub operstate: Option<String>,
    #[serde(default)]
    pub flags: Vec<String>,
}

/// One entry of `ip -j route show`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Route {
    pub dst: String,
    #[serde(default)]
    pub dev: Option<String>,
    #[serde(default)]
    pub gateway: Option<String>,
}

/// One entry of `ip -j addr show`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct LinkAddrs {
    pub ifname: String,
    #[serde(default)]
    pub addr_info: Vec<AddrInfo>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct AddrInfo {
    pub family: String,
    pub local: String,
    pub prefixlen: u8,
}

/// An IPv4 network (`10.1.2.0/24`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Net {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Ipv4Net {
    /// `a.b.c.d/n` or a bare address (a /32); `None` for `default` and anything else.
    pub fn parse(s: &str) -> Option<Ipv4Net> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, p.parse().ok()?),
            None => (s, 32),
        };
        let addr: Ipv4Addr = addr.parse().ok()?;
        (prefix <= 32).then_some(Ipv4Net { addr, prefix })
    }

    fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix)
        }
    }

    /// Whether the two networks share any address.
    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        let m = self.mask() & other.mask();
        u32::from(self.addr) & m == u32::from(other.addr) & m
    }
}

impl std::fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The named namespaces (`ip netns list`).
pub fn netns_names() -> Result<Vec<String>, NetnsError> {
    let entries: Vec<NetnsEntry> = cmd::ip(["-j", "netns", "list"]).json()?;
    Ok(entries.into_iter().map(|e| e.name).collect())
}

/// The links of the root namespace.
pub fn links() -> Result<Vec<Link>, NetnsError> {
    cmd::ip(["-j", "link", "show"]).json()
}

/// The links of a named namespace.
pub fn links_in(netns: &str) -> Result<Vec<Link>, NetnsError> {
    cmd::ip(["-n", netns, "-j", "link", "show"]).json()
}

/// Every IPv4 route of the root namespace, all tables.
pub fn routes() -> Result<Vec<Route>, NetnsError> {
    cmd::ip(["-4", "-j", "route", "show", "table", "all"]).json()
}

/// IPv4 routes of a named namespace (main table).
pub fn routes_in(netns: &str) -> Result<Vec<Route>, NetnsError> {
    cmd::ip(["-n", netns, "-4", "-j", "route", "show"]).json()
}

/// IPv4 addresses of the root namespace.
pub fn addrs() -> Result<Vec<LinkAddrs>, NetnsError> {
    cmd::ip(["-4", "-j", "addr", "show"]).json()
}

/// IPv4 addresses of a named namespace.
pub fn addrs_in(netns: &str) -> Result<Vec<LinkAddrs>, NetnsError> {
    cmd::ip(["-n", netns, "-4", "-j", "addr", "show"]).json()
}

/// Every IPv4 network the root namespace already routes or holds an address in: what a new
/// run's subnet must not overlap.
pub fn networks_in_use() -> Result<Vec<Ipv4Net>, NetnsError> {
    Ok(networks_of(&routes()?, &addrs()?))
}

/// The networks of routes (not `default`) and of addresses (with their prefix).
pub fn networks_of(routes: &[Route], addrs: &[LinkAddrs]) -> Vec<Ipv4Net> {
    let mut nets: Vec<Ipv4Net> = routes.iter().filter_map(|r| Ipv4Net::parse(&r.dst)).collect();
    for link in addrs {
        for a in link.addr_info.iter().filter(|a| a.family == "inet") {
            if let Ok(addr) = a.local.parse() {
                nets.push(Ipv4Net { addr, prefix: a.prefixlen });
            }
        }
    }
    nets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ip_json_for_routes_links_addrs_and_namespaces() {
        let routes: Vec<Route> = serde_json::from_str(
            r#"[{"dst":"default","gateway":"192.0.2.1","dev":"eth0","flags":[]},
                {"dst":"192.0.2.0/24","dev":"eth0","protocol":"kernel","scope":"link","prefsrc":"192.0.2.2","flags":[]},
                {"type":"local","dst":"127.0.0.1","table":"local","dev":"lo","flags":[]}]"#,
        )
        .unwrap();
        let addrs: Vec<LinkAddrs> = serde_json::from_str(
            r#"[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP"],"addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"host","label":"lo"}]},
                {"ifindex":4,"ifname":"eth0","addr_info":[{"family":"inet","local":"10.1.2.3","prefixlen":16}]}]"#,
        )
        .unwrap();
        let nets: Vec<String> = networks_of(&routes, &addrs).iter().map(|n| n.to_string()).collect();
        assert_eq!(nets, ["192.0.2.0/24", "127.0.0.1/32", "127.0.0.1/8", "10.1.2.3/16"]);

        let links: Vec<Link> = serde_json::from_str(
            r#"[{"ifindex":7,"ifname":"cc1a2b-h1","flags":["BROADCAST","UP"],"mtu":1500,"master":"cc1a2b-br","operstate":"UP","link_netnsid":0}]"#,
        )
        .unwrap();
        assert_eq!(links[0].master.as_deref(), Some("cc1a2b-br"));
        let ns: Vec<NetnsEntry> = serde_json::from_str(r#"[{"name":"cc1a2b-n1","id":0},{"name":"other"}]"#).unwrap();
        assert_eq!(ns.len(), 2);
        let none: Vec<NetnsEntry> = cmd::parse_json("ip -j netns list", "").unwrap();
        assert!(none.is_empty());
    }

    #[test]
    fn networks_overlap_by_their_common_prefix() {
        let n = |s: &str| Ipv4Net::parse(s).unwrap();
        assert!(n("10.200.7.0/24").overlaps(&n("10.0.0.0/8")));
        assert!(n("10.0.0.0/8").overlaps(&n("10.200.7.0/24")));
        assert!(n("10.200.7.0/24").overlaps(&n("10.200.7.9")));
        assert!(!n("10.200.7.0/24").overlaps(&n("10.200.8.0/24")));
        assert!(!n("10.200.7.0/24").overlaps(&n("192.0.2.0/24")));
        assert!(n("10.200.7.0/24").overlaps(&n("0.0.0.0/0")));
        assert_eq!(Ipv4Net::parse("default"), None);
        assert_eq!(Ipv4Net::parse("10.0.0.0/33"), None);
    }
}
