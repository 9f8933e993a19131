//! Availability per partition: the longest stretch with no acknowledged write, writes
//! acknowledged during the fault, failover after the partition's leader was lost, and recovery
//! after heal (to the first acknowledged write *sent after* heal, with no floor). Whether a
//! majority of the partition's replicas could reach each other comes from the connectivity
//! model, so "no failover" is told apart from "no quorum to fail over to".

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::checker::quorum::{leaders_around, replicas_of};
use crate::connectivity::Connectivity;
use crate::history::{Effect, History, NemesisOp, Outcome};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PartitionAvailability {
    pub partition: i32,
    pub acked: usize,
    /// Acknowledged (by completion time) before the first inject: the partition was served
    /// while the cluster was healthy.
    #[serde(default)]
    pub acked_before_fault: usize,
    /// Acknowledged (by completion time) between inject and heal.
    pub acked_during_fault: usize,
    /// Longest time without an acknowledged write, from the workload's start to its end.
    pub longest_gap_ms: f64,
    pub gap_window_us: (u64, u64),
    /// The leader the nodes named just before the fault.
    pub leader_before: Option<u8>,
    /// When that leader stopped being part of the largest group of nodes that could all reach
    /// each other (died, paused, or cut off), if it did during the fault.
    pub leader_lost_at_us: Option<u64>,
    /// From `leader_lost_at_us` to the first acknowledgement of a write sent after it, before heal.
    pub failover_ms: Option<f64>,
    /// At every instant of the fault, a majority of the replicas (and at least
    /// `min.insync.replicas` of them) were up and could all reach each other.
    pub quorum_possible_throughout: bool,
    /// From heal to the first acknowledgement of a write sent after heal (`None`: never).
    pub recovery_ms: Option<f64>,
    /// The clients were cut from the partition's leader during the fault (its peers still
    /// reached it): no write could be acknowledged, and no failover was due.
    #[serde(default)]
    pub clients_cut_from_leader: bool,
}

/// Measures every partition of the topic (those in the topic settings, else those written)
/// over the fault (first inject to last heal). With a schedule of several faults apart in time,
/// each stretch with a fault in place is judged too: a partition that acknowledged nothing
/// through one of them while a quorum of its replicas could reach each other is reported for
/// that stretch (so a fault healed before the next is not hidden by the writes in between).
pub fn measure(h: &History, conn: &Connectivity) -> Vec<PartitionAvailability> {
    let tl = h.timeline;
    let mut acks: BTreeMap<i32, Vec<(u64, u64)>> = BTreeMap::new();
    for p in 0..h.topic.partitions {
        acks.entry(p).or_default();
    }
    for s in &h.sends {
        if let (Outcome::Ok { partition, .. }, Some(c)) = (&s.outcome, s.completed_us) {
            acks.entry(*partition).or_default().push((s.invoked_us, c));
        }
    }
    let stretches = fault_stretches(h);
    acks.into_iter()
        .map(|(partition, mut oks)| {
            oks.sort_by_key(|&(_, c)| c);
            let whole = measure_in(h, conn, partition, &oks, (tl.inject_us, tl.heal_us));
            if stretches.len() <= 1 {
                return whole;
            }
            stretches
                .iter()
                .map(|w| measure_in(h, conn, partition, &oks, *w))
                .find(|p| p.quorum_possible_throughout && p.acked_during_fault == 0 && !p.clients_cut_from_leader)
                .map(|p| PartitionAvailability {
                    acked: whole.acked,
                    acked_before_fault: whole.acked_before_fault,
                    longest_gap_ms: whole.longest_gap_ms,
                    gap_window_us: whole.gap_window_us,
                    recovery_ms: whole.recovery_ms,
                    ..p
                })
                .unwrap_or(whole)
        })
        .collect()
}

