//! The connectivity model: from the nemesis events of a history, who could exchange bytes with
//! whom at each instant, and which nodes were dead or paused. Pure; the checker's quorum,
//! failover and metadata rules read the cluster through it.
//!
//! It errs towards connectivity: a fault is in force from the moment it was read back in place
//! (the inject event) until the harness started to undo it (the heal event); an inject that
//! failed counts as never in place, a heal that failed as done. So a rule that needs a cut to
//! fire can only fire for cuts that certainly held.

use std::collections::BTreeSet;

use crate::history::{Effect, NemesisEvent, NemesisOp};

/// The cluster's state between two nemesis events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    /// Directed pairs whose bytes are dropped.
    pub cut: BTreeSet<(u8, u8)>,
    pub dead: BTreeSet<u8>,
    pub paused: BTreeSet<u8>,
}

impl State {
    /// The node runs (neither killed nor paused).
    pub fn up(&self, n: u8) -> bool {
        !self.dead.contains(&n) && !self.paused.contains(&n)
    }

    /// `a` and `b` can exchange bytes both ways (both up, neither direction cut).
    pub fn reach(&self, a: u8, b: u8) -> bool {
        a == b || (self.up(a) && self.up(b) && !self.cut.contains(&(a, b)) && !self.cut.contains(&(b, a)))
    }

    /// How many of `others` (not counting `n` itself) `n` can exchange bytes with.
    pub fn reachable_from(&self, n: u8, others: &[u8]) -> usize {
        if !self.up(n) {
            return 0;
        }
        others.iter().filter(|&&o| o != n && self.reach(n, o)).count()
    }

    /// The largest group of `nodes` that are up and can all reach each other (exhaustive:
    /// clusters here have at most nine nodes).
    pub fn largest_connected_group(&self, nodes: &[u8]) -> Vec<u8> {
        let up: Vec<u8> = nodes.iter().copied().filter(|n| self.up(*n)).collect();
        let mut best: Vec<u8> = Vec::new();
        for mask in 1u32..(1u32 << up.len()) {
            let group: Vec<u8> = (0..up.len()).filter(|i| mask & (1 << i) != 0).map(|i| up[i]).collect();
            if group.len() > best.len() && group.iter().all(|&a| group.iter().all(|&b| self.reach(a, b))) {
                best = group;
            }
        }
        best
    }

    /// `n` is up and belongs to some group of mutually reachable nodes that is a majority of
    /// `nodes`. (With two equal majorities, as a bridge or a one-way cut makes, a node in
    /// either one is not lost; the largest group alone would pick one arbitrarily.)
    pub fn in_majority_group(&self, n: u8, nodes: &[u8]) -> bool {
        if !self.up(n) {
            return false;
        }
        let majority = nodes.len() / 2 + 1;
        let others: Vec<u8> = nodes.iter().copied().filter(|o| *o != n && self.reach(n, *o)).collect();
        (0u32..(1u32 << others.len())).any(|mask| {
            let group: Vec<u8> = (0..others.len()).filter(|i| mask & (1 << i) != 0).map(|i| others[i]).collect();
            group.len() + 1 >= majority && group.iter().all(|&a| group.iter().all(|&b| self.reach(a, b)))
        })
    }

    pub fn is_whole(&self) -> bool {
        self.cut.is_empty() && self.dead.is_empty() && self.paused.is_empty()
    }
}

/// One stretch of time with one state: `[from_us, to_us)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    pub from_us: u64,
    pub to_us: u64,
    pub state: State,
}

/// The whole run as consecutive spans, from 0 to `u64::MAX`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connectivity {
    pub spans: Vec<Span>,
}

impl Connectivity {
    /// Builds the model from nemesis events (in any order).
    pub fn from_events(events: &[NemesisEvent]) -> Connectivity {
        let mut events: Vec<&NemesisEvent> = events.iter().filter(|e| e.ok || e.op == NemesisOp::Heal).collect();
        events.sort_by_key(|e| (e.at_us, e.op == NemesisOp::Inject));
        // Active effects, by fault index, so a heal removes exactly what its inject added.
        let mut active: Vec<(usize, Effect)> = Vec::new();
        let mut spans = Vec::new();
        let mut from = 0u64;
        for e in events {
            if e.at_us > from {
                spans.push(Span { from_us: from, to_us: e.at_us, state: state_of(&active) });
                from = e.at_us;
            }
            match e.op {
                NemesisOp::Inject => active.push((e.fault, e.effect.clone())),
                NemesisOp::Heal => active.retain(|(f, _)| *f != e.fault),
            }
        }
        spans.push(Span { from_us: from, to_us: u64::MAX, state: state_of(&active) });
        // Merge neighbours with equal states.
        let mut merged: Vec<Span> = Vec::new();
        for s in spans {
            match merged.last_mut() {
                Some(last) if last.state == s.state => last.to_us = s.to_us,
                _ => merged.push(s),
            }
        }
        Connectivity { spans: merged }
    }

    /// The state at one instant.
    pub fn at(&self, t_us: u64) -> &State {
        self.spans.iter().find(|s| s.from_us <= t_us && t_us < s.to_us).map(|s| &s.state).expect("spans cover all time")
    }

