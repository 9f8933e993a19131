//! IP-layer faults with nftables inside one node's namespace: the table (`inet <run>`, with an
//! `input` and an `output` chain, policy accept), [`IpFault`] (drop to/from peer addresses per
//! direction, random loss at a rate with `numgen random mod 100 < N`), each rule with a named
//! counter, installed and removed as one nft transaction (JSON on stdin, handles echoed back),
//! and the counters read back as [`FaultCounters`].

use std::collections::HashMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::cmd;
use super::{NetnsEnter, NetnsError};

/// Which packets of a node a fault takes, seen from inside the node's namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Packets the node sends (its `output` chain, matched on destination address).
    Outbound,
    /// Packets the node receives (its `input` chain, matched on source address).
    Inbound,
    /// Both.
    Both,
}

impl Direction {
    /// The one-way directions this covers.
    pub fn flows(self) -> &'static [Direction] {
        match self {
            Direction::Outbound => &[Direction::Outbound],
            Direction::Inbound => &[Direction::Inbound],
            Direction::Both => &[Direction::Outbound, Direction::Inbound],
        }
    }

    fn chain(self) -> &'static str {
        match self {
            Direction::Inbound => "input",
            _ => "output",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Direction::Outbound => "out",
            Direction::Inbound => "in",
            Direction::Both => "both",
        }
    }
}

/// A fault at the IP layer in one node's namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum IpFault {
    /// Drop every packet between the node and `peers` (every port: the fixed ports too). With
    /// no peers, every packet on the node's `eth0`.
    Drop { peers: Vec<Ipv4Addr>, direction: Direction },
    /// Drop each packet between the node and `peers` (no peers: on `eth0`) with probability
    /// `percent`/100, drawn by the kernel per packet.
    Loss { percent: u8, peers: Vec<Ipv4Addr>, direction: Direction },
}

impl IpFault {
    fn peers(&self) -> &[Ipv4Addr] {
        match self {
            IpFault::Drop { peers, .. } | IpFault::Loss { peers, .. } => peers,
        }
    }

    fn direction(&self) -> Direction {
        match self {
            IpFault::Drop { direction, .. } | IpFault::Loss { direction, .. } => *direction,
        }
    }
}

impl std::fmt::Display for IpFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let peers = if self.peers().is_empty() {
            "everyone".to_string()
        } else {
            self.peers().iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ")
        };
        let dir = match self.direction() {
            Direction::Outbound => "to",
            Direction::Inbound => "from",
            Direction::Both => "to and from",
        };
        match self {
            IpFault::Drop { .. } => write!(f, "drop every packet {dir} {peers}"),
            IpFault::Loss { percent, .. } => write!(f, "drop {percent}% of packets {dir} {peers}"),
        }
    }
}

/// A fault installed on a node (numbered per node).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FaultId(pub u32);

impl std::fmt::Display for FaultId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "f{}", self.0)
    }
}

/// A named nft counter as read back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter {
    pub name: String,
    pub packets: u64,
    pub bytes: u64,
}

/// The counters of one direction of a fault: `dropped` counts the packets the rule dropped;
/// `seen` (loss only) every packet the loss rule considered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowCounters {
    pub direction: Direction,
    pub seen: Option<Counter>,
    pub dropped: Counter,
}

/// Every counter of one fault.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultCounters {
    pub fault: FaultId,
    pub flows: Vec<FlowCounters>,
}

impl FaultCounters {
    pub fn dropped_packets(&self) -> u64 {
        self.flows.iter().map(|f| f.dropped.packets).sum()
    }

    /// Packets the loss rules considered (`None` for a drop fault: all it sees, it drops).
    pub fn seen_packets(&self) -> Option<u64> {
        self.flows.iter().map(|f| f.seen.as_ref().map(|c| c.packets)).sum()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Seen,
    Dropped,
}

/// One rule of an installed fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct InstalledRule {
    pub chain: &'static str,
    pub handle: u64,
    pub counter: String,
    pub flow: Direction,
    pub role: Role,
}

/// A fault as installed: what heal must delete.
#[derive(Clone, Debug)]
pub(crate) struct Installed {
    pub id: FaultId,
    pub rules: Vec<InstalledRule>,
}

/// The rules to add for one fault, in order, before their handles are known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PlannedRule {
    pub chain: &'static str,
    pub counter: String,
    pub flow: Direction,
    pub role: Role,
}

