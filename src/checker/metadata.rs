//! Stale and split views of the cluster, from the observations: a node still named leader of a
//! partition by nodes that could reach each other, seconds after it died or was cut off; and,
//! after heal, nodes that do not answer or disagree on a partition's leader, ISR or log end.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::connectivity::Connectivity;
use crate::history::{majority_leaders, History, Observation};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaleLeader {
    pub partition: i32,
    /// The node still named leader.
    pub leader: u8,
    /// Who named it.
    pub named_by: u8,
    /// When it was lost (died, paused or cut off from the majority) and when it was still named.
    pub lost_at_us: u64,
    pub named_at_us: u64,
}

impl std::fmt::Display for StaleLeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "n{} still named n{} leader of partition {} at {:.1} s, {:.1} s after n{} was lost",
            self.named_by,
            self.leader,
            self.partition,
            self.named_at_us as f64 / 1e6,
            (self.named_at_us - self.lost_at_us) as f64 / 1e6,
            self.leader
        )
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataReport {
    /// First stale naming per (partition, named-by), at least `stale_after` after the loss.
    pub stale: Vec<StaleLeader>,
    /// After heal: one line per disagreement or silence in each node's last observation.
    pub split_after_heal: Vec<String>,
    /// When the last observations after heal were taken (µs), if any were.
    pub settled_at_us: Option<u64>,
    /// Oddities worth reporting that decide nothing (e.g. how followers answer ListOffsets).
    #[serde(default)]
    pub notes: Vec<String>,
}

/// `stale_after_us`: how long after a leader is lost the majority may still name it.
pub fn check(h: &History, conn: &Connectivity, stale_after_us: u64) -> MetadataReport {
    let mut r = MetadataReport::default();
    let mut reported: BTreeSet<(i32, u8)> = BTreeSet::new();
    let mut obs: Vec<&Observation> = h.observations.iter().filter(|o| o.error.is_none()).collect();
    obs.sort_by_key(|o| o.at_us);
    for o in &obs {
        let state = conn.at(o.at_us);
        if !state.in_majority_group(o.node, &h.nodes) {
            continue; // a node cut off may believe what it likes; a majority's view counts
        }
        for p in &o.partitions {
            let Some(leader) = p.leader else { continue };
            if state.in_majority_group(leader, &h.nodes) || !h.nodes.contains(&leader) {
                continue;
            }
            // Cut off from the cluster's majority but still with a majority of this partition's
            // replicas (5 nodes, replication factor 3): it may go on leading the partition, and
            // the clients still reach it; naming it is not stale.
            if p.replicas.contains(&leader) && state.in_majority_group(leader, &p.replicas) {
                continue;
            }
            let Some(lost) = last_loss(conn, leader, &h.nodes, o.at_us) else { continue };
            if o.at_us >= lost + stale_after_us && reported.insert((p.partition, o.node)) {
                r.stale.push(StaleLeader {
                    partition: p.partition,
                    leader,
                    named_by: o.node,
                    lost_at_us: lost,
                    named_at_us: o.at_us,
                });
            }
        }
    }
    split_after_heal(h, &mut r);
    let (split, notes) =
        crate::log_end::compare(&h.final_read.per_node_log_end, &majority_leaders(&h.observations, &h.nodes));
    r.split_after_heal.extend(split);
    r.notes.extend(notes);
    r
}

/// When `n` most recently stopped belonging to any majority group, if it is out at `t`.
fn last_loss(conn: &Connectivity, n: u8, nodes: &[u8], t: u64) -> Option<u64> {
    let mut since = None;
    for s in conn.spans.iter().filter(|s| s.from_us <= t) {
        if s.state.in_majority_group(n, nodes) {
            since = None;
        } else if since.is_none() {
            since = Some(s.from_us);
        }
    }
    since
}

