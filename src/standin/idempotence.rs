//! Idempotent producers: the producer ids InitProducerId hands out, and per partition each
//! producer's epoch, last sequence and last five batches (rebuilt from the log after a
//! restart or a truncation), which decide whether a batch is new, a retry, or out of order.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

use super::batch::Header;
use super::log::{Entry, Payload};

/// Batches remembered per producer to answer retries with their original offset (Kafka's 5).
pub const RECENT: usize = 5;

/// What to do with a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// Next in sequence (or not idempotent, or a producer this partition has not seen).
    Append,
    /// A retry of one of the last batches: answer with its offset, append nothing.
    Duplicate { base_offset: i64, end_offset: i64 },
    /// A retry of an older batch: DUPLICATE_SEQUENCE_NUMBER (librdkafka counts it delivered).
    OldDuplicate,
    /// A gap: OUT_OF_ORDER_SEQUENCE_NUMBER.
    OutOfOrder,
    /// An older producer epoch: INVALID_PRODUCER_EPOCH.
    Fenced,
}

#[derive(Clone, Debug)]
struct Recent {
    base_seq: i32,
    last_seq: i32,
    base_offset: i64,
    end_offset: i64,
}

#[derive(Clone, Debug)]
struct ProducerState {
    epoch: i16,
    last_seq: i32,
    recent: VecDeque<Recent>,
}

/// One partition's producers.
#[derive(Clone, Debug, Default)]
pub struct Producers {
    by_id: HashMap<i64, ProducerState>,
}

fn last_seq(h: &Header) -> i32 {
    ((h.base_sequence as i64 + h.last_offset_delta as i64) % (i32::MAX as i64 + 1)) as i32
}

fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

impl Producers {
    pub fn check(&self, h: &Header) -> Check {
        if !h.is_idempotent() {
            return Check::Append;
        }
        let Some(s) = self.by_id.get(&h.producer_id) else { return Check::Append };
        if h.producer_epoch < s.epoch {
            return Check::Fenced;
        }
        if h.producer_epoch > s.epoch {
            return if h.base_sequence == 0 { Check::Append } else { Check::OutOfOrder };
        }
        if let Some(r) = s.recent.iter().find(|r| r.base_seq == h.base_sequence && r.last_seq == last_seq(h)) {
            return Check::Duplicate { base_offset: r.base_offset, end_offset: r.end_offset };
        }
        if h.base_sequence == next_seq(s.last_seq) {
            Check::Append
        } else if h.base_sequence <= s.last_seq {
            Check::OldDuplicate
        } else {
            Check::OutOfOrder
        }
    }

    /// Records a batch appended at `base_offset`.
    pub fn record(&mut self, h: &Header, base_offset: i64) {
        if !h.is_idempotent() {
            return;
        }
        let s = self.by_id.entry(h.producer_id).or_insert(ProducerState {
            epoch: h.producer_epoch,
            last_seq: -1,
            recent: VecDeque::new(),
        });
        if h.producer_epoch != s.epoch {
            s.epoch = h.producer_epoch;
            s.recent.clear();
        }
        s.last_seq = last_seq(h);
        s.recent.push_back(Recent {
            base_seq: h.base_sequence,
            last_seq: last_seq(h),
            base_offset,
            end_offset: base_offset + h.offsets(),
        });
        while s.recent.len() > RECENT {
            s.recent.pop_front();
        }
    }

    /// The state the entries of a log imply.
    pub fn rebuild<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> Producers {
        let mut p = Producers::default();
        for e in entries {
            if let Payload::Batch { header, .. } = &e.payload {
                p.record(header, e.base_offset);
            }
        }
        p
    }
}

/// Producer ids unique across nodes and restarts: the time in ms, a counter, the node id.
pub struct IdSource {
    node: u64,
    counter: AtomicU64,
}

impl IdSource {
    pub fn new(node: u64) -> IdSource {
        IdSource { node, counter: AtomicU64::new(0) }
    }

    pub fn next(&self) -> i64 {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
            & ((1 << 41) - 1);
        let n = self.counter.fetch_add(1, Ordering::Relaxed) & 0xffff;
        (((ms << 16) | n) << 4 | (self.node & 0xf)) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::standin::batch;

    fn h(pid: i64, epoch: i16, seq: i32, records: i32) -> Header {
        batch::header(&batch::sample(records, pid, epoch, seq)).unwrap()
    }

    fn check(state: &[(Header, i64)], batch: Header, expected: Check) {
        let mut p = Producers::default();
        for (h, offset) in state {
            p.record(h, *offset);
        }
        assert_eq!(p.check(&batch), expected, "after {state:?}");
    }

    #[test]
    fn sequence_rules() {
        let first = (h(9, 0, 0, 2), 10);
        check(&[], h(9, 0, 5, 1), Check::Append);
        check(&[], h(-1, -1, -1, 1), Check::Append);
        check(&[first], h(9, 0, 2, 1), Check::Append);
        check(&[first], h(9, 0, 0, 2), Check::Duplicate { base_offset: 10, end_offset: 12 });
        check(&[first], h(9, 0, 3, 1), Check::OutOfOrder);
        check(&[first], h(9, 1, 0, 1), Check::Append);
        check(&[first], h(9, 1, 4, 1), Check::OutOfOrder);
        check(&[(h(9, 1, 0, 1), 0)], h(9, 0, 1, 1), Check::Fenced);
        // Six batches later the first is no longer remembered.
        let many: Vec<(Header, i64)> = (0..7).map(|i| (h(9, 0, i, 1), i as i64)).collect();
        check(&many, h(9, 0, 0, 1), Check::OldDuplicate);
        check(&many, h(9, 0, 6, 1), Check::Duplicate { base_offset: 6, end_offset: 7 });
    }

    #[test]
    fn ids_differ_by_node_and_call() {
        let (a, b) = (IdSource::new(1), IdSource::new(2));
        let ids = [a.next(), a.next(), b.next()];
        assert!(ids.iter().all(|i| *i > 0));
        assert_ne!(ids[0], ids[1]);
        assert_eq!(ids[2] & 0xf, 2);
    }
}
