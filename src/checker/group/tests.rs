//! The group rules on synthetic histories of two members whose polls, commits and rebalances
//! interleave in time, each rule with a near miss that must not fire.

use super::*;
use crate::history::group::{Commit, CommitMode, GroupHistory, GroupPoll, Rebalance};
use crate::history::{NemesisEvent, NemesisOp, Read, Send, TopicSettings};

const S: u64 = 1_000_000;

/// A log of `n` records per partition (values `p0-<partition>-<offset>`), all acknowledged and
/// all found by the final read, and a group of two members with nothing recorded yet.
fn base(partitions: i32, n: i64) -> History {
    let mut h = History { topic: TopicSettings { partitions, ..TopicSettings::default() }, ..History::default() };
    for p in 0..partitions {
        for o in 0..n {
            let value = val(p, o);
            h.sends.push(Send {
                producer: 0,
                seq: (p as i64 * n + o) as u64,
                value: value.clone(),
                invoked_us: o as u64 * 1000,
                completed_us: Some(o as u64 * 1000 + 500),
                outcome: Outcome::Ok { partition: p, offset: o },
                broker: None,
                key: None,
            });
            h.reads.push(Read { partition: p, offset: o, value, at_us: 100 * S + o as u64, final_read: true });
        }
    }
    h.group = Some(GroupHistory {
        group_id: "g".into(),
        members: 2,
        commit_mode: CommitMode::Manual,
        started_us: 0,
        stopped_us: 100 * S,
        drained: true,
        ..GroupHistory::default()
    });
    h
}

fn val(p: i32, o: i64) -> String {
    format!("p0-{p}-{o}")
}

fn g(h: &mut History) -> &mut GroupHistory {
    h.group.as_mut().unwrap()
}

fn poll(h: &mut History, consumer: u32, assignment: u32, partition: i32, offsets: std::ops::Range<i64>, at: u64) {
    for (i, offset) in offsets.enumerate() {
        let value = val(partition, offset);
        g(h).polls.push(GroupPoll { consumer, assignment, partition, offset, value, at_us: at + i as u64 * 10 });
    }
    g(h).polls.sort_by_key(|p| p.at_us);
}

fn rebalance(h: &mut History, consumer: u32, at_s: f64, kind: RebalanceKind, partitions: &[i32], assignment: u32) {
    g(h).rebalances.push(Rebalance {
        consumer,
        at_us: (at_s * 1e6) as u64,
        kind,
        partitions: partitions.to_vec(),
        assignment,
        member_id: format!("m{consumer}"),
    });
    g(h).rebalances.sort_by_key(|r| r.at_us);
}

fn commit(consumer: u32, assignment: u32, invoked: Option<u64>, completed: u64, offsets: &[(i32, i64)]) -> Commit {
    Commit {
        consumer,
        assignment,
        invoked_us: invoked,
        completed_us: completed,
        offsets: offsets.to_vec(),
        error: None,
    }
}

/// Two members split three partitions, poll them interleaved, commit as they go.
fn healthy() -> History {
    let mut h = base(3, 20);
    rebalance(&mut h, 0, 1.0, RebalanceKind::Assign, &[0, 1], 1);
    rebalance(&mut h, 1, 1.0, RebalanceKind::Assign, &[2], 1);
    poll(&mut h, 0, 1, 0, 0..20, 2 * S);
    poll(&mut h, 0, 1, 1, 0..20, 2 * S + 5);
    poll(&mut h, 1, 1, 2, 0..20, 2 * S + 3);
    g(&mut h).commits = vec![
        commit(0, 1, Some(3 * S), 3 * S + 100, &[(0, 20), (1, 20)]),
        commit(1, 1, Some(3 * S + 50), 3 * S + 90, &[(2, 20)]),
    ];
    h
}

fn report(h: &History) -> GroupReport {
    check(h, 30_000.0).expect("the history has a group")
}

