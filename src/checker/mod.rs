//! The safety checker: pure functions over a [`History`] that find lost, unseen, duplicated,
//! inconsistent, reordered, phantom and aborted writes, in the manner of Jepsen's Kafka checker.
//! The rules that read the fault timeline live beside it: `quorum` (acknowledged without a
//! quorum), `availability` (per-partition gaps, failover, recovery), `reads` (per-reader skips
//! and rewinds), `metadata` (stale and split views of the cluster).

pub mod availability;
pub mod group;
pub mod keys;
pub mod metadata;
pub mod quorum;
pub mod reads;
pub mod txn;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::history::{History, Outcome, Send};

/// Everything the checker found. Empty lists mean the rule held.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anomalies {
    /// Acknowledged, and missing from the final read although the final read got past its
    /// offset (or read its partition to the log end and the offset lies beyond it). A value
    /// seen live and missing from the final read is lost too (`lost_after_read` names those).
    pub lost: Vec<Placed>,
    /// Of `lost`, the values a live reader had seen before they vanished (truncated).
    #[serde(default)]
    pub lost_after_read: Vec<Placed>,
    /// Acknowledged, missing from the final read, and the final read did not get that far:
    /// not proven lost, reported apart.
    pub unseen: Vec<Placed>,
    /// One value read at two or more offsets.
    pub duplicated: Vec<Duplicated>,
    /// One value read at two or more offsets whose batches the log shows written by one
    /// producer under rising producer epochs: the client re-sent a possibly persisted batch as
    /// new after bumping its epoch (librdkafka does at a message timeout), which no broker can
    /// recognise as a retry (confluentinc/librdkafka#4953). The client's duplicate, not the
    /// cluster's: not a safety anomaly. A copy whose batch is unknown, or two copies in one
    /// epoch (a retry the broker should have recognised), stay in `duplicated`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resent: Vec<Duplicated>,
    /// One offset read with two or more values, or read with another value than the one acknowledged there.
    pub inconsistent: Vec<Inconsistent>,
    /// A producer's later send acknowledged at a lower (or equal) offset of the same partition.
    pub non_monotonic: Vec<NonMonotonic>,
    /// A send acknowledged before another one started got a higher offset in the same partition.
    pub real_time_reorder: Vec<NonMonotonic>,
    /// Acknowledged with an offset below -1 (never a valid report).
    pub invalid_offset: Vec<Placed>,
    /// Acknowledged with offset -1: librdkafka reports a retried idempotent batch that the
    /// broker answered with DUPLICATE_SEQUENCE_NUMBER as delivered, offset unknown
    /// (`rdkafka_request.c`). Not a safety anomaly by itself with idempotence (the verdict
    /// fails it without); the value must still be read, which the lost/unseen rules check by
    /// value. Kept out of every offset-based rule.
    #[serde(default)]
    pub unknown_offset: Vec<Placed>,
    /// A value read that no producer ever sent.
    pub phantom: Vec<Placed>,
    /// A value read whose send definitely failed.
    pub aborted_read: Vec<Placed>,
}

/// A value at a place.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Placed {
    pub value: String,
    pub partition: i32,
    pub offset: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Duplicated {
    pub value: String,
    pub at: Vec<(i32, i64)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inconsistent {
    pub partition: i32,
    pub offset: i64,
    pub values: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NonMonotonic {
    pub partition: i32,
    pub earlier: Placed,
    pub later: Placed,
}

/// `p0-7 @ 1:42`: a value at partition 1, offset 42.
impl std::fmt::Display for Placed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} @ {}:{}", self.value, self.partition, self.offset)
    }
}

impl std::fmt::Display for Duplicated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at: Vec<String> = self.at.iter().map(|(p, o)| format!("{p}:{o}")).collect();
        write!(f, "{} @ {}", self.value, at.join(" and "))
    }
}

impl std::fmt::Display for Inconsistent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{} holds {}", self.partition, self.offset, self.values.join(" and "))
    }
}

impl std::fmt::Display for NonMonotonic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} then {}", self.earlier, self.later)
    }
}

