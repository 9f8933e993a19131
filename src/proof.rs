//! Fault proof by measured effect, the same against the real and the embedded Toxiproxy: black
//! holes by the kernel's per-socket byte counters of the proxies' connections (NETLINK_SOCK_DIAG),
//! latency by probe round trips through a faulted proxy before and during the fault, bandwidth by
//! a probe transfer, slow close by a probe connection's delayed close, resets by probe
//! connections that were reset; a skewed clock or a full disk still holding at the end of the hold
//! (`clock`, `disk`); IP-layer faults by the kernel's nft counters, sockets and retransmissions in
//! the namespaces, an IP-layer bandwidth limit by its tbf qdiscs' counters. A fault starts
//! unproven; only a measurement proves it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use crate::fault::{Action, Placement};
use crate::probe::{self, Protocol};
use crate::sock_diag::SockCounters;
use crate::topology::{LinkKind, Plan, ProxyPlan};
use crate::toxiproxy::{Stream, ToxicKind};

/// What was measured for one action: evidence lines, problems (each makes the scenario an
/// ERROR), and whether the effect was measured at all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Measured {
    pub evidence: Vec<String>,
    pub problems: Vec<String>,
    pub proven: bool,
}

/// The probe to use on a proxy: Kafka on client links, HTTP/2 on Raft links (gRPC); WAL links
/// speak a protocol no probe can safely use.
pub fn probe_protocol(p: &ProxyPlan) -> Option<Protocol> {
    match p.kind {
        LinkKind::Kafka { .. } => Some(Protocol::Kafka),
        LinkKind::Raft { .. } => Some(Protocol::Http2),
        LinkKind::Wal { .. } => None,
    }
}

/// The first placement of `kind`'s type on a proxy a probe can speak to.
fn probe_target<'a>(
    plan: &'a Plan,
    placements: &[Placement],
    want: &dyn Fn(&ToxicKind) -> bool,
) -> Option<(&'a ProxyPlan, Protocol, BTreeSet<Stream>)> {
    let proxy = placements
        .iter()
        .filter(|p| want(&p.toxic.kind))
        .filter_map(|p| plan.proxies.iter().find(|x| x.name == p.proxy))
        .find_map(|x| probe_protocol(x).map(|proto| (x, proto)))?;
    let streams =
        placements.iter().filter(|p| p.proxy == proxy.0.name && want(&p.toxic.kind)).map(|p| p.toxic.stream).collect();
    Some((proxy.0, proxy.1, streams))
}

/// Round trips measured before the fault, per proxy that will carry a latency toxic.
pub async fn baseline(plan: &Plan, actions: &[Action]) -> BTreeMap<String, Duration> {
    let mut out = BTreeMap::new();
    for a in actions {
        let Action::Toxics(ps) = a else { continue };
        if let Some((proxy, proto, _)) = probe_target(plan, ps, &|k| matches!(k, ToxicKind::Latency { .. })) {
            if let Ok(rt) = probe::round_trips(proxy.listen, proto, 5, Duration::from_secs(5)).await {
                out.insert(proxy.name.clone(), rt.median);
            }
        }
    }
    out
}

