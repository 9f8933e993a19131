//! Acknowledged without a quorum: an `acks=all` write acknowledged while every node that could
//! have led its partition (the broker that answered, and every leader a node named around the
//! write) could exchange bytes with fewer than `min.insync.replicas − 1` other replicas, for the
//! whole of the write's `[invoke, ack]` window. Judged by acknowledgement time on the
//! connectivity model; a write whose possible leaders disagree is indeterminate, never a FAIL.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::connectivity::Connectivity;
use crate::history::{History, Observation, Outcome};

/// One write acknowledged without a quorum.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unquorate {
    pub value: String,
    pub partition: i32,
    pub offset: i64,
    /// The node that led the partition (or answered) when the write was acknowledged.
    pub node: u8,
    /// The most other replicas that node could reach at any instant of the window.
    pub reachable: usize,
    /// How many it needed (`min.insync.replicas − 1`).
    pub needed: usize,
    pub invoked_us: u64,
    pub acked_us: u64,
}

impl std::fmt::Display for Unquorate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} @ {}:{} acknowledged at {:.1} s while n{} could reach {} of the {} other replicas it needed",
            self.value,
            self.partition,
            self.offset,
            self.acked_us as f64 / 1e6,
            self.node,
            self.reachable,
            self.needed
        )
    }
}

/// What the rule found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumReport {
    /// `min.insync.replicas` as the rule used it, and where it came from.
    pub min_insync_replicas: Option<i64>,
    pub min_insync_source: String,
    /// Acknowledged writes whose window overlapped a fault (the ones this rule looked at).
    pub checked: usize,
    pub violations: Vec<Unquorate>,
    /// Acknowledged during a fault while one possible leader had a quorum and another had
    /// not: which one acknowledged cannot be told, so nothing is concluded.
    pub indeterminate: usize,
}

/// Runs the rule over a history.
pub fn check(h: &History, conn: &Connectivity) -> QuorumReport {
    let mut r = QuorumReport {
        min_insync_replicas: h.topic.min_insync_replicas.effective(),
        min_insync_source: h.topic.min_insync_replicas.describe(),
        ..QuorumReport::default()
    };
    let Some(min_isr) = r.min_insync_replicas else { return r };
    let needed = (min_isr.max(1) - 1) as usize;
    for s in &h.sends {
        let (Outcome::Ok { partition, offset }, Some(acked_us)) = (&s.outcome, s.completed_us) else { continue };
        let spans: Vec<_> = conn.during(s.invoked_us, acked_us).collect();
        if spans.iter().all(|sp| sp.state.is_whole()) {
            continue;
        }
        r.checked += 1;
        let replicas = replicas_of(h, *partition);
        let mut candidates = leaders_around(&h.observations, *partition, s.invoked_us, acked_us);
        if let Some(b) = s.broker.and_then(|b| u8::try_from(b).ok()) {
            candidates.insert(b);
        }
        if candidates.is_empty() {
            candidates.extend(replicas.iter().copied());
        }
        let reach = |c: u8| spans.iter().map(|sp| sp.state.reachable_from(c, &replicas)).max().unwrap_or(0);
        let with_quorum = candidates.iter().filter(|&&c| reach(c) >= needed).count();
        if with_quorum == 0 {
            // Name the answering broker if known, else the first possible leader.
            let node = s.broker.and_then(|b| u8::try_from(b).ok()).unwrap_or(*candidates.iter().next().unwrap());
            r.violations.push(Unquorate {
                value: s.value.clone(),
                partition: *partition,
                offset: *offset,
                node,
                reachable: reach(node),
                needed,
                invoked_us: s.invoked_us,
                acked_us,
            });
        } else if with_quorum < candidates.len() {
            r.indeterminate += 1;
        }
    }
    r
}

/// The partition's replicas as the cluster reported them when the topic was read back; else
/// as the nodes' own views named them most often (the observer's); else every node.
pub fn replicas_of(h: &History, partition: i32) -> Vec<u8> {
    if let Some(r) = h.topic.replicas.get(&partition).filter(|r| !r.is_empty()) {
        return r.clone();
    }
    let mut named: std::collections::BTreeMap<Vec<u8>, usize> = std::collections::BTreeMap::new();
    for o in h.observations.iter().filter(|o| o.error.is_none()) {
        for p in o.partitions.iter().filter(|p| p.partition == partition && !p.replicas.is_empty()) {
            let mut set = p.replicas.clone();
            set.sort_unstable();
            *named.entry(set).or_default() += 1;
        }
    }
    match named.into_iter().max_by_key(|(_, n)| *n) {
        Some((replicas, _)) => replicas,
        None => h.nodes.clone(),
    }
}

