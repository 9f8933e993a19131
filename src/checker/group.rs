//! The consumer-group rules, in the manner of Jepsen's Kafka queue checks, over the queue
//! workload's [`GroupHistory`] with the group-less final read as the ground truth: every
//! acknowledged write the log holds is delivered to the group (at-least-once; a write the group
//! read past is skipped, one it never got to is not reached); committed offsets never go back;
//! a member that takes a partition over resumes at or before the committed offset; within one
//! assignment a member's polls rise one by one over the data; the group is served the values
//! the log holds; after heal every partition has exactly one owner within the budget.
//! Duplicate deliveries, rebalances and the longest stall are counted, not failed.
//!
//! Commits overlap in time. librdkafka does not say when it sent an automatic commit, so such a
//! commit counts as in flight from [`AUTO_COMMIT_IN_FLIGHT_US`] before its answer (members run
//! with `socket.timeout.ms` at that value, so no request lives longer); a rule calls one commit
//! "after" another only when it was asked after the other was answered.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::checker::Placed;
use crate::history::group::{Commit, GroupHistory, RebalanceKind};
use crate::history::{History, Outcome};

/// How long before its answer an automatic commit may have been asked (µs).
pub const AUTO_COMMIT_IN_FLIGHT_US: u64 = 10_000_000;

/// A committed offset that went back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitRegression {
    pub partition: i32,
    /// The higher offset, committed first (answered before the lower one was asked).
    pub before: i64,
    pub before_consumer: u32,
    pub after: i64,
    pub after_consumer: u32,
    pub at_us: u64,
}

impl std::fmt::Display for CommitRegression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "partition {}: offset {} committed by consumer {}, then {} by consumer {} at {:.1} s",
            self.partition,
            self.before,
            self.before_consumer,
            self.after,
            self.after_consumer,
            self.at_us as f64 / 1e6
        )
    }
}

/// A member that took a partition over and started past what the group had committed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeSkip {
    pub consumer: u32,
    pub assignment: u32,
    pub partition: i32,
    /// The highest offset the group can have committed when the member started (`None`:
    /// nothing committed; the member had to start at the log's beginning).
    pub committed: Option<i64>,
    pub log_start: i64,
    pub first_polled: i64,
    pub at_us: u64,
}

impl std::fmt::Display for ResumeSkip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let from = match self.committed {
            Some(c) => format!("the committed offset {c}"),
            None => format!("the log start {} (nothing committed)", self.log_start),
        };
        write!(
            f,
            "consumer {} (assignment {}) began partition {} at offset {}, past {from}",
            self.consumer, self.assignment, self.partition, self.first_polled
        )
    }
}

/// A member's poll that skipped data or went back within one assignment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupJump {
    pub consumer: u32,
    pub assignment: u32,
    pub partition: i32,
    pub from: i64,
    pub to: i64,
}

impl std::fmt::Display for GroupJump {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let how = if self.to <= self.from { "went back" } else { "jumped over data" };
        write!(
            f,
            "consumer {} (assignment {}) {how} from {}:{} to {}:{}",
            self.consumer, self.assignment, self.partition, self.from, self.partition, self.to
        )
    }
}

/// How the group's ownership settled after heal (after start, in a baseline).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Convergence {
    /// From when ownership was judged (µs).
    pub from_us: u64,
    /// When every partition first had exactly one owner at or after `from_us`.
    pub converged_us: Option<u64>,
    /// How ownership stood at the end when it never converged: `partition 2: no owner`.
    pub problems: Vec<String>,
}

/// Everything the group rules found.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupReport {
    pub members: u32,
    pub commit_mode: String,
    /// Distinct values the group consumed, and polls in all.
    pub consumed: usize,
    pub polls: usize,
    /// Polls of a value the group had already been given (at-least-once allows them).
    pub duplicates: usize,
    /// Assignments handed to members, and commits answered (accepted, refused).
    pub rebalances: usize,
    pub commits_ok: usize,
    pub commits_failed: usize,
    /// Longest time between two polls of the group while it ran (ms).
    pub longest_stall_ms: f64,
    /// Acknowledged, in the log, never delivered, and the group read past it: skipped.
    pub skipped: Vec<Placed>,
    /// Acknowledged, in the log, never delivered, and the group never got that far.
    pub not_reached: Vec<Placed>,
    pub commit_regressions: Vec<CommitRegression>,
    pub resume_skips: Vec<ResumeSkip>,
    pub jumps: Vec<GroupJump>,
    /// The group was handed a value other than the one the log holds at that offset.
    pub wrong_values: Vec<Placed>,
    pub convergence: Convergence,
    /// The drain after the producers stopped reached every partition's target.
    pub drained: bool,
}

impl GroupReport {
    /// Rules whose breach is a safety failure.
    pub fn safety_violations(&self) -> usize {
        self.skipped.len()
            + self.commit_regressions.len()
            + self.resume_skips.len()
            + self.jumps.len()
            + self.wrong_values.len()
    }
}