#[test]
fn a_healthy_group_breaks_no_rule() {
    let r = report(&healthy());
    assert_eq!(r.safety_violations(), 0, "{r:?}");
    assert!(r.not_reached.is_empty(), "{r:?}");
    assert_eq!((r.consumed, r.polls, r.duplicates, r.rebalances, r.commits_ok), (60, 60, 0, 2, 2));
    assert_eq!(r.convergence.converged_us, Some(S));
    // No group, no report.
    assert!(check(&History::default(), 30_000.0).is_none());
}

#[test]
fn a_write_the_group_read_past_is_skipped_one_it_never_reached_is_not() {
    let mut h = healthy();
    // Consumer 1 never got 2:7 but read on to 2:19; partition 0 stops at 14.
    g(&mut h).polls.retain(|p| !(p.partition == 2 && p.offset == 7 || p.partition == 0 && p.offset >= 15));
    // A lost write (not in the final read) is the lost rule's business, not this one's.
    h.reads.retain(|r| !(r.partition == 1 && r.offset == 19));
    g(&mut h).polls.retain(|p| !(p.partition == 1 && p.offset == 19));
    let r = report(&h);
    assert_eq!(r.skipped, vec![Placed { value: val(2, 7), partition: 2, offset: 7 }]);
    assert_eq!(r.not_reached.iter().map(|p| p.offset).collect::<Vec<_>>(), (15..20).collect::<Vec<_>>());
    assert!(r.not_reached.iter().all(|p| p.partition == 0));
    // The member's own jump over 2:7 is a jump too.
    assert_eq!(r.jumps.len(), 1);
    assert_eq!(r.jumps[0].to_string(), "consumer 1 (assignment 1) jumped over data from 2:6 to 2:8");
}

#[test]
fn duplicates_are_counted_not_failed() {
    let mut h = healthy();
    // Consumer 1 lost partition 2 before committing and got it back: it reads 0..20 again.
    rebalance(&mut h, 1, 2.5, RebalanceKind::Revoke, &[2], 1);
    rebalance(&mut h, 1, 2.6, RebalanceKind::Assign, &[2], 2);
    g(&mut h).commits.retain(|c| c.consumer == 0);
    poll(&mut h, 1, 2, 2, 0..20, 2_700_000);
    let r = report(&h);
    assert_eq!(r.duplicates, 20);
    assert_eq!(r.safety_violations(), 0, "{r:?}");
}

#[test]
fn a_commit_asked_after_a_higher_one_was_answered_must_not_be_lower() {
    let mut h = healthy();
    let c = &mut g(&mut h).commits;
    // Consumer 1 commits 12 on partition 0, asked at 4 s, after consumer 0's 20 was answered.
    c.push(commit(1, 1, Some(4 * S), 4 * S + 100, &[(0, 12)]));
    let r = report(&h);
    assert_eq!(r.commit_regressions.len(), 1);
    assert_eq!(
        r.commit_regressions[0].to_string(),
        "partition 0: offset 20 committed by consumer 0, then 12 by consumer 1 at 4.0 s"
    );
    // Near miss: asked before the higher one was answered, the two overlap: no order known.
    let mut h = healthy();
    g(&mut h).commits.push(commit(1, 1, Some(3 * S + 50), 3 * S + 200, &[(0, 12)]));
    assert!(report(&h).commit_regressions.is_empty());
    // An automatic commit counts as asked up to 10 s before its answer.
    let mut h = healthy();
    g(&mut h).commits.push(commit(1, 1, None, 12 * S, &[(0, 12)]));
    assert!(report(&h).commit_regressions.is_empty());
    g(&mut h).commits.push(commit(1, 1, None, 14 * S, &[(0, 13)]));
    assert_eq!(report(&h).commit_regressions.len(), 1);
    // A refused commit is no commit.
    let mut h = healthy();
    let mut refused = commit(1, 1, Some(4 * S), 4 * S + 100, &[(0, 12)]);
    refused.error = Some("Broker: Specified group generation id is not valid".into());
    g(&mut h).commits.push(refused);
    assert!(report(&h).commit_regressions.is_empty());
}

