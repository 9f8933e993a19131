//! Faults made concrete: targets resolved by role at injection time, the toxics each fault puts
//! on which proxies (pure), what each does to the cluster (for the history), injecting and
//! healing them with state read back from Toxiproxy and the process state the OS shows for
//! killed or paused nodes. The measured effect is `proof`'s.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::cluster::net::{BandwidthLimit, IpRule, ShapingReading};
use crate::cluster::Cluster;
use crate::history::Effect;
use crate::netns::{Direction, IpFault};
use crate::os;
use crate::scenario::{Fault, LinkSet, Shape, Target};
use crate::topology::{LinkKind, Plan};
use crate::toxiproxy::{Stream, Toxic, ToxicKind, ToxiproxyError};

/// One toxic on one proxy.
#[derive(Clone, Debug, PartialEq)]
pub struct Placement {
    pub proxy: String,
    pub toxic: Toxic,
}

/// What injecting a fault does.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Toxics(Vec<Placement>),
    Kill(u8),
    Pause(u8),
    /// Every node in this order: SIGTERM, start, wait for the cluster to be ready.
    RollingRestart(Vec<u8>),
    /// The node's wall clock moves by `offset_ms` (its libfaketime offset file).
    ClockSkew {
        node: u8,
        offset_ms: i64,
    },
    /// The node's data directory (its tmpfs) filled until ENOSPC.
    DiskFull(u8),
    /// nftables rule sets in the nodes' namespaces (`--network netns`), installed as step
    /// `index`: `cut` the directed node pairs they separate (a partition), empty for loss.
    Ip {
        index: usize,
        rules: Vec<IpRule>,
        cut: Vec<(u8, u8)>,
        what: String,
    },
    /// tc tbf bandwidth limits in the nodes' namespaces (`--network netns`), installed as step
    /// `index`: each node's traffic with its peers, both ways.
    IpBandwidth {
        index: usize,
        limits: Vec<BandwidthLimit>,
        what: String,
    },
}

/// Every role the faults need.
pub fn roles(faults: &[Fault]) -> BTreeSet<Target> {
    let mut out = BTreeSet::new();
    for f in faults {
        match f {
            Fault::IpPartition(shape) => out.extend(roles(&[Fault::Partition(shape.clone())])),
            Fault::Toxic { .. }
            | Fault::RollingRestart
            | Fault::Partition(Shape::Ring)
            | Fault::IpLoss { .. }
            | Fault::IpBandwidth { .. } => {}
            Fault::Partition(Shape::Isolate(t) | Shape::ClientCut(t) | Shape::Bridge { via: t })
            | Fault::Kill(t)
            | Fault::Pause(t)
            | Fault::ClockSkew { target: t, .. }
            | Fault::DiskFull(t) => {
                out.insert(*t);
            }
            Fault::Partition(Shape::Split { side }) => out.extend(side.iter().copied()),
            Fault::Partition(Shape::OneWay { from, to }) => {
                out.insert(*from);
                out.insert(*to);
            }
            Fault::Partition(Shape::Between { a, b }) => {
                out.insert(*a);
                out.insert(*b);
            }
        }
    }
    out
}

/// Picks the node for each role: `leader` and the partition leaders as the cluster reports them
/// now, followers among the others and the partition for `partition-leader` with `rng` (so a
/// seed reproduces the choice).
pub fn assign_roles(
    needed: &BTreeSet<Target>,
    nodes: &[u8],
    leader: Option<u8>,
    partition_leaders: &BTreeMap<i32, u8>,
    rng: &mut fastrand::Rng,
) -> Result<BTreeMap<Target, u8>, String> {
    let mut out = BTreeMap::new();
    let need_leader = needed.iter().any(|t| matches!(t, Target::Leader | Target::Follower | Target::OtherFollower));
    let leader = match (need_leader, leader) {
        (true, None) => return Err("the nodes agreed on no Raft leader".into()),
        (_, l) => l,
    };
    let mut followers: Vec<u8> = nodes.iter().copied().filter(|n| Some(*n) != leader).collect();
    rng.shuffle(&mut followers);
    for t in needed {
        let node = match t {
            Target::Leader => leader.expect("checked above"),
            Target::Partition0Leader => {
                *partition_leaders.get(&0).ok_or("partition 0 of the test topic has no leader the nodes agree on")?
            }
            Target::PartitionLeader => {
                let led: Vec<u8> = partition_leaders.values().copied().collect();
                if led.is_empty() {
                    return Err("no partition of the test topic has a leader the nodes agree on".into());
                }
                led[rng.usize(0..led.len())]
            }
            Target::Follower => *followers.first().ok_or("no follower to pick")?,
            Target::OtherFollower => *followers.get(1).ok_or("no second follower to pick (needs 3+ nodes)")?,
            Target::Node(n) => {
                if !nodes.contains(n) {
                    return Err(format!("target n{n} is not a node of this {}-node cluster", nodes.len()));
                }
                *n
            }
        };
        out.insert(*t, node);
    }
    Ok(out)
}

/// The concrete action of fault number `index` of a scenario.
pub fn plan_action(fault: &Fault, index: usize, roles: &BTreeMap<Target, u8>, plan: &Plan) -> Action {
    let name = |stream: Stream| format!("chaos-{index}-{stream}");
    match fault {
        Fault::Toxic { links, streams, kind, toxicity } => {
            let proxies = plan.proxies.iter().filter(|p| match links {
                LinkSet::Clients => matches!(p.kind, LinkKind::Kafka { .. }),
                LinkSet::InterNode => p.kind.source().is_some(),
            });
            let mut out = Vec::new();
            for p in proxies {
                for s in streams {
                    out.push(Placement {
                        proxy: p.name.clone(),
                        toxic: Toxic::new(kind.clone(), *s).named(name(*s)).with_toxicity(*toxicity),
                    });
                }
            }
            Action::Toxics(out)
        }
        Fault::Partition(shape) => Action::Toxics(partition(shape, index, roles, plan)),
        Fault::Kill(t) => Action::Kill(roles[t]),
        Fault::Pause(t) => Action::Pause(roles[t]),
        Fault::RollingRestart => Action::RollingRestart(plan.nodes.iter().map(|n| n.id).collect()),
        Fault::ClockSkew { target, offset_ms } => Action::ClockSkew { node: roles[target], offset_ms: *offset_ms },
        Fault::DiskFull(t) => Action::DiskFull(roles[t]),
        Fault::IpPartition(shape) => {
            let cut = cut_pairs(shape, roles, plan);
            Action::Ip { index, rules: drop_rules(&cut, plan), cut, what: crate::schedule::fault_words(fault) }
        }
        Fault::IpLoss { percent } => {
            let rules = plan
                .nodes
                .iter()
                .map(|n| IpRule {
                    node: n.id,
                    fault: IpFault::Loss {
                        percent: *percent,
                        peers: plan.nodes.iter().filter(|p| p.id != n.id).flat_map(|p| addresses(plan, p.id)).collect(),
                        direction: Direction::Both,
                    },
                })
                .collect();
            Action::Ip { index, rules, cut: Vec::new(), what: crate::schedule::fault_words(fault) }
        }
        // As loss: in every namespace, on every peer's addresses (its own and its front).
        Fault::IpBandwidth { rate_kb_s } => Action::IpBandwidth {
            index,
            limits: plan
                .nodes
                .iter()
                .map(|n| BandwidthLimit {
                    node: n.id,
                    rate_bytes_per_sec: u64::from(*rate_kb_s) * 1000,
                    peers: plan.nodes.iter().filter(|p| p.id != n.id).flat_map(|p| addresses(plan, p.id)).collect(),
                })
                .collect(),
            what: crate::schedule::fault_words(fault),
        },
    }
}