fn split_after_heal(h: &History, r: &mut MetadataReport) {
    let heal = h.timeline.heal_us;
    let last: BTreeMap<u8, &Observation> = h
        .nodes
        .iter()
        .filter_map(|n| {
            h.observations.iter().filter(|o| o.node == *n && o.at_us >= heal).max_by_key(|o| o.at_us).map(|o| (*n, o))
        })
        .collect();
    if last.is_empty() {
        return;
    }
    r.settled_at_us = last.values().map(|o| o.at_us).max();
    for n in &h.nodes {
        match last.get(n) {
            None => r.split_after_heal.push(format!("n{n} was never observed after heal")),
            Some(o) if o.error.is_some() => r.split_after_heal.push(format!(
                "n{n} did not answer at {:.1} s: {}",
                o.at_us as f64 / 1e6,
                o.error.as_deref().unwrap_or_default()
            )),
            Some(_) => {}
        }
    }
    let answered: Vec<&&Observation> = last.values().filter(|o| o.error.is_none()).collect();
    for p in 0..h.topic.partitions {
        let view = |o: &Observation| o.partitions.iter().find(|v| v.partition == p).cloned();
        let leaders: BTreeMap<u8, Option<u8>> =
            answered.iter().map(|o| (o.node, view(o).and_then(|v| v.leader))).collect();
        let distinct: BTreeSet<Option<u8>> = leaders.values().copied().collect();
        if distinct.len() > 1 || distinct.contains(&None) {
            let said: Vec<String> = leaders
                .iter()
                .map(|(n, l)| format!("n{n}: {}", l.map_or("none".to_string(), |l| format!("n{l}"))))
                .collect();
            r.split_after_heal.push(format!("partition {p}: the nodes disagree on its leader ({})", said.join(", ")));
        }
        let isrs: BTreeMap<u8, Vec<u8>> = answered
            .iter()
            .filter_map(|o| {
                view(o).map(|v| {
                    let mut isr = v.isr.clone();
                    isr.sort();
                    (o.node, isr)
                })
            })
            .collect();
        let distinct: BTreeSet<&Vec<u8>> = isrs.values().collect();
        if distinct.len() > 1 {
            let said: Vec<String> = isrs.iter().map(|(n, isr)| format!("n{n}: {isr:?}")).collect();
            r.split_after_heal.push(format!("partition {p}: the nodes disagree on its ISR ({})", said.join(", ")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Effect, NemesisEvent, NemesisOp, PartitionView, Timeline};

    fn obs(at_us: u64, node: u8, leader: Option<u8>, isr: &[u8]) -> Observation {
        Observation {
            at_us,
            node,
            raft_leader: leader,
            partitions: vec![PartitionView { partition: 0, leader, replicas: vec![1, 2, 3], isr: isr.to_vec() }],
            error: None,
        }
    }

    fn history() -> History {
        let mut h = History {
            nodes: vec![1, 2, 3],
            timeline: Timeline { inject_us: 1_000_000, heal_us: 20_000_000, end_us: 30_000_000 },
            ..History::default()
        };
        h.topic.partitions = 1;
        for (op, at_us) in [(NemesisOp::Inject, 1_000_000), (NemesisOp::Heal, 20_000_000)] {
            h.nemesis.push(NemesisEvent {
                at_us,
                op,
                fault: 0,
                effect: Effect::Kill { node: 1 },
                ok: true,
                detail: String::new(),
            });
        }
        h
    }

    #[test]
    fn the_majority_naming_a_dead_leader_for_long_is_stale_and_a_quick_failover_is_not() {
        let mut h = history();
        // n2 and n3 keep naming n1 for 12 s; n1 is dead.
        for t in [2_000_000u64, 8_000_000, 13_000_000] {
            h.observations.push(obs(t, 2, Some(1), &[1, 2, 3]));
            h.observations.push(obs(t, 3, Some(1), &[1, 2, 3]));
        }
        let c = Connectivity::from_events(&h.nemesis);
        let r = check(&h, &c, 10_000_000);
        assert_eq!(r.stale.len(), 2, "{r:?}");
        assert_eq!(
            r.stale[0].to_string(),
            "n2 still named n1 leader of partition 0 at 13.0 s, 12.0 s after n1 was lost"
        );
        // Failover after 7 s: within the budget.
        let mut quick = history();
        quick.observations.push(obs(2_000_000, 2, Some(1), &[1, 2, 3]));
        quick.observations.push(obs(8_000_000, 2, Some(2), &[2, 3]));
        assert!(check(&quick, &c, 10_000_000).stale.is_empty());
    }

    /// A bridge: n2 and n3 cannot talk, both reach n1. Nodes naming n3 (in the majority
    /// {1, 3}) are not stale, whichever majority group is "largest".
    #[test]
    fn a_leader_in_either_of_two_equal_majorities_is_not_stale() {
        let mut h = history();
        h.nemesis.clear();
        for (op, at_us) in [(NemesisOp::Inject, 1_000_000), (NemesisOp::Heal, 20_000_000)] {
            h.nemesis.push(NemesisEvent {
                at_us,
                op,
                fault: 0,
                effect: Effect::Cut { pairs: vec![(2, 3), (3, 2)] },
                ok: true,
                detail: String::new(),
            });
        }
        for t in [2_000_000u64, 13_000_000] {
            for n in [1, 2] {
                h.observations.push(obs(t, n, Some(3), &[1, 2, 3]));
            }
        }
        let c = Connectivity::from_events(&h.nemesis);
        assert!(check(&h, &c, 10_000_000).stale.is_empty());
    }

    /// Five nodes split {1, 2, 5} | {3, 4}. n3 leads a partition on {3, 4, 5}: with n4 it
    /// still holds a majority of that partition's replicas, so the three naming it are not
    /// stale; n4 leading a partition on {1, 2, 4} has lost its replicas' majority, and naming it
    /// for 12 s is.
    #[test]
    fn a_leader_cut_off_from_the_cluster_but_with_its_partitions_replicas_is_not_stale() {
        let mut h = history();
        h.nodes = vec![1, 2, 3, 4, 5];
        h.nemesis.clear();
        let (side, rest) = ([3u8, 4], [1u8, 2, 5]);
        let pairs: Vec<(u8, u8)> =
            side.iter().flat_map(|a| rest.iter().flat_map(move |b| [(*a, *b), (*b, *a)])).collect();
        for (op, at_us) in [(NemesisOp::Inject, 1_000_000), (NemesisOp::Heal, 20_000_000)] {
            h.nemesis.push(NemesisEvent {
                at_us,
                op,
                fault: 0,
                effect: Effect::Cut { pairs: pairs.clone() },
                ok: true,
                detail: String::new(),
            });
        }
        let view = |partition, leader, replicas: &[u8]| PartitionView {
            partition,
            leader: Some(leader),
            replicas: replicas.to_vec(),
            isr: replicas.to_vec(),
        };
        for t in [2_000_000u64, 13_000_000] {
            for n in rest {
                h.observations.push(Observation {
                    at_us: t,
                    node: n,
                    raft_leader: Some(1),
                    partitions: vec![view(2, 3, &[3, 4, 5]), view(0, 4, &[1, 2, 4])],
                    error: None,
                });
            }
        }
        let c = Connectivity::from_events(&h.nemesis);
        let r = check(&h, &c, 10_000_000);
        let stale: Vec<(i32, u8)> = r.stale.iter().map(|s| (s.partition, s.leader)).collect();
        assert_eq!(stale, vec![(0, 4), (0, 4), (0, 4)], "{r:?}");
    }

    #[test]
    fn after_heal_every_node_must_answer_and_agree() {
        let mut h = history();
        let c = Connectivity::from_events(&h.nemesis);
        for n in [1, 2, 3] {
            h.observations.push(obs(25_000_000, n, Some(2), &[1, 2, 3]));
        }
        let r = check(&h, &c, 10_000_000);
        assert!(r.split_after_heal.is_empty(), "{r:?}");
        assert_eq!(r.settled_at_us, Some(25_000_000));
        h.observations.push(obs(26_000_000, 1, Some(1), &[1]));
        let r = check(&h, &c, 10_000_000);
        assert_eq!(r.split_after_heal.len(), 2, "{r:?}");
        assert!(r.split_after_heal[0].contains("disagree on its leader (n1: n1, n2: n2, n3: n2)"));
        h.observations.push(Observation {
            at_us: 27_000_000,
            node: 3,
            raft_leader: None,
            partitions: vec![],
            error: Some("connection refused".into()),
        });
        assert!(check(&h, &c, 10_000_000)
            .split_after_heal
            .iter()
            .any(|l| l.starts_with("n3 did not answer at 27.0 s")));
    }
}