/// Every leader of `partition` that a node named inside `[from, to]`, or, when no observation
/// falls inside, in each node's last observation before `from`.
pub fn leaders_around(obs: &[Observation], partition: i32, from: u64, to: u64) -> BTreeSet<u8> {
    let leader = |o: &Observation| o.partitions.iter().find(|p| p.partition == partition).and_then(|p| p.leader);
    let inside: BTreeSet<u8> =
        obs.iter().filter(|o| o.at_us >= from && o.at_us <= to && o.error.is_none()).filter_map(leader).collect();
    if !inside.is_empty() {
        return inside;
    }
    let nodes: BTreeSet<u8> = obs.iter().map(|o| o.node).collect();
    nodes
        .iter()
        .filter_map(|n| {
            obs.iter().filter(|o| o.node == *n && o.at_us < from && o.error.is_none()).max_by_key(|o| o.at_us)
        })
        .filter_map(leader)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Effect, NemesisEvent, NemesisOp, PartitionView, Send, Setting};

    fn history(min_isr: Option<i64>) -> History {
        let mut h = History { nodes: vec![1, 2, 3], ..History::default() };
        h.topic.min_insync_replicas = Setting { requested: min_isr, read_back: None };
        h
    }

    fn ack(h: &mut History, producer: u32, seq: u64, partition: i32, offset: i64, t: (u64, u64), broker: i32) {
        h.sends.push(Send {
            producer,
            seq,
            value: crate::history::value_of(producer, seq),
            invoked_us: t.0,
            completed_us: Some(t.1),
            outcome: Outcome::Ok { partition, offset },
            broker: Some(broker),
            key: None,
        });
    }

    fn observe(h: &mut History, at_us: u64, node: u8, leader: u8) {
        h.observations.push(Observation {
            at_us,
            node,
            raft_leader: Some(leader),
            partitions: vec![PartitionView {
                partition: 0,
                leader: Some(leader),
                replicas: vec![1, 2, 3],
                isr: vec![],
            }],
            error: None,
        });
    }

    fn nemesis(h: &mut History, effect: Effect, from: u64, to: u64) {
        let fault = h.nemesis.len();
        h.nemesis.push(NemesisEvent {
            at_us: from,
            op: NemesisOp::Inject,
            fault,
            effect: effect.clone(),
            ok: true,
            detail: String::new(),
        });
        h.nemesis.push(NemesisEvent { at_us: to, op: NemesisOp::Heal, fault, effect, ok: true, detail: String::new() });
    }

    fn run(h: &History) -> QuorumReport {
        check(h, &Connectivity::from_events(&h.nemesis))
    }

    /// Two of three nodes killed: the survivor acknowledges concurrent writes of two producers.
    #[test]
    fn acknowledgements_by_a_lone_survivor_fail() {
        let mut h = history(Some(2));
        nemesis(&mut h, Effect::Kill { node: 1 }, 1_000, 9_000);
        nemesis(&mut h, Effect::Kill { node: 2 }, 1_000, 9_000);
        observe(&mut h, 500, 3, 3);
        ack(&mut h, 0, 0, 0, 0, (2_000, 2_600), 3);
        ack(&mut h, 1, 0, 0, 1, (2_100, 2_500), 3);
        let r = run(&h);
        assert_eq!(r.checked, 2);
        assert_eq!(r.violations.len(), 2, "{r:?}");
        assert_eq!((r.violations[0].node, r.violations[0].reachable, r.violations[0].needed), (3, 0, 1));
        assert!(r.min_insync_source.contains("requested; the cluster did not say"));
    }

    /// Near misses: a write invoked before the kills (its window saw a whole cluster), one
    /// acknowledged after heal, and the same lone survivor when min.insync.replicas is 1.
    #[test]
    fn near_misses_do_not_fail() {
        let mut h = history(Some(2));
        nemesis(&mut h, Effect::Kill { node: 1 }, 1_000, 9_000);
        nemesis(&mut h, Effect::Kill { node: 2 }, 1_000, 9_000);
        ack(&mut h, 0, 0, 0, 0, (900, 1_500), 3);
        ack(&mut h, 0, 1, 0, 1, (9_000, 9_100), 3);
        assert!(run(&h).violations.is_empty());
        let mut one = history(Some(1));
        one.nemesis = h.nemesis.clone();
        ack(&mut one, 0, 0, 0, 0, (2_000, 2_500), 3);
        let r = run(&one);
        assert_eq!((r.checked, r.violations.len()), (1, 0));
    }

    /// The isolated old leader still names itself while the majority elected n2: which one
    /// acknowledged is ambiguous, so the write is indeterminate, not a failure. When only the
    /// isolated node was ever named leader, its acknowledgement fails.
    #[test]
    fn an_isolated_leader_fails_only_when_no_other_leader_was_named() {
        let cut = Effect::Cut { pairs: vec![(1, 2), (2, 1), (1, 3), (3, 1)] };
        let mut h = history(Some(2));
        nemesis(&mut h, cut.clone(), 1_000, 9_000);
        observe(&mut h, 1_500, 1, 1);
        observe(&mut h, 1_600, 2, 2);
        observe(&mut h, 1_700, 3, 2);
        ack(&mut h, 0, 0, 0, 0, (2_000, 2_300), 1);
        ack(&mut h, 1, 0, 0, 1, (2_050, 2_250), 2);
        let r = run(&h);
        assert_eq!((r.violations.len(), r.indeterminate), (0, 2), "{r:?}");

        let mut lone = history(Some(2));
        nemesis(&mut lone, cut, 1_000, 9_000);
        for n in [1, 2, 3] {
            observe(&mut lone, 1_500, n, 1);
        }
        ack(&mut lone, 0, 0, 0, 0, (2_000, 2_300), 1);
        let r = run(&lone);
        assert_eq!(r.violations.len(), 1, "{r:?}");
        assert!(r.violations[0].to_string().contains("n1 could reach 0 of the 1"));
    }

    /// Five nodes split {1, 5} | {2, 3, 4}; the partition lives on {2, 4, 5} and n5 leads it.
    /// The topic's replicas were not read back, but every node's view names them: n5 reaches
    /// n1, which holds no replica, so its acknowledgement fails. Counting every node as a
    /// replica (the old fallback) would have let n1 stand in for one.
    #[test]
    fn replicas_unknown_to_the_topic_come_from_the_nodes_views() {
        let mut h = history(Some(2));
        h.nodes = vec![1, 2, 3, 4, 5];
        let (side, rest) = ([1u8, 5], [2u8, 3, 4]);
        let pairs = side.iter().flat_map(|a| rest.iter().flat_map(move |b| [(*a, *b), (*b, *a)])).collect();
        nemesis(&mut h, Effect::Cut { pairs }, 1_000, 9_000);
        for n in 1..=5 {
            h.observations.push(Observation {
                at_us: 500,
                node: n,
                raft_leader: Some(5),
                partitions: vec![PartitionView { partition: 0, leader: Some(5), replicas: vec![5, 2, 4], isr: vec![] }],
                error: None,
            });
        }
        assert_eq!(replicas_of(&h, 0), vec![2, 4, 5]);
        ack(&mut h, 0, 0, 0, 0, (2_000, 2_300), 5);
        let r = run(&h);
        assert_eq!(r.violations.len(), 1, "{r:?}");
        assert!(r.violations[0].to_string().contains("n5 could reach 0 of the 1"), "{r:?}");
        // Nothing named anywhere: every node.
        assert_eq!(replicas_of(&history(Some(2)), 0), vec![1, 2, 3]);
    }

    #[test]
    fn an_unknown_min_isr_checks_nothing() {
        let mut h = history(None);
        nemesis(&mut h, Effect::Kill { node: 1 }, 1_000, 9_000);
        ack(&mut h, 0, 0, 0, 0, (2_000, 2_500), 3);
        let r = run(&h);
        assert_eq!((r.checked, r.min_insync_source.as_str()), (0, "unknown"));
    }
}
