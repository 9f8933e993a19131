//! The recorded history of a scenario, as Jepsen keeps it: every send (invoke → ok / fail /
//! info) and every read of the workload, every nemesis operation (inject and heal, with exact
//! targets), every observation of the cluster (what each node said about each partition), and
//! the topic's settings as read back. Timestamps are monotonic microseconds since the workload
//! started. Values are unique: `p<producer>-<seq>`. The checker decides from this alone.

pub mod group;
pub mod txn;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How a send ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Outcome {
    /// Acknowledged at this partition and offset.
    Ok { partition: i32, offset: i64 },
    /// Definitely not written (the broker said so).
    Fail { error: String },
    /// Indeterminate: a timeout or a lost connection; it may or may not have been written.
    Info { error: String },
}

/// One produce operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Send {
    pub producer: u32,
    pub seq: u64,
    pub value: String,
    pub invoked_us: u64,
    /// When the outcome arrived (`None`: still pending when the workload ended — indeterminate).
    pub completed_us: Option<u64>,
    pub outcome: Outcome,
    /// The broker that answered the produce request, as librdkafka reports it (`None`: unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker: Option<i32>,
    /// Keyed writes: the record's key and its place in that key's own sequence (each key is
    /// written by one producer, so its sequence is that producer's order for the key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<KeySeq>,
}

/// A keyed write's key and its number in that key's sequence (0, 1, 2, ...).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySeq {
    pub key: String,
    pub seq: u64,
}

/// One record seen by a consumer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Read {
    pub partition: i32,
    pub offset: i64,
    pub value: String,
    pub at_us: u64,
    /// Seen by the final read (fresh consumers after every fault was healed).
    pub final_read: bool,
}

/// Something a reader was told instead of a record (an error per partition, e.g. offset out
/// of range: readers run with `auto.offset.reset=error`, so nothing is skipped silently).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReaderEvent {
    pub at_us: u64,
    pub final_read: bool,
    pub partition: i32,
    pub error: String,
}

/// Inject or heal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NemesisOp {
    Inject,
    Heal,
}

/// What a fault does to the cluster, in terms the checker can reason about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Effect {
    /// Bytes from the first node to the second are dropped on every inter-node link between
    /// them (directed pairs).
    Cut { pairs: Vec<(u8, u8)> },
    /// The node's process is gone (SIGKILL); healed by a restart on the same data.
    Kill { node: u8 },
    /// The node's process is stopped (SIGSTOP); healed by SIGCONT.
    Pause { node: u8 },
    /// Traffic is slowed or disturbed but not cut (latency, bandwidth, resets, slow close).
    Degrade { what: String },
    /// Every client connection to the node is cut, both ways; its links to its peers stay up.
    #[serde(rename = "client-cut")]
    ClientCut { node: u8 },
}

/// One nemesis operation. An inject is recorded when the fault is in place (read back); a heal
/// when the harness starts undoing it. `ok = false`: it could not be done as asked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NemesisEvent {
    pub at_us: u64,
    pub op: NemesisOp,
    /// Which fault of the scenario (its index).
    pub fault: usize,
    pub effect: Effect,
    pub ok: bool,
    /// Exact targets: proxies and directions, or the process.
    pub detail: String,
}

/// What one node said about the test topic at one moment (its admin API, asked separately).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    pub at_us: u64,
    pub node: u8,
    /// `None`: the node did not answer (then `error` says why).
    #[serde(default)]
    pub raft_leader: Option<u8>,
    #[serde(default)]
    pub partitions: Vec<PartitionView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One partition as one node sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionView {
    pub partition: i32,
    pub leader: Option<u8>,
    pub replicas: Vec<u8>,
    pub isr: Vec<u8>,
}

/// A topic setting: what was asked for, and what the cluster said when asked back.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setting {
    pub requested: Option<i64>,
    /// `None`: the cluster would not say (then the rules use `requested`, and say so).
    pub read_back: Option<i64>,
}

impl Setting {
    /// The value the rules use: read back, else requested.
    pub fn effective(&self) -> Option<i64> {
        self.read_back.or(self.requested)
    }

    /// `2 (read back from the cluster)` / `2 (requested; the cluster did not say)` / `unknown`.
    pub fn describe(&self) -> String {
        match (self.read_back, self.requested) {
            (Some(v), Some(r)) if v != r => format!("{v} (read back from the cluster; {r} was requested)"),
            (Some(v), _) => format!("{v} (read back from the cluster)"),
            (None, Some(r)) => format!("{r} (requested; the cluster did not say)"),
            (None, None) => "unknown".to_string(),
        }
    }
}

/// The test topic's settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicSettings {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: Setting,
    pub min_insync_replicas: Setting,
    /// Replicas per partition as the cluster reported them after creation.
    #[serde(default)]
    pub replicas: BTreeMap<i32, Vec<u8>>,
}

/// When the fault phase began and ended and the workload stopped, µs since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeline {
    pub inject_us: u64,
    pub heal_us: u64,
    /// When the workload stopped sending.
    pub end_us: u64,
}

/// How the final read ended.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalRead {
    /// Every partition was read up to its highest acknowledged offset before the deadline.
    pub complete: bool,
    /// Per partition: the last offset the final read had to reach: the log end (high
    /// watermark − 1, read after heal) or the highest acknowledged offset, whichever is higher.
    pub targets: BTreeMap<i32, i64>,
    /// Per partition: the high watermark the cluster reported before the final read
    /// (`None`: it would not say; the target is then the highest acknowledged offset).
    #[serde(default)]
    pub log_end: BTreeMap<i32, Option<i64>>,
    /// What each node said, asked separately (ListOffsets through its own Kafka proxy).
    #[serde(default)]
    pub per_node_log_end: BTreeMap<u8, BTreeMap<i32, crate::log_end::NodeLogEnd>>,
    /// Per partition: the highest offset it did reach.
    pub reached: BTreeMap<i32, i64>,
    /// Distinct errors the final consumer saw (at most 10), for the report.
    #[serde(default)]
    pub errors: Vec<String>,
}

