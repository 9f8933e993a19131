//! The topology planner (pure): real bind ports of every node and one proxy per client-facing
//! Kafka endpoint and per directed inter-node Raft and WAL link, so that every byte crosses a
//! proxy and any partition shape is a set of links.
//!
//! Port scheme from a base `B` (default 20000), readable at a glance:
//! - node `i` binds Kafka `B+10i`, WAL `B+10i+1`, Raft `B+10i+2`;
//! - `kafka-n{i}` (what every client and node is told for node `i`) listens on `B+100+i`;
//! - `raft-n{i}-to-n{j}` on `B+200+10i+j`, `wal-n{i}-to-n{j}` on `B+300+10i+j`.
//!
//! Addresses: everything on one host address ([`Addressing::Shared`], loopback by default), or,
//! with `--network netns`, each node on its own address `P.(10+i)` in its own namespace and
//! every proxy leading *to* node `i` on its front address `P.(100+i)` ([`Addressing::PerNode`],
//! the layout of `crate::netns`); the port numbers are the same either way.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The ports Chronik binds that its config cannot move: Prometheus metrics, admin API and
/// unified API, each at a base plus the node id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedPorts {
    pub metrics_base: u16,
    pub admin_base: u16,
    pub unified_api_base: u16,
}

impl FixedPorts {
    /// Chronik's own (v2.10): metrics 13000+id, admin 10000+id, unified API 6091+id.
    pub const CHRONIK: FixedPorts = FixedPorts { metrics_base: 13000, admin_base: 10000, unified_api_base: 6091 };
}

/// Where the nodes and proxies of a plan listen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Addressing {
    /// Nodes and proxies on the spec's `host`; Chronik's fixed ports on loopback.
    #[default]
    Shared,
    /// Node `i` (its listeners and fixed ports) on `P.(10+i)`, the proxies leading to it on its
    /// front address `P.(100+i)`, with `P` = these three octets (a `crate::netns` subnet).
    PerNode { prefix: [u8; 3] },
}

impl Addressing {
    /// Node `id`'s own address and the address the proxies leading to it listen on.
    fn of(self, host: IpAddr, id: u8) -> (IpAddr, IpAddr) {
        match self {
            Addressing::Shared => (host, host),
            Addressing::PerNode { prefix: [a, b, c] } => {
                (IpAddr::V4(Ipv4Addr::new(a, b, c, 10 + id)), IpAddr::V4(Ipv4Addr::new(a, b, c, 100 + id)))
            }
        }
    }
}

/// What to plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopologySpec {
    pub nodes: u8,
    pub host: IpAddr,
    pub base_port: u16,
    pub fixed: FixedPorts,
    pub addressing: Addressing,
}

impl Default for TopologySpec {
    fn default() -> Self {
        TopologySpec {
            nodes: 3,
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            base_port: DEFAULT_BASE_PORT,
            fixed: FixedPorts::CHRONIK,
            addressing: Addressing::Shared,
        }
    }
}

pub const DEFAULT_BASE_PORT: u16 = 20000;
pub const MIN_NODES: u8 = 3;
pub const MAX_NODES: u8 = 9;
/// The highest offset from the base port the scheme uses.
const SPAN: u16 = 399;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("a chaos cluster needs at least {MIN_NODES} nodes to keep a majority when one is cut off; got {0}")]
    TooFewNodes(u8),
    #[error("at most {MAX_NODES} nodes are supported (proxy names and ports use one digit per node); got {0}")]
    TooManyNodes(u8),
    #[error(
        "base port {base} is too high: the plan uses ports up to base+{SPAN}, past 65535; use a base of at most {max}"
    )]
    BasePortTooHigh { base: u16, max: u16 },
    #[error("base port {0} is below 1024; pick an unprivileged base such as 20000")]
    BasePortPrivileged(u16),
    #[error("port {port} is planned for both {a} and {b}; choose a base port away from Chronik's fixed ports")]
    Collision { port: u16, a: String, b: String },
}

/// Which traffic a proxy carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LinkKind {
    /// Clients (and nodes forwarding requests) → node `to`'s Kafka listener.
    Kafka { to: u8 },
    /// Node `from` dials node `to`'s Raft gRPC.
    Raft { from: u8, to: u8 },
    /// Node `from` dials node `to`'s WAL replication port.
    Wal { from: u8, to: u8 },
}

impl LinkKind {
    /// The node whose real port the proxy forwards to.
    pub fn target(&self) -> u8 {
        match *self {
            LinkKind::Kafka { to } | LinkKind::Raft { to, .. } | LinkKind::Wal { to, .. } => to,
        }
    }

