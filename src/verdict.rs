//! Verdicts: FAIL (safety violated) > ERROR (harness or fault problem) > HANG (no progress
//! where it was required, or no recovery in time) > PASS, each non-pass with its reasons and numbers.

use serde::{Deserialize, Serialize};

use crate::checker::Anomalies;
use crate::history::FinalRead;
use crate::liveness::{Liveness, Phase};
use crate::scenario::Expect;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    Pass,
    Hang,
    Error,
    Fail,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Pass => "PASS",
            Verdict::Hang => "HANG",
            Verdict::Error => "ERROR",
            Verdict::Fail => "FAIL",
        })
    }
}

/// Whether the fault provably took effect.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fidelity {
    /// The fault was read back in place and no evidence contradicts it.
    pub proven: bool,
    /// What was observed, one line each.
    pub evidence: Vec<String>,
    /// What contradicts the fault having landed (each makes the scenario an ERROR).
    pub problems: Vec<String>,
}

/// Everything a verdict is decided from.
pub struct Inputs<'a> {
    pub expect: &'a Expect,
    pub idempotence: bool,
    pub anomalies: &'a Anomalies,
    pub liveness: &'a Liveness,
    pub final_read: &'a FinalRead,
    pub fidelity: &'a Fidelity,
    /// Writes invoked during the fault (after it was in place) that were acknowledged.
    pub acked_during_fault: usize,
    /// Sends in total, and acknowledged.
    pub sends: usize,
    pub acked: usize,
}