/// Consumer 0 reads partition 0 up to 9 and commits 10; then consumer 1 takes partition 0 over.
fn takeover(first: i64, at: u64) -> History {
    let mut h = base(1, 20);
    rebalance(&mut h, 0, 1.0, RebalanceKind::Assign, &[0], 1);
    poll(&mut h, 0, 1, 0, 0..10, 2 * S);
    g(&mut h).commits.push(commit(0, 1, Some(3 * S), 3 * S + 100, &[(0, 10)]));
    rebalance(&mut h, 0, 5.0, RebalanceKind::Revoke, &[0], 1);
    rebalance(&mut h, 1, 5.5, RebalanceKind::Assign, &[0], 1);
    poll(&mut h, 1, 1, 0, first..20, at);
    h
}

#[test]
fn a_member_that_takes_over_resumes_at_or_before_the_committed_offset() {
    assert!(report(&takeover(10, 6 * S)).resume_skips.is_empty());
    assert!(report(&takeover(7, 6 * S)).resume_skips.is_empty(), "re-reading is allowed");
    let r = report(&takeover(15, 6 * S));
    assert_eq!(r.resume_skips.len(), 1);
    assert_eq!(
        r.resume_skips[0].to_string(),
        "consumer 1 (assignment 1) began partition 0 at offset 15, past the committed offset 10"
    );
    // Near miss: consumer 0 asked to commit 15 before consumer 1 began, answered after.
    let mut h = takeover(15, 6 * S);
    g(&mut h).commits.push(commit(0, 1, Some(4 * S), 7 * S, &[(0, 15)]));
    assert!(report(&h).resume_skips.is_empty());
    // Nothing committed: a member must begin at the log's start.
    let mut h = takeover(3, 6 * S);
    g(&mut h).commits.clear();
    g(&mut h).polls.retain(|p| p.consumer == 1);
    let r = report(&h);
    assert_eq!(r.resume_skips.len(), 1);
    assert!(r.resume_skips[0].to_string().ends_with("past the log start 0 (nothing committed)"), "{r:?}");
}

#[test]
fn within_one_assignment_offsets_rise_one_by_one_over_the_data() {
    // A gap where the log has no record is no jump.
    let mut h = base(1, 10);
    h.reads.retain(|r| r.offset != 5);
    h.sends.retain(|s| s.value != val(0, 5));
    rebalance(&mut h, 0, 1.0, RebalanceKind::Assign, &[0], 1);
    poll(&mut h, 0, 1, 0, 0..5, 2 * S);
    poll(&mut h, 0, 1, 0, 6..10, 3 * S);
    assert!(report(&h).jumps.is_empty(), "{:?}", report(&h).jumps);
    // A new assignment may start over; the same assignment may not go back.
    poll(&mut h, 0, 2, 0, 0..3, 4 * S);
    assert!(report(&h).jumps.is_empty());
    poll(&mut h, 0, 2, 0, 1..2, 5 * S);
    let r = report(&h);
    assert_eq!(r.jumps.len(), 1);
    assert_eq!(r.jumps[0].to_string(), "consumer 0 (assignment 2) went back from 0:2 to 0:1");
}

#[test]
fn a_value_the_log_does_not_hold_there_is_wrong() {
    let mut h = healthy();
    g(&mut h).polls[10].value = val(1, 3);
    let r = report(&h);
    assert_eq!(r.wrong_values.len(), 1);
    assert_eq!(r.wrong_values[0].value, val(1, 3));
}

fn heal_at(h: &mut History, at_s: f64) {
    let at_us = (at_s * 1e6) as u64;
    h.timeline.heal_us = at_us;
    h.nemesis.push(NemesisEvent {
        at_us: at_us - 5 * S,
        op: NemesisOp::Inject,
        fault: 0,
        effect: crate::history::Effect::Kill { node: 1 },
        ok: true,
        detail: String::new(),
    });
}