/// The final read: the value at each place of the log, and where each value is.
struct Log {
    at: HashMap<(i32, i64), String>,
    of: HashMap<String, (i32, i64)>,
    start: BTreeMap<i32, i64>,
}

impl Log {
    fn of(h: &History) -> Log {
        let mut log = Log { at: HashMap::new(), of: HashMap::new(), start: BTreeMap::new() };
        for r in h.reads.iter().filter(|r| r.final_read) {
            log.at.entry((r.partition, r.offset)).or_insert_with(|| r.value.clone());
            log.of.entry(r.value.clone()).or_insert((r.partition, r.offset));
            let s = log.start.entry(r.partition).or_insert(r.offset);
            *s = (*s).min(r.offset);
        }
        log
    }
}

/// Runs every group rule (`None` when the scenario ran no group).
pub fn check(h: &History, budget_ms: f64) -> Option<GroupReport> {
    let g = h.group.as_ref()?;
    let log = Log::of(h);
    let mut r = GroupReport {
        members: g.members,
        commit_mode: g.commit_mode.to_string(),
        polls: g.polls.len(),
        rebalances: g.rebalances.iter().filter(|e| e.kind == RebalanceKind::Assign).count(),
        commits_ok: g.commits.iter().filter(|c| c.error.is_none()).count(),
        commits_failed: g.commits.iter().filter(|c| c.error.is_some()).count(),
        drained: g.drained,
        ..GroupReport::default()
    };
    delivery(h, g, &log, &mut r);
    r.commit_regressions = regressions(&g.commits);
    r.resume_skips = resume_skips(g, &log);
    r.jumps = jumps(g, &log);
    r.longest_stall_ms = longest_stall_ms(g);
    let from_us = if h.nemesis.is_empty() { g.started_us } else { h.timeline.heal_us };
    r.convergence = convergence(g, h.topic.partitions.max(1), from_us, (budget_ms * 1e3) as u64);
    Some(r)
}

/// At-least-once, duplicates and values: every acknowledged write the final read found must
/// have reached the group.
fn delivery(h: &History, g: &GroupHistory, log: &Log, r: &mut GroupReport) {
    let mut seen: HashSet<&str> = HashSet::new();
    let mut furthest: BTreeMap<i32, i64> = BTreeMap::new();
    for p in &g.polls {
        if !seen.insert(p.value.as_str()) {
            r.duplicates += 1;
        }
        let f = furthest.entry(p.partition).or_insert(p.offset);
        *f = (*f).max(p.offset);
        if log.at.get(&(p.partition, p.offset)).is_some_and(|v| *v != p.value) {
            r.wrong_values.push(Placed { value: p.value.clone(), partition: p.partition, offset: p.offset });
        }
    }
    r.consumed = seen.len();
    for s in &h.sends {
        if !matches!(s.outcome, Outcome::Ok { .. }) || seen.contains(s.value.as_str()) {
            continue;
        }
        let Some(&(partition, offset)) = log.of.get(&s.value) else { continue };
        let placed = Placed { value: s.value.clone(), partition, offset };
        if furthest.get(&partition).is_some_and(|f| *f > offset) {
            r.skipped.push(placed);
        } else {
            r.not_reached.push(placed);
        }
    }
    r.skipped.sort();
    r.not_reached.sort();
}

/// When a commit may have been asked: when the member asked, or (automatic) up to
/// [`AUTO_COMMIT_IN_FLIGHT_US`] before its answer.
fn asked_us(c: &Commit) -> u64 {
    c.invoked_us.unwrap_or_else(|| c.completed_us.saturating_sub(AUTO_COMMIT_IN_FLIGHT_US))
}

/// An accepted commit lower than one answered before it was asked.
fn regressions(commits: &[Commit]) -> Vec<CommitRegression> {
    let ok: Vec<&Commit> = commits.iter().filter(|c| c.error.is_none()).collect();
    let mut out = Vec::new();
    for c in &ok {
        for &(partition, offset) in &c.offsets {
            let higher = ok
                .iter()
                .filter(|d| d.completed_us < asked_us(c))
                .filter_map(|d| d.offsets.iter().find(|(p, _)| *p == partition).map(|(_, o)| (*o, d.consumer)))
                .filter(|(o, _)| *o > offset)
                .max();
            if let Some((before, before_consumer)) = higher {
                out.push(CommitRegression {
                    partition,
                    before,
                    before_consumer,
                    after: offset,
                    after_consumer: c.consumer,
                    at_us: c.completed_us,
                });
            }
        }
    }
    out
}

