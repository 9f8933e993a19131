//! Per-key order for keyed writes: each key is written by one producer with its own sequence,
//! so the log must hold a key's acknowledged writes in that sequence (the final read, by
//! offset), and a group member must be handed them in that sequence within one assignment.
//! A key whose writes were placed in more than one partition is noted: the client's
//! partitioner decides placement, so that says the partition count it was told changed.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::history::{History, Outcome};

/// Two writes of one key in the wrong order: `earlier` (lower in the key's sequence) came after
/// `later` where they were found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyReorder {
    pub key: String,
    /// `log` (the final read, by offset) or `consumer N` (a group member, by poll).
    pub where_: String,
    pub partition: i32,
    /// (key sequence number, offset) of the one found first, then the one found after it.
    pub first: (u64, i64),
    pub then: (u64, i64),
}

impl std::fmt::Display for KeyReorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "key {} in the {}: #{} at {}:{} before #{} at {}:{}",
            self.key, self.where_, self.first.0, self.partition, self.first.1, self.then.0, self.partition, self.then.1
        )
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyReport {
    /// Keys written (0: the scenario wrote no keys, and the rules had nothing to judge).
    pub keys: usize,
    pub reorders: Vec<KeyReorder>,
    /// `key k3 in partitions 0 and 2`.
    pub split_keys: Vec<String>,
}

impl KeyReport {
    /// No keyed writes: nothing to show.
    pub fn is_empty(&self) -> bool {
        self.keys == 0
    }
}

pub fn check(h: &History) -> KeyReport {
    let keyed: HashMap<&str, (&str, u64)> = h
        .sends
        .iter()
        .filter(|s| matches!(s.outcome, Outcome::Ok { .. }))
        .filter_map(|s| s.key.as_ref().map(|k| (s.value.as_str(), (k.key.as_str(), k.seq))))
        .collect();
    let mut r = KeyReport {
        keys: h.sends.iter().filter_map(|s| s.key.as_ref().map(|k| k.key.as_str())).collect::<BTreeSet<_>>().len(),
        ..KeyReport::default()
    };
    if r.keys == 0 {
        return r;
    }
    // The log: the final read in offset order, each place once.
    let mut log: BTreeMap<(i32, i64), &str> = BTreeMap::new();
    for x in h.reads.iter().filter(|x| x.final_read) {
        log.entry((x.partition, x.offset)).or_insert(x.value.as_str());
    }
    let mut partitions: BTreeMap<&str, BTreeSet<i32>> = BTreeMap::new();
    let mut last: HashMap<&str, (u64, i64)> = HashMap::new();
    for (&(partition, offset), value) in &log {
        let Some(&(key, seq)) = keyed.get(value) else { continue };
        partitions.entry(key).or_default().insert(partition);
        track(&mut last, &mut r.reorders, key, "log", partition, (seq, offset));
    }
    // Each member, each assignment: in poll order.
    if let Some(g) = &h.group {
        let mut last: HashMap<(u32, u32, &str), (u64, i64)> = HashMap::new();
        for p in &g.polls {
            let Some(&(key, seq)) = keyed.get(p.value.as_str()) else { continue };
            let slot = (p.consumer, p.assignment, key);
            if let Some(&prev) = last.get(&slot) {
                if seq <= prev.0 {
                    r.reorders.push(KeyReorder {
                        key: key.to_string(),
                        where_: format!("polls of consumer {}", p.consumer),
                        partition: p.partition,
                        first: prev,
                        then: (seq, p.offset),
                    });
                }
            }
            last.insert(slot, (seq, p.offset).max(last.get(&slot).copied().unwrap_or((0, -1))));
        }
    }
    r.split_keys = partitions
        .into_iter()
        .filter(|(_, ps)| ps.len() > 1)
        .map(|(k, ps)| {
            let ps: Vec<String> = ps.iter().map(|p| p.to_string()).collect();
            format!("key {k} in partitions {}", ps.join(" and "))
        })
        .collect();
    r
}