/// The directed node pairs `(from, to)` an IP-layer partition separates: one pair for a
/// one-way partition, both directions of every separated pair otherwise (as the proxy-layer
/// shapes; a client cut has no IP form and separates nothing here).
pub fn cut_pairs(shape: &Shape, roles: &BTreeMap<Target, u8>, plan: &Plan) -> Vec<(u8, u8)> {
    let ids: Vec<u8> = plan.nodes.iter().map(|n| n.id).collect();
    let separated = match shape {
        Shape::OneWay { from, to } => return vec![(roles[from], roles[to])],
        Shape::ClientCut(_) => return Vec::new(),
        _ => separation(shape, roles, &ids).expect("a symmetric shape"),
    };
    let mut out = Vec::new();
    for &a in &ids {
        for &b in ids.iter().filter(|b| **b != a) {
            if separated(a, b) {
                out.push((a, b));
            }
        }
    }
    out
}

/// Which node pairs a symmetric shape separates (both ways), as a predicate over two node ids;
/// `None` for a one-way partition and a client cut, which separate no pair both ways.
fn separation(shape: &Shape, roles: &BTreeMap<Target, u8>, ids: &[u8]) -> Option<Box<dyn Fn(u8, u8) -> bool>> {
    Some(match shape {
        Shape::OneWay { .. } | Shape::ClientCut(_) => return None,
        Shape::Isolate(t) => {
            let n = roles[t];
            Box::new(move |a, b| a == n || b == n)
        }
        Shape::Between { a, b } => {
            let pair = [roles[a], roles[b]];
            Box::new(move |x, y| pair == [x, y] || pair == [y, x])
        }
        Shape::Split { side } => {
            let side: BTreeSet<u8> = side.iter().map(|t| roles[t]).collect();
            Box::new(move |a, b| side.contains(&a) != side.contains(&b))
        }
        Shape::Ring => {
            let reach = ring_reach(ids.len());
            let ring = ids.to_vec();
            Box::new(move |a, b| ring_distance(&ring, a, b) > reach)
        }
        Shape::Bridge { via } => {
            let (left, right) = bridge_sides(ids, roles[via]);
            Box::new(move |a, b| (left.contains(&a) && right.contains(&b)) || (left.contains(&b) && right.contains(&a)))
        }
    })
}

/// Node `id`'s IPv4 addresses in the plan: its own and its front (the proxies leading to it).
fn addresses(plan: &Plan, id: u8) -> Vec<Ipv4Addr> {
    let Some(n) = plan.node(id) else { return Vec::new() };
    let mut out: Vec<Ipv4Addr> = [n.kafka.ip(), n.front]
        .into_iter()
        .filter_map(|ip| if let IpAddr::V4(v4) = ip { Some(v4) } else { None })
        .collect();
    out.dedup();
    out
}

/// The drop rules that cut the directed pairs `(x, y)`: in x's namespace, what x sends to y
/// (its own connections to y's front, anything to y's address); in y's, what it receives from x
/// (x's answers on y's connections to x's front). One rule set per node and direction, or one
/// for both when the peers are the same.
fn drop_rules(cut: &[(u8, u8)], plan: &Plan) -> Vec<IpRule> {
    let mut out_peers: BTreeMap<u8, BTreeSet<Ipv4Addr>> = BTreeMap::new();
    let mut in_peers: BTreeMap<u8, BTreeSet<Ipv4Addr>> = BTreeMap::new();
    for &(x, y) in cut {
        out_peers.entry(x).or_default().extend(addresses(plan, y));
        in_peers.entry(y).or_default().extend(addresses(plan, x));
    }
    let nodes: BTreeSet<u8> = out_peers.keys().chain(in_peers.keys()).copied().collect();
    let mut rules = Vec::new();
    for node in nodes {
        let (o, i) = (out_peers.remove(&node).unwrap_or_default(), in_peers.remove(&node).unwrap_or_default());
        let rule = |peers: BTreeSet<Ipv4Addr>, direction| IpRule {
            node,
            fault: IpFault::Drop { peers: peers.into_iter().collect(), direction },
        };
        if o == i {
            rules.push(rule(o, Direction::Both));
        } else {
            if !o.is_empty() {
                rules.push(rule(o, Direction::Outbound));
            }
            if !i.is_empty() {
                rules.push(rule(i, Direction::Inbound));
            }
        }
    }
    rules
}