/// Measures a toxic action's effect during the fault with probes (everything but black holes,
/// which `black_holes` judges from socket counters).
pub async fn probe_toxics(plan: &Plan, placements: &[Placement], baseline: &BTreeMap<String, Duration>) -> Measured {
    let mut m = Measured::default();
    let kinds: BTreeSet<&str> = placements.iter().map(|p| p.toxic.kind.type_name()).collect();
    for kind in kinds {
        let of_kind = |k: &ToxicKind| k.type_name() == kind;
        let Some(first) = placements.iter().find(|p| p.toxic.kind.type_name() == kind) else { continue };
        let target = probe_target(plan, placements, &of_kind);
        let result = match (&first.toxic.kind, target) {
            (ToxicKind::Timeout { timeout: 0 }, _) => continue,
            (ToxicKind::Latency { latency, .. }, Some((proxy, proto, streams))) => {
                latency_effect(proxy, proto, *latency, streams.len(), baseline.get(&proxy.name).copied()).await
            }
            (ToxicKind::Bandwidth { rate }, Some((proxy, Protocol::Http2, streams)))
                if streams.contains(&Stream::Upstream) =>
            {
                bandwidth_effect(proxy.listen, &proxy.name, *rate).await
            }
            (ToxicKind::SlowClose { delay }, Some((proxy, Protocol::Http2, streams)))
                if streams.contains(&Stream::Downstream) =>
            {
                let d = probe::close_delay(proxy.listen, Duration::from_millis(*delay as u64 * 3 + 5_000)).await;
                match d {
                    Ok(d) if d.as_millis() as i64 >= *delay / 2 => Ok(format!(
                        "slow_close probe through {}: the far side's close arrived after {:.0} ms ({delay} ms configured)",
                        proxy.name,
                        d.as_secs_f64() * 1e3
                    )),
                    Ok(d) => Err(format!(
                        "slow_close probe through {}: the close arrived after {:.0} ms, not the {delay} ms configured",
                        proxy.name,
                        d.as_secs_f64() * 1e3
                    )),
                    Err(e) => Err(format!("slow_close probe through {}: {e}", proxy.name)),
                }
            }
            (ToxicKind::ResetPeer { timeout }, Some((proxy, proto, _))) => {
                let tries = 20;
                let n = probe::resets(proxy.listen, proto, tries, Duration::from_millis(*timeout as u64 + 3_000)).await;
                if n > 0 {
                    Ok(format!("reset_peer probe through {}: {n} of {tries} probe connections were reset", proxy.name))
                } else {
                    Err(format!("reset_peer probe through {}: none of {tries} probe connections was reset", proxy.name))
                }
            }
            (k, _) => Err(format!(
                "no probe measures {} on {} (only latency, bandwidth upstream and slow_close downstream on Raft links, \
                 latency and reset_peer on client links, and black holes are measured)",
                k.type_name(),
                first.proxy
            )),
        };
        match result {
            Ok(line) => m.evidence.push(line),
            Err(line) => m.problems.push(line),
        }
    }
    m.proven = m.problems.is_empty() && !m.evidence.is_empty();
    m
}

async fn latency_effect(
    proxy: &ProxyPlan,
    proto: Protocol,
    latency_ms: i64,
    streams: usize,
    before: Option<Duration>,
) -> Result<String, String> {
    let Some(before) = before else {
        return Err(format!("latency probe through {}: no round trip could be measured before the fault", proxy.name));
    };
    let timeout = Duration::from_millis(latency_ms as u64 * 4 + 5_000);
    // Other toxics of the same scenario may reset some probe connections (reset_peer picks
    // connections by toxicity): a reset sample is retried, up to 15 tries for 5 round trips.
    let mut samples = Vec::new();
    let mut last_error = None;
    for _ in 0..15 {
        match probe::round_trip(proxy.listen, proto, timeout).await {
            Ok(d) => samples.push(d),
            Err(e) => last_error = Some(e),
        }
        if samples.len() == 5 {
            break;
        }
    }
    if samples.len() < 3 {
        return Err(format!(
            "latency probe through {} during the fault: only {} of 15 round trips completed (last error: {})",
            proxy.name,
            samples.len(),
            last_error.map_or("none".to_string(), |e| e.to_string())
        ));
    }
    samples.sort();
    let during = samples[samples.len() / 2];
    let added = during.as_secs_f64() * 1e3 - before.as_secs_f64() * 1e3;
    // Each faulted direction adds `latency` (± jitter) per round trip; ask for half of it.
    let want = latency_ms as f64 * streams as f64 / 2.0;
    let line = format!(
        "latency probe through {}: median round trip {:.1} ms before → {:.1} ms during ({latency_ms} ms configured on {streams} direction(s))",
        proxy.name,
        before.as_secs_f64() * 1e3,
        during.as_secs_f64() * 1e3
    );
    if added >= want {
        Ok(line)
    } else {
        Err(format!("{line}: it added {added:.1} ms, less than {want:.0} ms"))
    }
}

async fn bandwidth_effect(addr: SocketAddr, name: &str, rate_kb_s: i64) -> Result<String, String> {
    const BYTES: usize = 256 * 1024;
    let expect_s = BYTES as f64 / 1024.0 / rate_kb_s.max(1) as f64;
    let d = probe::transfer(addr, BYTES, Duration::from_secs_f64(expect_s * 4.0 + 10.0))
        .await
        .map_err(|e| format!("bandwidth probe through {name}: {e}"))?;
    let rate = BYTES as f64 / 1024.0 / d.as_secs_f64().max(1e-6);
    let line = format!(
        "bandwidth probe through {name}: 256 KiB took {:.2} s ({rate:.0} KB/s; {rate_kb_s} KB/s configured)",
        d.as_secs_f64()
    );
    if d.as_secs_f64() >= expect_s / 2.0 {
        Ok(line)
    } else {
        Err(format!("{line}: faster than twice the configured rate"))
    }
}