/// Everything the checker needs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// Whether each producer's sends to one partition must get increasing offsets (true with
    /// idempotence or one request in flight).
    pub ordered_producers: bool,
    pub sends: Vec<Send>,
    pub reads: Vec<Read>,
    pub final_read: FinalRead,
    /// The cluster's node ids.
    #[serde(default)]
    pub nodes: Vec<u8>,
    #[serde(default)]
    pub timeline: Timeline,
    #[serde(default)]
    pub topic: TopicSettings,
    #[serde(default)]
    pub nemesis: Vec<NemesisEvent>,
    #[serde(default)]
    pub observations: Vec<Observation>,
    #[serde(default)]
    pub reader_events: Vec<ReaderEvent>,
    /// The queue workload's consumer group (`None`: the scenario ran no group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<group::GroupHistory>,
    /// The transactional workload, on its own topic (`None`: the scenario ran none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub txn: Option<txn::TxnHistory>,
    /// For the offsets of values read at more than one offset: the producer id, epoch and
    /// sequence of the record batch holding each, as a node's log answered a Fetch after the
    /// final read (offsets no node answered for are missing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub origins: Vec<crate::record_origin::RecordOrigin>,
}

/// The unique value of a producer's `seq`-th send.
pub fn value_of(producer: u32, seq: u64) -> String {
    format!("p{producer}-{seq}")
}

/// Each partition's leader as most of `nodes` name it in their latest answer among `obs`
/// (a partition without a majority view is left out).
pub fn majority_leaders(obs: &[Observation], nodes: &[u8]) -> BTreeMap<i32, u8> {
    let mut votes: BTreeMap<(i32, u8), usize> = BTreeMap::new();
    for n in nodes {
        if let Some(o) = obs.iter().filter(|o| o.node == *n && o.error.is_none()).max_by_key(|o| o.at_us) {
            for p in &o.partitions {
                if let Some(l) = p.leader {
                    *votes.entry((p.partition, l)).or_default() += 1;
                }
            }
        }
    }
    votes.into_iter().filter(|(_, v)| *v * 2 > nodes.len()).map(|((p, l), _)| (p, l)).collect()
}

/// Whether every node in `nodes` answered in its latest observation and all name the same
/// leader for every partition (nodes list partitions in their own order: compared as sets).
pub fn latest_agree(obs: &[Observation], nodes: &[u8]) -> bool {
    let last: Vec<&Observation> =
        nodes.iter().filter_map(|n| obs.iter().filter(|o| o.node == *n).max_by_key(|o| o.at_us)).collect();
    if last.len() != nodes.len() || last.iter().any(|o| o.error.is_some()) {
        return false;
    }
    let leaders = |o: &Observation| o.partitions.iter().map(|p| (p.partition, p.leader)).collect::<BTreeMap<_, _>>();
    let first = leaders(last[0]);
    !first.is_empty() && first.values().all(|l| l.is_some()) && last.iter().all(|o| leaders(o) == first)
}

impl History {
    /// The highest acknowledged offset per partition.
    pub fn highest_acked(&self) -> BTreeMap<i32, i64> {
        let mut out = BTreeMap::new();
        for s in &self.sends {
            if let Outcome::Ok { partition, offset } = s.outcome {
                let e = out.entry(partition).or_insert(offset);
                *e = (*e).max(offset);
            }
        }
        out
    }

    pub fn acked(&self) -> usize {
        self.sends.iter().filter(|s| matches!(s.outcome, Outcome::Ok { .. })).count()
    }

    pub fn failed(&self) -> usize {
        self.sends.iter().filter(|s| matches!(s.outcome, Outcome::Fail { .. })).count()
    }

    pub fn indeterminate(&self) -> usize {
        self.sends.iter().filter(|s| matches!(s.outcome, Outcome::Info { .. })).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(node: u8, at_us: u64, leaders: &[(i32, u8)]) -> Observation {
        Observation {
            at_us,
            node,
            raft_leader: Some(1),
            partitions: leaders
                .iter()
                .map(|(p, l)| PartitionView { partition: *p, leader: Some(*l), replicas: vec![1, 2, 3], isr: vec![] })
                .collect(),
            error: None,
        }
    }

    /// Seen with Chronik v2.10.4: nodes list the same partitions in different orders.
    #[test]
    fn agreement_ignores_the_order_nodes_list_partitions_in() {
        let a = [(0, 1), (2, 3), (1, 2)];
        let b = [(0, 1), (1, 2), (2, 3)];
        let o = vec![obs(1, 10, &a), obs(2, 11, &a), obs(3, 12, &b)];
        assert!(latest_agree(&o, &[1, 2, 3]));
        assert_eq!(majority_leaders(&o, &[1, 2, 3]), BTreeMap::from([(0, 1), (1, 2), (2, 3)]));
        // A later answer naming another leader breaks the agreement; the majority still holds.
        let mut split = o.clone();
        split.push(obs(3, 20, &[(0, 2), (1, 2), (2, 3)]));
        assert!(!latest_agree(&split, &[1, 2, 3]));
        assert_eq!(majority_leaders(&split, &[1, 2, 3])[&0], 1);
        // A silent node means no agreement.
        assert!(!latest_agree(&o[..2], &[1, 2, 3]));
    }
}