/// Records a reorder when `now` comes after a higher sequence number of the same key.
fn track<'a>(
    last: &mut HashMap<&'a str, (u64, i64)>,
    out: &mut Vec<KeyReorder>,
    key: &'a str,
    where_: &str,
    partition: i32,
    now: (u64, i64),
) {
    if let Some(&prev) = last.get(key) {
        if now.0 <= prev.0 {
            out.push(KeyReorder {
                key: key.to_string(),
                where_: where_.to_string(),
                partition,
                first: prev,
                then: now,
            });
            return;
        }
    }
    last.insert(key, now);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::group::{GroupHistory, GroupPoll};
    use crate::history::{KeySeq, Read, Send};

    /// Two producers, keys k0 (producer 0) and k1 (producer 1), interleaved in partition 0;
    /// the final read finds them in order.
    fn keyed() -> History {
        let mut h = History::default();
        for i in 0..8u64 {
            let (producer, key) = ((i % 2) as u32, format!("k{}", i % 2));
            let value = format!("p{producer}-{}", i / 2);
            h.sends.push(Send {
                producer,
                seq: i / 2,
                value: value.clone(),
                invoked_us: i * 10,
                completed_us: Some(i * 10 + 25),
                outcome: Outcome::Ok { partition: 0, offset: i as i64 },
                broker: None,
                key: Some(KeySeq { key, seq: i / 2 }),
            });
            h.reads.push(Read { partition: 0, offset: i as i64, value, at_us: 1000 + i, final_read: true });
        }
        h
    }

    #[test]
    fn keys_in_their_order_pass_and_unkeyed_histories_have_nothing_to_judge() {
        let r = check(&keyed());
        assert_eq!((r.keys, r.reorders.len(), r.split_keys.len()), (2, 0, 0));
        let mut plain = keyed();
        plain.sends.iter_mut().for_each(|s| s.key = None);
        assert!(check(&plain).is_empty());
    }

    #[test]
    fn a_key_out_of_its_order_in_the_log_is_found() {
        let mut h = keyed();
        // k0's #1 (offset 2) and #2 (offset 4) swapped in the log.
        let (a, b) =
            (h.reads.iter().position(|r| r.offset == 2).unwrap(), h.reads.iter().position(|r| r.offset == 4).unwrap());
        let (va, vb) = (h.reads[a].value.clone(), h.reads[b].value.clone());
        h.reads[a].value = vb;
        h.reads[b].value = va;
        let r = check(&h);
        assert_eq!(r.reorders.len(), 1, "{r:?}");
        assert_eq!(r.reorders[0].to_string(), "key k0 in the log: #2 at 0:2 before #1 at 0:4");
        // Near miss: swapping two different keys' writes keeps each key in order.
        let mut h = keyed();
        let (va, vb) = (h.reads[2].value.clone(), h.reads[3].value.clone());
        h.reads[2].value = vb;
        h.reads[3].value = va;
        assert!(check(&h).reorders.is_empty());
    }

    #[test]
    fn a_member_handed_a_key_out_of_order_within_one_assignment_is_found() {
        let mut h = keyed();
        let poll = |assignment, offset: i64, value: &str, at_us| GroupPoll {
            consumer: 0,
            assignment,
            partition: 0,
            offset,
            value: value.into(),
            at_us,
        };
        h.group = Some(GroupHistory {
            polls: vec![poll(1, 0, "p0-0", 1), poll(1, 2, "p0-1", 2), poll(2, 0, "p0-0", 3), poll(2, 2, "p0-1", 4)],
            ..GroupHistory::default()
        });
        // A new assignment starting over is no reorder.
        assert!(check(&h).reorders.is_empty());
        h.group.as_mut().unwrap().polls.push(poll(2, 0, "p0-0", 5));
        let r = check(&h);
        assert_eq!(r.reorders.len(), 1);
        assert_eq!(r.reorders[0].to_string(), "key k0 in the polls of consumer 0: #1 at 0:2 before #0 at 0:0");
    }

    #[test]
    fn a_key_found_in_two_partitions_is_noted() {
        let mut h = keyed();
        h.reads[7].partition = 1;
        assert_eq!(check(&h).split_keys, vec!["key k1 in partitions 0 and 1".to_string()]);
    }
}