    /// The node that dials through this proxy, for inter-node links.
    pub fn source(&self) -> Option<u8> {
        match *self {
            LinkKind::Kafka { .. } => None,
            LinkKind::Raft { from, .. } | LinkKind::Wal { from, .. } => Some(from),
        }
    }
}

/// One Toxiproxy proxy of the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyPlan {
    pub name: String,
    pub kind: LinkKind,
    pub listen: SocketAddr,
    pub upstream: SocketAddr,
}

/// One node of the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodePlan {
    pub id: u8,
    /// Real listeners (the `[bind]` section).
    pub kafka: SocketAddr,
    pub wal: SocketAddr,
    pub raft: SocketAddr,
    /// The client-facing proxy for this node: what every node advertises for it.
    pub advertised_kafka: SocketAddr,
    pub metrics_port: u16,
    pub admin_port: u16,
    pub unified_api_port: u16,
    /// Where the harness reaches the fixed ports (admin API, metrics): loopback, or the
    /// node's own address in its namespace.
    pub fixed_host: IpAddr,
    /// Where every proxy leading to this node listens (its front address in netns mode).
    pub front: IpAddr,
}

impl NodePlan {
    /// The admin API's address.
    pub fn admin(&self) -> SocketAddr {
        SocketAddr::new(self.fixed_host, self.admin_port)
    }

    /// The metrics endpoint's address.
    pub fn metrics(&self) -> SocketAddr {
        SocketAddr::new(self.fixed_host, self.metrics_port)
    }
}

/// The whole plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub spec: TopologySpec,
    pub nodes: Vec<NodePlan>,
    pub proxies: Vec<ProxyPlan>,
}

/// Whether a cluster of `nodes` can be planned ([`MIN_NODES`] to [`MAX_NODES`]).
pub fn check_node_count(nodes: u8) -> Result<(), PlanError> {
    if nodes < MIN_NODES {
        return Err(PlanError::TooFewNodes(nodes));
    }
    if nodes > MAX_NODES {
        return Err(PlanError::TooManyNodes(nodes));
    }
    Ok(())
}

impl Plan {
    pub fn new(spec: TopologySpec) -> Result<Plan, PlanError> {
        check_node_count(spec.nodes)?;
        if spec.base_port < 1024 {
            return Err(PlanError::BasePortPrivileged(spec.base_port));
        }
        let max = u16::MAX - SPAN;
        if spec.base_port > max {
            return Err(PlanError::BasePortTooHigh { base: spec.base_port, max });
        }
        let b = spec.base_port;
        let ids: Vec<u8> = (1..=spec.nodes).collect();
        let nodes: Vec<NodePlan> = ids
            .iter()
            .map(|&i| {
                let i16 = i as u16;
                let (own, front) = spec.addressing.of(spec.host, i);
                let fixed_host = match spec.addressing {
                    Addressing::Shared => IpAddr::V4(Ipv4Addr::LOCALHOST),
                    Addressing::PerNode { .. } => own,
                };
                NodePlan {
                    id: i,
                    kafka: SocketAddr::new(own, b + 10 * i16),
                    wal: SocketAddr::new(own, b + 10 * i16 + 1),
                    raft: SocketAddr::new(own, b + 10 * i16 + 2),
                    advertised_kafka: SocketAddr::new(front, b + 100 + i16),
                    metrics_port: spec.fixed.metrics_base + i16,
                    admin_port: spec.fixed.admin_base + i16,
                    unified_api_port: spec.fixed.unified_api_base + i16,
                    fixed_host,
                    front,
                }
            })
            .collect();
        let mut proxies = Vec::new();
        for n in &nodes {
            proxies.push(ProxyPlan {
                name: format!("kafka-n{}", n.id),
                kind: LinkKind::Kafka { to: n.id },
                listen: n.advertised_kafka,
                upstream: n.kafka,
            });
        }
        for (prefix, offset) in [("raft", 200u16), ("wal", 300u16)] {
            for &from in &ids {
                for to in nodes.iter().filter(|n| n.id != from) {
                    let kind = if prefix == "raft" {
                        LinkKind::Raft { from, to: to.id }
                    } else {
                        LinkKind::Wal { from, to: to.id }
                    };
                    proxies.push(ProxyPlan {
                        name: format!("{prefix}-n{from}-to-n{}", to.id),
                        kind,
                        listen: SocketAddr::new(to.front, b + offset + 10 * from as u16 + to.id as u16),
                        upstream: if prefix == "raft" { to.raft } else { to.wal },
                    });
                }
            }
        }
        let plan = Plan { spec, nodes, proxies };
        plan.check_collisions()?;
        Ok(plan)
    }

