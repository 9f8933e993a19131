//! The recorded history of a workload: every send (invoke → ok / fail / info) and every read,
//! with monotonic timestamps in microseconds since the workload started. Values are unique:
//! `p<producer>-<seq>`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How a send ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Outcome {
    /// Acknowledged at this partition and offset.
    Ok { partition: i32, offset: i64 },
    /// Definitely not written (the broker said so).
    Fail { error: String },
    /// Indeterminate: a timeout or a lost connection; it may or may not have been written.
    Info { error: String },
}

/// One produce operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Send {
    pub producer: u32,
    pub seq: u64,
    pub value: String,
    pub invoked_us: u64,
    /// When the outcome arrived (`None`: still pending when the workload ended — indeterminate).
    pub completed_us: Option<u64>,
    pub outcome: Outcome,
}

/// One record seen by a consumer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Read {
    pub partition: i32,
    pub offset: i64,
    pub value: String,
    pub at_us: u64,
    /// Seen by the final read (fresh consumers after every fault was healed).
    pub final_read: bool,
}

/// How the final read ended.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalRead {
    /// Every partition was read up to its highest acknowledged offset before the deadline.
    pub complete: bool,
    /// Per partition: the highest acknowledged offset the final read had to reach.
    pub targets: BTreeMap<i32, i64>,
    /// Per partition: the highest offset it did reach.
    pub reached: BTreeMap<i32, i64>,
    /// Distinct errors the final consumer saw (at most 10), for the report.
    #[serde(default)]
    pub errors: Vec<String>,
}

/// Everything the checker needs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// Whether each producer's sends to one partition must get increasing offsets (true with
    /// idempotence or one request in flight).
    pub ordered_producers: bool,
    pub sends: Vec<Send>,
    pub reads: Vec<Read>,
    pub final_read: FinalRead,
}

/// The unique value of a producer's `seq`-th send.
pub fn value_of(producer: u32, seq: u64) -> String {
    format!("p{producer}-{seq}")
}

impl History {
    /// The highest acknowledged offset per partition.
    pub fn highest_acked(&self) -> BTreeMap<i32, i64> {
        let mut out = BTreeMap::new();
        for s in &self.sends {
            if let Outcome::Ok { partition, offset } = s.outcome {
                let e = out.entry(partition).or_insert(offset);
                *e = (*e).max(offset);
            }
        }
        out
    }

    pub fn acked(&self) -> usize {
        self.sends.iter().filter(|s| matches!(s.outcome, Outcome::Ok { .. })).count()
    }

    pub fn failed(&self) -> usize {
        self.sends.iter().filter(|s| matches!(s.outcome, Outcome::Fail { .. })).count()
    }

    pub fn indeterminate(&self) -> usize {
        self.sends.iter().filter(|s| matches!(s.outcome, Outcome::Info { .. })).count()
    }
}