/// The black holes of a partition: on inter-node links (Raft and WAL), both ways, between
/// every pair the shape separates; a one-way partition holes one direction; a client cut holes
/// the target's Kafka proxy.
fn partition(shape: &Shape, index: usize, roles: &BTreeMap<Target, u8>, plan: &Plan) -> Vec<Placement> {
    let hole = |proxy: &str, stream: Stream| Placement {
        proxy: proxy.to_string(),
        toxic: Toxic::new(ToxicKind::Timeout { timeout: 0 }, stream).named(format!("chaos-{index}-{stream}")),
    };
    let both = |p: &crate::topology::ProxyPlan| [hole(&p.name, Stream::Upstream), hole(&p.name, Stream::Downstream)];
    // Inter-node links as (proxy, dialling node, dialled node).
    let links = plan.proxies.iter().filter_map(|p| p.kind.source().map(|s| (p, s, p.kind.target())));
    let ids: Vec<u8> = plan.nodes.iter().map(|n| n.id).collect();
    let separated: Box<dyn Fn(u8, u8) -> bool> = match shape {
        Shape::OneWay { from, to } => {
            let (f, t) = (roles[from], roles[to]);
            // On links `from` dials, its requests travel upstream; on links `to` dials, `from`'s
            // answers travel downstream.
            return links
                .filter_map(|(p, s, d)| match (s, d) {
                    _ if (s, d) == (f, t) => Some(hole(&p.name, Stream::Upstream)),
                    _ if (s, d) == (t, f) => Some(hole(&p.name, Stream::Downstream)),
                    _ => None,
                })
                .collect();
        }
        Shape::ClientCut(t) => {
            let n = roles[t];
            return plan.proxies.iter().filter(|p| p.kind == LinkKind::Kafka { to: n }).flat_map(both).collect();
        }
        _ => separation(shape, roles, &ids).expect("a symmetric shape"),
    };
    links.filter(|(_, s, d)| separated(*s, *d)).flat_map(|(p, _, _)| both(p)).collect()
}

/// How far round a ring of `n` nodes each still reaches: the fewest neighbours on each side
/// that, with itself, make a majority.
pub fn ring_reach(n: usize) -> usize {
    (n / 2).div_ceil(2)
}

/// Steps between `a` and `b` round the ring `ids` (either way).
fn ring_distance(ids: &[u8], a: u8, b: u8) -> usize {
    let pos = |x| ids.iter().position(|i| *i == x).expect("a node of the plan");
    let d = pos(a).abs_diff(pos(b));
    d.min(ids.len() - d)
}

/// The two halves a bridge through `via` joins: the other nodes by id, the lower half on the
/// left (the smaller half when they cannot be equal).
pub fn bridge_sides(ids: &[u8], via: u8) -> (Vec<u8>, Vec<u8>) {
    let others: Vec<u8> = ids.iter().copied().filter(|i| *i != via).collect();
    let (l, r) = others.split_at(others.len() / 2);
    (l.to_vec(), r.to_vec())
}

/// What an action does to the cluster, for the history's connectivity model: black holes on
/// inter-node links cut the directed pairs they cover (upstream: source → target of the link;
/// downstream: the answers, target → source); other toxics degrade without cutting.
pub fn effect_of(action: &Action, plan: &Plan) -> Effect {
    match action {
        Action::Kill(n) => Effect::Kill { node: *n },
        Action::Pause(n) => Effect::Pause { node: *n },
        // Each node is down for moments only; the model errs towards connectivity.
        Action::RollingRestart(_) => Effect::Degrade { what: "rolling restart".into() },
        // The node stays up and reachable: nothing is cut.
        Action::ClockSkew { node, offset_ms } => {
            Effect::Degrade { what: format!("clock skew {} on n{node}", crate::clock::words(*offset_ms)) }
        }
        Action::DiskFull(n) => Effect::Degrade { what: format!("disk full on n{n}") },
        Action::Ip { cut, what, .. } if cut.is_empty() => Effect::Degrade { what: what.clone() },
        Action::IpBandwidth { what, .. } => Effect::Degrade { what: what.clone() },
        Action::Ip { cut, .. } => Effect::Cut { pairs: cut.clone() },
        Action::Toxics(placements) => {
            if let Some(node) = client_cut(placements, plan) {
                return Effect::ClientCut { node };
            }
            let mut pairs = BTreeSet::new();
            let mut other = BTreeSet::new();
            for p in placements {
                let link = plan.proxies.iter().find(|x| x.name == p.proxy).map(|x| x.kind);
                match (&p.toxic.kind, link.and_then(|k| k.source().map(|s| (s, k.target())))) {
                    (ToxicKind::Timeout { timeout: 0 }, Some((from, to))) if p.toxic.toxicity >= 1.0 => {
                        pairs.insert(if p.toxic.stream == Stream::Upstream { (from, to) } else { (to, from) });
                    }
                    (kind, _) => {
                        other.insert(kind.type_name().to_string());
                    }
                }
            }
            if pairs.is_empty() {
                Effect::Degrade { what: other.into_iter().collect::<Vec<_>>().join(", ") }
            } else {
                Effect::Cut { pairs: pairs.into_iter().collect() }
            }
        }
    }
}

/// The node whose every client connection the placements black-hole, both ways (and nothing
/// else), if that is what they do.
fn client_cut(placements: &[Placement], plan: &Plan) -> Option<u8> {
    let mut node = None;
    for p in placements {
        let to = match plan.proxies.iter().find(|x| x.name == p.proxy)?.kind {
            LinkKind::Kafka { to } => to,
            _ => return None,
        };
        if !matches!(p.toxic.kind, ToxicKind::Timeout { timeout: 0 })
            || p.toxic.toxicity < 1.0
            || *node.get_or_insert(to) != to
        {
            return None;
        }
    }
    let both = [Stream::Upstream, Stream::Downstream].iter().all(|s| placements.iter().any(|p| p.toxic.stream == *s));
    node.filter(|_| both)
}

/// Exact targets of an action, for the history: `raft-n1-to-n2 upstream, ...` or the node.
pub fn describe(action: &Action) -> String {
    match action {
        Action::Kill(n) => format!("SIGKILL n{n}"),
        Action::Pause(n) => format!("SIGSTOP n{n}"),
        Action::RollingRestart(ns) => {
            let ns: Vec<String> = ns.iter().map(|n| format!("n{n}")).collect();
            format!("SIGTERM and restart, in turn: {}", ns.join(", "))
        }
        Action::ClockSkew { node, offset_ms } => {
            format!("clock of n{node} {} (libfaketime)", crate::clock::words(*offset_ms))
        }
        Action::DiskFull(n) => {
            format!("data dir of n{n} full ({} tmpfs)", crate::disk::bytes(crate::disk::DATA_DIR_LIMIT))
        }
        Action::Toxics(ps) => {
            ps.iter().map(|p| format!("{} {} {}", p.proxy, p.toxic.stream, p.toxic)).collect::<Vec<_>>().join(", ")
        }
        Action::Ip { rules, .. } => {
            rules.iter().map(|r| format!("nft in n{}: {}", r.node, r.fault)).collect::<Vec<_>>().join("; ")
        }
        Action::IpBandwidth { limits, .. } => {
            limits.iter().map(|l| format!("tc in n{}: {l}", l.node)).collect::<Vec<_>>().join("; ")
        }
    }
}