    /// Every port the plan binds, with who binds it (node listeners, proxies, fixed ports).
    pub fn ports(&self) -> Vec<(u16, String)> {
        let mut out = Vec::new();
        for n in &self.nodes {
            out.push((n.kafka.port(), format!("node {} kafka", n.id)));
            out.push((n.wal.port(), format!("node {} wal", n.id)));
            out.push((n.raft.port(), format!("node {} raft", n.id)));
            out.push((n.metrics_port, format!("node {} metrics (fixed by Chronik)", n.id)));
            out.push((n.admin_port, format!("node {} admin API (fixed by Chronik)", n.id)));
            out.push((n.unified_api_port, format!("node {} unified API (fixed by Chronik)", n.id)));
        }
        for p in &self.proxies {
            out.push((p.listen.port(), format!("proxy {}", p.name)));
        }
        out
    }

    fn check_collisions(&self) -> Result<(), PlanError> {
        let mut seen: std::collections::BTreeMap<u16, String> = std::collections::BTreeMap::new();
        for (port, who) in self.ports() {
            if let Some(a) = seen.insert(port, who.clone()) {
                return Err(PlanError::Collision { port, a, b: who });
            }
        }
        Ok(())
    }

    pub fn node(&self, id: u8) -> Option<&NodePlan> {
        self.nodes.iter().find(|n| n.id == id)
    }

    pub fn proxy(&self, kind: LinkKind) -> Option<&ProxyPlan> {
        self.proxies.iter().find(|p| p.kind == kind)
    }

    /// The proxy node `from` dials for `to`'s Raft or WAL (`None` for `from == to`).
    pub fn link(&self, from: u8, to: u8, raft: bool) -> Option<&ProxyPlan> {
        let kind = if raft { LinkKind::Raft { from, to } } else { LinkKind::Wal { from, to } };
        self.proxy(kind)
    }

    /// The proxies that cut `node` off from every peer, both ways, Raft and WAL.
    pub fn isolation_links(&self, node: u8) -> Vec<&ProxyPlan> {
        self.proxies
            .iter()
            .filter(|p| p.kind.source() == Some(node) || (p.kind.source().is_some() && p.kind.target() == node))
            .collect()
    }

