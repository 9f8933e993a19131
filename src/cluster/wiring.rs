//! The wiring proof: every connection a node opens goes to a proxy, never to a peer's real
//! port (from the OS view of each node process), inter-node links carry traffic through their
//! proxies, and a Kafka Metadata response fetched through a proxy lists only proxy addresses.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use crate::os::TcpSocket;
use crate::topology::{LinkKind, Plan};

/// What the OS shows for one node process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeConnections {
    pub id: u8,
    pub pid: u32,
    pub sockets: Vec<TcpSocket>,
}

/// The verdict of the wiring proof.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WiringReport {
    /// Outgoing connections per proxy name (from the OS view of the node processes).
    pub via_proxy: BTreeMap<String, usize>,
    /// Outgoing connections that reach another node's real port: each one is a bypass.
    pub bypasses: Vec<String>,
    /// Outgoing connections to addresses that are neither proxies nor nodes (informational).
    pub other: Vec<String>,
    /// Proxies whose client-facing sockets received bytes (the kernel's per-socket counters).
    pub proxies_with_bytes: BTreeSet<String>,
}

impl WiringReport {
    /// Raft links (node → node) seen open through their proxies.
    pub fn raft_links_seen(&self) -> usize {
        self.via_proxy.keys().filter(|n| n.starts_with("raft-")).count()
    }

    /// Ok when nothing bypasses a proxy and inter-node traffic was seen crossing the proxies.
    pub fn verdict(&self) -> Result<(), String> {
        if !self.bypasses.is_empty() {
            return Err(format!(
                "{} connection(s) bypass the proxies, straight to a node's real port: {}",
                self.bypasses.len(),
                self.bypasses.join("; ")
            ));
        }
        let inter_node = self.via_proxy.keys().any(|n| n.starts_with("raft-") || n.starts_with("wal-"))
            || self.proxies_with_bytes.iter().any(|n| n.starts_with("raft-") || n.starts_with("wal-"));
        if !inter_node {
            return Err("no inter-node connection was seen through any raft-*/wal-* proxy: the nodes \
                        either do not talk to each other yet or do so in a way the proxies do not see"
                .to_string());
        }
        Ok(())
    }
}

impl std::fmt::Display for WiringReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let links: Vec<String> = self.via_proxy.iter().map(|(k, v)| format!("{k}×{v}")).collect();
        writeln!(
            f,
            "node connections through proxies: {}",
            if links.is_empty() { "none".into() } else { links.join(", ") }
        )?;
        writeln!(f, "bypassing connections: {}", self.bypasses.len())?;
        if !self.proxies_with_bytes.is_empty() {
            let names: Vec<&str> = self.proxies_with_bytes.iter().map(String::as_str).collect();
            writeln!(f, "proxies that carried bytes (kernel socket counters): {}", names.join(", "))?;
        }
        Ok(())
    }
}

/// Classifies every socket of every node against the plan.
pub fn classify(plan: &Plan, nodes: &[NodeConnections]) -> WiringReport {
    let proxies: BTreeMap<SocketAddr, &str> = plan.proxies.iter().map(|p| (p.listen, p.name.as_str())).collect();
    let mut real: BTreeMap<SocketAddr, String> = BTreeMap::new();
    for n in &plan.nodes {
        real.insert(n.kafka, format!("node {} kafka", n.id));
        real.insert(n.wal, format!("node {} wal", n.id));
        real.insert(n.raft, format!("node {} raft", n.id));
    }
    let mut report = WiringReport::default();
    for node in nodes {
        let Some(me) = plan.node(node.id) else { continue };
        let own: BTreeSet<u16> = [me.kafka, me.wal, me.raft]
            .iter()
            .map(|a| a.port())
            .chain([me.admin_port, me.metrics_port, me.unified_api_port])
            .collect();
        for s in &node.sockets {
            // Inbound: someone connected to one of our listeners (on loopback, any address, or
            // the node's own address in its namespace).
            let mine = is_loopback_or_unspecified(s.local) || s.local.ip() == me.kafka.ip();
            if own.contains(&s.local.port()) && mine {
                continue;
            }
            if let Some(name) = proxies.get(&s.remote) {
                *report.via_proxy.entry(name.to_string()).or_default() += 1;
            } else if let Some(target) = real.get(&s.remote) {
                report.bypasses.push(format!("node {} (pid {}) → {} ({target})", node.id, node.pid, s.remote));
            } else {
                report.other.push(format!("node {} → {}", node.id, s.remote));
            }
        }
    }
    report
}

fn is_loopback_or_unspecified(a: SocketAddr) -> bool {
    a.ip().is_loopback() || a.ip().is_unspecified()
}