/// The nft transaction that adds `fault` to `table`, and the rules it adds.
pub(crate) fn plan(table: &str, id: FaultId, fault: &IpFault) -> (Value, Vec<PlannedRule>) {
    let mut commands = Vec::new();
    let mut rules = Vec::new();
    for &flow in fault.direction().flows() {
        let chain = flow.chain();
        let selector = selector(flow, fault.peers());
        let mut add = |role: Role, extra: Vec<Value>, verdict: Option<Value>| {
            let counter = format!("{id}_{}_{}", flow.short(), if role == Role::Seen { "seen" } else { "drop" });
            commands.push(json!({"add": {"counter": {"family": "inet", "table": table, "name": counter}}}));
            let mut expr = selector.clone();
            expr.extend(extra);
            expr.push(json!({"counter": counter}));
            expr.extend(verdict);
            commands.push(json!({"add": {"rule": {"family": "inet", "table": table, "chain": chain, "expr": expr}}}));
            rules.push(PlannedRule { chain, counter, flow, role });
        };
        match fault {
            IpFault::Drop { .. } => add(Role::Dropped, vec![], Some(json!({"drop": null}))),
            IpFault::Loss { percent, .. } => {
                add(Role::Seen, vec![], None);
                let draw = json!({"match": {"op": "<", "left": {"numgen": {"mode": "random", "mod": 100, "offset": 0}}, "right": percent}});
                add(Role::Dropped, vec![draw], Some(json!({"drop": null})));
            }
        }
    }
    (json!({"nftables": commands}), rules)
}

/// The match part of a rule: the peer addresses, or the node's `eth0` when there are none.
fn selector(flow: Direction, peers: &[Ipv4Addr]) -> Vec<Value> {
    if peers.is_empty() {
        let key = if flow == Direction::Inbound { "iifname" } else { "oifname" };
        return vec![json!({"match": {"op": "==", "left": {"meta": {"key": key}}, "right": "eth0"}})];
    }
    let field = if flow == Direction::Inbound { "saddr" } else { "daddr" };
    let set: Vec<String> = peers.iter().map(|p| p.to_string()).collect();
    vec![json!({"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": field}}, "right": {"set": set}}})]
}

/// The transaction that creates the node's table with its two base chains.
pub(crate) fn table_commands(table: &str) -> Value {
    let chain = |name: &str| {
        json!({"add": {"chain": {"family": "inet", "table": table, "name": name, "type": "filter",
            "hook": name, "prio": 0, "policy": "accept"}}})
    };
    json!({"nftables": [{"add": {"table": {"family": "inet", "name": table}}}, chain("input"), chain("output")]})
}

