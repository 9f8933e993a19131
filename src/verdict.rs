//! Verdicts: FAIL (safety violated) > ERROR (harness or fault problem) > HANG (no progress
//! where it was required, or no recovery in time) > PASS. A verdict lists every reason it
//! found, worst first, each with its numbers; values it names were read from the history.

use serde::{Deserialize, Serialize};

use crate::checker::availability::PartitionAvailability;
use crate::checker::group::GroupReport;
use crate::checker::keys::KeyReport;
use crate::checker::metadata::MetadataReport;
use crate::checker::quorum::QuorumReport;
use crate::checker::reads::PollReport;
use crate::checker::txn::TxnReport;
use crate::checker::Anomalies;
use crate::history::FinalRead;
use crate::scenario::Expect;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    Pass,
    /// The scenario cannot run against this cluster (e.g. it has no transactions): it says
    /// nothing about the cluster, and never counts as a pass.
    #[serde(rename = "N/A")]
    NotApplicable,
    Hang,
    Error,
    Fail,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Pass => "PASS",
            Verdict::NotApplicable => "N/A",
            Verdict::Hang => "HANG",
            Verdict::Error => "ERROR",
            Verdict::Fail => "FAIL",
        })
    }
}

/// Whether the fault provably took effect. Starts unproven: only a measured effect of every
/// fault (and a heal that worked) proves it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fidelity {
    /// Every fault's effect was measured and nothing contradicts it.
    pub proven: bool,
    /// What was observed, one line each.
    pub evidence: Vec<String>,
    /// What contradicts the fault having landed (each makes the scenario an ERROR).
    pub problems: Vec<String>,
}

/// Everything a verdict is decided from: the checker's findings over the history.
pub struct Inputs<'a> {
    pub expect: &'a Expect,
    pub idempotence: bool,
    pub anomalies: &'a Anomalies,
    pub polls: &'a PollReport,
    pub quorum: &'a QuorumReport,
    pub partitions: &'a [PartitionAvailability],
    pub metadata: &'a MetadataReport,
    pub final_read: &'a FinalRead,
    pub fidelity: &'a Fidelity,
    /// The scenario injected a fault (a baseline has none).
    pub faulted: bool,
    /// Sends in total, and acknowledged.
    pub sends: usize,
    pub acked: usize,
    /// The consumer group's rules (`None`: the scenario ran no group).
    pub group: Option<&'a GroupReport>,
    pub keys: &'a KeyReport,
    /// The transaction rules (`None`: no transactional workload ran).
    pub txn: Option<&'a TxnReport>,
}

/// The verdict and every reason found, worst first, each starting with its level
/// (`FAIL:`, `ERROR:`, `HANG:`). Empty reasons only for PASS.
pub fn decide(i: &Inputs) -> (Verdict, Vec<String>) {
    let mut reasons: Vec<(Verdict, String)> = Vec::new();
    safety(i, &mut reasons);
    fidelity(i, &mut reasons);
    liveness(i, &mut reasons);
    if let Some(g) = i.group {
        group_safety(g, &mut reasons);
        group_liveness(g, i.expect, &mut reasons);
    }
    key_order(i.keys, &mut reasons);
    if let Some(t) = i.txn {
        transactions(t, &mut reasons);
    }
    reasons.sort_by_key(|r| std::cmp::Reverse(r.0));
    let verdict = reasons.first().map_or(Verdict::Pass, |r| r.0);
    (verdict, reasons.into_iter().map(|(v, why)| format!("{v}: {why}")).collect())
}