impl Anomalies {
    /// Safety violated: anything but `unseen` (which is a liveness matter).
    pub fn safety_violated(&self) -> bool {
        self.count_safety() > 0
    }

    pub fn count_safety(&self) -> usize {
        self.lost.len()
            + self.duplicated.len()
            + self.inconsistent.len()
            + self.non_monotonic.len()
            + self.real_time_reorder.len()
            + self.invalid_offset.len()
            + self.phantom.len()
            + self.aborted_read.len()
    }

    /// One line per non-empty rule, with counts and the first examples.
    pub fn summary(&self) -> Vec<String> {
        fn ex<T: std::fmt::Display>(v: &[T]) -> String {
            let shown: Vec<String> = v.iter().take(3).map(|x| x.to_string()).collect();
            format!("{}{}", shown.join(", "), if v.len() > 3 { ", …" } else { "" })
        }
        let mut out = Vec::new();
        let mut add = |name: &str, n: usize, examples: String| {
            if n > 0 {
                out.push(format!("{n} {name}: {examples}"));
            }
        };
        add("lost", self.lost.len(), ex(&self.lost));
        add("of them read live before they vanished", self.lost_after_read.len(), ex(&self.lost_after_read));
        add("unseen", self.unseen.len(), ex(&self.unseen));
        add("duplicated", self.duplicated.len(), ex(&self.duplicated));
        add("inconsistent offsets", self.inconsistent.len(), ex(&self.inconsistent));
        add("non-monotonic", self.non_monotonic.len(), ex(&self.non_monotonic));
        add("real-time reorders", self.real_time_reorder.len(), ex(&self.real_time_reorder));
        add("invalid offsets", self.invalid_offset.len(), ex(&self.invalid_offset));
        add(
            "acknowledged with unknown offset -1 (a retry the broker called a duplicate)",
            self.unknown_offset.len(),
            ex(&self.unknown_offset),
        );
        add("phantom reads", self.phantom.len(), ex(&self.phantom));
        add("aborted reads", self.aborted_read.len(), ex(&self.aborted_read));
        out
    }
}

/// Whether the copies at `at` (in offset order, one partition) were written by one producer,
/// each later copy under a higher producer epoch than the one before, as the log's batch
/// headers say. Unknown origins, another producer, or an epoch that does not rise: no.
fn resent_by_the_client(at: &[(i32, i64)], origins: &HashMap<(i32, i64), &crate::record_origin::RecordOrigin>) -> bool {
    let Some(found) = at.iter().map(|p| origins.get(p)).collect::<Option<Vec<_>>>() else { return false };
    let one_partition = at.windows(2).all(|w| w[0].0 == w[1].0);
    one_partition
        && found[0].producer_id >= 0
        && found.windows(2).all(|w| w[1].producer_id == w[0].producer_id && w[1].producer_epoch > w[0].producer_epoch)
}

