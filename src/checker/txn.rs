//! The transaction checker: a pure function of a [`TxnHistory`]. Under `read_committed`, no
//! reader may see a value of an aborted (or failed) transaction, nor a value before its
//! transaction was asked to commit; a committed transaction is all-or-nothing in the final read
//! and never vanishes; one transaction's writes to one partition keep their order; no value is
//! read at two offsets. Transactions of different producers overlap in time and interleave in
//! the log: every rule looks at one transaction's own writes, times and offsets, never at
//! another's.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::{Duplicated, Inconsistent, Placed};
use crate::history::txn::{Txn, TxnHistory, TxnOutcome, TxnWrite};

/// Everything the transaction checker found. Empty violation lists mean the rule held.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnReport {
    /// The broker advertised every API transactions need; `false`: the scenario is not
    /// applicable (never a pass), and `missing_apis` says why.
    pub applicable: bool,
    #[serde(default)]
    pub missing_apis: Vec<String>,
    pub committed: usize,
    pub aborted: usize,
    pub failed: usize,
    pub unknown: usize,
    /// Distinct values read by any reader.
    pub values_read: usize,
    /// Writes of committed transactions, and how many of them the final read saw.
    pub committed_values: usize,
    pub committed_values_read: usize,
    /// A value of an aborted or failed transaction, read.
    pub aborted_reads: Vec<BadRead>,
    /// A value the live reader saw before its transaction was asked to end (commit or abort).
    pub dirty_reads: Vec<BadRead>,
    /// A committed (or indeterminate) transaction of which the final read saw some writes and,
    /// having read past the others, not them.
    pub partial: Vec<TxnGap>,
    /// A committed transaction (or an indeterminate one a reader saw, so committed) none of
    /// whose writes the final read saw, although it read past at least one of them.
    pub lost: Vec<TxnGap>,
    /// One transaction's writes to one partition at offsets that do not rise with their index.
    pub misordered: Vec<Misordered>,
    /// One value read at two or more offsets.
    pub duplicated: Vec<Duplicated>,
    /// One offset read with two or more values.
    pub inconsistent: Vec<Inconsistent>,
    /// A value read that no transaction wrote.
    pub phantom: Vec<Placed>,
    /// Not a violation: committed transactions with writes the final read neither saw nor read
    /// past (it did not get that far).
    pub unseen: Vec<TxnGap>,
}

/// A read that must not have happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadRead {
    /// `live` or `final`.
    pub reader: String,
    pub read: Placed,
    pub at_us: u64,
    /// `t<producer>-<txn>`.
    pub txn: String,
    pub outcome: String,
    /// When its transaction was asked to end (`None`: never).
    pub ended_us: Option<u64>,
}

/// A transaction and the writes that are (not) there.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnGap {
    pub txn: String,
    pub outcome: String,
    /// Writes the final read saw.
    pub visible: Vec<String>,
    /// Writes the final read read past without seeing them.
    pub absent: Vec<String>,
    /// Writes the final read did not get to.
    #[serde(default)]
    pub undecided: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Misordered {
    pub txn: String,
    pub earlier: Placed,
    pub later: Placed,
}

fn secs(us: u64) -> String {
    format!("{:.3} s", us as f64 / 1e6)
}

impl std::fmt::Display for BadRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} read by the {} reader at {}, from transaction {} ({}",
            self.read,
            self.reader,
            secs(self.at_us),
            self.txn,
            self.outcome
        )?;
        match self.ended_us {
            Some(e) => write!(f, ", asked to end at {})", secs(e)),
            None => write!(f, ", never ended by its producer)"),
        }
    }
}

impl std::fmt::Display for TxnGap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |v: &[String]| if v.is_empty() { "none".to_string() } else { v.join(", ") };
        write!(f, "{} ({}) shows {}, lacks {}", self.txn, self.outcome, list(&self.visible), list(&self.absent))?;
        if !self.undecided.is_empty() {
            write!(f, ", not read that far: {}", self.undecided.join(", "))?;
        }
        Ok(())
    }
}

impl std::fmt::Display for Misordered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} wrote {} before {}", self.txn, self.earlier, self.later)
    }
}