    /// The bootstrap list clients use: every client-facing proxy.
    pub fn bootstrap_servers(&self) -> String {
        self.nodes.iter().map(|n| n.advertised_kafka.to_string()).collect::<Vec<_>>().join(",")
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "nodes:")?;
        for n in &self.nodes {
            writeln!(
                f,
                "  n{}  kafka {}  wal {}  raft {}  advertised {}  metrics :{}  admin :{}  unified :{}",
                n.id, n.kafka, n.wal, n.raft, n.advertised_kafka, n.metrics_port, n.admin_port, n.unified_api_port
            )?;
        }
        writeln!(f, "proxies:")?;
        for p in &self.proxies {
            writeln!(f, "  {:<14} {} -> {}", p.name, p.listen, p.upstream)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    fn plan(nodes: u8) -> Plan {
        Plan::new(TopologySpec { nodes, ..TopologySpec::default() }).unwrap()
    }

    #[test]
    fn three_nodes() {
        expect![[r#"
            nodes:
              n1  kafka 127.0.0.1:20010  wal 127.0.0.1:20011  raft 127.0.0.1:20012  advertised 127.0.0.1:20101  metrics :13001  admin :10001  unified :6092
              n2  kafka 127.0.0.1:20020  wal 127.0.0.1:20021  raft 127.0.0.1:20022  advertised 127.0.0.1:20102  metrics :13002  admin :10002  unified :6093
              n3  kafka 127.0.0.1:20030  wal 127.0.0.1:20031  raft 127.0.0.1:20032  advertised 127.0.0.1:20103  metrics :13003  admin :10003  unified :6094
            proxies:
              kafka-n1       127.0.0.1:20101 -> 127.0.0.1:20010
              kafka-n2       127.0.0.1:20102 -> 127.0.0.1:20020
              kafka-n3       127.0.0.1:20103 -> 127.0.0.1:20030
              raft-n1-to-n2  127.0.0.1:20212 -> 127.0.0.1:20022
              raft-n1-to-n3  127.0.0.1:20213 -> 127.0.0.1:20032
              raft-n2-to-n1  127.0.0.1:20221 -> 127.0.0.1:20012
              raft-n2-to-n3  127.0.0.1:20223 -> 127.0.0.1:20032
              raft-n3-to-n1  127.0.0.1:20231 -> 127.0.0.1:20012
              raft-n3-to-n2  127.0.0.1:20232 -> 127.0.0.1:20022
              wal-n1-to-n2   127.0.0.1:20312 -> 127.0.0.1:20021
              wal-n1-to-n3   127.0.0.1:20313 -> 127.0.0.1:20031
              wal-n2-to-n1   127.0.0.1:20321 -> 127.0.0.1:20011
              wal-n2-to-n3   127.0.0.1:20323 -> 127.0.0.1:20031
              wal-n3-to-n1   127.0.0.1:20331 -> 127.0.0.1:20011
              wal-n3-to-n2   127.0.0.1:20332 -> 127.0.0.1:20021
        "#]]
        .assert_eq(&plan(3).to_string());
    }

    #[test]
    fn five_nodes_have_one_proxy_per_directed_link() {
        let p = plan(5);
        assert_eq!(p.proxies.len(), 5 + 2 * 5 * 4);
        let names: std::collections::BTreeSet<_> = p.proxies.iter().map(|x| x.name.clone()).collect();
        assert_eq!(names.len(), p.proxies.len(), "names are unique");
        assert_eq!(p.link(5, 4, true).unwrap().name, "raft-n5-to-n4");
        assert_eq!(p.link(5, 4, true).unwrap().upstream, p.node(4).unwrap().raft);
        assert_eq!(p.link(2, 2, false), None);
        // Isolating n3 cuts its 4 outgoing and 4 incoming links, for Raft and WAL.
        assert_eq!(p.isolation_links(3).len(), 16);
        assert!(p.isolation_links(3).iter().all(|l| l.kind.source() == Some(3) || l.kind.target() == 3));
    }

    #[test]
    fn invalid_specs_say_what_to_do() {
        let check = |spec: TopologySpec, expected: &str| {
            let err = Plan::new(spec).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
        };
        let d = TopologySpec::default();
        check(TopologySpec { nodes: 2, ..d }, "at least 3 nodes");
        check(TopologySpec { nodes: 10, ..d }, "at most 9 nodes");
        check(TopologySpec { base_port: 65300, ..d }, "use a base of at most 65136");
        check(TopologySpec { base_port: 80, ..d }, "below 1024");
        // Base 9950 puts node 5's WAL (9950+51) on node 1's fixed admin port 10001.
        check(TopologySpec { nodes: 5, base_port: 9950, ..d }, "port 10001 is planned for both");
    }

    #[test]
    fn per_node_addressing_puts_nodes_on_their_own_address_and_proxies_on_the_target_front() {
        let spec = TopologySpec { addressing: Addressing::PerNode { prefix: [10, 200, 7] }, ..TopologySpec::default() };
        let p = Plan::new(spec).unwrap();
        let n2 = p.node(2).unwrap();
        assert_eq!(n2.kafka.to_string(), "10.200.7.12:20020");
        assert_eq!(n2.raft.to_string(), "10.200.7.12:20022");
        assert_eq!(n2.advertised_kafka.to_string(), "10.200.7.102:20102");
        assert_eq!(
            (n2.admin().to_string(), n2.metrics().to_string()),
            ("10.200.7.12:10002".into(), "10.200.7.12:13002".into())
        );
        // Every proxy leading to node 2 (its Kafka proxy, Raft and WAL links from 1 and 3)
        // listens on node 2's front address; the port numbers are as on loopback.
        for x in &p.proxies {
            assert_eq!(x.listen.ip(), p.node(x.kind.target()).unwrap().front, "{}", x.name);
        }
        assert_eq!(p.link(1, 2, true).unwrap().listen.to_string(), "10.200.7.102:20212");
        assert_eq!(p.link(1, 2, true).unwrap().upstream, n2.raft);
        // On loopback the fixed ports stay on 127.0.0.1.
        let shared = plan(3);
        assert_eq!(shared.node(1).unwrap().admin().to_string(), "127.0.0.1:10001");
    }

    #[test]
    fn highest_base_fits() {
        let p = Plan::new(TopologySpec { base_port: 65136, nodes: 9, ..TopologySpec::default() }).unwrap();
        assert_eq!(p.proxies.iter().map(|x| x.listen.port()).max(), Some(65136 + 398));
    }
}