/// Each member's first poll of each partition in each assignment, against the most the group
/// can have committed for it by then: any accepted commit asked before, except the member's own
/// in that assignment (those follow from its polls).
fn resume_skips(g: &GroupHistory, log: &Log) -> Vec<ResumeSkip> {
    let mut first: BTreeMap<(u32, u32, i32), (i64, u64)> = BTreeMap::new();
    for p in &g.polls {
        first.entry((p.consumer, p.assignment, p.partition)).or_insert((p.offset, p.at_us));
    }
    let mut out = Vec::new();
    for ((consumer, assignment, partition), (first_polled, at_us)) in first {
        let committed = g
            .commits
            .iter()
            .filter(|c| c.error.is_none() && asked_us(c) < at_us)
            .filter(|c| !(c.consumer == consumer && c.assignment == assignment))
            .filter_map(|c| c.offsets.iter().find(|(p, _)| *p == partition).map(|(_, o)| *o))
            .max();
        let log_start = log.start.get(&partition).copied().unwrap_or(0);
        let bound = committed.unwrap_or(log_start).max(log_start);
        // Past the bound only counts when the offsets in between hold data.
        let skipped_data = (bound..first_polled).any(|o| log.at.contains_key(&(partition, o)));
        if first_polled > bound && skipped_data {
            out.push(ResumeSkip { consumer, assignment, partition, committed, log_start, first_polled, at_us });
        }
    }
    out
}

/// Within one member's assignment, each partition's offsets rise one by one over the data.
fn jumps(g: &GroupHistory, log: &Log) -> Vec<GroupJump> {
    let mut last: BTreeMap<(u32, u32, i32), i64> = BTreeMap::new();
    let mut out = Vec::new();
    for p in &g.polls {
        let key = (p.consumer, p.assignment, p.partition);
        if let Some(&prev) = last.get(&key) {
            let over_data = (prev + 1..p.offset).any(|o| log.at.contains_key(&(p.partition, o)));
            if p.offset <= prev || over_data {
                out.push(GroupJump {
                    consumer: p.consumer,
                    assignment: p.assignment,
                    partition: p.partition,
                    from: prev,
                    to: p.offset,
                });
            }
        }
        let l = last.entry(key).or_insert(p.offset);
        *l = (*l).max(p.offset);
    }
    out
}

/// The longest time between two polls of the group, from its start to its last poll.
fn longest_stall_ms(g: &GroupHistory) -> f64 {
    let mut at: Vec<u64> = g.polls.iter().map(|p| p.at_us).collect();
    at.sort_unstable();
    let mut prev = g.started_us;
    let mut longest = 0;
    for t in at {
        longest = longest.max(t.saturating_sub(prev));
        prev = t;
    }
    longest as f64 / 1e3
}

/// Replays the rebalance events up to the members' leaving: the moment at or after `from_us`
/// from which every partition had exactly one owner among the members and kept it until they
/// were told to leave. Settled only after `budget_us`, or never, is a problem.
fn convergence(g: &GroupHistory, partitions: i32, from_us: u64, budget_us: u64) -> Convergence {
    let mut out = Convergence { from_us, ..Convergence::default() };
    let end = if g.leaving_us > 0 { g.leaving_us } else { g.stopped_us };
    let mut owned: BTreeMap<u32, BTreeSet<i32>> = BTreeMap::new();
    // Since when the ownership has been good without a break (`None`: it is not good now).
    let mut good_since: Option<u64> = ownership_problems(&owned, partitions).is_empty().then_some(0);
    let events: Vec<_> = g.rebalances.iter().filter(|e| e.at_us < end).collect();
    for (i, e) in events.iter().enumerate() {
        let set = owned.entry(e.consumer).or_default();
        match e.kind {
            RebalanceKind::Assign => *set = e.partitions.iter().copied().collect(),
            RebalanceKind::Revoke | RebalanceKind::Lost => set.clear(),
        }
        // Judge each instant once all of its events are applied.
        if events.get(i + 1).is_some_and(|n| n.at_us == e.at_us) {
            continue;
        }
        let good = ownership_problems(&owned, partitions).is_empty();
        good_since = match (good, good_since) {
            (true, Some(t)) => Some(t),
            (true, None) => Some(e.at_us),
            (false, _) => None,
        };
    }
    match good_since {
        Some(t) if t.max(from_us) <= from_us.saturating_add(budget_us) => out.converged_us = Some(t.max(from_us)),
        Some(t) => out.problems = vec![format!("every partition had one owner only from {:.1} s on", t as f64 / 1e6)],
        None => out.problems = ownership_problems(&owned, partitions),
    }
    out
}

/// `partition 2: no owner`, `partition 0: owned by consumer 0 and consumer 1 at once`.
fn ownership_problems(owned: &BTreeMap<u32, BTreeSet<i32>>, partitions: i32) -> Vec<String> {
    (0..partitions)
        .filter_map(|p| {
            let owners: Vec<String> =
                owned.iter().filter(|(_, s)| s.contains(&p)).map(|(c, _)| format!("consumer {c}")).collect();
            match owners.len() {
                1 => None,
                0 => Some(format!("partition {p}: no owner")),
                _ => Some(format!("partition {p}: owned by {} at once", owners.join(" and "))),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