impl TxnReport {
    /// Violations, rule by rule (`unseen` is not one).
    pub fn violations(&self) -> usize {
        self.aborted_reads.len()
            + self.dirty_reads.len()
            + self.partial.len()
            + self.lost.len()
            + self.misordered.len()
            + self.duplicated.len()
            + self.inconsistent.len()
            + self.phantom.len()
    }

    pub fn violated(&self) -> bool {
        self.violations() > 0
    }

    /// One sentence per violated rule, with its count and first example.
    pub fn findings(&self) -> Vec<String> {
        fn first<T: std::fmt::Display>(v: &[T]) -> String {
            v.first().map(|x| x.to_string()).unwrap_or_default()
        }
        fn n(count: usize, one: &str, many: &str) -> String {
            format!("{count} {}", if count == 1 { one } else { many })
        }
        let mut out = Vec::new();
        if !self.aborted_reads.is_empty() {
            out.push(format!(
                "{} of aborted or failed transactions by read_committed readers (of {} aborted and {} failed transactions); first: {}",
                n(self.aborted_reads.len(), "read of a value", "reads of values"),
                self.aborted,
                self.failed,
                first(&self.aborted_reads)
            ));
        }
        if !self.dirty_reads.is_empty() {
            out.push(format!(
                "{} a value before its transaction was asked to commit or abort (a dirty read under read_committed); first: {}",
                n(self.dirty_reads.len(), "live read saw", "live reads saw"),
                first(&self.dirty_reads)
            ));
        }
        if !self.partial.is_empty() {
            out.push(format!(
                "{} only partly visible in the final read, which read past the missing writes (atomicity); first: {}",
                n(
                    self.partial.len(),
                    "committed or indeterminate transaction was",
                    "committed or indeterminate transactions were"
                ),
                first(&self.partial)
            ));
        }
        if !self.lost.is_empty() {
            out.push(format!(
                "{} of {} committed lost: none of {} writes were in the final read, which read past them; first: {}",
                n(self.lost.len(), "transaction", "transactions"),
                self.committed,
                if self.lost.len() == 1 { "its" } else { "their" },
                first(&self.lost)
            ));
        }
        if !self.misordered.is_empty() {
            out.push(format!(
                "{} one partition out of order (a later write of the transaction at a lower offset); first: {}",
                n(
                    self.misordered.len(),
                    "pair of writes of one transaction landed in",
                    "pairs of writes of one transaction landed in"
                ),
                first(&self.misordered)
            ));
        }
        if !self.duplicated.is_empty() {
            out.push(format!(
                "{} read at two or more offsets; first: {}",
                n(self.duplicated.len(), "value was", "values were"),
                first(&self.duplicated)
            ));
        }
        if !self.inconsistent.is_empty() {
            out.push(format!(
                "{} read with two or more values; first: {}",
                n(self.inconsistent.len(), "offset was", "offsets were"),
                first(&self.inconsistent)
            ));
        }
        if !self.phantom.is_empty() {
            out.push(format!(
                "{} that no transaction wrote; first: {}",
                n(self.phantom.len(), "value was read", "values were read"),
                first(&self.phantom)
            ));
        }
        out
    }
}

fn label(o: &TxnOutcome) -> &'static str {
    match o {
        TxnOutcome::Committed => "committed",
        TxnOutcome::Aborted => "aborted",
        TxnOutcome::Failed { .. } => "failed",
        TxnOutcome::Unknown { .. } => "indeterminate",
    }
}

