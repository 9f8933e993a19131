//! From a saved run to a verdict, purely: every checker rule over the history, the workload's
//! latency as fidelity evidence, node exits, then `verdict::decide`. The runner decides through
//! it, and `chronik-chaos check` re-decides a saved run (`histories/<name>.json`) offline with it,
//! so a checker change can be replayed against old runs.

use serde::{Deserialize, Serialize};

use crate::checker;
use crate::connectivity::Connectivity;
use crate::history::History;
use crate::liveness::{self, Liveness, Phase};
use crate::scenario::Expect;
use crate::verdict::{self, Fidelity, Verdict};

/// What a history file holds: the history and what the run measured beyond it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SavedRun {
    pub scenario: String,
    pub expect: Expect,
    pub idempotence: bool,
    /// The scenario injected a fault (a baseline has none).
    pub faulted: bool,
    /// The fault's proof as measured during the run (probes, socket counters, OS state).
    pub fidelity: Fidelity,
    /// Nodes that exited on their own during the scenario, as `n2 exited on its own (…)` (runs
    /// saved before `cluster_failures` existed also hold those here).
    #[serde(default)]
    pub node_exits: Vec<String>,
    /// The cluster's failures the schedule met, each a sentence: not ready again after a
    /// graceful restart; no target named when a step was due, which stopped the schedule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster_failures: Vec<String>,
    pub history: History,
}

/// Everything the checker found in one history.
#[derive(Clone, Debug, PartialEq)]
pub struct Checked {
    pub anomalies: checker::Anomalies,
    pub polls: checker::reads::PollReport,
    pub quorum: checker::quorum::QuorumReport,
    pub partitions: Vec<checker::availability::PartitionAvailability>,
    pub metadata: checker::metadata::MetadataReport,
    /// The consumer group's rules (`None`: no group ran).
    pub group: Option<checker::group::GroupReport>,
    pub keys: checker::keys::KeyReport,
    /// The transaction rules (`None`: no transactional workload ran).
    pub txn: Option<checker::txn::TxnReport>,
}

/// The verdict of a saved run, and everything it was decided from.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub verdict: Verdict,
    pub reasons: Vec<String>,
    pub checked: Checked,
    pub liveness: Liveness,
    /// The measured proof plus the workload's evidence.
    pub fidelity: Fidelity,
}

/// Runs every checker rule over a history.
pub fn check_history(h: &History, expect: &Expect) -> Checked {
    let conn = Connectivity::from_events(&h.nemesis);
    Checked {
        anomalies: checker::check(h),
        polls: checker::reads::check(h),
        quorum: checker::quorum::check(h, &conn),
        partitions: checker::availability::measure(h, &conn),
        metadata: checker::metadata::check(h, &conn, (expect.max_stale_leader_ms * 1e3) as u64),
        group: checker::group::check(h, expect.recovery_within_ms),
        keys: checker::keys::check(h),
        txn: h.txn.as_ref().map(checker::txn::check),
    }
}

/// Decides a saved run.
pub fn decide(run: &SavedRun) -> Decision {
    let (h, expect) = (&run.history, &run.expect);
    let checked = check_history(h, expect);
    let live = liveness::measure(h, &h.timeline);
    let mut fidelity = run.fidelity.clone();
    if let Some(min) = expect.min_added_latency_ms {
        let p50 = |p: Phase| live.latency.get(&p).map(|l| l.p50_ms);
        match (p50(Phase::Steady), p50(Phase::Fault)) {
            (Some(base), Some(fault)) if fault - base >= min => fidelity
                .evidence
                .push(format!("workload: p50 write latency {base:.1} ms → {fault:.1} ms under the fault")),
            (Some(base), Some(fault)) => {
                fidelity.proven = false;
                fidelity.problems.push(format!(
                    "the fault added only {:.1} ms of p50 write latency ({base:.1} → {fault:.1} ms); at least {min:.0} ms was configured",
                    fault - base
                ));
            }
            _ => {
                fidelity.proven = false;
                fidelity.problems.push("no acknowledged writes to measure the added latency with".into());
            }
        }
    }
    let (mut verdict, mut reasons) = verdict::decide(&verdict::Inputs {
        expect,
        idempotence: run.idempotence,
        anomalies: &checked.anomalies,
        polls: &checked.polls,
        quorum: &checked.quorum,
        partitions: &checked.partitions,
        metadata: &checked.metadata,
        final_read: &h.final_read,
        fidelity: &fidelity,
        faulted: run.faulted,
        sends: h.sends.len(),
        acked: h.acked(),
        group: checked.group.as_ref(),
        keys: &checked.keys,
        txn: checked.txn.as_ref(),
    });
    for e in &run.node_exits {
        reasons.push(format!("HANG: {e} during the scenario."));
        verdict = verdict.max(Verdict::Hang);
    }
    for e in &run.cluster_failures {
        reasons.push(format!("HANG: {e}."));
        verdict = verdict.max(Verdict::Hang);
    }
    // Oddities that decide nothing come last, marked as notes.
    let resent = &checked.anomalies.resent;
    if !resent.is_empty() {
        let shown: Vec<String> = resent.iter().take(3).map(|d| d.to_string()).collect();
        reasons.push(format!(
            "Note: {} values were written twice by their own producer, the later copy under a higher producer \
             epoch, as the log's batch headers show ({}{}): librdkafka re-sends a possibly persisted batch as new \
             after it bumps its epoch at a message timeout (confluentinc/librdkafka#4953), which no broker can \
             recognise as a retry. The client's duplicates, not counted against the cluster.",
            resent.len(),
            shown.join(", "),
            if resent.len() > 3 { ", …" } else { "" }
        ));
    }
    reasons.extend(checked.metadata.notes.iter().map(|n| format!("Note: {n}.")));
    reasons.extend(
        checked
            .keys
            .split_keys
            .iter()
            .map(|n| format!("Note: {n} (the client places keys; its partition count changed).")),
    );
    Decision { verdict, reasons, checked, liveness: live, fidelity }
}