#[test]
fn after_heal_every_partition_has_one_owner_within_the_budget() {
    // Consumer 0 lost its partitions during the fault; consumer 1 takes all three 2 s after heal.
    let mut h = healthy();
    heal_at(&mut h, 10.0);
    rebalance(&mut h, 0, 8.0, RebalanceKind::Lost, &[0, 1], 1);
    rebalance(&mut h, 1, 9.0, RebalanceKind::Revoke, &[2], 1);
    rebalance(&mut h, 1, 12.0, RebalanceKind::Assign, &[0, 1, 2], 2);
    assert_eq!(report(&h).convergence.converged_us, Some(12 * S));
    // Near miss: the same, 45 s after heal, with a budget of 30 s.
    let mut late = healthy();
    heal_at(&mut late, 10.0);
    rebalance(&mut late, 0, 8.0, RebalanceKind::Lost, &[0, 1], 1);
    rebalance(&mut late, 1, 55.0, RebalanceKind::Assign, &[0, 1, 2], 2);
    let c = report(&late).convergence;
    assert_eq!(c.converged_us, None);
    assert_eq!(c.problems, vec!["every partition had one owner only from 55.0 s on"]);
    // Never settled: the ownership at the members' leaving is shown.
    let mut never = healthy();
    heal_at(&mut never, 10.0);
    rebalance(&mut never, 0, 8.0, RebalanceKind::Lost, &[0, 1], 1);
    let c = report(&never).convergence;
    assert_eq!(c.problems, vec!["partition 0: no owner", "partition 1: no owner"]);
    // The members' own leaving (revocations after they were told to leave) is no unsettling.
    let mut leaving = healthy();
    g(&mut leaving).leaving_us = 90 * S;
    for c in 0..2 {
        rebalance(&mut leaving, c, 91.0, RebalanceKind::Revoke, &[0, 1, 2], 1);
    }
    assert_eq!(report(&leaving).convergence.converged_us, Some(S));
    // Both members handed every partition: never one owner each.
    let mut twice = base(3, 5);
    rebalance(&mut twice, 0, 1.0, RebalanceKind::Assign, &[0, 1, 2], 1);
    rebalance(&mut twice, 1, 1.0, RebalanceKind::Assign, &[0, 1, 2], 1);
    let c = report(&twice).convergence;
    assert_eq!(c.converged_us, None);
    assert_eq!(c.problems[0], "partition 0: owned by consumer 0 and consumer 1 at once");
}

/// Seen with Chronik v2.10.4 (queue-baseline): consumer 0 joined the group on one node and was
/// given every partition; consumers 1 and 2 joined on another node and split them. For an
/// instant (consumer 0 alone) every partition had one owner; that is no settling.
#[test]
fn a_moment_of_single_ownership_that_does_not_last_is_not_settling() {
    let mut h = base(3, 5);
    g(&mut h).members = 3;
    g(&mut h).leaving_us = 16 * S;
    rebalance(&mut h, 0, 0.223454, RebalanceKind::Assign, &[0, 1, 2], 1);
    rebalance(&mut h, 1, 0.223535, RebalanceKind::Assign, &[0, 1], 1);
    rebalance(&mut h, 2, 0.223540, RebalanceKind::Assign, &[2], 1);
    let c = report(&h).convergence;
    assert_eq!(c.converged_us, None);
    assert_eq!(
        c.problems,
        vec![
            "partition 0: owned by consumer 0 and consumer 1 at once",
            "partition 1: owned by consumer 0 and consumer 1 at once",
            "partition 2: owned by consumer 0 and consumer 2 at once"
        ]
    );
}

#[test]
fn the_longest_stall_is_the_longest_gap_between_polls() {
    let mut h = healthy();
    poll(&mut h, 1, 1, 2, 5..6, 9 * S);
    let r = report(&h);
    assert!((r.longest_stall_ms - (9_000.0 - 2_000.2)).abs() < 1.0, "{}", r.longest_stall_ms);
}