/// Runs every transaction rule.
pub fn check(h: &TxnHistory) -> TxnReport {
    let mut r = TxnReport {
        applicable: h.support.supported(),
        missing_apis: h.support.missing(),
        committed: h.committed(),
        aborted: h.aborted(),
        failed: h.count(|o| matches!(o, TxnOutcome::Failed { .. })),
        unknown: h.count(|o| matches!(o, TxnOutcome::Unknown { .. })),
        ..TxnReport::default()
    };
    let mut writes: HashMap<&str, (&Txn, &TxnWrite)> = HashMap::new();
    for t in &h.txns {
        for w in &t.writes {
            writes.insert(&w.value, (t, w));
        }
    }
    let all_reads = h.reads.iter().map(|x| ("live", x)).chain(h.final_reads.iter().map(|x| ("final", x)));
    let mut by_value: BTreeMap<&str, BTreeSet<(i32, i64)>> = BTreeMap::new();
    let mut by_place: BTreeMap<(i32, i64), BTreeSet<&str>> = BTreeMap::new();
    let mut phantom: BTreeMap<&str, Placed> = BTreeMap::new();
    for (reader, read) in all_reads {
        by_value.entry(&read.value).or_default().insert((read.partition, read.offset));
        by_place.entry((read.partition, read.offset)).or_default().insert(&read.value);
        let placed = || Placed { value: read.value.clone(), partition: read.partition, offset: read.offset };
        let Some((t, _)) = writes.get(read.value.as_str()) else {
            phantom.entry(&read.value).or_insert_with(placed);
            continue;
        };
        let bad = || BadRead {
            reader: reader.to_string(),
            read: placed(),
            at_us: read.at_us,
            txn: t.name(),
            outcome: label(&t.outcome).to_string(),
            ended_us: t.ended_us,
        };
        if matches!(t.outcome, TxnOutcome::Aborted | TxnOutcome::Failed { .. }) {
            r.aborted_reads.push(bad());
        }
        // Read before its producer asked to end it: no read_committed reader may see that.
        if reader == "live" && t.ended_us.is_none_or(|e| read.at_us < e) {
            r.dirty_reads.push(bad());
        }
    }
    r.values_read = by_value.len();
    r.phantom = phantom.into_values().collect();

    atomicity(h, &mut r);
    r.misordered = order(h);
    for (value, places) in &by_value {
        if places.len() > 1 {
            r.duplicated.push(Duplicated { value: value.to_string(), at: places.iter().copied().collect() });
        }
    }
    for ((partition, offset), values) in &by_place {
        if values.len() > 1 {
            let values = values.iter().map(|v| v.to_string()).collect();
            r.inconsistent.push(Inconsistent { partition: *partition, offset: *offset, values });
        }
    }
    r
}

/// All-or-nothing and durability, judged by the final read alone. A write the final read did
/// not see is *absent* only if the read got past it: past its delivered offset in its
/// partition, or (offset unknown) to the closing transaction's record there. Anything else is
/// undecided, never a violation.
fn atomicity(h: &TxnHistory, r: &mut TxnReport) {
    let in_final: HashSet<&str> = h.final_reads.iter().map(|x| x.value.as_str()).collect();
    let read_anywhere: HashSet<&str> = h.reads.iter().chain(&h.final_reads).map(|x| x.value.as_str()).collect();
    let fr = &h.final_read;
    let past = |w: &TxnWrite| match w.offset.filter(|o| *o >= 0) {
        Some(o) => fr.reached.get(&w.partition).is_some_and(|reached| *reached >= o),
        None => fr.closed && fr.partition_complete(w.partition),
    };
    for t in &h.txns {
        let committed = t.outcome == TxnOutcome::Committed;
        if !committed && !matches!(t.outcome, TxnOutcome::Unknown { .. }) {
            continue;
        }
        let mut gap = TxnGap { txn: t.name(), outcome: label(&t.outcome).to_string(), ..TxnGap::default() };
        for w in &t.writes {
            let list = if in_final.contains(w.value.as_str()) {
                &mut gap.visible
            } else if past(w) {
                &mut gap.absent
            } else {
                &mut gap.undecided
            };
            list.push(w.value.clone());
        }
        if committed {
            r.committed_values += t.writes.len();
            r.committed_values_read += gap.visible.len();
        }
        // A read_committed reader saw one of its values: an indeterminate commit did happen.
        let seen = t.writes.iter().any(|w| read_anywhere.contains(w.value.as_str()));
        if !gap.visible.is_empty() && !gap.absent.is_empty() {
            r.partial.push(gap);
        } else if gap.visible.is_empty() && !gap.absent.is_empty() && (committed || seen) {
            if !committed {
                gap.outcome = "indeterminate, seen by the live reader".to_string();
            }
            r.lost.push(gap);
        } else if committed && !gap.undecided.is_empty() {
            r.unseen.push(gap);
        }
    }
}