/// Runs every rule that needs only the workload's operations.
pub fn check(h: &History) -> Anomalies {
    let mut a = Anomalies::default();
    let mut by_value: HashMap<&str, BTreeSet<(i32, i64)>> = HashMap::new();
    let mut by_place: BTreeMap<(i32, i64), BTreeSet<&str>> = BTreeMap::new();
    // What the final read saw: "lost" is judged against it alone.
    let mut in_final: HashSet<&str> = HashSet::new();
    let mut final_max: HashMap<i32, i64> = HashMap::new();
    let mut seen_live: HashSet<&str> = HashSet::new();
    for r in &h.reads {
        by_value.entry(&r.value).or_default().insert((r.partition, r.offset));
        by_place.entry((r.partition, r.offset)).or_default().insert(&r.value);
        if r.final_read {
            in_final.insert(&r.value);
            let m = final_max.entry(r.partition).or_insert(r.offset);
            *m = (*m).max(r.offset);
        } else {
            seen_live.insert(&r.value);
        }
    }
    let sends: HashMap<&str, &Send> = h.sends.iter().map(|s| (s.value.as_str(), s)).collect();
    let highest_acked = h.highest_acked();
    // The final read reached the end of the partition's log: every acknowledged offset at or
    // below the log end was readable, and one beyond it is not in the log at all.
    // A node that, asked directly, reports a longer log than the one read may still hold the
    // missing writes: then they are unseen, not lost.
    let longest_elsewhere = |p: i32| {
        h.final_read
            .per_node_log_end
            .values()
            .filter_map(|m| match m.get(&p) {
                Some(crate::log_end::NodeLogEnd::Offset(o)) => Some(*o),
                _ => None,
            })
            .max()
    };
    let read_to_end = |p: i32| {
        let end = h.final_read.log_end.get(&p).copied().flatten();
        let reached_end = match (end, h.final_read.reached.get(&p)) {
            (Some(end), Some(reached)) => *reached >= end - 1,
            (Some(end), None) => end == 0,
            _ => false,
        };
        reached_end && longest_elsewhere(p).is_none_or(|o| Some(o) <= end)
    };

    for s in &h.sends {
        let Outcome::Ok { partition, offset } = s.outcome else { continue };
        let placed = Placed { value: s.value.clone(), partition, offset };
        if offset == -1 {
            // Placement unknown: lost only if its partition was read to its highest
            // acknowledged offset (or to its end) and the value is nowhere in it.
            if !in_final.contains(s.value.as_str()) {
                let read_fully = match (final_max.get(&partition), highest_acked.get(&partition)) {
                    (Some(m), Some(t)) => m >= t,
                    (_, None) => true,
                    (None, Some(_)) => false,
                } || read_to_end(partition);
                if read_fully {
                    a.lost.push(placed.clone());
                } else {
                    a.unseen.push(placed.clone());
                }
            }
            a.unknown_offset.push(placed);
            continue;
        }
        if offset < 0 {
            a.invalid_offset.push(placed);
            continue;
        }
        if let Some(values) = by_place.get(&(partition, offset)) {
            if values.iter().any(|v| *v != s.value) && values.len() == 1 {
                // Read back with another value than the one acknowledged there.
                let mut vs: Vec<String> = values.iter().map(|v| v.to_string()).collect();
                vs.push(s.value.clone());
                vs.sort();
                a.inconsistent.push(Inconsistent { partition, offset, values: vs });
            }
        }
        if !in_final.contains(s.value.as_str()) {
            if final_max.get(&partition).is_some_and(|m| *m > offset) || read_to_end(partition) {
                if seen_live.contains(s.value.as_str()) {
                    a.lost_after_read.push(placed.clone());
                }
                a.lost.push(placed);
            } else {
                a.unseen.push(placed);
            }
        }
    }
    for ((partition, offset), values) in &by_place {
        if values.len() > 1 {
            a.inconsistent.push(Inconsistent {
                partition: *partition,
                offset: *offset,
                values: values.iter().map(|v| v.to_string()).collect(),
            });
        }
    }
    let origins: HashMap<(i32, i64), &crate::record_origin::RecordOrigin> =
        h.origins.iter().map(|o| ((o.partition, o.offset), o)).collect();
    for (value, places) in &by_value {
        if places.len() > 1 {
            let d = Duplicated { value: value.to_string(), at: places.iter().copied().collect() };
            if resent_by_the_client(&d.at, &origins) {
                a.resent.push(d);
            } else {
                a.duplicated.push(d);
            }
        }
        let (partition, offset) = *places.iter().next().expect("non-empty");
        match sends.get(value) {
            None => a.phantom.push(Placed { value: value.to_string(), partition, offset }),
            Some(s) if matches!(s.outcome, Outcome::Fail { .. }) => {
                a.aborted_read.push(Placed { value: value.to_string(), partition, offset })
            }
            _ => {}
        }
    }
    if h.ordered_producers {
        a.non_monotonic = non_monotonic(h);
    }
    a.real_time_reorder = real_time(h);
    a.duplicated.sort_by(|x, y| x.value.cmp(&y.value));
    a.resent.sort_by(|x, y| x.value.cmp(&y.value));
    a.phantom.sort();
    a.aborted_read.sort();
    a.inconsistent.sort_by_key(|i| (i.partition, i.offset));
    a.inconsistent.dedup();
    a
}