/// The stretches of time with at least one fault in place (from each successful inject to
/// its heal; overlapping ones merged), in order.
fn fault_stretches(h: &History) -> Vec<(u64, u64)> {
    let mut spans: Vec<(u64, u64)> = h
        .nemesis
        .iter()
        .filter(|e| e.op == NemesisOp::Inject && e.ok)
        .map(|i| {
            let heal = h
                .nemesis
                .iter()
                .find(|e| e.op == NemesisOp::Heal && e.fault == i.fault && e.at_us >= i.at_us)
                .map_or(h.timeline.heal_us.max(i.at_us), |e| e.at_us);
            (i.at_us, heal)
        })
        .collect();
    spans.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (a, b) in spans {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// One partition over the fault stretch `(inject_us, heal_us)`; recovery from `heal_us`.
fn measure_in(
    h: &History,
    conn: &Connectivity,
    partition: i32,
    oks: &[(u64, u64)],
    (inject_us, heal_us): (u64, u64),
) -> PartitionAvailability {
    let faulted = heal_us > inject_us;
    let min_isr = h.topic.min_insync_replicas.effective().unwrap_or(1).max(1) as usize;
    let (longest_gap_ms, gap_window_us) = longest_gap(oks, h.timeline.end_us);
    let replicas = replicas_of(h, partition);
    let needed = (replicas.len() / 2 + 1).max(min_isr);
    let quorum_possible_throughout = faulted
        && conn
            .during(inject_us, heal_us.saturating_sub(1))
            .all(|sp| sp.state.largest_connected_group(&replicas).len() >= needed);
    let before = leaders_around(&h.observations, partition, inject_us, inject_us);
    let leader_before = if before.len() == 1 { before.into_iter().next() } else { None };
    let leader_lost_at_us =
        leader_before.filter(|_| faulted).and_then(|l| conn.lost_at(l, &replicas, inject_us)).filter(|t| *t < heal_us);
    let failover_ms = leader_lost_at_us.and_then(|lost| {
        oks.iter().filter(|(i, c)| *i >= lost && *c < heal_us).map(|(_, c)| c).min().map(|c| (c - lost) as f64 / 1e3)
    });
    let recovery_ms = faulted
        .then(|| oks.iter().filter(|(i, _)| *i >= heal_us).map(|(_, c)| *c).min())
        .flatten()
        .map(|c| (c - heal_us) as f64 / 1e3);
    let clients_cut_from_leader = leader_before.is_some_and(|l| {
        h.nemesis.iter().any(|e| {
            e.op == NemesisOp::Inject && e.ok && e.at_us < heal_us && e.effect == Effect::ClientCut { node: l }
        })
    }) && faulted;
    PartitionAvailability {
        partition,
        acked: oks.len(),
        acked_before_fault: oks.iter().filter(|(_, c)| *c < inject_us).count(),
        acked_during_fault: oks.iter().filter(|(_, c)| *c >= inject_us && *c < heal_us).count(),
        longest_gap_ms,
        gap_window_us,
        leader_before,
        leader_lost_at_us,
        failover_ms,
        quorum_possible_throughout,
        recovery_ms,
        clients_cut_from_leader,
    }
}

/// Longest gap between acknowledgements, counting from the start and to `end_us`.
fn longest_gap(oks: &[(u64, u64)], end_us: u64) -> (f64, (u64, u64)) {
    let mut prev = 0u64;
    let mut longest = (0u64, 0u64);
    for &(_, c) in oks.iter().filter(|(_, c)| *c <= end_us) {
        if c.saturating_sub(prev) > longest.1 - longest.0 {
            longest = (prev, c);
        }
        prev = c;
    }
    if end_us.saturating_sub(prev) > longest.1 - longest.0 {
        longest = (prev, end_us);
    }
    ((longest.1 - longest.0) as f64 / 1e3, longest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Effect, NemesisEvent, NemesisOp, Observation, PartitionView, Send, Setting, Timeline};

    /// Two producers write to two partitions every 100 ms from 0 to 10 s, interleaved; the
    /// fault runs from 3 s to 6 s. `down(p, t)` says whether partition p's writes stall at t.
    fn history(effect: Effect, down: &dyn Fn(i32, u64) -> bool) -> History {
        let mut h = History {
            nodes: vec![1, 2, 3],
            timeline: Timeline { inject_us: 3_000_000, heal_us: 6_000_000, end_us: 10_000_000 },
            ..History::default()
        };
        h.topic.partitions = 2;
        h.topic.min_insync_replicas = Setting { requested: Some(2), read_back: Some(2) };
        for (fault, (op, at)) in [(NemesisOp::Inject, 3_000_000), (NemesisOp::Heal, 6_000_000)].into_iter().enumerate()
        {
            let _ = fault;
            h.nemesis.push(NemesisEvent {
                at_us: at,
                op,
                fault: 0,
                effect: effect.clone(),
                ok: true,
                detail: String::new(),
            });
        }
        for n in [1, 2, 3] {
            h.observations.push(Observation {
                at_us: 2_900_000,
                node: n,
                raft_leader: Some(1),
                partitions: (0..2)
                    .map(|p| PartitionView {
                        partition: p,
                        leader: Some(1),
                        replicas: vec![1, 2, 3],
                        isr: vec![1, 2, 3],
                    })
                    .collect(),
                error: None,
            });
        }
        let mut seq = [0u64; 2];
        for tick in 0..100u64 {
            for producer in 0..2u32 {
                let t = tick * 100_000 + producer as u64 * 37_000;
                let partition = ((tick + producer as u64) % 2) as i32;
                let stalled = down(partition, t);
                let outcome = if stalled {
                    Outcome::Info { error: "timed out".into() }
                } else {
                    Outcome::Ok { partition, offset: seq[partition as usize] as i64 }
                };
                seq[partition as usize] += u64::from(!stalled);
                h.sends.push(Send {
                    producer,
                    seq: tick,
                    value: crate::history::value_of(producer, tick),
                    invoked_us: t,
                    completed_us: Some(t + if stalled { 10_000_000 } else { 4_000 }),
                    outcome,
                    broker: None,
                    key: None,
                });
            }
        }
        h
    }

    fn run(h: &History) -> Vec<PartitionAvailability> {
        measure(h, &Connectivity::from_events(&h.nemesis))
    }

    fn kill1() -> Effect {
        Effect::Kill { node: 1 }
    }

    /// A schedule: n1 killed from 3 s to 4.5 s (partition 0 stalls throughout and never fails
    /// over), then, after writes flow again, a latency fault from 5 s to 6 s. Over the whole
    /// span partition 0 acknowledged writes (between the faults), but through the kill it
    /// acknowledged none with a quorum possible: that stretch is reported.
    #[test]
    fn each_stretch_of_a_schedule_is_judged_on_its_own() {
        let mut h = history(kill1(), &|p, t| p == 0 && (3_000_000..4_500_000).contains(&t));
        h.nemesis = vec![
            NemesisEvent {
                at_us: 3_000_000,
                op: NemesisOp::Inject,
                fault: 0,
                effect: kill1(),
                ok: true,
                detail: String::new(),
            },
            NemesisEvent {
                at_us: 4_500_000,
                op: NemesisOp::Heal,
                fault: 0,
                effect: kill1(),
                ok: true,
                detail: String::new(),
            },
            NemesisEvent {
                at_us: 5_000_000,
                op: NemesisOp::Inject,
                fault: 1,
                effect: Effect::Degrade { what: "latency".into() },
                ok: true,
                detail: String::new(),
            },
            NemesisEvent {
                at_us: 6_000_000,
                op: NemesisOp::Heal,
                fault: 1,
                effect: Effect::Degrade { what: "latency".into() },
                ok: true,
                detail: String::new(),
            },
        ];
        assert_eq!(fault_stretches(&h), vec![(3_000_000, 4_500_000), (5_000_000, 6_000_000)]);
        let p = run(&h);
        assert_eq!((p[0].acked_during_fault, p[0].quorum_possible_throughout), (0, true), "{:?}", p[0]);
        assert_eq!(p[0].leader_lost_at_us, Some(3_000_000));
        // Whole-run figures stay whole-run.
        assert!(p[0].acked_before_fault > 0 && p[0].recovery_ms.is_some(), "{:?}", p[0]);
        // Partition 1 wrote through both: judged over the whole span as before.
        assert!(p[1].acked_during_fault > 0);
        // Near miss: the same history judged as one fault stretch (3 s to 6 s) hides the stall.
        h.nemesis.drain(1..3);
        h.nemesis[1].fault = 0;
        assert!(run(&h)[0].acked_during_fault > 0);
    }

    /// Clients cut from n1, which leads both partitions: nothing is acknowledged, a quorum is
    /// there throughout, and yet no failover is due (the leader is fine; the clients cannot
    /// reach it). Cut from n2 instead, the same stall is no failover.
    #[test]
    fn clients_cut_from_the_leader_is_no_missing_failover() {
        let h = history(Effect::ClientCut { node: 1 }, &|_, t| (3_000_000..6_000_000).contains(&t));
        let p = run(&h);
        assert!(p.iter().all(|p| p.acked_during_fault == 0 && p.quorum_possible_throughout), "{p:?}");
        assert!(p.iter().all(|p| p.clients_cut_from_leader), "{p:?}");
        let h = history(Effect::ClientCut { node: 2 }, &|_, t| (3_000_000..6_000_000).contains(&t));
        assert!(run(&h).iter().all(|p| !p.clients_cut_from_leader));
    }

    #[test]
    fn a_partition_that_never_fails_over_is_seen_while_the_other_did() {
        // Partition 0 is unwritable from the kill until 6.4 s; partition 1 fails over in 1.2 s.
        let mut h = history(kill1(), &|p, t| (3_000_000..if p == 0 { 6_400_000 } else { 4_200_000 }).contains(&t));
        // A write sent to partition 0 during the fault, retried, and acknowledged just after
        // heal: it says nothing about recovery (only writes sent after heal do).
        h.sends.push(Send {
            producer: 2,
            seq: 0,
            value: crate::history::value_of(2, 0),
            invoked_us: 3_500_000,
            completed_us: Some(6_010_000),
            outcome: Outcome::Ok { partition: 0, offset: 1_000 },
            broker: None,
            key: None,
        });
        let a = run(&h);
        assert!(a.iter().all(|p| p.quorum_possible_throughout && p.leader_before == Some(1)));
        assert_eq!(a[0].leader_lost_at_us, Some(3_000_000));
        assert_eq!((a[0].acked_during_fault, a[0].failover_ms), (0, None));
        assert!(a[0].longest_gap_ms >= 3_000.0, "{:?}", a[0]);
        let f1 = a[1].failover_ms.unwrap();
        assert!((1_200.0..1_400.0).contains(&f1), "{f1}");
        // Recovery is measured from heal with no floor: partition 1's next write after heal is
        // invoked 37 ms after it and acknowledged 4 ms later; partition 0 at 6.4 s.
        assert_eq!(a[1].recovery_ms, Some(41.0));
        assert_eq!(a[0].recovery_ms, Some(404.0));
    }

    #[test]
    fn no_quorum_means_no_failover_is_expected() {
        let both = Effect::Cut { pairs: vec![(1, 2), (2, 1), (2, 3), (3, 2), (1, 3), (3, 1)] };
        let h = history(both, &|_, t| (3_000_000..6_000_000).contains(&t));
        let a = run(&h);
        assert!(a.iter().all(|p| !p.quorum_possible_throughout && p.acked_during_fault == 0));
    }

    #[test]
    fn a_baseline_has_no_fault_figures() {
        let mut h = history(kill1(), &|_, _| false);
        h.nemesis.clear();
        h.timeline.heal_us = h.timeline.inject_us;
        let a = run(&h);
        assert!(a
            .iter()
            .all(|p| !p.quorum_possible_throughout && p.recovery_ms.is_none() && p.leader_lost_at_us.is_none()));
        assert!(a.iter().all(|p| p.longest_gap_ms < 300.0), "{a:?}");
    }
}