/// What `nft -j` prints: a list of one-key objects; the keys this module reads are typed.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct NftDoc {
    #[serde(default)]
    pub nftables: Vec<NftItem>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct NftItem {
    #[serde(default)]
    pub add: Option<NftAdd>,
    #[serde(default)]
    pub counter: Option<NftCounter>,
    #[serde(default)]
    pub table: Option<NftTable>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct NftAdd {
    #[serde(default)]
    pub rule: Option<NftRule>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct NftRule {
    pub chain: String,
    pub handle: u64,
    #[serde(default)]
    pub expr: Vec<Value>,
}

impl NftRule {
    /// The name of the named counter the rule updates.
    fn counter(&self) -> Option<&str> {
        self.expr.iter().find_map(|e| e.get("counter")?.as_str())
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct NftCounter {
    pub name: String,
    pub packets: u64,
    pub bytes: u64,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct NftTable {
    pub family: String,
    pub name: String,
}

/// Matches the echoed rules (by their counter) to the planned ones: the installed fault.
pub(crate) fn installed_from_echo(
    id: FaultId,
    planned: &[PlannedRule],
    echo: &NftDoc,
) -> Result<Installed, NetnsError> {
    let echoed: HashMap<&str, &NftRule> = echo
        .nftables
        .iter()
        .filter_map(|i| i.add.as_ref()?.rule.as_ref())
        .filter_map(|r| Some((r.counter()?, r)))
        .collect();
    let mut rules = Vec::new();
    for p in planned {
        let Some(r) = echoed.get(p.counter.as_str()).filter(|r| r.chain == p.chain) else {
            return Err(NetnsError::ReadBack {
                what: format!("the echo of nft's add for fault {id}"),
                wanted: format!("a rule in chain {} with counter {}", p.chain, p.counter),
                found: "none".into(),
            });
        };
        rules.push(InstalledRule {
            chain: p.chain,
            handle: r.handle,
            counter: p.counter.clone(),
            flow: p.flow,
            role: p.role,
        });
    }
    Ok(Installed { id, rules })
}

/// The transaction that removes an installed fault: rules first, then their counters.
pub(crate) fn heal_commands(table: &str, installed: &Installed) -> Value {
    let mut commands: Vec<Value> = installed
        .rules
        .iter()
        .map(|r| json!({"delete": {"rule": {"family": "inet", "table": table, "chain": r.chain, "handle": r.handle}}}))
        .collect();
    commands.extend(
        installed
            .rules
            .iter()
            .map(|r| json!({"delete": {"counter": {"family": "inet", "table": table, "name": r.counter}}})),
    );
    json!({"nftables": commands})
}

/// The installed fault's counters out of a table's counter listing.
pub(crate) fn counters_of(installed: &Installed, listing: &NftDoc) -> Result<FaultCounters, NetnsError> {
    let by_name: HashMap<&str, &NftCounter> =
        listing.nftables.iter().filter_map(|i| i.counter.as_ref()).map(|c| (c.name.as_str(), c)).collect();
    let get = |name: &str| -> Result<Counter, NetnsError> {
        let c = by_name.get(name).ok_or_else(|| NetnsError::ReadBack {
            what: format!("counter {name}"),
            wanted: "listed".into(),
            found: "absent".into(),
        })?;
        Ok(Counter { name: c.name.clone(), packets: c.packets, bytes: c.bytes })
    };
    let mut flows = Vec::new();
    for flow in [Direction::Outbound, Direction::Inbound] {
        let of_flow = |role: Role| installed.rules.iter().find(|r| r.flow == flow && r.role == role);
        let Some(dropped) = of_flow(Role::Dropped) else { continue };
        let seen = of_flow(Role::Seen).map(|r| get(&r.counter)).transpose()?;
        flows.push(FlowCounters { direction: flow, seen, dropped: get(&dropped.counter)? });
    }
    Ok(FaultCounters { fault: installed.id, flows })
}

/// Applies a JSON transaction inside `netns` (with echo and handles when `echo`).
pub(crate) fn apply(netns: &NetnsEnter, commands: &Value, echo: bool) -> Result<NftDoc, NetnsError> {
    let args: &[&str] = if echo { &["-e", "-a", "-j", "-f", "-"] } else { &["-j", "-f", "-"] };
    let input = serde_json::to_vec(commands).expect("nft commands serialise");
    cmd::nft(args.iter().copied()).inside(netns).stdin(input).json()
}

/// Lists the counters of `table` inside `netns`.
pub(crate) fn list_counters(netns: &NetnsEnter, table: &str) -> Result<NftDoc, NetnsError> {
    cmd::nft(["-j", "list", "counters", "table", "inet", table]).inside(netns).json()
}

/// Deletes `table` inside `netns`.
pub(crate) fn delete_table(netns: &NetnsEnter, table: &str) -> Result<(), NetnsError> {
    apply(netns, &json!({"nftables": [{"delete": {"table": {"family": "inet", "name": table}}}]}), false).map(|_| ())
}

/// The tables of `netns` (or of the root namespace with `None`).
pub fn tables(netns: Option<&NetnsEnter>) -> Result<Vec<NftTable>, NetnsError> {
    let mut tool = cmd::nft(["-j", "list", "tables"]);
    if let Some(ns) = netns {
        tool = tool.inside(ns);
    }
    let doc: NftDoc = tool.json()?;
    Ok(doc.nftables.into_iter().filter_map(|i| i.table).collect())
}

/// Deletes a table of the root namespace.
pub(crate) fn delete_root_table(table: &NftTable) -> Result<(), NetnsError> {
    cmd::nft(["delete", "table", table.family.as_str(), table.name.as_str()]).run().map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loss_fault_both_ways_plans_a_counted_seen_and_drop_rule_per_direction() {
        let fault = IpFault::Loss {
            percent: 10,
            peers: vec!["10.200.7.12".parse().unwrap(), "10.200.7.102".parse().unwrap()],
            direction: Direction::Both,
        };
        let (batch, rules) = plan("cc1a2b", FaultId(3), &fault);
        let names: Vec<(&str, &str)> = rules.iter().map(|r| (r.chain, r.counter.as_str())).collect();
        assert_eq!(
            names,
            [("output", "f3_out_seen"), ("output", "f3_out_drop"), ("input", "f3_in_seen"), ("input", "f3_in_drop")]
        );
        let text = serde_json::to_string(&batch["nftables"][3]).unwrap();
        expect_test::expect![[r#"{"add":{"rule":{"chain":"output","expr":[{"match":{"left":{"payload":{"field":"daddr","protocol":"ip"}},"op":"==","right":{"set":["10.200.7.12","10.200.7.102"]}}},{"match":{"left":{"numgen":{"mod":100,"mode":"random","offset":0}},"op":"<","right":10}},{"counter":"f3_out_drop"},{"drop":null}],"family":"inet","table":"cc1a2b"}}}"#]].assert_eq(&text);
        let inbound = serde_json::to_string(&batch["nftables"][5]["add"]["rule"]["expr"][0]).unwrap();
        assert!(inbound.contains("saddr"), "inbound rules match the peer as source: {inbound}");
        assert_eq!(fault.to_string(), "drop 10% of packets to and from 10.200.7.12, 10.200.7.102");
    }

    #[test]
    fn a_drop_fault_without_peers_takes_eth0() {
        let fault = IpFault::Drop { peers: vec![], direction: Direction::Inbound };
        let (batch, rules) = plan("cc1a2b", FaultId(1), &fault);
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].chain, "input");
        let m = &batch["nftables"][1]["add"]["rule"]["expr"][0]["match"];
        assert_eq!(m["left"]["meta"]["key"], "iifname");
        assert_eq!(m["right"], "eth0");
        assert_eq!(fault.to_string(), "drop every packet from everyone");
    }

    #[test]
    fn echoed_handles_and_listed_counters_are_read_back() {
        let fault = IpFault::Loss { percent: 10, peers: vec![], direction: Direction::Outbound };
        let (_, planned) = plan("cc1a2b", FaultId(2), &fault);
        let echo: NftDoc = serde_json::from_str(
            r#"{"nftables": [{"add": {"counter": {"family": "inet", "table": "cc1a2b", "name": "f2_out_seen", "handle": 4}}},
            {"add": {"rule": {"family": "inet", "table": "cc1a2b", "chain": "output", "expr": [{"match": {}}, {"counter": "f2_out_seen"}], "handle": 7}}},
            {"add": {"counter": {"family": "inet", "table": "cc1a2b", "name": "f2_out_drop", "handle": 5}}},
            {"add": {"rule": {"family": "inet", "table": "cc1a2b", "chain": "output", "expr": [{"match": {}}, {"counter": "f2_out_drop"}, {"drop": null}], "handle": 8}}}]}"#,
        )
        .unwrap();
        let installed = installed_from_echo(FaultId(2), &planned, &echo).unwrap();
        assert_eq!(installed.rules.iter().map(|r| r.handle).collect::<Vec<_>>(), [7, 8]);
        let heal = heal_commands("cc1a2b", &installed);
        assert_eq!(heal["nftables"][0]["delete"]["rule"]["handle"], 7);
        assert_eq!(heal["nftables"][3]["delete"]["counter"]["name"], "f2_out_drop");

        let listing: NftDoc = serde_json::from_str(
            r#"{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
            {"counter": {"family": "inet", "name": "f2_out_seen", "table": "cc1a2b", "handle": 4, "packets": 500, "bytes": 42000}},
            {"counter": {"family": "inet", "name": "f2_out_drop", "table": "cc1a2b", "handle": 5, "packets": 48, "bytes": 4032}}]}"#,
        )
        .unwrap();
        let counters = counters_of(&installed, &listing).unwrap();
        assert_eq!(counters.dropped_packets(), 48);
        assert_eq!(counters.seen_packets(), Some(500));
        assert_eq!(counters.flows[0].dropped, Counter { name: "f2_out_drop".into(), packets: 48, bytes: 4032 });

        let missing = installed_from_echo(FaultId(2), &planned, &NftDoc::default()).unwrap_err();
        assert!(missing.to_string().contains("f2_out_seen"), "{missing}");
    }
}