fn safety(i: &Inputs, out: &mut Vec<(Verdict, String)>) {
    let a = i.anomalies;
    let mut safety = a.count_safety();
    if !i.idempotence {
        // Without idempotence Kafka allows duplicates on retry: report, do not fail.
        safety -= a.duplicated.len();
    }
    if safety > 0 {
        out.push((
            Verdict::Fail,
            format!(
                "Safety violated: {} of {} acknowledged writes are affected ({}).",
                safety,
                i.acked,
                a.summary()
                    .iter()
                    .filter(|l| {
                        !l.contains("unseen")
                            && !l.contains("unknown offset")
                            && (i.idempotence || !l.contains("duplicated"))
                    })
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        ));
    }
    if !i.idempotence && !a.unknown_offset.is_empty() {
        out.push((
            Verdict::Fail,
            format!(
                "{} writes were acknowledged with offset -1 although idempotence is off (only a retried \
                 idempotent batch may be acknowledged without an offset).",
                a.unknown_offset.len()
            ),
        ));
    }
    let q = i.quorum;
    if let Some(first) = q.violations.first() {
        let mut per_node: std::collections::BTreeMap<(u8, i32), usize> = Default::default();
        for v in &q.violations {
            *per_node.entry((v.node, v.partition)).or_default() += 1;
        }
        let where_: Vec<String> =
            per_node.iter().map(|((n, p), c)| format!("{c} on partition {p} from n{n}")).collect();
        out.push((
            Verdict::Fail,
            format!(
                "{} writes were acknowledged (acks=all) while the node that led their partition could not reach \
                 min.insync.replicas − 1 other replicas ({}); min.insync.replicas = {}. First: {first}.",
                q.violations.len(),
                where_.join(", "),
                q.min_insync_source
            ),
        ));
    }
    let p = i.polls;
    if !p.skips.is_empty() || !p.rewinds.is_empty() {
        let first: Vec<String> = p.skips.iter().chain(&p.rewinds).take(3).map(|j| j.to_string()).collect();
        out.push((
            Verdict::Fail,
            format!(
                "Readers were served out of order: {} skips over data and {} rewinds ({}).",
                p.skips.len(),
                p.rewinds.len(),
                first.join("; ")
            ),
        ));
    }
}

fn fidelity(i: &Inputs, out: &mut Vec<(Verdict, String)>) {
    if !i.fidelity.proven {
        let mut why = "The fault was not proven to take effect, so nothing can be concluded about it".to_string();
        if !i.fidelity.problems.is_empty() {
            why.push_str(&format!(": {}", i.fidelity.problems.join("; ")));
        }
        out.push((Verdict::Error, format!("{why}.")));
    }
    if i.sends == 0 {
        out.push((Verdict::Error, "The workload sent nothing.".to_string()));
    }
}

fn liveness(i: &Inputs, out: &mut Vec<(Verdict, String)>) {
    let hang = |out: &mut Vec<(Verdict, String)>, why: String| out.push((Verdict::Hang, why));
    let e = i.expect;
    for p in i.partitions {
        let served_before = !i.faulted || p.acked_before_fault > 0;
        if !served_before {
            hang(
                out,
                format!(
                    "Partition {} acknowledged no write before the fault was injected: the cluster was not \
                     serving it while healthy, so its behaviour under the fault shows nothing about failover.",
                    p.partition
                ),
            );
        } else if i.faulted && p.quorum_possible_throughout && p.acked_during_fault == 0 && !p.clients_cut_from_leader {
            let lost = match (p.leader_before, p.leader_lost_at_us) {
                (Some(l), Some(t)) => format!(" after its leader n{l} was lost at {:.1} s", t as f64 / 1e6),
                (Some(l), None) => format!(" (its leader n{l} stayed reachable)"),
                _ => String::new(),
            };
            hang(
                out,
                format!(
                    "No failover for partition {}{lost}: no write to it was acknowledged for the whole fault, \
                     although a majority of its replicas could reach each other throughout.",
                    p.partition
                ),
            );
        } else if e.progress_during_fault && i.faulted && p.acked_during_fault == 0 {
            hang(
                out,
                format!(
                    "No write to partition {} was acknowledged during the fault, though this fault must not stop the cluster.",
                    p.partition
                ),
            );
        }
        if let Some(max) = e.max_unavailability_ms {
            if p.longest_gap_ms > max {
                hang(
                    out,
                    format!(
                        "Partition {} had no acknowledged write for {:.0} ms ({:.1} s → {:.1} s), more than the allowed {max:.0} ms.",
                        p.partition,
                        p.longest_gap_ms,
                        p.gap_window_us.0 as f64 / 1e6,
                        p.gap_window_us.1 as f64 / 1e6
                    ),
                );
            }
        }
        if i.faulted {
            match p.recovery_ms {
                None => hang(
                    out,
                    format!("Partition {} never acknowledged a write sent after heal.", p.partition),
                ),
                Some(ms) if ms > e.recovery_within_ms => hang(
                    out,
                    format!(
                        "Partition {} took {ms:.0} ms after heal to acknowledge a write sent after heal, more than the allowed {:.0} ms.",
                        p.partition, e.recovery_within_ms
                    ),
                ),
                _ => {}
            }
        }
    }
    let m = i.metadata;
    if !m.stale.is_empty() {
        let shown: Vec<String> = m.stale.iter().take(3).map(|s| s.to_string()).collect();
        hang(out, format!("Stale leadership: {} (allowed {:.0} ms).", shown.join("; "), e.max_stale_leader_ms));
    }
    if !m.split_after_heal.is_empty() {
        hang(out, format!("The cluster was not whole again after heal: {}.", m.split_after_heal.join("; ")));
    }
    let a = i.anomalies;
    if !i.final_read.complete || !a.unseen.is_empty() {
        hang(
            out,
            format!(
                "The final read did not reach the end of every partition: {} acknowledged writes unseen (targets {:?}, reached {:?}).",
                a.unseen.len(),
                i.final_read.targets,
                i.final_read.reached
            ),
        );
    }
    if !i.polls.errors.is_empty() {
        hang(out, format!("Readers were given errors instead of records: {}.", i.polls.errors.join("; ")));
    }
}

/// The first few of a list, joined.
fn first<T: std::fmt::Display>(items: &[T]) -> String {
    let shown: Vec<String> = items.iter().take(3).map(|x| x.to_string()).collect();
    if items.len() > 3 {
        format!("{}; ...", shown.join("; "))
    } else {
        shown.join("; ")
    }
}

/// The group broke a promise: a write skipped, a commit gone back, a member resuming past the
/// committed offset or reading out of order, a value the log does not hold.
fn group_safety(g: &GroupReport, out: &mut Vec<(Verdict, String)>) {
    let mut fail = |why: String| out.push((Verdict::Fail, why));
    if !g.skipped.is_empty() {
        fail(format!(
            "{} acknowledged writes that the log holds were never delivered to the consumer group, although \
             the group read past them (at-least-once broken): {}.",
            g.skipped.len(),
            first(&g.skipped)
        ));
    }
    if !g.commit_regressions.is_empty() {
        fail(format!(
            "The group accepted {} commits lower than one it had already accepted and answered (committed offsets went back): {}.",
            g.commit_regressions.len(),
            first(&g.commit_regressions)
        ));
    }
    if !g.resume_skips.is_empty() {
        fail(format!(
            "{} times a member took a partition over and began past what the group had committed: {}.",
            g.resume_skips.len(),
            first(&g.resume_skips)
        ));
    }
    if !g.jumps.is_empty() {
        fail(format!(
            "Group members were served out of order within one assignment {} times: {}.",
            g.jumps.len(),
            first(&g.jumps)
        ));
    }
    if !g.wrong_values.is_empty() {
        fail(format!(
            "The group was handed {} values the log does not hold at that offset: {}.",
            g.wrong_values.len(),
            first(&g.wrong_values)
        ));
    }
}

/// The group stopped short: writes it never got to, ownership that never settled.
fn group_liveness(g: &GroupReport, e: &Expect, out: &mut Vec<(Verdict, String)>) {
    if !g.not_reached.is_empty() {
        out.push((
            Verdict::Hang,
            format!(
                "The consumer group never got to {} acknowledged writes the log holds (the drain {}): {}.",
                g.not_reached.len(),
                if g.drained { "ended" } else { "ran out of time" },
                first(&g.not_reached)
            ),
        ));
    }
    let c = &g.convergence;
    if c.converged_us.is_none() {
        out.push((
            Verdict::Hang,
            format!(
                "The consumer group did not settle within {:.0} ms of {:.1} s (every partition with exactly one \
                 owner among its {} members): {}.",
                e.recovery_within_ms,
                c.from_us as f64 / 1e6,
                g.members,
                c.problems.join("; ")
            ),
        ));
    }
}

/// Transactions: every broken rule fails; nothing committed, or a final read that stopped
/// short, hangs.
fn transactions(t: &TxnReport, out: &mut Vec<(Verdict, String)>) {
    for f in t.findings() {
        out.push((Verdict::Fail, format!("Transactions: {f}.")));
    }
    if t.committed == 0 {
        out.push((Verdict::Hang, "No transaction was committed: the transaction rules had nothing to judge.".into()));
    }
    if !t.unseen.is_empty() {
        out.push((
            Verdict::Hang,
            format!(
                "The read_committed final read did not get to {} committed transactions (first: {}).",
                t.unseen.len(),
                t.unseen[0]
            ),
        ));
    }
}

fn key_order(k: &KeyReport, out: &mut Vec<(Verdict, String)>) {
    if !k.reorders.is_empty() {
        out.push((
            Verdict::Fail,
            format!("Writes of one key came out of their order {} times: {}.", k.reorders.len(), first(&k.reorders)),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::availability::PartitionAvailability;
    use crate::checker::quorum::Unquorate;
    use crate::checker::reads::PollJump;
    use crate::checker::Placed;

    struct Case {
        expect: Expect,
        idempotence: bool,
        a: Anomalies,
        polls: PollReport,
        quorum: QuorumReport,
        partitions: Vec<PartitionAvailability>,
        metadata: MetadataReport,
        fr: FinalRead,
        f: Fidelity,
        faulted: bool,
    }

    fn healthy() -> Case {
        let p = |partition| PartitionAvailability {
            partition,
            acked: 100,
            acked_before_fault: 40,
            acked_during_fault: 30,
            longest_gap_ms: 200.0,
            quorum_possible_throughout: true,
            recovery_ms: Some(15.0),
            ..PartitionAvailability::default()
        };
        Case {
            expect: Expect::default(),
            idempotence: true,
            a: Anomalies::default(),
            polls: PollReport::default(),
            quorum: QuorumReport {
                min_insync_replicas: Some(2),
                min_insync_source: "2 (read back from the cluster)".into(),
                ..QuorumReport::default()
            },
            partitions: vec![p(0), p(1), p(2)],
            metadata: MetadataReport::default(),
            fr: FinalRead { complete: true, ..FinalRead::default() },
            f: Fidelity { proven: true, ..Fidelity::default() },
            faulted: true,
        }
    }

    impl Case {
        fn run(&self) -> (Verdict, Vec<String>) {
            decide(&Inputs {
                expect: &self.expect,
                idempotence: self.idempotence,
                anomalies: &self.a,
                polls: &self.polls,
                quorum: &self.quorum,
                partitions: &self.partitions,
                metadata: &self.metadata,
                final_read: &self.fr,
                fidelity: &self.f,
                faulted: self.faulted,
                sends: 300,
                acked: 290,
                group: None,
                keys: &KeyReport::default(),
                txn: None,
            })
        }
    }

    #[test]
    fn a_stall_while_clients_were_cut_from_the_leader_is_no_missing_failover() {
        let mut c = healthy();
        c.partitions[0].acked_during_fault = 0;
        c.partitions[0].leader_before = Some(2);
        let (v, why) = c.run();
        assert_eq!(v, Verdict::Hang, "{why:?}");
        assert!(why[0].contains("No failover for partition 0"), "{why:?}");
        c.partitions[0].clients_cut_from_leader = true;
        assert_eq!(c.run(), (Verdict::Pass, vec![]));
    }

    #[test]
    fn healthy_run_passes() {
        assert_eq!(healthy().run(), (Verdict::Pass, vec![]));
    }

    #[test]
    fn every_reason_is_listed_worst_first() {
        let mut c = healthy();
        c.a.lost.push(Placed { value: "p0-1".into(), partition: 0, offset: 1 });
        c.a.unseen.push(Placed { value: "p0-9".into(), partition: 2, offset: 9 });
        c.f.proven = false;
        c.f.problems.push("latency probe: 1.2 ms → 1.3 ms, 100 ms configured".into());
        c.partitions[1].recovery_ms = None;
        c.fr.complete = false;
        let (v, why) = c.run();
        assert_eq!(v, Verdict::Fail);
        assert_eq!(why.len(), 4, "{why:?}");
        assert!(why[0].starts_with("FAIL: Safety violated: 1 of 290") && why[0].contains("1 lost"), "{why:?}");
        assert!(why[1].starts_with("ERROR: The fault was not proven") && why[1].contains("1.2 ms → 1.3 ms"));
        assert!(why[2].starts_with("HANG: Partition 1 never acknowledged a write sent after heal"));
        assert!(
            why[3].starts_with("HANG: The final read did not reach the end")
                && why[3].contains("1 acknowledged writes unseen")
        );
    }

    #[test]
    fn offset_minus_one_passes_with_idempotence_and_fails_without() {
        let mut c = healthy();
        c.a.unknown_offset.push(Placed { value: "p0-3".into(), partition: 0, offset: -1 });
        assert_eq!(c.run(), (Verdict::Pass, vec![]));
        c.idempotence = false;
        let (v, why) = c.run();
        assert_eq!(v, Verdict::Fail);
        assert!(why[0].contains("offset -1 although idempotence is off"), "{why:?}");
    }

    #[test]
    fn an_unproven_fault_is_an_error_not_a_pass() {
        let mut c = healthy();
        c.f.proven = false;
        c.f.problems.push("raft-n1-to-n2 delivered 5120 bytes upstream while black-holed".into());
        let (v, why) = c.run();
        assert_eq!(v, Verdict::Error);
        assert!(why[0].contains("5120 bytes"));
    }

    #[test]
    fn writes_acknowledged_without_quorum_fail_naming_node_partition_and_setting() {
        let mut c = healthy();
        c.quorum.violations.push(Unquorate {
            value: "p1-40".into(),
            partition: 2,
            offset: 17,
            node: 3,
            reachable: 0,
            needed: 1,
            invoked_us: 6_000_000,
            acked_us: 6_002_000,
        });
        let (v, why) = c.run();
        assert_eq!(v, Verdict::Fail);
        assert!(
            why[0].contains("1 writes were acknowledged (acks=all)") && why[0].contains("1 on partition 2 from n3"),
            "{why:?}"
        );
        assert!(why[0].contains("min.insync.replicas = 2 (read back from the cluster)"));
        assert!(why[0].contains("p1-40 @ 2:17 acknowledged at 6.0 s while n3 could reach 0 of the 1"));
    }

    #[test]
    fn one_partition_without_failover_hangs_though_the_others_carried_on() {
        let mut c = healthy();
        c.partitions[1].acked_during_fault = 0;
        c.partitions[1].leader_before = Some(2);
        c.partitions[1].leader_lost_at_us = Some(5_100_000);
        let (v, why) = c.run();
        assert_eq!(v, Verdict::Hang);
        assert_eq!(why.len(), 1);
        assert!(
            why[0].starts_with("HANG: No failover for partition 1 after its leader n2 was lost at 5.1 s"),
            "{why:?}"
        );
        // Near miss: without a quorum to fail over to, no writes is right.
        c.partitions[1].quorum_possible_throughout = false;
        assert_eq!(c.run(), (Verdict::Pass, vec![]));
        // ... unless the scenario asks for progress.
        c.expect.progress_during_fault = true;
        assert_eq!(c.run().0, Verdict::Hang);
        // A baseline has no fault window to judge.
        let mut b = healthy();
        b.faulted = false;
        b.partitions.iter_mut().for_each(|p| (p.acked_during_fault, p.recovery_ms) = (0, None));
        assert_eq!(b.run(), (Verdict::Pass, vec![]));
    }

    #[test]
    fn a_partition_never_served_before_the_fault_hangs_without_blaming_failover() {
        let mut c = healthy();
        c.partitions[2].acked_before_fault = 0;
        c.partitions[2].acked_during_fault = 0;
        c.partitions[2].leader_before = Some(3);
        c.partitions[2].leader_lost_at_us = Some(5_100_000);
        let (v, why) = c.run();
        assert_eq!(v, Verdict::Hang);
        assert_eq!(why.len(), 1, "{why:?}");
        assert!(why[0].starts_with("HANG: Partition 2 acknowledged no write before the fault"), "{why:?}");
        // Near miss: one acknowledged write while healthy makes it a failover question again.
        c.partitions[2].acked_before_fault = 1;
        let (_, why) = c.run();
        assert!(why[0].starts_with("HANG: No failover for partition 2"), "{why:?}");
        // A baseline has no "before the fault".
        c.faulted = false;
        c.partitions[2].acked_before_fault = 0;
        assert_eq!(c.run(), (Verdict::Pass, vec![]));
    }

    #[test]
    fn slow_recovery_gaps_stale_leaders_and_splits_hang() {
        let mut c = healthy();
        c.partitions[0].recovery_ms = Some(45_000.0);
        assert!(c.run().1[0].contains("Partition 0 took 45000 ms after heal"));
        let mut c = healthy();
        c.expect.max_unavailability_ms = Some(100.0);
        assert_eq!(c.run().1.len(), 3, "each partition's 200 ms gap is reported");
        let mut c = healthy();
        c.metadata.split_after_heal.push("n3 did not answer at 40.0 s: connection refused".into());
        let (v, why) = c.run();
        assert_eq!(v, Verdict::Hang);
        assert!(why[0].contains("not whole again after heal: n3 did not answer"));
    }

    #[test]
    fn reader_skips_fail_and_reader_errors_hang() {
        let mut c = healthy();
        c.polls.errors.push("live reader, partition 0: Broker: Offset out of range".into());
        assert_eq!(c.run().0, Verdict::Hang);
        c.polls.skips.push(PollJump { reader: "live".into(), partition: 0, from: 3, to: 9, missed: 5 });
        let (v, why) = c.run();
        assert_eq!(v, Verdict::Fail);
        assert!(why[0].contains("1 skips over data") && why[0].contains("jumped from 0:3 to 0:9"), "{why:?}");
    }

    #[test]
    fn duplicates_fail_only_with_idempotence() {
        let mut c = healthy();
        c.a.duplicated.push(crate::checker::Duplicated { value: "p0-1".into(), at: vec![(0, 1), (0, 2)] });
        assert_eq!(c.run().0, Verdict::Fail);
        c.idempotence = false;
        assert_eq!(c.run().0, Verdict::Pass);
        assert_eq!(Verdict::Fail.max(Verdict::Error).max(Verdict::Hang), Verdict::Fail);
    }
}