/// For a fault on one node's clock or disk, whether it still held at the end of the hold: the
/// node's clock read from the node, the space of its data directory from the kernel. `None`
/// for other faults.
pub async fn node_fault_held(cluster: &crate::cluster::Cluster, action: &Action) -> Option<Measured> {
    match action {
        Action::ClockSkew { node, offset_ms } => Some(crate::clock::still_skewed(cluster, *node, *offset_ms).await),
        Action::DiskFull(n) => Some(crate::disk::still_full(cluster, *n)),
        _ => None,
    }
}

/// What the kernel showed in the nodes' namespaces at one moment of an IP-layer fault: every
/// TCP socket per node (sock_diag) and each namespace's TCP retransmissions (`RetransSegs`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IpSnapshot {
    pub sockets: BTreeMap<u8, Vec<SockCounters>>,
    pub retrans: BTreeMap<u8, u64>,
}

/// The counters of IP rule sets in a few words: `n1 dropped 52 packets (out 40, in 12), ...`;
/// for loss, of how many considered.
pub fn ip_counter_words(counters: &[crate::cluster::net::RuleCounters]) -> String {
    if counters.is_empty() {
        return "none".to_string();
    }
    counters
        .iter()
        .map(|r| {
            let flows: Vec<String> = r
                .counters
                .flows
                .iter()
                .map(|f| {
                    let dir = match f.direction {
                        crate::netns::Direction::Outbound => "out",
                        crate::netns::Direction::Inbound => "in",
                        crate::netns::Direction::Both => "both",
                    };
                    match &f.seen {
                        Some(seen) => format!("{dir} {} of {}", f.dropped.packets, seen.packets),
                        None => format!("{dir} {}", f.dropped.packets),
                    }
                })
                .collect();
            match r.counters.seen_packets() {
                Some(seen) => format!(
                    "n{} dropped {} of {seen} packets ({})",
                    r.node,
                    r.counters.dropped_packets(),
                    flows.join(", ")
                ),
                None => format!("n{} dropped {} packets ({})", r.node, r.counters.dropped_packets(), flows.join(", ")),
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Judges an IP-layer fault from its nft counters read during the hold and two snapshots of
/// the namespaces (after the fault settled, at the end of the hold). A partition (`cut` not
/// empty) is proven when its rules dropped packets and no connection carried a byte across a
/// cut pair after the settle time (the receiver's `bytes_received` from the sender's
/// addresses, the sender's `bytes_acked` towards the receiver's); loss when its rules
/// considered packets and dropped some. TCP retransmissions in the namespaces are evidence.
pub fn ip_fault(
    plan: &Plan,
    cut: &[(u8, u8)],
    counters: &[crate::cluster::net::RuleCounters],
    before: &IpSnapshot,
    after: &IpSnapshot,
) -> Measured {
    let mut m = Measured::default();
    let dropped: u64 = counters.iter().map(|r| r.counters.dropped_packets()).sum();
    let seen: Option<u64> = counters.iter().map(|r| r.counters.seen_packets()).sum();
    let words = ip_counter_words(counters);
    let mut ok = dropped > 0;
    match seen {
        Some(seen) => {
            let share = if seen > 0 { 100.0 * dropped as f64 / seen as f64 } else { 0.0 };
            m.evidence.push(format!(
                "IP-layer loss (nft counters read during the hold): {dropped} of {seen} packets dropped ({share:.1}%): {words}"
            ));
            if dropped == 0 {
                m.problems
                    .push(format!("the loss rules dropped no packet during the hold ({seen} considered): {words}"));
            }
        }
        None => {
            m.evidence
                .push(format!("IP-layer drop (nft counters read during the hold): {dropped} packets dropped: {words}"));
            if dropped == 0 {
                m.problems.push(format!(
                    "the drop rules matched no packet during the hold, so nothing was cut that was in use: {words}"
                ));
            }
        }
    }
    if !cut.is_empty() {
        let (mut checked, mut alive) = (0usize, Vec::new());
        let grew = |node: u8, s: &SockCounters, field: fn(&SockCounters) -> u64| {
            let was =
                before.sockets.get(&node).and_then(|v| v.iter().find(|b| b.local == s.local && b.remote == s.remote));
            field(s).saturating_sub(was.map_or(0, field))
        };
        for &(x, y) in cut {
            let of = |node: u8, addr: SocketAddr| crate::cluster::net::is_address_of(plan, node, addr);
            for s in after.sockets.get(&y).into_iter().flatten().filter(|s| of(x, s.remote)) {
                checked += 1;
                let d = grew(y, s, |s| s.bytes_received);
                if d > 0 {
                    alive.push(format!("n{y} {} received {d} B from n{x} ({})", s.local, s.remote));
                }
            }
            for s in after.sockets.get(&x).into_iter().flatten().filter(|s| of(y, s.remote)) {
                checked += 1;
                let d = grew(x, s, |s| s.bytes_acked);
                if d > 0 {
                    alive.push(format!("n{x} {} got {d} B acknowledged by n{y} ({})", s.local, s.remote));
                }
            }
        }
        if alive.is_empty() {
            m.evidence.push(format!(
                "OS view in the namespaces (sock_diag): {checked} socket(s) between the {} cut node pair(s), none carried a \
                 byte across the cut after the settle time",
                cut.len()
            ));
        } else {
            ok = false;
            m.problems.push(format!("connections still carried bytes across the IP cut: {}", alive.join("; ")));
        }
    }
    m.evidence.extend(retransmissions(before, after));
    m.proven = ok;
    m
}

/// The TCP retransmissions counted in the nodes' namespaces between two snapshots, as an
/// evidence line (none when they were not read).
fn retransmissions(before: &IpSnapshot, after: &IpSnapshot) -> Option<String> {
    let retrans: Vec<String> = after
        .retrans
        .iter()
        .filter_map(|(n, a)| before.retrans.get(n).map(|b| format!("n{n} +{}", a.saturating_sub(*b))))
        .collect();
    if retrans.is_empty() {
        return None;
    }
    let total: u64 =
        after.retrans.iter().filter_map(|(n, a)| before.retrans.get(n).map(|b| a.saturating_sub(*b))).sum();
    Some(format!(
        "TCP retransmissions in the nodes' namespaces during the hold (RetransSegs of their /proc/net/snmp): {total} ({})",
        retrans.join(", ")
    ))
}

/// Judges an IP-layer bandwidth limit from its tbf qdiscs' counters (`tc -s`) read at inject
/// (`at_inject`) and at the end of the hold (`at_end`), one reading per node and veth end.
/// Proven when every tbf was still in place at the end and, during the hold, the tbfs held
/// packets back for want of tokens (`overlimits`) or dropped some (a full queue): traffic met
/// the limit. A limit that traffic never reached changed nothing, so it is not proven (the
/// figures say how much passed). Packets htb let through unshaped (to or from anyone but a
/// peer) and TCP retransmissions in the namespaces are evidence.
pub fn ip_bandwidth(
    rate_bytes_per_sec: u64,
    at_inject: &[crate::cluster::net::ShapingReading],
    at_end: &[crate::cluster::net::ShapingReading],
    before: &IpSnapshot,
    after: &IpSnapshot,
) -> Measured {
    let mut m = Measured::default();
    let mut ok = !at_end.is_empty();
    let (mut overlimits, mut drops, mut bytes, mut packets, mut unshaped) = (0u64, 0u64, 0u64, 0u64, 0u64);
    for r in at_end {
        let was = at_inject.iter().find(|x| x.node == r.node && x.side == r.side);
        match r.shaping.tbf.as_ref().and_then(|t| t.stats) {
            Some(now) => {
                let d = now.since(&was.and_then(|x| x.shaping.tbf.as_ref().and_then(|t| t.stats)).unwrap_or_default());
                (overlimits, drops, bytes, packets) =
                    (overlimits + d.overlimits, drops + d.drops, bytes + d.bytes, packets + d.packets);
            }
            None => {
                ok = false;
                m.problems.push(format!(
                    "the bandwidth limit of n{} on {} was gone at the end of the hold (root qdisc {})",
                    r.node, r.dev, r.shaping.root.kind
                ));
            }
        }
        let direct = |x: &crate::cluster::net::ShapingReading| x.shaping.root.options.direct_packets_stat;
        unshaped += direct(r).unwrap_or(0).saturating_sub(was.and_then(direct).unwrap_or(0));
    }
    let words = crate::fault::shaping_words(at_end, Some(at_inject));
    let figures = format!(
        "{bytes} B in {packets} packets went through the limits, held back {overlimits} times (overlimits), {drops} \
         packets dropped: {words}"
    );
    if overlimits > 0 || drops > 0 {
        m.evidence.push(format!(
            "IP-layer bandwidth at {rate_bytes_per_sec} B/s per node and direction (tc -s qdisc, tbf counters from inject \
             to the end of the hold): {figures}"
        ));
    } else {
        ok = false;
        m.problems.push(format!(
            "bandwidth limit not proven: the tbf qdiscs at {rate_bytes_per_sec} B/s held back no packet and dropped \
             none during the hold, so the inter-node traffic never met the limit: {figures}"
        ));
    }
    m.evidence.push(format!(
        "packets that matched no peer address and passed unshaped during the hold (htb's direct queue: traffic with \
         the host address, i.e. clients through Toxiproxy, the harness, and the far end of connections a peer dialled, \
         which that peer's limits shape): {unshaped}"
    ));
    m.evidence.extend(retransmissions(before, after));
    m.proven = ok;
    m
}

/// Judges the black holes (`timeout 0`) of one action from two snapshots of the kernel's
/// socket counters, taken after the fault settled and at the end of the hold. Per faulted
/// proxy, the proxy's client-facing sockets (local address = the proxy's listen address) say
/// how many bytes the client sent into it (upstream, received) and how many it delivered back
/// (downstream, acknowledged). A downstream hole must deliver nothing, and the client must have
/// kept sending into the holes. Proven when no cut direction delivered bytes and at least one
/// cut link carried attempted traffic. (Bytes an upstream hole passed on cannot be told apart
/// per proxy here: several proxies dial the same node port.)
///
/// `probed_silent` names proxies into which a probe request was sent during the hold and got no
/// answer: such a hole was exercised even when its own clients sent nothing (a client that
/// stopped sending once its requests went unanswered).
pub fn black_holes(
    plan: &Plan,
    placements: &[Placement],
    before: &[SockCounters],
    after: &[SockCounters],
    probed_silent: &BTreeSet<String>,
) -> Measured {
    let mut m = Measured::default();
    let mut per_proxy: BTreeMap<&str, BTreeSet<Stream>> = BTreeMap::new();
    for p in placements.iter().filter(|p| matches!(p.toxic.kind, ToxicKind::Timeout { timeout: 0 })) {
        per_proxy.entry(p.proxy.as_str()).or_default().insert(p.toxic.stream);
    }
    if per_proxy.is_empty() {
        return m;
    }
    let mut attempted_total = 0u64;
    let (mut cut_back, mut back_total) = (0usize, 0u64);
    let mut idle = Vec::new();
    for (name, streams) in &per_proxy {
        let Some(proxy) = plan.proxies.iter().find(|x| x.name == *name) else { continue };
        let (attempted, delivered_back) = flow(proxy.listen, before, after);
        attempted_total += attempted;
        if attempted == 0 && !probed_silent.contains(*name) {
            idle.push(*name);
        }
        if streams.contains(&Stream::Downstream) {
            cut_back += 1;
            back_total += delivered_back;
        }
        if delivered_back > 0 && streams.contains(&Stream::Downstream) {
            m.problems.push(format!("{name} delivered {delivered_back} bytes downstream while black-holed"));
        }
    }
    let mut line = format!(
        "socket counters (kernel): {} black-holed proxies took {attempted_total} bytes from their clients during the hold; \
         the {cut_back} cut downstream delivered {back_total} bytes back",
        per_proxy.len()
    );
    if !idle.is_empty() {
        line.push_str(&format!("; idle (nothing sent into them): {}", idle.join(", ")));
    }
    let probed: Vec<&str> = per_proxy.keys().copied().filter(|n| probed_silent.contains(*n)).collect();
    if !probed.is_empty() {
        line.push_str(&format!("; a probe request sent through {} got no answer", probed.join(", ")));
    }
    if m.problems.is_empty() {
        m.evidence.push(line);
    }
    if attempted_total == 0 && probed.is_empty() {
        m.problems.push(format!(
            "no traffic was sent into any of the {} black-holed proxies during the hold, so the cut was never exercised",
            per_proxy.len()
        ));
    }
    m.proven = m.problems.is_empty();
    m
}

/// Node-to-node traffic a cut of the Raft and WAL links does not stop: for each cut pair
/// `(a, b)`, bytes node `a` exchanged with node `b` through `b`'s Kafka proxy during the hold
/// (Chronik forwards requests between nodes over the client addresses, which clients share).
/// `node_sockets(a)` lists node `a`'s connections (from `/proc`); counters come from the two
/// kernel snapshots. Each pair that carried bytes is a problem: the cut was not complete.
pub fn kafka_side_channel(
    plan: &Plan,
    pairs: &[(u8, u8)],
    node_sockets: &dyn Fn(u8) -> Vec<crate::os::TcpSocket>,
    before: &[SockCounters],
    after: &[SockCounters],
) -> Vec<String> {
    let kafka_of = |n: u8| plan.proxies.iter().find(|p| p.kind == LinkKind::Kafka { to: n }).map(|p| p.listen);
    let counters = |snap: &[SockCounters], local: SocketAddr, remote: SocketAddr| {
        snap.iter().find(|s| s.local == local && s.remote == remote).map(|s| s.bytes_acked + s.bytes_received)
    };
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for &(a, b) in pairs {
        let Some(proxy) = kafka_of(b) else { continue };
        if !seen.insert((a, b)) {
            continue;
        }
        let bytes: u64 = node_sockets(a)
            .iter()
            .filter(|s| s.remote == proxy)
            .map(|s| {
                let now = counters(after, s.local, s.remote).unwrap_or(0);
                now.saturating_sub(counters(before, s.local, s.remote).unwrap_or(1))
            })
            .sum();
        if bytes > 0 {
            problems.push(format!(
                "n{a} exchanged {bytes} bytes with n{b} through kafka-n{b} while their Raft and WAL links were cut: \
                 node-to-node traffic over client addresses was not cut, so the partition was not complete"
            ));
        }
    }
    problems
}

/// Bytes a proxy's client-facing sockets received (sent into the proxy) and acknowledged as
/// delivered back to the clients, between two snapshots; a socket new in `after` counts from 0.
/// The kernel counts a SYN and a FIN as one acknowledged byte each: a socket opened, or no
/// longer established, has that byte taken off.
pub fn flow(listen: SocketAddr, before: &[SockCounters], after: &[SockCounters]) -> (u64, u64) {
    let old: BTreeMap<(SocketAddr, SocketAddr), &SockCounters> =
        before.iter().filter(|s| s.local == listen).map(|s| ((s.local, s.remote), s)).collect();
    let mut received = 0u64;
    let mut acked = 0u64;
    for s in after.iter().filter(|s| s.local == listen) {
        let (r0, a0) = old.get(&(s.local, s.remote)).map_or((0, 1), |o| (o.bytes_received, o.bytes_acked));
        let fin = u64::from(s.state != 1);
        received += s.bytes_received.saturating_sub(r0);
        acked += s.bytes_acked.saturating_sub(a0).saturating_sub(fin);
    }
    (received, acked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::TopologySpec;
    use crate::toxiproxy::Toxic;

    fn sock(local: SocketAddr, port: u16, received: u64, acked: u64) -> SockCounters {
        SockCounters {
            local,
            remote: SocketAddr::from(([127, 0, 0, 1], port)),
            state: 1,
            inode: port as u32,
            bytes_acked: acked,
            bytes_received: received,
        }
    }

    fn hole(proxy: &str, stream: Stream) -> Placement {
        Placement { proxy: proxy.into(), toxic: Toxic::new(ToxicKind::Timeout { timeout: 0 }, stream) }
    }

    #[test]
    fn traffic_between_cut_nodes_over_kafka_proxies_is_a_problem() {
        let plan = Plan::new(TopologySpec::default()).unwrap();
        let kafka2 = plan.proxies.iter().find(|p| p.name == "kafka-n2").unwrap().listen;
        let local: SocketAddr = "127.0.0.1:45000".parse().unwrap();
        let n1 = move |n: u8| {
            if n == 1 {
                vec![crate::os::TcpSocket { local, remote: kafka2, state: crate::os::TcpState::Established, inode: 7 }]
            } else {
                vec![]
            }
        };
        let at = |acked, received| SockCounters {
            local,
            remote: kafka2,
            state: 1,
            inode: 7,
            bytes_acked: acked,
            bytes_received: received,
        };
        let before = [at(100, 200)];
        // n1 forwarded a request to n2 during the cut.
        let p = kafka_side_channel(&plan, &[(1, 2), (2, 1)], &n1, &before, &[at(160, 260)]);
        assert_eq!(p.len(), 1);
        assert!(p[0].starts_with("n1 exchanged 120 bytes with n2 through kafka-n2"), "{p:?}");
        // Quiet: nothing to say.
        assert!(kafka_side_channel(&plan, &[(1, 2)], &n1, &before, &before).is_empty());
    }

    #[test]
    fn a_black_hole_is_proven_by_bytes_in_and_nothing_out() {
        let plan = Plan::new(TopologySpec::default()).unwrap();
        let listen = |n: &str| plan.proxies.iter().find(|p| p.name == n).unwrap().listen;
        let (a, b) = (listen("raft-n1-to-n2"), listen("wal-n1-to-n2"));
        let placements = [
            hole("raft-n1-to-n2", Stream::Upstream),
            hole("raft-n1-to-n2", Stream::Downstream),
            hole("wal-n1-to-n2", Stream::Upstream),
            hole("wal-n1-to-n2", Stream::Downstream),
        ];
        // n1 keeps sending heartbeats into raft-n1-to-n2 (one connection; a second one opens);
        // nothing comes back; the WAL link is idle.
        let before = [sock(a, 40000, 1000, 500), sock(b, 40001, 10, 10)];
        let after = [sock(a, 40000, 4000, 500), sock(a, 40002, 300, 1), sock(b, 40001, 10, 10)];
        let none = BTreeSet::new();
        let m = black_holes(&plan, &placements, &before, &after, &none);
        assert!(m.proven, "{m:?}");
        assert!(
            m.evidence[0].contains("took 3300 bytes")
                && m.evidence[0].contains("idle (nothing sent into them): wal-n1-to-n2"),
            "{m:?}"
        );
        // A hole that let answers through is a problem.
        let leaky = [sock(a, 40000, 4000, 900), sock(b, 40001, 10, 10)];
        let m = black_holes(&plan, &placements, &before, &leaky, &none);
        assert!(
            !m.proven && m.problems[0] == "raft-n1-to-n2 delivered 400 bytes downstream while black-holed",
            "{m:?}"
        );
        // Nothing sent at all: not exercised, not proven.
        let m = black_holes(&plan, &placements, &before, &before, &none);
        assert!(!m.proven && m.problems[0].contains("never exercised"), "{m:?}");
        // Its clients quiet, but a probe sent into it got no answer: exercised, proven.
        let probed: BTreeSet<String> = ["raft-n1-to-n2".to_string()].into();
        let m = black_holes(&plan, &placements, &before, &before, &probed);
        assert!(m.proven, "{m:?}");
        assert!(m.evidence[0].contains("a probe request sent through raft-n1-to-n2 got no answer"), "{m:?}");
    }

    fn rules(dropped: u64, seen: Option<u64>) -> Vec<crate::cluster::net::RuleCounters> {
        use crate::netns::{Counter, Direction, FaultCounters, FaultId, FlowCounters, IpFault};
        let c = |name: &str, packets| Counter { name: name.into(), packets, bytes: packets * 60 };
        vec![crate::cluster::net::RuleCounters {
            node: 2,
            fault: IpFault::Drop { peers: vec![], direction: Direction::Outbound },
            counters: FaultCounters {
                fault: FaultId(1),
                flows: vec![FlowCounters {
                    direction: Direction::Outbound,
                    seen: seen.map(|s| c("f1_out_seen", s)),
                    dropped: c("f1_out_drop", dropped),
                }],
            },
        }]
    }

    fn shaping_reading(
        node: u8,
        side: crate::netns::Side,
        tbf: Option<(u64, u64, u64)>,
        direct: u64,
    ) -> crate::cluster::net::ShapingReading {
        use crate::netns::tc::{Qdisc, QdiscOptions, QdiscStats, Shaping};
        crate::cluster::net::ShapingReading {
            node,
            side,
            dev: if side == crate::netns::Side::Node { "eth0".into() } else { format!("cc1a2b-h{node}") },
            shaping: Shaping {
                root: Qdisc {
                    kind: if tbf.is_some() { "htb" } else { "noqueue" }.into(),
                    root: true,
                    options: QdiscOptions { direct_packets_stat: Some(direct), ..Default::default() },
                    ..Qdisc::default()
                },
                tbf: tbf.map(|(packets, overlimits, drops)| Qdisc {
                    kind: "tbf".into(),
                    parent: Some("1:1".into()),
                    stats: Some(QdiscStats { bytes: packets * 1000, packets, overlimits, drops, ..Default::default() }),
                    ..Qdisc::default()
                }),
            },
        }
    }

    #[test]
    fn an_ip_bandwidth_limit_is_proven_by_tbf_overlimits_or_drops_during_the_hold() {
        use crate::netns::Side::{Host, Node};
        let snap = |r: u64| IpSnapshot { sockets: BTreeMap::new(), retrans: [(1, r)].into() };
        let at_inject = [shaping_reading(1, Node, Some((2, 0, 0)), 10), shaping_reading(1, Host, Some((0, 0, 0)), 10)];
        // Held back: overlimits grew on one end.
        let at_end = [shaping_reading(1, Node, Some((50, 30, 0)), 90), shaping_reading(1, Host, Some((40, 0, 0)), 25)];
        let m = ip_bandwidth(32_000, &at_inject, &at_end, &snap(5), &snap(12));
        assert!(m.proven, "{m:?}");
        assert_eq!(
            m.evidence[0],
            "IP-layer bandwidth at 32000 B/s per node and direction (tc -s qdisc, tbf counters from inject to the end \
             of the hold): 88000 B in 88 packets went through the limits, held back 30 times (overlimits), 0 packets \
             dropped: n1 to peers (eth0): 48000 B in 48 packets, 30 overlimits, 0 drops, backlog 0 B; n1 from peers \
             (cc1a2b-h1): 40000 B in 40 packets, 0 overlimits, 0 drops, backlog 0 B"
        );
        assert!(m.evidence[1].ends_with(": 95"), "{:?}", m.evidence);
        assert!(m.evidence[2].contains("during the hold (RetransSegs of their /proc/net/snmp): 7 (n1 +7)"), "{m:?}");
        // Drops alone prove it too.
        let dropped = [shaping_reading(1, Node, Some((50, 0, 4)), 10), shaping_reading(1, Host, Some((0, 0, 0)), 10)];
        assert!(ip_bandwidth(32_000, &at_inject, &dropped, &snap(0), &snap(0)).proven);
        // Traffic that never met the limit: not proven, with the figures.
        let under = [shaping_reading(1, Node, Some((60, 0, 0)), 10), shaping_reading(1, Host, Some((30, 0, 0)), 10)];
        let m = ip_bandwidth(32_000, &at_inject, &under, &snap(0), &snap(0));
        assert!(!m.proven, "{m:?}");
        assert!(
            m.problems[0].starts_with(
                "bandwidth limit not proven: the tbf qdiscs at 32000 B/s held back no packet and dropped none during \
                 the hold, so the inter-node traffic never met the limit: 88000 B in 88 packets went through the limits"
            ),
            "{m:?}"
        );
        // Counters that were already high at inject do not count: only what grew during the hold.
        let old = [shaping_reading(1, Node, Some((50, 30, 4)), 10), shaping_reading(1, Host, Some((40, 0, 0)), 10)];
        assert!(!ip_bandwidth(32_000, &old, &old, &snap(0), &snap(0)).proven);
        // A limit gone during the hold: not proven, whatever the other end shows.
        let gone = [shaping_reading(1, Node, Some((50, 30, 0)), 10), shaping_reading(1, Host, None, 10)];
        let m = ip_bandwidth(32_000, &at_inject, &gone, &snap(0), &snap(0));
        assert!(
            !m.proven && m.problems[0].contains("n1 on cc1a2b-h1 was gone at the end of the hold (root qdisc noqueue)")
        );
        // Nothing read: nothing proven.
        assert!(!ip_bandwidth(32_000, &[], &[], &snap(0), &snap(0)).proven);
    }

    fn ns_sock(local: &str, remote: &str, received: u64, acked: u64) -> SockCounters {
        SockCounters {
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
            state: 1,
            inode: 1,
            bytes_acked: acked,
            bytes_received: received,
        }
    }

    #[test]
    fn an_ip_cut_is_proven_by_drops_and_no_byte_across_it_after_the_settle_time() {
        use crate::topology::{Addressing, TopologySpec};
        let plan = Plan::new(TopologySpec {
            addressing: Addressing::PerNode { prefix: [10, 1, 1] },
            ..TopologySpec::default()
        })
        .unwrap();
        // n2 cut from n1 (both ways): n2's connection to n1's front, n1's to n2's front.
        let snap = |recv: u64, acked: u64| IpSnapshot {
            sockets: [
                (2, vec![ns_sock("10.1.1.12:40000", "10.1.1.101:20221", recv, 500)]),
                (1, vec![ns_sock("10.1.1.11:40001", "10.1.1.102:20312", 0, acked)]),
            ]
            .into(),
            retrans: [(1, 10), (2, 20)].into(),
        };
        let cut = [(1, 2), (2, 1)];
        let m = ip_fault(&plan, &cut, &rules(40, None), &snap(100, 900), &snap(100, 900));
        assert!(m.proven, "{m:?}");
        assert!(m.evidence[0].contains("40 packets dropped: n2 dropped 40 packets (out 40)"), "{:?}", m.evidence);
        assert!(
            m.evidence[1].contains("4 socket(s) between the 2 cut node pair(s), none carried a byte"),
            "{:?}",
            m.evidence
        );
        assert!(m.evidence[2].contains("0 (n1 +0, n2 +0)"), "{:?}", m.evidence);
        // Bytes that crossed after the settle time: not proven, naming the socket.
        let m = ip_fault(&plan, &cut, &rules(40, None), &snap(100, 900), &snap(160, 900));
        assert!(!m.proven);
        assert!(
            m.problems[0].contains("n2 10.1.1.12:40000 received 60 B from n1 (10.1.1.101:20221)"),
            "{:?}",
            m.problems
        );
        // No packet dropped: nothing in use was cut.
        let m = ip_fault(&plan, &cut, &rules(0, None), &snap(100, 900), &snap(100, 900));
        assert!(!m.proven && m.problems[0].contains("matched no packet"), "{m:?}");
        // Loss: considered and dropped packets, with the share.
        let m = ip_fault(&plan, &[], &rules(50, Some(500)), &snap(0, 0), &snap(0, 0));
        assert!(m.proven && m.evidence[0].contains("50 of 500 packets dropped (10.0%)"), "{m:?}");
        let m = ip_fault(&plan, &[], &rules(0, Some(500)), &snap(0, 0), &snap(0, 0));
        assert!(!m.proven && m.problems[0].contains("dropped no packet"), "{m:?}");
    }
}