/// `(seq, offset, value)` of one acknowledged send.
type Acked<'a> = (u64, i64, &'a str);

/// Per producer and partition, acknowledged offsets must rise with the sequence number.
fn non_monotonic(h: &History) -> Vec<NonMonotonic> {
    let mut groups: BTreeMap<(u32, i32), Vec<Acked>> = BTreeMap::new();
    for s in &h.sends {
        match s.outcome {
            Outcome::Ok { partition, offset } if offset >= 0 => {
                groups.entry((s.producer, partition)).or_default().push((s.seq, offset, &s.value));
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for ((_, partition), mut v) in groups {
        v.sort();
        for w in v.windows(2) {
            if w[1].1 <= w[0].1 {
                out.push(NonMonotonic {
                    partition,
                    earlier: Placed { value: w[0].2.to_string(), partition, offset: w[0].1 },
                    later: Placed { value: w[1].2.to_string(), partition, offset: w[1].1 },
                });
            }
        }
    }
    out
}

/// A write acknowledged before another write was invoked must not get a higher offset in the
/// same partition than that later write.
fn real_time(h: &History) -> Vec<NonMonotonic> {
    let mut per_partition: BTreeMap<i32, Vec<&Send>> = BTreeMap::new();
    for s in &h.sends {
        if let (Outcome::Ok { partition, offset }, Some(_)) = (&s.outcome, s.completed_us) {
            if *offset >= 0 {
                per_partition.entry(*partition).or_default().push(s);
            }
        }
    }
    let mut out = Vec::new();
    for (partition, sends) in per_partition {
        let mut by_completion = sends.clone();
        by_completion.sort_by_key(|s| s.completed_us);
        let mut by_invoke = sends;
        by_invoke.sort_by_key(|s| s.invoked_us);
        let offset = |s: &Send| match s.outcome {
            Outcome::Ok { offset, .. } => offset,
            _ => unreachable!("only acknowledged sends"),
        };
        let mut i = 0;
        let mut max: Option<&Send> = None;
        for b in by_invoke {
            while i < by_completion.len() && by_completion[i].completed_us.is_some_and(|c| c < b.invoked_us) {
                let c = by_completion[i];
                if max.is_none_or(|m| offset(c) > offset(m)) {
                    max = Some(c);
                }
                i += 1;
            }
            if let Some(m) = max {
                if offset(m) > offset(b) {
                    out.push(NonMonotonic {
                        partition,
                        earlier: Placed { value: m.value.clone(), partition, offset: offset(m) },
                        later: Placed { value: b.value.clone(), partition, offset: offset(b) },
                    });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{value_of, Read};
    use crate::record_origin::RecordOrigin;

    /// A history builder: `ok(p, seq, partition, offset)` sends and `read(...)` reads,
    /// timestamps increasing with each call so that sends do not overlap.
    #[derive(Default)]
    struct H {
        h: History,
        t: u64,
    }

    impl H {
        fn new() -> H {
            H { h: History { ordered_producers: true, ..History::default() }, t: 0 }
        }
        fn send(&mut self, producer: u32, seq: u64, outcome: Outcome) -> &mut Self {
            self.t += 10;
            self.h.sends.push(Send {
                producer,
                seq,
                value: value_of(producer, seq),
                invoked_us: self.t,
                completed_us: Some(self.t + 5),
                outcome,
                broker: None,
                key: None,
            });
            self
        }
        fn ok(&mut self, producer: u32, seq: u64, partition: i32, offset: i64) -> &mut Self {
            self.send(producer, seq, Outcome::Ok { partition, offset })
        }
        fn read_value(&mut self, value: &str, partition: i32, offset: i64) -> &mut Self {
            self.t += 1;
            self.h.reads.push(Read { partition, offset, value: value.into(), at_us: self.t, final_read: true });
            self
        }
        fn read(&mut self, producer: u32, seq: u64, partition: i32, offset: i64) -> &mut Self {
            self.read_value(&value_of(producer, seq), partition, offset)
        }
        fn done(&self) -> Anomalies {
            check(&self.h)
        }
    }

    /// Three producers, two partitions, everything acknowledged and read back once.
    fn clean() -> H {
        let mut h = H::new();
        let mut next = [0i64; 2];
        for seq in 0..20 {
            for p in 0..3u32 {
                let partition = ((seq + p as u64) % 2) as i32;
                let offset = next[partition as usize];
                next[partition as usize] += 1;
                h.ok(p, seq, partition, offset);
            }
        }
        let reads: Vec<(u32, u64, i32, i64)> =
            h.h.sends
                .iter()
                .map(|s| match s.outcome {
                    Outcome::Ok { partition, offset } => (s.producer, s.seq, partition, offset),
                    _ => unreachable!(),
                })
                .collect();
        for (p, seq, part, off) in reads {
            h.read(p, seq, part, off);
        }
        h
    }

    #[test]
    fn a_clean_history_passes_every_rule() {
        let a = clean().done();
        assert_eq!(a, Anomalies::default(), "{:?}", a.summary());
        assert!(!a.safety_violated());
    }

    #[test]
    fn a_long_random_clean_history_passes() {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut h = H::new();
        let mut next = [0i64; 3];
        let mut reads = Vec::new();
        for seq in 0..3000u64 {
            let p = rng.u32(0..5);
            let partition = rng.i32(0..3);
            let offset = next[partition as usize];
            next[partition as usize] += 1;
            match rng.u8(0..10) {
                0 => {
                    h.send(p, seq, Outcome::Fail { error: "NOT_LEADER".into() });
                    next[partition as usize] -= 1;
                }
                1 => {
                    // Indeterminate, and in fact written: it shows up in the log.
                    h.send(p, seq, Outcome::Info { error: "timeout".into() });
                    reads.push((p, seq, partition, offset));
                }
                _ => {
                    h.ok(p, seq, partition, offset);
                    reads.push((p, seq, partition, offset));
                }
            }
        }
        rng.shuffle(&mut reads);
        for (p, seq, part, off) in reads {
            h.read(p, seq, part, off);
        }
        let a = h.done();
        assert!(!a.safety_violated() && a.unseen.is_empty(), "{:?}", a.summary());
    }

    #[test]
    fn lost_versus_unseen() {
        // p0-1 acknowledged at offset 1, never read, but offset 2 was read: lost.
        let mut h = H::new();
        h.ok(0, 0, 0, 0).ok(0, 1, 0, 1).ok(0, 2, 0, 2).read(0, 0, 0, 0).read(0, 2, 0, 2);
        let a = h.done();
        assert_eq!(a.lost, vec![Placed { value: "p0-1".into(), partition: 0, offset: 1 }]);
        assert!(a.unseen.is_empty());
        // The read stopped at offset 0: offsets 1 and 2 are unseen, not lost.
        let mut h = H::new();
        h.ok(0, 0, 0, 0).ok(0, 1, 0, 1).ok(0, 2, 0, 2).read(0, 0, 0, 0);
        let a = h.done();
        assert!(a.lost.is_empty());
        assert_eq!(a.unseen.len(), 2);
        assert!(!a.safety_violated(), "unseen alone is not a safety violation");
    }

    /// The final read reached the log end the leader reported, but another node, asked
    /// directly, holds a longer log: what is missing is unseen, not lost. Without that node's
    /// answer, the same history is a loss (the writes lie beyond the log the cluster serves).
    #[test]
    fn missing_beyond_the_served_log_end_is_lost_unless_a_node_holds_more() {
        use crate::log_end::NodeLogEnd;
        let mut h = H::new();
        h.ok(0, 0, 0, 0).ok(0, 1, 0, 1).ok(0, 2, 0, 2).read(0, 0, 0, 0);
        h.h.final_read.log_end.insert(0, Some(1));
        h.h.final_read.reached.insert(0, 0);
        let a = h.done();
        assert_eq!((a.lost.len(), a.unseen.len()), (2, 0), "{:?}", a.summary());
        h.h.final_read.per_node_log_end.insert(1, [(0, NodeLogEnd::Offset(1))].into());
        h.h.final_read.per_node_log_end.insert(2, [(0, NodeLogEnd::Offset(3))].into());
        let a = h.done();
        assert_eq!((a.lost.len(), a.unseen.len()), (0, 2), "{:?}", a.summary());
    }

    #[test]
    fn duplicated_value() {
        let mut h = H::new();
        h.ok(0, 0, 0, 0).read(0, 0, 0, 0).read(0, 0, 0, 1);
        assert_eq!(h.done().duplicated, vec![Duplicated { value: "p0-0".into(), at: vec![(0, 0), (0, 1)] }]);
        assert!(clean().done().duplicated.is_empty());
    }

    /// Two producers writing concurrently to one partition. Producer 0's sends 4 and 5 are in
    /// flight when its sends 2 and 3 time out locally: its first attempt lands at offsets 4–5
    /// under producer epoch 2, it is re-sent after the epoch bump and lands again at 8–9 under
    /// epoch 3, and that second copy is what is acknowledged. Producer 1 goes on meanwhile.
    fn resent_after_a_bump(epoch_of_second_copy: i16, known: bool) -> H {
        let mut h = H::new();
        let timed_out = Outcome::Info { error: "Message production error: MessageTimedOut".into() };
        h.ok(0, 0, 0, 0).ok(1, 0, 0, 1).ok(0, 1, 0, 2).ok(1, 1, 0, 3);
        h.send(0, 2, timed_out.clone()).send(0, 3, timed_out);
        h.ok(1, 2, 0, 6).ok(1, 3, 0, 7).ok(0, 4, 0, 8).ok(0, 5, 0, 9);
        // Concurrent: producer 0's sends 2–5 were all invoked before any of them completed,
        // and stayed in flight while producer 1's 2 and 3 were acknowledged.
        let first_invoked = h.h.sends[4].invoked_us;
        for s in h.h.sends.iter_mut().filter(|s| s.producer == 0 && s.seq >= 2) {
            s.invoked_us = first_invoked;
        }
        for (p, seq, offset) in [(0, 0, 0), (1, 0, 1), (0, 1, 2), (1, 1, 3), (0, 4, 4), (0, 5, 5)] {
            h.read(p, seq, 0, offset);
        }
        for (p, seq, offset) in [(1, 2, 6), (1, 3, 7), (0, 4, 8), (0, 5, 9)] {
            h.read(p, seq, 0, offset);
        }
        let origin = |offset: i64, producer_id: i64, producer_epoch: i16, base_sequence: i32| RecordOrigin {
            partition: 0,
            offset,
            producer_id,
            producer_epoch,
            base_sequence,
        };
        h.h.origins = vec![
            origin(4, 700, 2, 0),
            origin(5, 700, 2, 0),
            origin(6, 701, 0, 2),
            origin(7, 701, 0, 2),
            origin(8, 700, epoch_of_second_copy, 0),
        ];
        if known {
            h.h.origins.push(origin(9, 700, epoch_of_second_copy, 0));
        }
        h
    }

    #[test]
    fn a_copy_the_producer_resent_under_a_new_epoch_is_the_clients_not_the_clusters() {
        let a = resent_after_a_bump(3, true).done();
        assert!(a.duplicated.is_empty(), "{:?}", a.summary());
        assert_eq!(
            a.resent,
            [
                Duplicated { value: "p0-4".into(), at: vec![(0, 4), (0, 8)] },
                Duplicated { value: "p0-5".into(), at: vec![(0, 5), (0, 9)] }
            ]
        );
        assert!(!a.safety_violated(), "{:?}", a.summary());
    }

    #[test]
    fn a_copy_in_the_same_epoch_or_of_unknown_origin_is_a_duplicate() {
        // The same epoch: a retry the broker should have recognised by its sequence.
        let a = resent_after_a_bump(2, true).done();
        assert_eq!(a.duplicated.len(), 2, "{:?}", a.summary());
        assert!(a.resent.is_empty() && a.safety_violated());
        // Offset 9's batch unknown: p0-5 stays a duplicate, p0-4 is the client's.
        let a = resent_after_a_bump(3, false).done();
        assert_eq!(a.duplicated, [Duplicated { value: "p0-5".into(), at: vec![(0, 5), (0, 9)] }]);
        assert_eq!(a.resent.len(), 1);
        // No origins at all (a history saved before they were asked for): duplicates.
        let mut h = resent_after_a_bump(3, true);
        h.h.origins.clear();
        assert_eq!(h.done().duplicated.len(), 2);
    }

    #[test]
    fn inconsistent_offsets() {
        // Two values read at one offset.
        let mut h = H::new();
        h.ok(0, 0, 0, 0).ok(1, 0, 0, 1).read(0, 0, 0, 0).read(1, 0, 0, 0);
        let a = h.done();
        assert!(a.inconsistent.iter().any(|i| i.offset == 0 && i.values == ["p0-0", "p1-0"]), "{a:?}");
        // Acknowledged at offset 0, but offset 0 holds another value.
        let mut h = H::new();
        h.ok(0, 0, 0, 0).ok(1, 0, 0, 1).read(1, 0, 0, 0).read(1, 0, 0, 1);
        let a = h.done();
        assert!(a.inconsistent.iter().any(|i| i.offset == 0), "{a:?}");
    }

    #[test]
    fn non_monotonic_producer_offsets() {
        let mut h = H::new();
        h.ok(0, 0, 0, 5).ok(0, 1, 0, 3).read(0, 0, 0, 5).read(0, 1, 0, 3);
        let a = h.done();
        assert_eq!(a.non_monotonic.len(), 1, "{a:?}");
        assert_eq!(a.non_monotonic[0].later.value, "p0-1");
        // Not checked when producers are not ordered (no idempotence, several in flight).
        h.h.ordered_producers = false;
        assert!(h.done().non_monotonic.is_empty());
    }

    #[test]
    fn real_time_order() {
        // p0-0 is acknowledged (t=15) before p1-0 is invoked (t=20), yet gets a higher offset.
        let mut h = H::new();
        h.ok(0, 0, 0, 1).ok(1, 0, 0, 0).read(0, 0, 0, 1).read(1, 0, 0, 0);
        let a = h.done();
        assert_eq!(a.real_time_reorder.len(), 1, "{a:?}");
        // Concurrent sends may be ordered either way.
        let mut h = H::new();
        h.ok(0, 0, 0, 1).ok(1, 0, 0, 0).read(0, 0, 0, 1).read(1, 0, 0, 0);
        h.h.sends[1].invoked_us = 12; // invoked before the first completed (15)
        assert!(h.done().real_time_reorder.is_empty());
    }

    #[test]
    fn invalid_offset() {
        let mut h = H::new();
        h.ok(0, 0, 0, -2);
        assert_eq!(h.done().invalid_offset.len(), 1);
        let mut ok = H::new();
        ok.ok(0, 0, 0, 0).read(0, 0, 0, 0);
        assert!(ok.done().invalid_offset.is_empty());
    }

    /// Offset -1 is librdkafka's report of a retried idempotent batch the broker called a
    /// duplicate: the value must be read somewhere, and no offset rule may use the -1.
    #[test]
    fn unknown_offset_is_checked_by_value_only() {
        // p0-1 acknowledged at -1, read at 0:1: no anomaly but the unknown offset itself.
        let mut h = H::new();
        h.ok(0, 0, 0, 0).ok(0, 1, 0, -1).ok(0, 2, 0, 2).read(0, 0, 0, 0).read(0, 1, 0, 1).read(0, 2, 0, 2);
        let a = h.done();
        assert_eq!(a.unknown_offset.len(), 1);
        assert!(!a.safety_violated(), "{:?}", a.summary());
        assert!(a.non_monotonic.is_empty() && a.invalid_offset.is_empty());
        // Never read although its partition was read to the highest acknowledged offset: lost.
        let mut lost = H::new();
        lost.ok(0, 0, 0, 0).ok(0, 1, 0, -1).ok(0, 2, 0, 1).read(0, 0, 0, 0).read(0, 2, 0, 1);
        assert_eq!(lost.done().lost, vec![Placed { value: "p0-1".into(), partition: 0, offset: -1 }]);
        // Never read and the partition was not read that far: unseen, not lost.
        let mut unseen = H::new();
        unseen.ok(0, 0, 0, 0).ok(0, 1, 0, -1).ok(0, 2, 0, 1).read(0, 0, 0, 0);
        let a = unseen.done();
        assert!(a.lost.is_empty());
        assert_eq!(a.unseen.len(), 2);
    }

    #[test]
    fn phantom_read() {
        let mut h = H::new();
        h.ok(0, 0, 0, 0).read(0, 0, 0, 0).read_value("p9-9", 0, 1);
        assert_eq!(h.done().phantom, vec![Placed { value: "p9-9".into(), partition: 0, offset: 1 }]);
    }

    #[test]
    fn aborted_read() {
        let mut h = H::new();
        h.send(0, 0, Outcome::Fail { error: "INVALID".into() }).read(0, 0, 0, 0);
        assert_eq!(h.done().aborted_read.len(), 1);
        // An indeterminate send that shows up is fine.
        let mut h = H::new();
        h.send(0, 0, Outcome::Info { error: "timeout".into() }).read(0, 0, 0, 0);
        assert_eq!(h.done(), Anomalies::default());
    }

    #[test]
    fn mutations_of_a_clean_history_are_each_caught() {
        let base = clean();
        let n = base.h.reads.len();
        // Drop one read in the middle of its partition: lost.
        let mut dropped = clean();
        let victim = (0..n).find(|&i| dropped.h.reads[i].offset == 3).unwrap();
        dropped.h.reads.remove(victim);
        assert_eq!(dropped.done().lost.len(), 1);
        // Duplicate one read at a new offset: duplicated.
        let mut duplicated = clean();
        let mut copy = duplicated.h.reads[0].clone();
        copy.offset = 1000;
        duplicated.h.reads.push(copy);
        assert_eq!(duplicated.done().duplicated.len(), 1);
        // Swap the values of two reads of one producer in one partition: offsets no longer
        // match what was acknowledged, and the producer's order is broken.
        let mut reordered = clean();
        let (i, j) = {
            let r = &reordered.h.reads;
            let i = (0..n).find(|&i| r[i].value == "p0-0").unwrap();
            let j =
                (0..n).find(|&j| r[j].value.starts_with("p0-") && r[j].partition == r[i].partition && j != i).unwrap();
            (i, j)
        };
        let vi = reordered.h.reads[i].value.clone();
        reordered.h.reads[i].value = reordered.h.reads[j].value.clone();
        reordered.h.reads[j].value = vi;
        let a = reordered.done();
        assert!(!a.inconsistent.is_empty(), "{:?}", a.summary());
        // Reorder the acknowledgements instead: non-monotonic.
        let mut acks = clean();
        let a_idx = acks.h.sends.iter().position(|s| s.value == "p0-0").unwrap();
        let b_idx = acks
            .h
            .sends
            .iter()
            .position(|s| {
                s.producer == 0 && s.seq > 0 && s.outcome_partition() == acks.h.sends[a_idx].outcome_partition()
            })
            .unwrap();
        let (oa, ob) = (acks.h.sends[a_idx].outcome.clone(), acks.h.sends[b_idx].outcome.clone());
        acks.h.sends[a_idx].outcome = ob;
        acks.h.sends[b_idx].outcome = oa;
        assert!(!acks.done().non_monotonic.is_empty());
    }

    trait PartitionOf {
        fn outcome_partition(&self) -> Option<i32>;
    }

    impl PartitionOf for Send {
        fn outcome_partition(&self) -> Option<i32> {
            match self.outcome {
                Outcome::Ok { partition, .. } => Some(partition),
                _ => None,
            }
        }
    }
}