/// Where each value is: where a reader saw it (the final read first, then the live one),
/// else its delivery report.
fn positions(h: &TxnHistory) -> HashMap<&str, (i32, i64)> {
    let mut at: HashMap<&str, (i32, i64)> = HashMap::new();
    for x in h.final_reads.iter().chain(&h.reads) {
        at.entry(x.value.as_str()).or_insert((x.partition, x.offset));
    }
    for w in h.txns.iter().flat_map(|t| &t.writes) {
        if let Some(o) = w.offset.filter(|o| *o >= 0) {
            at.entry(w.value.as_str()).or_insert((w.partition, o));
        }
    }
    at
}

/// Per transaction and partition, offsets must rise with the writes' index.
fn order(h: &TxnHistory) -> Vec<Misordered> {
    let at = positions(h);
    let mut out = Vec::new();
    for t in &h.txns {
        let mut per_partition: BTreeMap<i32, Vec<(u32, i64, &str)>> = BTreeMap::new();
        for w in &t.writes {
            if let Some((p, o)) = at.get(w.value.as_str()) {
                if *p == w.partition {
                    per_partition.entry(*p).or_default().push((w.index, *o, &w.value));
                }
            }
        }
        for (partition, mut v) in per_partition {
            v.sort();
            for pair in v.windows(2) {
                if pair[1].1 <= pair[0].1 {
                    out.push(Misordered {
                        txn: t.name(),
                        earlier: Placed { value: pair[0].2.to_string(), partition, offset: pair[0].1 },
                        later: Placed { value: pair[1].2.to_string(), partition, offset: pair[1].1 },
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
    use crate::history::txn::{txn_value_of, TxnFinalRead, TxnRead, TxnSupport};

    const PARTITIONS: i32 = 3;

    /// A history builder over a simulated log: transactions of several producers overlap in
    /// time, their writes interleave in each partition in append order, and every ended
    /// transaction leaves a control marker (an offset no reader returns) in each partition it
    /// touched.
    struct B {
        h: TxnHistory,
    }

    impl B {
        /// `producers` producers with `per_producer` transactions each; producer `p`'s `k`-th
        /// transaction begins at `k*100 + p*30`, writes every 20 µs, is asked to end at +85 µs
        /// and ends at +100 µs, so it overlaps the other producers'. Every 4th is aborted;
        /// every write is delivered; committed values are read live after their commit and by
        /// a complete final read.
        fn concurrent(producers: u32, per_producer: u64) -> B {
            let mut txns = Vec::new();
            // (append time, producer, txn, index, partition)
            let mut appends: Vec<(u64, u32, u64, u32, i32)> = Vec::new();
            for k in 0..per_producer {
                for p in 0..producers {
                    let invoked = k * 100 + p as u64 * 30;
                    let n = 2 + (k % 3) as u32;
                    let writes: Vec<TxnWrite> = (0..n)
                        .map(|i| {
                            let partition = ((2 * p as u64 + k + i as u64) % PARTITIONS as u64) as i32;
                            appends.push((invoked + 20 * (i as u64 + 1), p, k, i, partition));
                            TxnWrite { partition, value: txn_value_of(p, k, i), index: i, offset: None }
                        })
                        .collect();
                    let outcome = if k % 4 == 3 { TxnOutcome::Aborted } else { TxnOutcome::Committed };
                    txns.push(Txn {
                        producer: p,
                        txn: k,
                        invoked_us: invoked,
                        ended_us: Some(invoked + 85),
                        completed_us: Some(invoked + 100),
                        writes,
                        outcome,
                    });
                }
            }
            // Markers go in at each end time; data at append time: (time, whose write, partition).
            type Append = (u64, Option<(u32, u64, u32)>, i32);
            let mut events: Vec<Append> =
                appends.iter().map(|(at, p, k, i, part)| (*at, Some((*p, *k, *i)), *part)).collect();
            for t in &txns {
                let parts: BTreeSet<i32> = t.writes.iter().map(|w| w.partition).collect();
                events.extend(parts.into_iter().map(|part| (t.ended_us.unwrap() + 1, None, part)));
            }
            events.sort();
            let mut next = [0i64; PARTITIONS as usize];
            let mut offsets: HashMap<(u32, u64, u32), i64> = HashMap::new();
            for (_, who, part) in events {
                if let Some(w) = who {
                    offsets.insert(w, next[part as usize]);
                }
                next[part as usize] += 1;
            }
            let mut h = TxnHistory { producers, support: supported(), ..TxnHistory::default() };
            for t in &mut txns {
                for w in &mut t.writes {
                    w.offset = Some(offsets[&(t.producer, t.txn, w.index)]);
                }
            }
            let mut finals = Vec::new();
            for t in txns.iter().filter(|t| t.outcome == TxnOutcome::Committed) {
                for w in &t.writes {
                    let o = w.offset.unwrap();
                    finals.push(TxnRead {
                        partition: w.partition,
                        offset: o,
                        value: w.value.clone(),
                        at_us: 1_000_000,
                    });
                    let at_us = t.completed_us.unwrap() + 5;
                    h.reads.push(TxnRead { partition: w.partition, offset: o, value: w.value.clone(), at_us });
                }
            }
            finals.sort_by_key(|x| (x.partition, x.offset));
            h.final_reads = finals;
            h.txns = txns;
            let mut b = B { h };
            b.reached_to_the_end();
            b
        }

        /// The final read reached the last offset of every partition (closing transaction).
        fn reached_to_the_end(&mut self) {
            let fr = &mut self.h.final_read;
            *fr = TxnFinalRead { complete: true, closed: true, ..TxnFinalRead::default() };
            for x in &self.h.final_reads {
                let e = fr.reached.entry(x.partition).or_insert(x.offset);
                *e = (*e).max(x.offset);
            }
            fr.targets = fr.reached.clone();
        }

        fn txn_mut(&mut self, producer: u32, txn: u64) -> &mut Txn {
            self.h.txns.iter_mut().find(|t| t.producer == producer && t.txn == txn).unwrap()
        }

        fn write(&self, value: &str) -> TxnWrite {
            self.h.txns.iter().flat_map(|t| &t.writes).find(|w| w.value == value).unwrap().clone()
        }

        /// The final read sees `value` where it was delivered.
        fn final_sees(&mut self, value: &str) -> &mut Self {
            let w = self.write(value);
            self.h.final_reads.push(TxnRead {
                partition: w.partition,
                offset: w.offset.unwrap(),
                value: value.into(),
                at_us: 1_000_000,
            });
            self
        }

        fn final_misses(&mut self, value: &str) -> &mut Self {
            self.h.final_reads.retain(|x| x.value != value);
            self
        }

        fn live_sees(&mut self, value: &str, at_us: u64) -> &mut Self {
            let w = self.write(value);
            self.h.reads.push(TxnRead {
                partition: w.partition,
                offset: w.offset.unwrap(),
                value: value.into(),
                at_us,
            });
            self
        }

        fn live_misses(&mut self, value: &str) -> &mut Self {
            self.h.reads.retain(|x| x.value != value);
            self
        }

        fn done(&self) -> TxnReport {
            check(&self.h)
        }
    }

    fn supported() -> TxnSupport {
        TxnSupport {
            broker: "b:9092".into(),
            find_coordinator: Some(3),
            init_producer_id: Some(4),
            add_partitions_to_txn: Some(3),
            end_txn: Some(3),
            produce: Some(9),
            fetch: Some(12),
        }
    }

    /// The rule names a report violates (for data-driven tests).
    fn violated(r: &TxnReport) -> Vec<&'static str> {
        let rules: [(&str, usize); 8] = [
            ("aborted_reads", r.aborted_reads.len()),
            ("dirty_reads", r.dirty_reads.len()),
            ("partial", r.partial.len()),
            ("lost", r.lost.len()),
            ("misordered", r.misordered.len()),
            ("duplicated", r.duplicated.len()),
            ("inconsistent", r.inconsistent.len()),
            ("phantom", r.phantom.len()),
        ];
        rules.iter().filter(|(_, n)| *n > 0).map(|(name, _)| *name).collect()
    }

    /// Applies `mutate` to a clean concurrent history and checks which rules fire.
    fn check_rules(mutate: impl FnOnce(&mut B), expected: &[&str]) {
        let mut b = B::concurrent(3, 12);
        mutate(&mut b);
        let r = b.done();
        assert_eq!(violated(&r), expected, "{:#?}", r.findings());
        assert_eq!(r.findings().len(), expected.len());
    }

    #[test]
    fn a_clean_concurrent_history_passes() {
        let b = B::concurrent(3, 12);
        // The history is concurrent: transactions of different producers overlap in time and
        // their writes interleave in a partition.
        let t = &b.h.txns;
        assert!(t.iter().any(|a| t.iter().any(|b| a.producer != b.producer
            && a.invoked_us < b.completed_us.unwrap()
            && b.invoked_us < a.completed_us.unwrap())));
        let r = b.done();
        assert_eq!(violated(&r), Vec::<&str>::new(), "{:#?}", r.findings());
        assert!(r.findings().is_empty() && r.unseen.is_empty() && r.applicable);
        assert_eq!((r.committed, r.aborted, r.failed, r.unknown), (27, 9, 0, 0));
        assert_eq!(r.committed_values, r.committed_values_read);
        assert_eq!(r.values_read, r.committed_values);
    }

    #[test]
    fn aborted_read() {
        // The final reader sees a value of an aborted transaction.
        check_rules(
            |b| {
                b.final_sees("t1-3-0");
            },
            &["aborted_reads"],
        );
        // A failed transaction (abortable error, then abort) is not committed either.
        check_rules(
            |b| {
                b.txn_mut(2, 5).outcome = TxnOutcome::Failed { error: "commit: abortable".into() };
                b.h.reads.retain(|x| !x.value.starts_with("t2-5-"));
                b.h.final_reads.retain(|x| !x.value.starts_with("t2-5-") || x.value == "t2-5-0");
            },
            &["aborted_reads"],
        );
        // Near miss: the same value of an indeterminate commit is fine.
        check_rules(
            |b| {
                b.txn_mut(1, 3).outcome = TxnOutcome::Unknown { error: "commit: timed out".into() };
                b.final_sees("t1-3-0").final_sees("t1-3-1");
            },
            &[],
        );
    }

    #[test]
    fn dirty_read() {
        // The live reader saw t0-4-1 at 430 µs; t0-4 was asked to commit at 485 µs, while
        // t1-4 and t2-4 were running.
        check_rules(
            |b| {
                b.live_misses("t0-4-1").live_sees("t0-4-1", 430);
            },
            &["dirty_reads"],
        );
        // A value of a transaction that later aborted, seen live before the abort: dirty and
        // an aborted read.
        check_rules(
            |b| {
                b.live_sees("t2-7-0", 770);
            },
            &["aborted_reads", "dirty_reads"],
        );
        // Near miss: seen after the commit was asked for, before it returned (the markers are
        // written by then).
        check_rules(
            |b| {
                b.live_misses("t0-4-1").live_sees("t0-4-1", 490);
            },
            &[],
        );
    }

    #[test]
    fn atomicity() {
        // A committed transaction of three writes, one missing although the final read
        // passed it.
        check_rules(
            |b| {
                b.final_misses("t0-4-1");
            },
            &["partial"],
        );
        // The same for an indeterminate one.
        check_rules(
            |b| {
                b.txn_mut(0, 4).outcome = TxnOutcome::Unknown { error: "commit: timed out".into() };
                b.final_misses("t0-4-1");
            },
            &["partial"],
        );
        // Near miss: the final read did not get that far in that partition (a write of
        // another transaction at a higher offset is missing too, so the read stopped).
        check_rules(
            |b| {
                let w = b.write("t0-4-1");
                b.final_misses("t0-4-1");
                b.h.final_read.reached.insert(w.partition, w.offset.unwrap() - 1);
                b.h.final_read.complete = false;
                b.h.final_reads.retain(|x| x.partition != w.partition || x.offset < w.offset.unwrap());
                let r = b.done();
                assert!(r.unseen.iter().any(|g| g.txn == "t0-4" && g.undecided == ["t0-4-1"]), "{:?}", r.unseen);
            },
            &[],
        );
    }

    #[test]
    fn lost() {
        let drop_all = |b: &mut B, t: &str| {
            b.h.final_reads.retain(|x| !x.value.starts_with(&format!("{t}-")));
        };
        // A committed transaction wholly missing from a complete final read.
        check_rules(|b| drop_all(b, "t1-6"), &["lost"]);
        // An indeterminate one the live reader saw (so it did commit), then wholly missing.
        check_rules(
            |b| {
                b.txn_mut(1, 6).outcome = TxnOutcome::Unknown { error: "commit: timed out".into() };
                drop_all(b, "t1-6");
            },
            &["lost"],
        );
        // Near miss: an indeterminate transaction wholly absent and never seen was aborted.
        check_rules(
            |b| {
                b.txn_mut(1, 6).outcome = TxnOutcome::Unknown { error: "commit: timed out".into() };
                drop_all(b, "t1-6");
                b.live_misses("t1-6-0").live_misses("t1-6-1");
            },
            &[],
        );
        // Near miss: writes with no delivery offset and an unclosed final read: undecided.
        check_rules(
            |b| {
                drop_all(b, "t1-6");
                b.h.final_read.closed = false;
                for w in &mut b.txn_mut(1, 6).writes {
                    w.offset = None;
                }
            },
            &[],
        );
    }

    #[test]
    fn order_within_a_transaction() {
        // A committed transaction whose first and fourth writes share a partition (four writes
        // over three partitions), with another producer's committed write read between them.
        let b = B::concurrent(3, 12);
        let (v0, v3) =
            b.h.txns
                .iter()
                .filter(|t| t.outcome == TxnOutcome::Committed && t.writes.len() == 4)
                .find_map(|t| {
                    let (w0, w3) = (&t.writes[0], &t.writes[3]);
                    let (o0, o3) = (w0.offset.unwrap(), w3.offset.unwrap());
                    let other = format!("t{}-", t.producer);
                    let between = b.h.final_reads.iter().any(|x| {
                        x.partition == w0.partition && o0 < x.offset && x.offset < o3 && !x.value.starts_with(&other)
                    });
                    (w0.partition == w3.partition && between).then(|| (w0.value.clone(), w3.value.clone()))
                })
                .expect("the clean history interleaves transactions within a partition");
        // Near miss: that interleaving (and other transactions' writes in any order) is fine.
        check_rules(|_| {}, &[]);
        // Swap the two writes' places in the log as read.
        check_rules(
            |b| {
                for x in &mut b.h.final_reads {
                    if x.value == v0 {
                        x.value = v3.clone();
                    } else if x.value == v3 {
                        x.value = v0.clone();
                    }
                }
                b.live_misses(&v0).live_misses(&v3);
                for w in b.h.txns.iter_mut().flat_map(|t| &mut t.writes) {
                    if w.value == v0 || w.value == v3 {
                        w.offset = None;
                    }
                }
            },
            &["misordered"],
        );
    }

    #[test]
    fn duplicates_inconsistencies_and_phantoms() {
        check_rules(
            |b| {
                let w = b.write("t2-0-0");
                b.h.final_reads.push(TxnRead { partition: w.partition, offset: 999, value: w.value, at_us: 1 });
            },
            &["duplicated"],
        );
        // Near miss: the live and the final reader both saw it, at the same offset.
        check_rules(
            |b| {
                b.final_sees("t2-0-0");
            },
            &[],
        );
        check_rules(
            |b| {
                b.h.final_reads.push(TxnRead { partition: 0, offset: 500, value: "t9-9-9".into(), at_us: 1 });
            },
            &["phantom"],
        );
        check_rules(
            |b| {
                let w = b.write("t2-0-1");
                b.h.reads.push(TxnRead {
                    partition: w.partition,
                    offset: w.offset.unwrap(),
                    value: "t2-0-0".into(),
                    at_us: 900,
                });
            },
            &["duplicated", "inconsistent"],
        );
    }

    #[test]
    fn findings_say_numbers_and_the_first_example() {
        let mut b = B::concurrent(3, 12);
        b.final_sees("t1-3-0").final_misses("t0-4-1");
        let r = b.done();
        let f = r.findings();
        assert_eq!(f.len(), 2, "{f:#?}");
        assert!(
            f[0].starts_with("1 read of a value of aborted or failed transactions") && f[0].contains("t1-3-0 @ "),
            "{}",
            f[0]
        );
        assert!(f[0].contains("of 9 aborted"), "{}", f[0]);
        assert!(f[1].contains("t0-4 (committed) shows t0-4-0, t0-4-2, lacks t0-4-1"), "{}", f[1]);
        let back: TxnReport = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn without_the_transaction_apis_it_is_not_applicable() {
        let mut b = B::concurrent(1, 2);
        b.h.support.end_txn = None;
        let r = b.done();
        assert!(!r.applicable && !r.violated());
        assert_eq!(r.missing_apis, ["EndTxn (not advertised)"]);
    }
}
