//! Where a cluster's nodes run on the network: [`Network::Proxy`] (every node in the root
//! namespace on loopback, today's default) or [`Network::Netns`] (`--network netns`: each node in
//! its own namespace of the run's `netns::Fabric`). [`ClusterNet`] owns one cluster's
//! `NodeNet`s, the IP-layer faults installed in them (by schedule step: nft rule sets and tc
//! bandwidth limits) and reads their kernel counters and the nodes' sockets from inside the
//! namespaces.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use crate::netns::tc::Shaping;
use crate::netns::{Direction, Fabric, FaultCounters, FaultId, IpFault, NetnsEnter, NodeNet, Side};
use crate::sock_diag::SockCounters;
use crate::topology::{Addressing, Plan};

/// How the nodes of a run are placed on the network.
#[derive(Clone, Default)]
pub enum Network {
    /// Every node in the root namespace; faults only through Toxiproxy.
    #[default]
    Proxy,
    /// Each node in its own namespace of this fabric (one per run); IP-layer faults too.
    Netns(Arc<Fabric>),
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Network::Proxy => f.write_str("Proxy"),
            Network::Netns(fabric) => write!(f, "Netns({} {})", fabric.run(), fabric.subnet()),
        }
    }
}

impl Network {
    /// The plan's addressing: shared loopback, or per node in the fabric's subnet.
    pub fn addressing(&self) -> Addressing {
        match self {
            Network::Proxy => Addressing::Shared,
            Network::Netns(fabric) => {
                let [a, b, c, _] = fabric.host_addr().octets();
                Addressing::PerNode { prefix: [a, b, c] }
            }
        }
    }

    /// `proxy` or `netns`, as the command line names it.
    pub fn name(&self) -> &'static str {
        match self {
            Network::Proxy => "proxy",
            Network::Netns(_) => "netns",
        }
    }
}

/// One rule set of an IP-layer fault: `fault` installed in node `node`'s namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpRule {
    pub node: u8,
    pub fault: IpFault,
}

/// The counters of one installed rule set, read from the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleCounters {
    pub node: u8,
    pub fault: IpFault,
    pub counters: FaultCounters,
}

/// A bandwidth limit in node `node`'s namespace: what it exchanges with `peers` (their
/// addresses), at most `rate_bytes_per_sec` each way (tc tbf; everything else unshaped).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BandwidthLimit {
    pub node: u8,
    pub rate_bytes_per_sec: u64,
    pub peers: Vec<Ipv4Addr>,
}

impl std::fmt::Display for BandwidthLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let peers: Vec<String> = self.peers.iter().map(|p| p.to_string()).collect();
        write!(f, "tbf {} B/s to and from {}", self.rate_bytes_per_sec, peers.join(", "))
    }
}

/// One end of a node's veth as tc shows it now: `Side::Node` (`eth0` egress in the namespace:
/// what the node sends) or `Side::Host` (the host end's egress: what it receives).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShapingReading {
    pub node: u8,
    pub side: Side,
    /// The device, as `tc` names it (`eth0`, `cc1a2b-h1`).
    pub dev: String,
    pub shaping: Shaping,
}

/// One cluster's namespaces (one `NodeNet` per node) and the IP faults installed in them.
pub struct ClusterNet {
    nodes: BTreeMap<u8, NodeNet>,
    /// By schedule step index: where each of its rule sets went.
    installed: BTreeMap<usize, Vec<(u8, FaultId, IpFault)>>,
    /// By schedule step index: the nodes whose veth it shapes (both ends).
    shaped: BTreeMap<usize, Vec<u8>>,
}

impl ClusterNet {
    /// One namespace per node of `plan`; the plan's addresses must be the fabric's.
    pub fn create(fabric: &Fabric, plan: &Plan) -> Result<ClusterNet, String> {
        let mut nodes = BTreeMap::new();
        for n in &plan.nodes {
            let net = fabric.node(u32::from(n.id)).map_err(|e| format!("node {}'s namespace: {e}", n.id))?;
            let (own, front) = (IpAddr::V4(net.addr()), IpAddr::V4(net.front_addr()));
            if n.kafka.ip() != own || n.front != front {
                return Err(format!(
                    "node {}: the plan puts it on {} (front {}), its namespace on {own} (front {front})",
                    n.id,
                    n.kafka.ip(),
                    n.front
                ));
            }
            nodes.insert(n.id, net);
        }
        Ok(ClusterNet { nodes, installed: BTreeMap::new(), shaped: BTreeMap::new() })
    }