    /// Every state in force at some instant of `[from_us, to_us]`.
    pub fn during(&self, from_us: u64, to_us: u64) -> impl Iterator<Item = &Span> {
        self.spans.iter().filter(move |s| s.from_us <= to_us && from_us < s.to_us)
    }

    /// When `n` stopped belonging to any majority of mutually reachable nodes (cut off, dead or
    /// paused), at or after `from_us`; `None` if it never did.
    pub fn lost_at(&self, n: u8, nodes: &[u8], from_us: u64) -> Option<u64> {
        self.spans
            .iter()
            .filter(|s| s.to_us > from_us)
            .find(|s| !s.state.in_majority_group(n, nodes))
            .map(|s| s.from_us.max(from_us))
    }
}

fn state_of(active: &[(usize, Effect)]) -> State {
    let mut st = State::default();
    for (_, e) in active {
        match e {
            Effect::Cut { pairs } => st.cut.extend(pairs.iter().copied()),
            Effect::Kill { node } => {
                st.dead.insert(*node);
            }
            Effect::Pause { node } => {
                st.paused.insert(*node);
            }
            // Neither cuts a node off from its peers.
            Effect::Degrade { .. } | Effect::ClientCut { .. } => {}
        }
    }
    st
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(at_us: u64, op: NemesisOp, fault: usize, effect: Effect, ok: bool) -> NemesisEvent {
        NemesisEvent { at_us, op, fault, effect, ok, detail: String::new() }
    }

    fn isolate(n: u8) -> Effect {
        let mut pairs = Vec::new();
        for o in [1u8, 2, 3].into_iter().filter(|o| *o != n) {
            pairs.push((n, o));
            pairs.push((o, n));
        }
        Effect::Cut { pairs }
    }

    #[test]
    fn an_isolated_node_reaches_nobody_until_heal() {
        let c = Connectivity::from_events(&[
            ev(100, NemesisOp::Inject, 0, isolate(1), true),
            ev(500, NemesisOp::Heal, 0, isolate(1), true),
        ]);
        assert!(c.at(50).is_whole());
        assert_eq!(c.at(100).reachable_from(1, &[1, 2, 3]), 0);
        assert_eq!(c.at(100).reachable_from(2, &[1, 2, 3]), 1);
        assert_eq!(c.at(100).largest_connected_group(&[1, 2, 3]), vec![2, 3]);
        assert!(c.at(500).is_whole());
        assert_eq!(c.during(0, 99).count(), 1);
        assert_eq!(c.during(99, 100).count(), 2);
        assert_eq!(c.lost_at(1, &[1, 2, 3], 0), Some(100));
        assert_eq!(c.lost_at(2, &[1, 2, 3], 0), None);
    }

    #[test]
    fn a_one_way_cut_breaks_the_exchange_both_ways() {
        let c = Connectivity::from_events(&[ev(10, NemesisOp::Inject, 0, Effect::Cut { pairs: vec![(1, 3)] }, true)]);
        assert!(!c.at(10).reach(1, 3) && !c.at(10).reach(3, 1));
        assert!(c.at(10).reach(1, 2) && c.at(10).reach(2, 3));
        // Two equal majorities ({1, 2} and {2, 3}): nobody is lost.
        for n in [1, 2, 3] {
            assert!(c.at(10).in_majority_group(n, &[1, 2, 3]), "n{n}");
            assert_eq!(c.lost_at(n, &[1, 2, 3], 0), None, "n{n}");
        }
        let iso = Connectivity::from_events(&[ev(10, NemesisOp::Inject, 0, isolate(3), true)]);
        assert!(!iso.at(10).in_majority_group(3, &[1, 2, 3]) && iso.at(10).in_majority_group(1, &[1, 2, 3]));
    }

    #[test]
    fn two_kills_leave_one_node_alone_and_a_failed_inject_changes_nothing() {
        let c = Connectivity::from_events(&[
            ev(10, NemesisOp::Inject, 0, Effect::Kill { node: 1 }, true),
            ev(11, NemesisOp::Inject, 1, Effect::Kill { node: 2 }, true),
            ev(12, NemesisOp::Inject, 2, Effect::Pause { node: 3 }, false),
            ev(90, NemesisOp::Heal, 1, Effect::Kill { node: 2 }, true),
            ev(91, NemesisOp::Heal, 0, Effect::Kill { node: 1 }, false),
        ]);
        let s = c.at(50);
        assert_eq!(s.reachable_from(3, &[1, 2, 3]), 0);
        assert!(s.up(3), "the pause never took");
        assert_eq!(s.largest_connected_group(&[1, 2, 3]).len(), 1);
        assert!(c.at(95).is_whole(), "a failed heal counts as done (the model errs towards connectivity)");
    }

    #[test]
    fn a_heal_removes_only_its_own_fault() {
        let c = Connectivity::from_events(&[
            ev(10, NemesisOp::Inject, 0, Effect::Kill { node: 1 }, true),
            ev(20, NemesisOp::Inject, 1, Effect::Pause { node: 2 }, true),
            ev(30, NemesisOp::Heal, 1, Effect::Pause { node: 2 }, true),
        ]);
        assert!(!c.at(35).up(1) && c.at(35).up(2));
    }
}