/// Applies an action; returns evidence lines, or the reason it could not be applied.
pub async fn inject(cluster: &mut Cluster, action: &Action) -> Result<Vec<String>, String> {
    match action {
        Action::Toxics(placements) => {
            for p in placements {
                cluster
                    .toxiproxy
                    .create_toxic(&p.proxy, &p.toxic)
                    .await
                    .map_err(|e| format!("adding {} to {}: {e}", p.toxic, p.proxy))?;
            }
            read_back(cluster, placements, true).await
        }
        Action::Kill(n) => {
            let pid = cluster.supervisor.node(*n).map_err(|e| e.to_string())?.pid();
            cluster.supervisor.kill(*n).map_err(|e| e.to_string())?;
            match pid {
                Some(pid) if !os::pid_alive(pid) => {
                    Ok(vec![format!("n{n} (pid {pid}) killed with SIGKILL: the process is gone")])
                }
                Some(pid) => Err(format!("n{n} (pid {pid}) is still alive after SIGKILL")),
                None => Err(format!("n{n} was not running")),
            }
        }
        Action::RollingRestart(ns) => Ok(rolling_restart(cluster, ns, &|_| {}).await?.0),
        Action::Pause(n) => {
            cluster.supervisor.pause(*n).map_err(|e| e.to_string())?;
            let pid =
                cluster.supervisor.node(*n).map_err(|e| e.to_string())?.pid().ok_or(format!("n{n} is not running"))?;
            // The kernel marks a stopped process `T` once the signal is delivered.
            for _ in 0..50 {
                if os::process_state(pid) == Some('T') {
                    return Ok(vec![format!(
                        "n{n} (pid {pid}) paused with SIGSTOP: the OS shows it stopped (state T)"
                    )]);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(format!("n{n} (pid {pid}) is not in the stopped state after SIGSTOP"))
        }
        Action::ClockSkew { node, offset_ms } => crate::clock::skew(cluster, *node, *offset_ms).await,
        Action::DiskFull(n) => crate::disk::fill_node(cluster, *n),
        Action::Ip { index, rules, .. } => {
            let net = cluster.net.as_mut().ok_or(NEEDS_NETNS)?;
            net.inject(*index, rules)?;
            // Read back: every rule's counter exists in the kernel now.
            let read = net.counters(*index)?;
            let nodes: BTreeSet<u8> = rules.iter().map(|r| r.node).collect();
            Ok(vec![format!(
                "in place: {} nft rule set(s) in the namespaces of {} (each rule's counter read back from the kernel)",
                read.len(),
                nodes.iter().map(|n| format!("n{n}")).collect::<Vec<_>>().join(", ")
            )])
        }
        Action::IpBandwidth { index, limits, .. } => {
            let net = cluster.net.as_mut().ok_or(NEEDS_NETNS)?;
            let read = net.limit_bandwidth(*index, limits)?;
            let rate = limits.first().map_or(0, |l| l.rate_bytes_per_sec);
            let nodes: Vec<String> = limits.iter().map(|l| format!("n{}", l.node)).collect();
            let peers = limits.first().map_or(0, |l| l.peers.len());
            Ok(vec![format!(
                "in place: tc tbf at {rate} B/s ({} kbit/s) on both ends of the veth of {} (eth0 egress: what a node \
                 sends to its peers; the host end's egress: what it receives from them), each behind an htb root and \
                 u32 filters for its {peers} peer addresses, read back from tc; counters at inject: {}",
                rate * 8 / 1000,
                nodes.join(", "),
                shaping_words(&read, None)
            )])
        }
    }
}

/// The figures of a bandwidth limit's tbf qdiscs, one per node and end: `n1 to peers (eth0):
/// 274428 B in 186 packets, 367 overlimits, 104 drops, backlog 0 B`; the counters as they are,
/// or grown since `since` (the same node and end).
pub fn shaping_words(readings: &[ShapingReading], since: Option<&[ShapingReading]>) -> String {
    if readings.is_empty() {
        return "none".to_string();
    }
    readings
        .iter()
        .map(|r| {
            let way = if r.side == crate::netns::Side::Node { "to peers" } else { "from peers" };
            let Some(now) = r.shaping.tbf.as_ref().and_then(|t| t.stats) else {
                return format!("n{} {way} ({}): no tbf (root {})", r.node, r.dev, r.shaping.root.kind);
            };
            let was = since
                .and_then(|b| b.iter().find(|x| x.node == r.node && x.side == r.side))
                .and_then(|x| x.shaping.tbf.as_ref().and_then(|t| t.stats))
                .unwrap_or_default();
            let d = now.since(&was);
            format!(
                "n{} {way} ({}): {} B in {} packets, {} overlimits, {} drops, backlog {} B",
                r.node, r.dev, d.bytes, d.packets, d.overlimits, d.drops, d.backlog
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Why an IP-layer fault cannot run on a cluster without namespaces.
pub const NEEDS_NETNS: &str = "an IP-layer fault needs --network netns (each node in its own network namespace)";

/// Undoes an action; returns evidence lines.
pub async fn heal(cluster: &mut Cluster, action: &Action) -> Result<Vec<String>, String> {
    match action {
        Action::Toxics(placements) => {
            for p in placements {
                match cluster.toxiproxy.delete_toxic(&p.proxy, &p.toxic.name).await {
                    Ok(()) | Err(ToxiproxyError::NotFound { .. }) => {}
                    Err(e) => return Err(format!("removing {} from {}: {e}", p.toxic.name, p.proxy)),
                }
            }
            read_back(cluster, placements, false).await
        }
        Action::Kill(n) => {
            cluster.supervisor.start(*n).map_err(|e| e.to_string())?;
            Ok(vec![format!("n{n} restarted on its data directory")])
        }
        Action::Pause(n) => {
            cluster.supervisor.resume(*n).map_err(|e| e.to_string())?;
            Ok(vec![format!("n{n} resumed with SIGCONT")])
        }
        Action::RollingRestart(_) => Ok(Vec::new()),
        Action::ClockSkew { node, .. } => crate::clock::skew(cluster, *node, 0).await,
        Action::DiskFull(n) => crate::disk::free_node(cluster, *n),
        Action::Ip { index, .. } => {
            let net = cluster.net.as_mut().ok_or(NEEDS_NETNS)?;
            let last = net.heal(*index)?;
            Ok(vec![format!(
                "removed: {} nft rule set(s); counters at removal: {}",
                last.len(),
                crate::proof::ip_counter_words(&last)
            )])
        }
        Action::IpBandwidth { index, .. } => {
            let net = cluster.net.as_mut().ok_or(NEEDS_NETNS)?;
            let (last, after) = net.clear_bandwidth(*index)?;
            let roots: BTreeSet<String> = after.iter().map(|r| r.shaping.root.kind.clone()).collect();
            Ok(vec![format!(
                "removed: the bandwidth limits of {} veth end(s); read back from tc, none is shaped (root qdiscs now: \
                 {}); counters at removal: {}",
                after.len(),
                roots.into_iter().collect::<Vec<_>>().join(", "),
                shaping_words(&last, None)
            )])
        }
    }
}

/// How long a restarted node may take to rejoin before the cluster counts as not ready.
pub const REJOIN_WITHIN: Duration = Duration::from_secs(45);

/// Restarts every node in turn: SIGTERM (SIGKILL only after the grace period), start on the
/// same data, then wait until the cluster is ready (every node answers and agrees on a leader).
/// Returns the evidence and, when the cluster did not become ready within [`REJOIN_WITHIN`]
/// after a node's restart, why (the cluster's failure, not the harness's: the restart was
/// done); the restart stops there, as an operator would. `Err`: a node could not be stopped or
/// started at all.
pub async fn rolling_restart(
    cluster: &mut Cluster,
    nodes: &[u8],
    say: &dyn Fn(&str),
) -> Result<(Vec<String>, Vec<String>), String> {
    let (mut evidence, mut not_rejoined) = (Vec::new(), Vec::new());
    for (k, n) in nodes.iter().enumerate() {
        say(&format!(
            "rolling restart: n{n} (SIGTERM, start, waiting up to {} s for the cluster)",
            REJOIN_WITHIN.as_secs()
        ));
        let old = cluster.supervisor.node(*n).map_err(|e| e.to_string())?.pid();
        let how = cluster.supervisor.stop(*n).map_err(|e| e.to_string())?;
        cluster.supervisor.start(*n).map_err(|e| e.to_string())?;
        let new = cluster.supervisor.node(*n).map_err(|e| e.to_string())?.pid();
        let stopped = match how {
            crate::process::Termination::Graceful { after, .. } => {
                format!("exited {:.1} s after SIGTERM", after.as_secs_f64())
            }
            crate::process::Termination::Killed { grace } => {
                format!("ignored SIGTERM for {:.0} s and was killed", grace.as_secs_f64())
            }
            crate::process::Termination::AlreadyExited(_) => "had already exited".to_string(),
        };
        let started = std::time::Instant::now();
        match cluster.supervisor.wait_ready(REJOIN_WITHIN).await {
            Ok(leader) => evidence.push(format!(
                "n{n} (pid {}) {stopped}; restarted as pid {}; the cluster was ready again {:.1} s later (leader n{leader})",
                old.map_or("?".into(), |p| p.to_string()),
                new.map_or("?".into(), |p| p.to_string()),
                started.elapsed().as_secs_f64()
            )),
            Err(e) => {
                let left: Vec<String> = nodes[k + 1..].iter().map(|m| format!("n{m}")).collect();
                let stop = if left.is_empty() { String::new() } else { format!("; not restarted: {}", left.join(", ")) };
                evidence.push(format!("n{n} {stopped}; restarted; the cluster was not ready again: {e}{stop}"));
                not_rejoined.push(format!(
                    "the cluster was not ready within {} s after n{n}'s graceful restart, so the rolling restart \
                     stopped there{stop} ({e})",
                    REJOIN_WITHIN.as_secs()
                ));
                break;
            }
        }
    }
    Ok((evidence, not_rejoined))
}

/// Reads the proxies back and checks every placement is (or is no longer) there as asked.
async fn read_back(cluster: &Cluster, placements: &[Placement], present: bool) -> Result<Vec<String>, String> {
    let proxies = cluster.toxiproxy.proxies().await.map_err(|e| format!("reading proxies back: {e}"))?;
    for p in placements {
        let found = proxies.get(&p.proxy).and_then(|x| x.toxics.iter().find(|t| t.name == p.toxic.name));
        match (present, found) {
            (true, Some(t))
                if t.kind == p.toxic.kind && t.stream == p.toxic.stream && t.toxicity == p.toxic.toxicity => {}
            (true, Some(t)) => {
                return Err(format!("{} on {} read back as {t}, not {}", p.toxic.name, p.proxy, p.toxic))
            }
            (true, None) => {
                return Err(format!("{} is missing from {} right after it was added", p.toxic.name, p.proxy))
            }
            (false, Some(t)) => return Err(format!("{t} is still on {} after it was removed", p.proxy)),
            (false, None) => {}
        }
    }
    let n_proxies: BTreeSet<&str> = placements.iter().map(|p| p.proxy.as_str()).collect();
    Ok(vec![format!(
        "{} {} toxics on {} proxies (read back from Toxiproxy)",
        if present { "in place:" } else { "removed:" },
        placements.len(),
        n_proxies.len()
    )])
}

/// The OS view of the faulted proxies, read from `/proc` after the fault settled: which of
/// them carried an established TCP connection from their client — the source node's process
/// for a Raft/WAL link, this process (the workload) for a client-facing Kafka proxy. Evidence
/// that the fault sits on a path in use; an idle link is not a problem (it is reported).
pub fn os_view(
    plan: &Plan,
    placements: &[Placement],
    pid_of_node: &dyn Fn(u8) -> Option<u32>,
    sockets_of: &dyn Fn(u32) -> Vec<os::TcpSocket>,
) -> Vec<String> {
    let proxies: BTreeSet<&str> = placements.iter().map(|p| p.proxy.as_str()).collect();
    if proxies.is_empty() {
        return Vec::new();
    }
    let mut carrying = Vec::new();
    let mut idle = Vec::new();
    for name in &proxies {
        let Some(proxy) = plan.proxies.iter().find(|p| p.name == *name) else { continue };
        let pid = match proxy.kind {
            LinkKind::Raft { from, .. } | LinkKind::Wal { from, .. } => pid_of_node(from),
            LinkKind::Kafka { .. } => Some(std::process::id()),
        };
        let live = pid.is_some_and(|pid| {
            sockets_of(pid).iter().any(|s| s.remote == proxy.listen && s.state == os::TcpState::Established)
        });
        if live {
            carrying.push(*name);
        } else {
            idle.push(*name);
        }
    }
    let mut line = format!(
        "OS view (/proc): {} of {} faulted proxies carried an established connection from their client",
        carrying.len(),
        carrying.len() + idle.len()
    );
    if !idle.is_empty() {
        line.push_str(&format!("; idle: {}", idle.join(", ")));
    }
    vec![line]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::TopologySpec;

    fn plan() -> Plan {
        Plan::new(TopologySpec::default()).unwrap()
    }

    fn roles_of(pairs: &[(Target, u8)]) -> BTreeMap<Target, u8> {
        pairs.iter().copied().collect()
    }

    fn placements(a: Action) -> Vec<(String, Stream)> {
        match a {
            Action::Toxics(p) => p.into_iter().map(|p| (p.proxy, p.toxic.stream)).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn roles_are_resolved_at_injection_and_reproducible_by_seed() {
        let needed: BTreeSet<Target> = [Target::Leader, Target::Follower, Target::OtherFollower].into();
        let none = BTreeMap::new();
        let a = assign_roles(&needed, &[1, 2, 3], Some(2), &none, &mut fastrand::Rng::with_seed(1)).unwrap();
        let b = assign_roles(&needed, &[1, 2, 3], Some(2), &none, &mut fastrand::Rng::with_seed(1)).unwrap();
        assert_eq!(a, b);
        assert_eq!(a[&Target::Leader], 2);
        assert_ne!(a[&Target::Follower], 2);
        assert_ne!(a[&Target::Follower], a[&Target::OtherFollower]);
        let e = assign_roles(&[Target::Leader].into(), &[1, 2, 3], None, &none, &mut fastrand::Rng::new()).unwrap_err();
        assert!(e.contains("the nodes agreed on no Raft leader"));
        let e =
            assign_roles(&[Target::Node(7)].into(), &[1, 2, 3], Some(1), &none, &mut fastrand::Rng::new()).unwrap_err();
        assert!(e.contains("n7 is not a node"));
        // Partition leaders come from what the nodes report; the partition is picked by seed.
        let led: BTreeMap<i32, u8> = [(0, 3), (1, 1), (2, 3)].into();
        let want: BTreeSet<Target> = [Target::PartitionLeader, Target::Partition0Leader].into();
        let r = assign_roles(&want, &[1, 2, 3], Some(2), &led, &mut fastrand::Rng::with_seed(5)).unwrap();
        assert_eq!(r[&Target::Partition0Leader], 3);
        assert!([1, 3].contains(&r[&Target::PartitionLeader]));
        let e = assign_roles(&[Target::PartitionLeader].into(), &[1, 2, 3], Some(2), &none, &mut fastrand::Rng::new())
            .unwrap_err();
        assert!(e.contains("no partition of the test topic has a leader"), "{e}");
    }

    #[test]
    fn isolating_a_node_cuts_all_its_links_both_ways() {
        let p = placements(plan_action(
            &Fault::Partition(Shape::Isolate(Target::Leader)),
            0,
            &roles_of(&[(Target::Leader, 2)]),
            &plan(),
        ));
        // 4 Raft + 4 WAL links touch n2 in a 3-node cluster, each cut both ways.
        assert_eq!(p.len(), 16);
        assert!(p.iter().all(|(name, _)| name.contains("n2")));
        assert!(!p.iter().any(|(name, _)| name.starts_with("kafka-")), "clients still reach the node");
    }

    fn netns_plan() -> Plan {
        use crate::topology::Addressing;
        Plan::new(TopologySpec { addressing: Addressing::PerNode { prefix: [10, 9, 8] }, ..TopologySpec::default() })
            .unwrap()
    }

    fn ip_rules(a: &Action) -> Vec<String> {
        match a {
            Action::Ip { rules, .. } => rules.iter().map(|r| format!("n{}: {}", r.node, r.fault)).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_ip_isolation_drops_every_packet_between_the_node_and_its_peers_in_both_namespaces() {
        let action = plan_action(
            &Fault::IpPartition(Shape::Isolate(Target::Leader)),
            3,
            &roles_of(&[(Target::Leader, 2)]),
            &netns_plan(),
        );
        assert_eq!(
            ip_rules(&action),
            [
                "n1: drop every packet to and from 10.9.8.12, 10.9.8.102",
                "n2: drop every packet to and from 10.9.8.11, 10.9.8.13, 10.9.8.101, 10.9.8.103",
                "n3: drop every packet to and from 10.9.8.12, 10.9.8.102",
            ]
        );
        assert_eq!(effect_of(&action, &netns_plan()), Effect::Cut { pairs: vec![(1, 2), (2, 1), (2, 3), (3, 2)] });
        assert!(matches!(action, Action::Ip { index: 3, .. }));
    }

    #[test]
    fn an_ip_one_way_cut_drops_what_the_sender_sends_and_what_the_receiver_receives() {
        let r = roles_of(&[(Target::Leader, 1), (Target::Follower, 3)]);
        let action = plan_action(
            &Fault::IpPartition(Shape::OneWay { from: Target::Leader, to: Target::Follower }),
            0,
            &r,
            &netns_plan(),
        );
        assert_eq!(
            ip_rules(&action),
            ["n1: drop every packet to 10.9.8.13, 10.9.8.103", "n3: drop every packet from 10.9.8.11, 10.9.8.101"]
        );
        assert_eq!(effect_of(&action, &netns_plan()), Effect::Cut { pairs: vec![(1, 3)] });
    }

    #[test]
    fn ip_loss_runs_in_every_namespace_and_degrades_without_cutting() {
        let action = plan_action(&Fault::IpLoss { percent: 10 }, 1, &BTreeMap::new(), &netns_plan());
        assert_eq!(
            ip_rules(&action)[0],
            "n1: drop 10% of packets to and from 10.9.8.12, 10.9.8.102, 10.9.8.13, 10.9.8.103"
        );
        assert_eq!(ip_rules(&action).len(), 3);
        assert_eq!(
            effect_of(&action, &netns_plan()),
            Effect::Degrade { what: "packet loss 10% on inter-node links (IP layer)".into() }
        );
        assert!(roles(&[Fault::IpLoss { percent: 10 }]).is_empty());
        assert_eq!(roles(&[Fault::IpPartition(Shape::Isolate(Target::Follower))]), [Target::Follower].into());
    }

    #[test]
    fn an_ip_bandwidth_limit_shapes_every_nodes_peer_traffic_and_degrades_without_cutting() {
        let fault = Fault::IpBandwidth { rate_kb_s: 32 };
        let action = plan_action(&fault, 2, &BTreeMap::new(), &netns_plan());
        let Action::IpBandwidth { index, limits, .. } = &action else { panic!("{action:?}") };
        assert_eq!(*index, 2);
        let lines: Vec<String> = limits.iter().map(|l| format!("n{}: {l}", l.node)).collect();
        assert_eq!(
            lines,
            [
                "n1: tbf 32000 B/s to and from 10.9.8.12, 10.9.8.102, 10.9.8.13, 10.9.8.103",
                "n2: tbf 32000 B/s to and from 10.9.8.11, 10.9.8.101, 10.9.8.13, 10.9.8.103",
                "n3: tbf 32000 B/s to and from 10.9.8.11, 10.9.8.101, 10.9.8.12, 10.9.8.102",
            ]
        );
        assert!(
            describe(&action).starts_with("tc in n1: tbf 32000 B/s to and from 10.9.8.12"),
            "{}",
            describe(&action)
        );
        assert_eq!(
            effect_of(&action, &netns_plan()),
            Effect::Degrade { what: "bandwidth 32 KB/s on inter-node links (IP layer)".into() }
        );
        assert!(roles(&[fault]).is_empty());
    }

    #[test]
    fn shaping_figures_are_per_node_and_end_and_count_from_inject() {
        use crate::netns::tc::{Qdisc, QdiscStats, Shaping};
        use crate::netns::Side;
        let reading = |side, overlimits: u64, drops: u64, tbf: bool| ShapingReading {
            node: 1,
            side,
            dev: if side == Side::Node { "eth0".into() } else { "cc1a2b-h1".into() },
            shaping: Shaping {
                root: Qdisc { kind: if tbf { "htb" } else { "noqueue" }.into(), root: true, ..Qdisc::default() },
                tbf: tbf.then(|| Qdisc {
                    kind: "tbf".into(),
                    stats: Some(QdiscStats {
                        bytes: 1000 * overlimits,
                        packets: 2 * overlimits,
                        overlimits,
                        drops,
                        ..Default::default()
                    }),
                    ..Qdisc::default()
                }),
            },
        };
        let at_inject = [reading(Side::Node, 1, 0, true), reading(Side::Host, 0, 0, true)];
        let at_end = [reading(Side::Node, 5, 2, true), reading(Side::Host, 3, 0, true)];
        assert_eq!(
            shaping_words(&at_end, Some(&at_inject)),
            "n1 to peers (eth0): 4000 B in 8 packets, 4 overlimits, 2 drops, backlog 0 B; \
             n1 from peers (cc1a2b-h1): 3000 B in 6 packets, 3 overlimits, 0 drops, backlog 0 B"
        );
        assert!(shaping_words(&at_end, None).starts_with("n1 to peers (eth0): 5000 B in 10 packets, 5 overlimits"));
        assert_eq!(
            shaping_words(&[reading(Side::Node, 0, 0, false)], None),
            "n1 to peers (eth0): no tbf (root noqueue)"
        );
        assert_eq!(shaping_words(&[], None), "none");
    }

    #[test]
    fn one_way_drops_only_from_to_traffic() {
        let r = roles_of(&[(Target::Leader, 1), (Target::Follower, 3)]);
        let p = placements(plan_action(
            &Fault::Partition(Shape::OneWay { from: Target::Leader, to: Target::Follower }),
            0,
            &r,
            &plan(),
        ));
        let want: Vec<(String, Stream)> = vec![
            ("raft-n1-to-n3".into(), Stream::Upstream),
            ("raft-n3-to-n1".into(), Stream::Downstream),
            ("wal-n1-to-n3".into(), Stream::Upstream),
            ("wal-n3-to-n1".into(), Stream::Downstream),
        ];
        assert_eq!(p, want);
    }

    #[test]
    fn toxics_go_on_the_chosen_link_set_per_stream() {
        let f = Fault::Toxic {
            links: LinkSet::Clients,
            streams: vec![Stream::Upstream, Stream::Downstream],
            kind: ToxicKind::Latency { latency: 100, jitter: 20 },
            toxicity: 1.0,
        };
        let p = placements(plan_action(&f, 3, &BTreeMap::new(), &plan()));
        assert_eq!(p.len(), 6);
        assert!(p.iter().all(|(n, _)| n.starts_with("kafka-n")));
        let Action::Toxics(full) = plan_action(&f, 3, &BTreeMap::new(), &plan()) else { unreachable!() };
        assert_eq!(full[0].toxic.name, "chaos-3-upstream");
        let f = Fault::Toxic {
            links: LinkSet::InterNode,
            streams: vec![Stream::Downstream],
            kind: ToxicKind::SlowClose { delay: 5 },
            toxicity: 0.5,
        };
        assert_eq!(placements(plan_action(&f, 0, &BTreeMap::new(), &plan())).len(), 12);
    }

    #[test]
    fn a_client_cut_black_holes_one_nodes_kafka_proxy_both_ways_and_nothing_else() {
        let cut = plan_action(
            &Fault::Partition(Shape::ClientCut(Target::PartitionLeader)),
            1,
            &roles_of(&[(Target::PartitionLeader, 2)]),
            &plan(),
        );
        assert_eq!(
            placements(cut.clone()),
            vec![("kafka-n2".into(), Stream::Upstream), ("kafka-n2".into(), Stream::Downstream)]
        );
        assert_eq!(effect_of(&cut, &plan()), Effect::ClientCut { node: 2 });
        // One direction only, or latency on every client link: no client cut.
        let Action::Toxics(mut one_way) = cut else { unreachable!() };
        one_way.pop();
        assert!(matches!(effect_of(&Action::Toxics(one_way), &plan()), Effect::Degrade { .. }));
        let latency = Fault::Toxic {
            links: LinkSet::Clients,
            streams: vec![Stream::Upstream, Stream::Downstream],
            kind: ToxicKind::Latency { latency: 100, jitter: 0 },
            toxicity: 1.0,
        };
        let degrade = effect_of(&plan_action(&latency, 0, &BTreeMap::new(), &plan()), &plan());
        assert!(matches!(degrade, Effect::Degrade { .. }), "{degrade:?}");
    }

    /// For each node of a 5-node plan, the peers it still reaches both ways under `fault`.
    fn reach_5(fault: &Fault, roles: &[(Target, u8)]) -> Vec<(u8, Vec<u8>)> {
        let plan = Plan::new(TopologySpec { nodes: 5, ..TopologySpec::default() }).unwrap();
        let action = plan_action(fault, 0, &roles_of(roles), &plan);
        if let Action::Toxics(ps) = &action {
            assert!(ps.iter().all(|p| !p.proxy.starts_with("kafka-")), "clients still reach every node");
        }
        let Effect::Cut { pairs } = effect_of(&action, &plan) else { panic!("{action:?}") };
        (1..=5)
            .map(|a| {
                (a, (1..=5).filter(|b| *b != a && !pairs.contains(&(a, *b)) && !pairs.contains(&(*b, a))).collect())
            })
            .collect()
    }

    #[test]
    fn a_split_separates_its_side_from_every_other_node_and_nothing_else() {
        let split = Fault::Partition(Shape::Split { side: vec![Target::Leader, Target::Follower] });
        let reach = reach_5(&split, &[(Target::Leader, 2), (Target::Follower, 4)]);
        assert_eq!(reach, vec![(1, vec![3, 5]), (2, vec![4]), (3, vec![1, 5]), (4, vec![2]), (5, vec![1, 3])]);
    }

    #[test]
    fn in_a_majorities_ring_each_node_reaches_its_two_neighbours_only() {
        let reach = reach_5(&Fault::Partition(Shape::Ring), &[]);
        assert_eq!(reach, vec![(1, vec![2, 5]), (2, vec![1, 3]), (3, vec![2, 4]), (4, vec![3, 5]), (5, vec![1, 4])]);
        // Each sees a majority with itself, and no two see the same one.
        let majorities: BTreeSet<Vec<u8>> = reach
            .iter()
            .map(|(n, peers)| {
                let mut m = peers.clone();
                m.push(*n);
                m.sort();
                m
            })
            .collect();
        assert_eq!(majorities.len(), 5);
        assert!(majorities.iter().all(|m| m.len() == 3));
        assert_eq!((ring_reach(5), ring_reach(7), ring_reach(9)), (1, 2, 2));
    }

    #[test]
    fn a_bridge_reaches_both_halves_which_cannot_reach_each_other() {
        let bridge = Fault::Partition(Shape::Bridge { via: Target::Follower });
        let reach = reach_5(&bridge, &[(Target::Follower, 3)]);
        assert_eq!(
            reach,
            vec![(1, vec![2, 3]), (2, vec![1, 3]), (3, vec![1, 2, 4, 5]), (4, vec![3, 5]), (5, vec![3, 4])]
        );
        assert_eq!(bridge_sides(&[1, 2, 3], 1), (vec![2], vec![3]));
    }

    #[test]
    fn effects_for_the_connectivity_model() {
        let isolate = plan_action(
            &Fault::Partition(Shape::Isolate(Target::Leader)),
            0,
            &roles_of(&[(Target::Leader, 2)]),
            &plan(),
        );
        let Effect::Cut { pairs } = effect_of(&isolate, &plan()) else { panic!() };
        assert_eq!(pairs, vec![(1, 2), (2, 1), (2, 3), (3, 2)]);
        let r = roles_of(&[(Target::Leader, 1), (Target::Follower, 3)]);
        let one_way = plan_action(
            &Fault::Partition(Shape::OneWay { from: Target::Leader, to: Target::Follower }),
            0,
            &r,
            &plan(),
        );
        assert_eq!(effect_of(&one_way, &plan()), Effect::Cut { pairs: vec![(1, 3)] });
        let latency = Fault::Toxic {
            links: LinkSet::InterNode,
            streams: vec![Stream::Downstream],
            kind: ToxicKind::Latency { latency: 5, jitter: 0 },
            toxicity: 1.0,
        };
        assert_eq!(
            effect_of(&plan_action(&latency, 0, &BTreeMap::new(), &plan()), &plan()),
            Effect::Degrade { what: "latency".into() }
        );
        assert_eq!(effect_of(&Action::Kill(3), &plan()), Effect::Kill { node: 3 });
    }

    #[test]
    fn clock_skews_and_full_disks_act_on_the_resolved_node_and_cut_nothing() {
        let r = roles_of(&[(Target::Leader, 2), (Target::Follower, 3)]);
        let skew = plan_action(&Fault::ClockSkew { target: Target::Leader, offset_ms: 120_000 }, 0, &r, &plan());
        assert_eq!(skew, Action::ClockSkew { node: 2, offset_ms: 120_000 });
        assert_eq!(describe(&skew), "clock of n2 +120 s (libfaketime)");
        assert_eq!(effect_of(&skew, &plan()), Effect::Degrade { what: "clock skew +120 s on n2".into() });
        let full = plan_action(&Fault::DiskFull(Target::Follower), 1, &r, &plan());
        assert_eq!(full, Action::DiskFull(3));
        assert_eq!(describe(&full), "data dir of n3 full (64 MiB tmpfs)");
        assert_eq!(effect_of(&full, &plan()), Effect::Degrade { what: "disk full on n3".into() });
        let needed =
            roles(&[Fault::ClockSkew { target: Target::Leader, offset_ms: 5_000 }, Fault::DiskFull(Target::Node(1))]);
        assert_eq!(needed, [Target::Leader, Target::Node(1)].into());
    }

    #[test]
    fn the_os_view_names_which_faulted_proxies_carried_connections() {
        let plan = plan();
        let hole = |proxy: &str| Placement {
            proxy: proxy.into(),
            toxic: Toxic::new(ToxicKind::Timeout { timeout: 0 }, Stream::Upstream),
        };
        let listen = |name: &str| plan.proxies.iter().find(|p| p.name == name).unwrap().listen;
        let to_raft = listen("raft-n1-to-n2");
        // Node 1 (pid 101) has a connection through raft-n1-to-n2 but none through wal-n1-to-n2.
        let sockets = move |pid: u32| {
            if pid == 101 {
                vec![os::TcpSocket {
                    local: "127.0.0.1:40000".parse().unwrap(),
                    remote: to_raft,
                    state: os::TcpState::Established,
                    inode: 1,
                }]
            } else {
                vec![]
            }
        };
        let pid_of = |id: u8| Some(100 + id as u32);
        let ev = os_view(&plan, &[hole("raft-n1-to-n2"), hole("wal-n1-to-n2")], &pid_of, &sockets);
        assert_eq!(
            ev,
            vec!["OS view (/proc): 1 of 2 faulted proxies carried an established connection from their client; idle: wal-n1-to-n2"
                .to_string()]
        );
        assert!(os_view(&plan, &[], &pid_of, &sockets).is_empty());
    }
}