    /// What the supervisor needs to start each node inside its namespace.
    pub fn enters(&self) -> Result<BTreeMap<u8, NetnsEnter>, String> {
        self.nodes
            .iter()
            .map(|(id, net)| net.enter().map(|e| (*id, e)).map_err(|e| format!("node {id}'s namespace: {e}")))
            .collect()
    }

    /// `node: namespace address` for the progress line.
    pub fn describe(&self) -> String {
        self.nodes.values().map(|n| format!("n{} {} {}", n.id(), n.netns(), n.addr())).collect::<Vec<_>>().join(", ")
    }

    /// Installs the rule sets of step `index`; on an error the ones already installed stay
    /// recorded, so `heal` removes them.
    pub fn inject(&mut self, index: usize, rules: &[IpRule]) -> Result<(), String> {
        for r in rules {
            let net = self.nodes.get(&r.node).ok_or(format!("n{} has no namespace", r.node))?;
            let id = net.inject(&r.fault).map_err(|e| format!("nft rules in n{} ({}): {e}", r.node, r.fault))?;
            self.installed.entry(index).or_default().push((r.node, id, r.fault.clone()));
        }
        Ok(())
    }

    /// The counters of step `index`'s rule sets, read now.
    pub fn counters(&self, index: usize) -> Result<Vec<RuleCounters>, String> {
        let mut out = Vec::new();
        for (node, id, fault) in self.installed.get(&index).into_iter().flatten() {
            let net = self.nodes.get(node).ok_or(format!("n{node} has no namespace"))?;
            let counters = net.counters(*id).map_err(|e| format!("reading the counters in n{node}: {e}"))?;
            out.push(RuleCounters { node: *node, fault: fault.clone(), counters });
        }
        Ok(out)
    }

    /// Removes step `index`'s rule sets; their last counters.
    pub fn heal(&mut self, index: usize) -> Result<Vec<RuleCounters>, String> {
        let mut out = Vec::new();
        let mut errors = Vec::new();
        for (node, id, fault) in self.installed.remove(&index).unwrap_or_default() {
            let Some(net) = self.nodes.get(&node) else { continue };
            match net.heal(id) {
                Ok(counters) => out.push(RuleCounters { node, fault, counters }),
                Err(e) => errors.push(format!("removing the nft rules of {fault} in n{node}: {e}")),
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors.join("; "))
        }
    }

    /// Installs the bandwidth limits of step `index` (both ends of each node's veth) and reads
    /// them back with their counters. A node another step shapes is refused (one root qdisc per
    /// device); on an error what was added stays recorded, so `clear_bandwidth` removes it.
    pub fn limit_bandwidth(&mut self, index: usize, limits: &[BandwidthLimit]) -> Result<Vec<ShapingReading>, String> {
        for l in limits {
            if let Some((other, _)) = self.shaped.iter().find(|(i, ns)| **i != index && ns.contains(&l.node)) {
                return Err(format!(
                    "n{} already has a bandwidth limit (schedule step {other}): two bandwidth faults on one node cannot \
                     overlap; give them windows (`at`/`until`) that do not",
                    l.node
                ));
            }
            let net = self.nodes.get(&l.node).ok_or(format!("n{} has no namespace", l.node))?;
            self.shaped.entry(index).or_default().push(l.node);
            net.limit_peer_bandwidth(l.rate_bytes_per_sec * 8, &l.peers, Direction::Both)
                .map_err(|e| format!("tc in n{} ({l}): {e}", l.node))?;
        }
        self.bandwidth(index)
    }

    /// Both ends of every veth step `index` shapes, with the kernel's counters, read now.
    pub fn bandwidth(&self, index: usize) -> Result<Vec<ShapingReading>, String> {
        let mut out = Vec::new();
        for node in self.shaped.get(&index).into_iter().flatten() {
            let net = self.nodes.get(node).ok_or(format!("n{node} has no namespace"))?;
            for side in [Side::Node, Side::Host] {
                let shaping = net.shaping(side).map_err(|e| format!("reading the qdiscs of n{node}: {e}"))?;
                let dev = if side == Side::Node { "eth0".to_string() } else { net.host_veth().to_string() };
                out.push(ShapingReading { node: *node, side, dev, shaping });
            }
        }
        Ok(out)
    }

