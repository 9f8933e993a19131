//! Per-reader rules, in the manner of Jepsen's poll checks: within one reader (the live one,
//! the final one), each partition's offsets must rise one by one; a jump over offsets that hold
//! data (some reader saw a value there) is a skip, and a step back is a rewind. Errors a reader
//! was given instead of records (offset out of range: readers run with
//! `auto.offset.reset=error`) are listed too.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::history::History;

/// A reader jumped from one offset to a later one over offsets that hold data, or stepped back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollJump {
    /// `live` or `final`.
    pub reader: String,
    pub partition: i32,
    /// The offset read before (-1: none yet; reads start at the beginning).
    pub from: i64,
    pub to: i64,
    /// Offsets in between that some reader saw a value at (skips only).
    pub missed: usize,
}

impl std::fmt::Display for PollJump {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.to <= self.from {
            write!(
                f,
                "{} reader went back from {}:{} to {}:{}",
                self.reader, self.partition, self.from, self.partition, self.to
            )
        } else {
            write!(
                f,
                "{} reader jumped from {}:{} to {}:{} over {} offsets that hold data",
                self.reader, self.partition, self.from, self.partition, self.to, self.missed
            )
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollReport {
    pub skips: Vec<PollJump>,
    pub rewinds: Vec<PollJump>,
    /// `live 0: Broker: Offset out of range` and the like, first of each kind.
    pub errors: Vec<String>,
}

pub fn check(h: &History) -> PollReport {
    let held: BTreeSet<(i32, i64)> = h.reads.iter().map(|r| (r.partition, r.offset)).collect();
    let mut last: BTreeMap<(bool, i32), i64> = BTreeMap::new();
    let mut out = PollReport::default();
    let mut reads: Vec<_> = h.reads.iter().collect();
    reads.sort_by_key(|r| (r.final_read, r.at_us));
    for r in reads {
        let reader = if r.final_read { "final" } else { "live" };
        let prev = *last.get(&(r.final_read, r.partition)).unwrap_or(&-1);
        if r.offset <= prev {
            out.rewinds.push(PollJump {
                reader: reader.into(),
                partition: r.partition,
                from: prev,
                to: r.offset,
                missed: 0,
            });
        } else if r.offset > prev + 1 {
            let missed = held.range((r.partition, prev + 1)..(r.partition, r.offset)).count();
            if missed > 0 {
                out.skips.push(PollJump {
                    reader: reader.into(),
                    partition: r.partition,
                    from: prev,
                    to: r.offset,
                    missed,
                });
            }
        }
        last.insert((r.final_read, r.partition), r.offset.max(prev));
    }
    let mut kinds = BTreeSet::new();
    for e in &h.reader_events {
        let reader = if e.final_read { "final" } else { "live" };
        if kinds.insert((reader, e.error.clone())) {
            out.errors.push(format!("{reader} reader, partition {}: {}", e.partition, e.error));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Read, ReaderEvent};

    fn read(partition: i32, offset: i64, at_us: u64, final_read: bool) -> Read {
        Read { partition, offset, value: format!("v{partition}-{offset}"), at_us, final_read }
    }

    /// Both readers interleave two partitions; the live one started late on partition 1 (the
    /// log there begins at 3, nobody ever saw 0..3), which is no skip.
    #[test]
    fn contiguous_reads_pass_and_gaps_without_data_are_no_skips() {
        let mut h = History::default();
        for o in 0..10 {
            h.reads.push(read(0, o, 10 * o as u64, false));
            h.reads.push(read(1, o + 3, 10 * o as u64 + 5, false));
            h.reads.push(read(1, o + 3, 1000 + o as u64, true));
            h.reads.push(read(0, o, 1000 + o as u64, true));
        }
        assert_eq!(check(&h), PollReport::default());
    }

    #[test]
    fn a_jump_over_data_is_a_skip_and_a_step_back_a_rewind() {
        let mut h = History::default();
        for o in 0..6 {
            h.reads.push(read(0, o, 1000 + o as u64, true));
        }
        h.reads.extend([read(0, 0, 1, false), read(0, 4, 2, false), read(0, 2, 3, false)]);
        let r = check(&h);
        assert_eq!(r.skips.len(), 1, "{r:?}");
        assert_eq!((r.skips[0].from, r.skips[0].to, r.skips[0].missed), (0, 4, 3));
        assert_eq!(r.rewinds.len(), 1);
        assert_eq!(r.rewinds[0].to_string(), "live reader went back from 0:4 to 0:2");
        h.reader_events.push(ReaderEvent {
            at_us: 5,
            final_read: false,
            partition: 0,
            error: "Broker: Offset out of range".into(),
        });
        h.reader_events.push(ReaderEvent {
            at_us: 6,
            final_read: false,
            partition: 1,
            error: "Broker: Offset out of range".into(),
        });
        assert_eq!(check(&h).errors, vec!["live reader, partition 0: Broker: Offset out of range".to_string()]);
    }
}