/// The verdict and the reasons behind it (empty reasons only for PASS).
pub fn decide(i: &Inputs) -> (Verdict, Vec<String>) {
    let mut fail = Vec::new();
    let a = i.anomalies;
    let mut safety = a.count_safety();
    if !i.idempotence {
        // Without idempotence Kafka allows duplicates on retry: report, do not fail.
        safety -= a.duplicated.len();
    }
    if safety > 0 {
        fail.push(format!(
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
        ));
    }
    if !i.idempotence && !a.unknown_offset.is_empty() {
        fail.push(format!(
            "{} writes were acknowledged with offset -1 although idempotence is off (only a retried \
             idempotent batch may be acknowledged without an offset).",
            a.unknown_offset.len()
        ));
    }
    if i.expect.writes_must_stop && i.acked_during_fault > 0 {
        fail.push(format!(
            "{} writes invoked while a majority of nodes was down were acknowledged with acks=all; \
             with min.insync.replicas = 2 they must fail or time out.",
            i.acked_during_fault
        ));
    }
    if !fail.is_empty() {
        return (Verdict::Fail, fail);
    }

    if !i.fidelity.proven {
        let mut why =
            vec!["The fault was not proven to take effect, so nothing can be concluded from this run.".to_string()];
        why.extend(i.fidelity.problems.iter().cloned());
        return (Verdict::Error, why);
    }
    if i.sends == 0 {
        return (Verdict::Error, vec!["The workload sent nothing.".to_string()]);
    }

    let mut hang = Vec::new();
    let l = i.liveness;
    let fault = l.latency.get(&Phase::Fault).map_or(0, |s| s.count);
    if i.expect.progress_during_fault && i.acked_during_fault == 0 && fault == 0 {
        hang.push(
            "No write was acknowledged during the fault, though this fault must not stop the cluster.".to_string(),
        );
    }
    if let Some(max) = i.expect.max_unavailability_ms {
        if l.longest_unavailability_ms > max {
            hang.push(format!(
                "Longest unavailability {:.0} ms exceeds the allowed {max:.0} ms.",
                l.longest_unavailability_ms
            ));
        }
    }
    match l.heal_to_recovered_ms {
        None => hang.push(format!(
            "Throughput never recovered to half the steady rate ({:.1}/s) after the fault was healed.",
            l.steady_rate_per_s
        )),
        Some(ms) if ms > i.expect.recovery_within_ms => hang.push(format!(
            "Recovery took {ms:.0} ms after heal, more than the allowed {:.0} ms.",
            i.expect.recovery_within_ms
        )),
        _ => {}
    }
    if !i.final_read.complete || !a.unseen.is_empty() {
        hang.push(format!(
            "The final read did not reach every acknowledged write: {} unseen (targets {:?}, reached {:?}).",
            a.unseen.len(),
            i.final_read.targets,
            i.final_read.reached
        ));
    }
    if !hang.is_empty() {
        return (Verdict::Hang, hang);
    }
    (Verdict::Pass, Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::Placed;
    use crate::liveness::LatencyStats;

    fn expect() -> Expect {
        Expect {
            progress_during_fault: false,
            max_unavailability_ms: None,
            recovery_within_ms: 30_000.0,
            min_added_latency_ms: None,
            writes_must_stop: false,
        }
    }

    fn healthy() -> (Anomalies, Liveness, FinalRead, Fidelity) {
        let mut l = Liveness { heal_to_recovered_ms: Some(1000.0), steady_rate_per_s: 100.0, ..Liveness::default() };
        l.latency.insert(Phase::Fault, LatencyStats { count: 50, ..LatencyStats::default() });
        let fr = FinalRead { complete: true, ..FinalRead::default() };
        (Anomalies::default(), l, fr, Fidelity { proven: true, ..Fidelity::default() })
    }

    fn run(
        e: &Expect,
        a: &Anomalies,
        l: &Liveness,
        fr: &FinalRead,
        f: &Fidelity,
        during: usize,
    ) -> (Verdict, Vec<String>) {
        decide(&Inputs {
            expect: e,
            idempotence: true,
            anomalies: a,
            liveness: l,
            final_read: fr,
            fidelity: f,
            acked_during_fault: during,
            sends: 100,
            acked: 90,
        })
    }

    #[test]
    fn healthy_run_passes() {
        let (a, l, fr, f) = healthy();
        assert_eq!(run(&expect(), &a, &l, &fr, &f, 10), (Verdict::Pass, vec![]));
    }

    #[test]
    fn a_lost_write_fails_even_when_everything_else_is_wrong_too() {
        let (mut a, mut l, mut fr, mut f) = healthy();
        a.lost.push(Placed { value: "p0-1".into(), partition: 0, offset: 1 });
        f.proven = false;
        l.heal_to_recovered_ms = None;
        fr.complete = false;
        let (v, why) = run(&expect(), &a, &l, &fr, &f, 0);
        assert_eq!(v, Verdict::Fail);
        assert!(why[0].contains("1 of 90 acknowledged writes") && why[0].contains("1 lost"), "{why:?}");
    }

    #[test]
    fn offset_minus_one_passes_with_idempotence_and_fails_without() {
        let (mut a, l, fr, f) = healthy();
        a.unknown_offset.push(Placed { value: "p0-3".into(), partition: 0, offset: -1 });
        assert_eq!(run(&expect(), &a, &l, &fr, &f, 10), (Verdict::Pass, vec![]));
        let (v, why) = decide(&Inputs {
            expect: &expect(),
            idempotence: false,
            anomalies: &a,
            liveness: &l,
            final_read: &fr,
            fidelity: &f,
            acked_during_fault: 10,
            sends: 100,
            acked: 90,
        });
        assert_eq!(v, Verdict::Fail);
        assert!(why[0].contains("offset -1 although idempotence is off"), "{why:?}");
    }

    #[test]
    fn an_unproven_fault_is_an_error_not_a_pass() {
        let (a, l, fr, mut f) = healthy();
        f.proven = false;
        f.problems.push("proxy raft-n1-to-n2 delivered 5120 bytes while black-holed".into());
        let (v, why) = run(&expect(), &a, &l, &fr, &f, 10);
        assert_eq!(v, Verdict::Error);
        assert!(why.iter().any(|w| w.contains("5120 bytes")));
    }

    #[test]
    fn no_recovery_or_no_progress_hangs() {
        let (a, mut l, fr, f) = healthy();
        l.heal_to_recovered_ms = None;
        assert_eq!(run(&expect(), &a, &l, &fr, &f, 10).0, Verdict::Hang);
        let (a, mut l, fr, f) = healthy();
        l.latency.clear();
        let e = Expect { progress_during_fault: true, ..expect() };
        let (v, why) = run(&e, &a, &l, &fr, &f, 0);
        assert_eq!(v, Verdict::Hang);
        assert!(why[0].contains("No write was acknowledged during the fault"));
        let (a, mut l, fr, f) = healthy();
        l.heal_to_recovered_ms = Some(45_000.0);
        assert!(run(&expect(), &a, &l, &fr, &f, 10).1[0].contains("Recovery took 45000 ms"));
    }

    #[test]
    fn unseen_writes_hang_rather_than_fail() {
        let (mut a, l, mut fr, f) = healthy();
        a.unseen.push(Placed { value: "p0-9".into(), partition: 2, offset: 9 });
        fr.complete = false;
        let (v, why) = run(&expect(), &a, &l, &fr, &f, 10);
        assert_eq!(v, Verdict::Hang);
        assert!(why[0].contains("1 unseen"));
    }

    #[test]
    fn writes_acknowledged_without_a_majority_fail_when_they_must_stop() {
        let (a, l, fr, f) = healthy();
        let e = Expect { writes_must_stop: true, ..expect() };
        assert_eq!(run(&e, &a, &l, &fr, &f, 0).0, Verdict::Pass);
        let (v, why) = run(&e, &a, &l, &fr, &f, 3);
        assert_eq!(v, Verdict::Fail);
        assert!(why[0].starts_with("3 writes invoked while a majority of nodes was down"));
    }

    #[test]
    fn duplicates_fail_only_with_idempotence() {
        let (mut a, l, fr, f) = healthy();
        a.duplicated.push(crate::checker::Duplicated { value: "p0-1".into(), at: vec![(0, 1), (0, 2)] });
        let e = expect();
        let mut i = Inputs {
            expect: &e,
            idempotence: true,
            anomalies: &a,
            liveness: &l,
            final_read: &fr,
            fidelity: &f,
            acked_during_fault: 1,
            sends: 10,
            acked: 10,
        };
        assert_eq!(decide(&i).0, Verdict::Fail);
        i.idempotence = false;
        assert_eq!(decide(&i).0, Verdict::Pass);
        assert_eq!(Verdict::Fail.max(Verdict::Error).max(Verdict::Hang), Verdict::Fail);
    }
}