/// The OS view of each running node process.
pub fn observe(nodes: &[(u8, u32)]) -> Vec<NodeConnections> {
    nodes.iter().map(|&(id, pid)| NodeConnections { id, pid, sockets: crate::os::connections_of(pid) }).collect()
}

/// Fetches cluster metadata through `bootstrap` with rdkafka and checks that every broker it
/// lists is one of `allowed` (the client-facing proxies) and that all of them are listed.
/// `extra` adds client settings (tests use it to speak an older protocol to a stand-in).
pub async fn check_metadata(
    bootstrap: SocketAddr,
    allowed: &BTreeSet<SocketAddr>,
    extra: &[(&str, &str)],
    timeout: Duration,
) -> Result<Vec<(i32, String)>, String> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let mut cfg = rdkafka::ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap.to_string()).set("client.id", "chronik-chaos-wiring");
    for (k, v) in extra {
        cfg.set(*k, *v);
    }
    let brokers = tokio::task::spawn_blocking(move || -> Result<Vec<(i32, String)>, String> {
        let consumer: BaseConsumer = cfg.create().map_err(|e| format!("rdkafka client: {e}"))?;
        let md = consumer.fetch_metadata(None, timeout).map_err(|e| format!("metadata through {bootstrap}: {e}"))?;
        Ok(md.brokers().iter().map(|b| (b.id(), format!("{}:{}", b.host(), b.port()))).collect())
    })
    .await
    .map_err(|e| format!("metadata task failed: {e}"))??;
    let listed: BTreeSet<SocketAddr> = brokers.iter().filter_map(|(_, a)| a.parse().ok()).collect();
    let bad: Vec<String> = brokers
        .iter()
        .filter(|(_, a)| a.parse::<SocketAddr>().map_or(true, |s| !allowed.contains(&s)))
        .map(|(id, a)| format!("broker {id} at {a}"))
        .collect();
    if !bad.is_empty() {
        return Err(format!(
            "metadata fetched through {bootstrap} advertises addresses that are not proxies ({}): clients would bypass \
             the proxies after bootstrap",
            bad.join(", ")
        ));
    }
    let missing: Vec<String> = allowed.difference(&listed).map(|a| a.to_string()).collect();
    if !missing.is_empty() {
        return Err(format!("metadata fetched through {bootstrap} lacks brokers at {}", missing.join(", ")));
    }
    Ok(brokers)
}

/// Names of proxies for a link kind, for reports.
pub fn link_label(kind: LinkKind) -> String {
    match kind {
        LinkKind::Kafka { to } => format!("clients→n{to}"),
        LinkKind::Raft { from, to } => format!("raft n{from}→n{to}"),
        LinkKind::Wal { from, to } => format!("wal n{from}→n{to}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os::TcpState;
    use crate::topology::TopologySpec;

    fn sock(local: &str, remote: &str) -> TcpSocket {
        TcpSocket {
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
            state: TcpState::Established,
            inode: 1,
        }
    }

    #[test]
    fn proxied_links_pass_and_a_direct_dial_is_a_bypass() {
        let plan = Plan::new(TopologySpec::default()).unwrap();
        let good = NodeConnections {
            id: 1,
            pid: 10,
            sockets: vec![
                sock("127.0.0.1:40000", "127.0.0.1:20212"), // n1 → raft proxy n1→n2
                sock("127.0.0.1:40001", "127.0.0.1:20313"), // n1 → wal proxy n1→n3
                sock("127.0.0.1:20010", "127.0.0.1:45000"), // inbound on n1's kafka (from the kafka-n1 proxy)
                sock("127.0.0.1:10001", "127.0.0.1:45001"), // inbound on the admin API
            ],
        };
        let report = classify(&plan, std::slice::from_ref(&good));
        assert_eq!(report.bypasses, Vec::<String>::new());
        assert_eq!(report.via_proxy.get("raft-n1-to-n2"), Some(&1));
        assert_eq!(report.raft_links_seen(), 1);
        assert!(report.verdict().is_ok());

        let mut bad = good.clone();
        bad.sockets.push(sock("127.0.0.1:40002", "127.0.0.1:20022")); // straight to n2's real raft port
        let report = classify(&plan, &[bad]);
        let err = report.verdict().unwrap_err();
        assert!(err.contains("node 1 (pid 10) → 127.0.0.1:20022 (node 2 raft)"), "{err}");
    }

    #[test]
    fn no_inter_node_traffic_is_not_a_proof() {
        let plan = Plan::new(TopologySpec::default()).unwrap();
        let idle = NodeConnections { id: 2, pid: 11, sockets: vec![sock("127.0.0.1:20020", "127.0.0.1:45000")] };
        let report = classify(&plan, &[idle]);
        assert!(report.verdict().unwrap_err().contains("no inter-node connection"));
    }
}
