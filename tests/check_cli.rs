//! `chronik-chaos check HISTORY` re-decides a saved run offline: a synthetic run in which a lone
//! survivor of two kills acknowledged writes of two concurrent producers is a FAIL naming the
//! node; the same run with those acknowledgements turned into timeouts passes; a file that is
//! not a history is refused with exit 2; a schedule the cluster stopped (no target named) is a
//! HANG.

use std::process::Command;

use chronik_chaos::decision::SavedRun;
use chronik_chaos::history::{
    value_of, Effect, FinalRead, History, NemesisEvent, NemesisOp, Observation, Outcome, PartitionView, Read, Send,
    Setting, Timeline,
};
use chronik_chaos::scenario::Expect;
use chronik_chaos::verdict::Fidelity;

const BIN: &str = env!("CARGO_BIN_EXE_chronik-chaos");

/// Two producers write to one partition every 50 ms for 12 s; n1 and n2 are killed from 3 s to
/// 8 s. `survivor_acks`: whether n3 acknowledges the writes sent while it was alone.
fn saved(survivor_acks: bool) -> SavedRun {
    let mut h = History {
        ordered_producers: true,
        nodes: vec![1, 2, 3],
        timeline: Timeline { inject_us: 3_000_000, heal_us: 8_000_000, end_us: 12_000_000 },
        ..History::default()
    };
    h.topic.partitions = 1;
    h.topic.min_insync_replicas = Setting { requested: Some(2), read_back: Some(2) };
    for (fault, node) in [(0, 1u8), (1, 2u8)] {
        for (op, at_us) in [(NemesisOp::Inject, 3_000_000), (NemesisOp::Heal, 8_000_000)] {
            h.nemesis.push(NemesisEvent {
                at_us,
                op,
                fault,
                effect: Effect::Kill { node },
                ok: true,
                detail: format!("SIGKILL n{node}"),
            });
        }
    }
    for t in (0..12_000_000u64).step_by(250_000) {
        for n in [1u8, 2, 3] {
            let dead = (3_000_000..8_000_000).contains(&t) && n != 3;
            h.observations.push(Observation {
                at_us: t,
                node: n,
                raft_leader: Some(3),
                partitions: if dead {
                    vec![]
                } else {
                    vec![PartitionView { partition: 0, leader: Some(3), replicas: vec![1, 2, 3], isr: vec![1, 2, 3] }]
                },
                error: dead.then(|| "no answer".to_string()),
            });
        }
    }
    let mut offset = 0i64;
    for tick in 0..240u64 {
        for producer in 0..2u32 {
            let invoked_us = tick * 50_000 + producer as u64 * 20_000;
            let alone = (3_000_000..8_000_000).contains(&invoked_us);
            let (outcome, completed_us) = if alone && !survivor_acks {
                (Outcome::Info { error: "Local: Message timed out".into() }, invoked_us + 10_000_000)
            } else {
                let o = Outcome::Ok { partition: 0, offset };
                offset += 1;
                (o, invoked_us + 3_000)
            };
            h.sends.push(Send {
                producer,
                seq: tick,
                value: value_of(producer, tick),
                invoked_us,
                completed_us: Some(completed_us),
                outcome,
                broker: Some(3),
                key: None,
            });
        }
    }
    for s in &h.sends {
        if let Outcome::Ok { partition, offset } = s.outcome {
            h.reads.push(Read {
                partition,
                offset,
                value: s.value.clone(),
                at_us: 13_000_000 + offset as u64,
                final_read: true,
            });
        }
    }
    h.final_read = FinalRead {
        complete: true,
        targets: [(0, offset - 1)].into(),
        log_end: [(0, Some(offset))].into(),
        reached: [(0, offset - 1)].into(),
        ..FinalRead::default()
    };
    SavedRun {
        scenario: "cascading-failure".into(),
        expect: Expect::default(),
        idempotence: true,
        faulted: true,
        fidelity: Fidelity { proven: true, evidence: vec!["n1 and n2 killed: gone".into()], problems: vec![] },
        node_exits: vec![],
        cluster_failures: vec![],
        history: h,
    }
}

fn check(run: &SavedRun) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cascading-failure.json");
    std::fs::write(&path, serde_json::to_vec(run).unwrap()).unwrap();
    let out = Command::new(BIN).arg("check").arg(&path).env("NO_COLOR", "1").output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn a_lone_survivor_acknowledging_writes_fails_offline() {
    let (code, out) = check(&saved(true));
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("cascading-failure: FAIL"), "{out}");
    assert!(
        out.contains("were acknowledged (acks=all) while the node that led their partition could not reach"),
        "{out}"
    );
    assert!(out.contains("from n3") && out.contains("min.insync.replicas = 2 (read back from the cluster)"), "{out}");
}

#[test]
fn the_same_run_with_timeouts_instead_passes_offline() {
    let (code, out) = check(&saved(false));
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("cascading-failure: PASS"), "{out}");
}

#[test]
fn a_file_that_is_not_a_history_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("results.json");
    std::fs::write(&path, r#"{"version": 1}"#).unwrap();
    let out = Command::new(BIN).arg("check").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a chronik-chaos history file"));
}

#[test]
fn a_schedule_stopped_by_the_cluster_is_a_hang_and_older_histories_still_read() {
    let mut run = saved(false);
    run.cluster_failures = vec!["the nodes agreed on no Raft leader (asked for 15 s) when step 2 of 2 (kill the Raft \
                                 leader) was due at 9.0 s of the schedule, so the schedule stopped there (1 step(s) not run)"
        .into()];
    let (code, out) = check(&run);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("cascading-failure: HANG"), "{out}");
    assert!(out.contains("HANG: the nodes agreed on no Raft leader (asked for 15 s) when step 2 of 2"), "{out}");

    // A history saved before the field existed (no `cluster_failures`) decides as before.
    let mut json = serde_json::to_value(saved(false)).unwrap();
    assert!(json.as_object_mut().unwrap().remove("cluster_failures").is_none(), "an empty list is not written");
    let old: SavedRun = serde_json::from_value(json).unwrap();
    assert!(old.cluster_failures.is_empty());
    assert_eq!(check(&old).0, 0);
}