    /// Removes step `index`'s bandwidth limits: the counters just before, and both ends read
    /// again after (their default root qdisc). An end still shaped after removal is an error.
    pub fn clear_bandwidth(&mut self, index: usize) -> Result<(Vec<ShapingReading>, Vec<ShapingReading>), String> {
        let last = self.bandwidth(index).unwrap_or_default();
        let mut errors = Vec::new();
        for node in self.shaped.get(&index).cloned().unwrap_or_default() {
            let Some(net) = self.nodes.get(&node) else { continue };
            if let Err(e) = net.clear_bandwidth() {
                errors.push(format!("removing the bandwidth limit of n{node}: {e}"));
            }
        }
        let after = self.bandwidth(index);
        self.shaped.remove(&index);
        match after {
            Ok(after) => {
                for r in after.iter().filter(|r| r.shaping.shaped()) {
                    errors.push(format!(
                        "n{} {} still has a {} root qdisc after the bandwidth limit was removed",
                        r.node, r.dev, r.shaping.root.kind
                    ));
                }
                if errors.is_empty() {
                    Ok((last, after))
                } else {
                    Err(errors.join("; "))
                }
            }
            Err(e) => {
                errors.push(e);
                Err(errors.join("; "))
            }
        }
    }

    /// Every TCP socket in node `id`'s namespace with the kernel's byte counters (sock_diag
    /// from a thread inside the namespace).
    pub fn sockets(&self, id: u8) -> Result<Vec<SockCounters>, String> {
        let net = self.nodes.get(&id).ok_or(format!("n{id} has no namespace"))?;
        let enter = net.enter().map_err(|e| e.to_string())?;
        enter.run(crate::sock_diag::tcp_sockets).map_err(|e| e.to_string())?.map_err(|e| e.to_string())
    }

    /// One counter of node `id`'s namespace from its `/proc/net/snmp` (e.g. `Tcp`
    /// `RetransSegs`), read by a thread inside it: `/proc/thread-self/net`, since `/proc/net`
    /// follows the process's main thread, which stays in the root namespace.
    pub fn snmp_counter(&self, id: u8, group: &str, name: &str) -> Option<u64> {
        let enter = self.nodes.get(&id)?.enter().ok()?;
        let text = enter.run(|| std::fs::read_to_string("/proc/thread-self/net/snmp").unwrap_or_default()).ok()?;
        snmp_value(&text, group, name)
    }

    /// Removes every namespace (the node processes must be gone); what could not be removed.
    pub fn teardown(self) -> Vec<String> {
        let mut problems = Vec::new();
        for (id, net) in self.nodes {
            if let Err(e) = net.teardown() {
                problems.push(format!("node {id}'s namespace: {e}"));
            }
        }
        problems
    }
}

/// One value of `/proc/net/snmp` (pairs of lines: `Tcp: Name1 Name2 ...`, `Tcp: 1 2 ...`).
pub fn snmp_value(text: &str, group: &str, name: &str) -> Option<u64> {
    let prefix = format!("{group}:");
    let mut lines = text.lines().filter(|l| l.starts_with(&prefix));
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        let names = names.split_whitespace().skip(1);
        let mut values = values.split_whitespace().skip(1);
        for n in names {
            let v = values.next()?;
            if n == name {
                return v.parse().ok();
            }
        }
    }
    None
}

/// Whether `addr` is one of `node`'s addresses in the plan (its own or its front).
pub fn is_address_of(plan: &Plan, node: u8, addr: SocketAddr) -> bool {
    plan.node(node).is_some_and(|n| addr.ip() == n.kafka.ip() || addr.ip() == n.front)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snmp_values_are_read_by_group_and_name() {
        let text = "Ip: Forwarding DefaultTTL\nIp: 1 64\nTcp: RtoAlgorithm RetransSegs InErrs\nTcp: 1 42 0\n";
        assert_eq!(snmp_value(text, "Tcp", "RetransSegs"), Some(42));
        assert_eq!(snmp_value(text, "Ip", "DefaultTTL"), Some(64));
        assert_eq!(snmp_value(text, "Tcp", "Nope"), None);
        assert_eq!(snmp_value(text, "Udp", "InErrs"), None);
    }

    #[test]
    fn proxy_mode_shares_loopback() {
        assert_eq!(Network::Proxy.addressing(), Addressing::Shared);
        assert_eq!(Network::Proxy.name(), "proxy");
    }
}
